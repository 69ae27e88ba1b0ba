// node --test, an ES module test file.
import { test } from 'node:test';
import * as bnwasm from 'bnwasm';
import scenario from './scenario.cjs';

test('import resolves to the ES module entry of the installed package', () => {
  scenario.entryOf(import.meta.resolve('bnwasm'), 'import');
});
test('create, train, predict, save/load, errors, dispose', () => scenario.mainThread(bnwasm));
test('createTrainer: fit, snapshot, predict, an InputError from the worker, terminate', () => scenario.inWorker(bnwasm));
