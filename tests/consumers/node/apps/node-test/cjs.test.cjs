// node --test, a CommonJS test file.
const { test } = require('node:test');
const bnwasm = require('bnwasm');
const { mainThread, inWorker, entryOf } = require('./scenario.cjs');

test('require resolves to the CommonJS entry of the installed package', () => {
  entryOf(require.resolve('bnwasm'), 'require');
});
test('create, train, predict, save/load, errors, dispose', () => mainThread(bnwasm));
test('createTrainer: fit, snapshot, predict, an InputError from the worker, terminate', () => inWorker(bnwasm));
