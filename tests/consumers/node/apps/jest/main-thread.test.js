// Jest with its default configuration: CommonJS, node_modules not transformed.
const bnwasm = require('bnwasm');
const { mainThread, entryOf } = require('./scenario.cjs');

test('require("bnwasm") loads the CommonJS entry of the installed package', () => {
  entryOf(require.resolve('bnwasm'), 'require');
});

test('create, train, predict, save/load, errors, dispose', () => mainThread(bnwasm), 60_000);
