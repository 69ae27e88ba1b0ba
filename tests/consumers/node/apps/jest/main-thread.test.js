// Jest with its default configuration: CommonJS, node_modules not transformed.
const bnwasm = require('bnwasm');
const bnwasmInterop = require('bnwasm/interop');
const { mainThread, interop, entryOf } = require('./scenario.cjs');

test('require("bnwasm") loads the CommonJS entry of the installed package', () => {
  entryOf(require.resolve('bnwasm'), 'require');
  entryOf(require.resolve('bnwasm/interop'), 'require');
});

test('create, train, predict, save/load, errors, dispose', () => mainThread(bnwasm), 60_000);

test('require("bnwasm/interop"): ONNX and safetensors round trips on the same Network class', () => interop(bnwasm, bnwasmInterop), 60_000);
