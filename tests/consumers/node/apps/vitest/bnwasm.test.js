// Vitest with no configuration file: the package's ES module entry, main thread and worker.
import { test } from 'vitest';
import * as bnwasm from 'bnwasm';
import scenario from './scenario.cjs';

test('create, train, predict, save/load, errors, dispose', () => scenario.mainThread(bnwasm), 60_000);
test('createTrainer: fit, snapshot, predict, an InputError from the worker, terminate', () => scenario.inWorker(bnwasm), 60_000);
