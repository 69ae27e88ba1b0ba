// What every Node consumer app does with the installed package, whatever loaded it (import,
// require, Jest, Vitest, node --test): the app passes in the module it got, so its own way of
// loading bnwasm is the one under test. Plain CommonJS, so both require() and import can load it.
'use strict';
const assert = require('node:assert/strict');

/** Three noisy clusters in 4-D (the README's example data): n examples, labels 0..2. */
function clusters(n) {
  const x = new Float32Array(n * 4);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let d = 0; d < 4; d++) x[i * 4 + d] = (d % 3 === y[i] ? 2 : 0) + Math.sin(i * 7.1 + d * 3.7);
  }
  return { x, y };
}

const config = {
  inputSize: 4,
  layers: [
    { type: 'dense', units: 16, useBias: false },
    { type: 'batchNorm' },
    { type: 'relu' },
    { type: 'dense', units: 3 },
  ],
  optimizer: { type: 'adam', learningRate: 1e-2 },
  seed: 7,
};

/** The whole module is there: functions and the error classes, each a real subclass of Error. */
function exportsOf(b) {
  for (const name of ['createNetwork', 'loadNetwork', 'createTrainer', 'loadTrainer', 'memoryUsage']) {
    assert.equal(typeof b[name], 'function', `bnwasm.${name}`);
  }
  for (const name of ['BnwasmError', 'ConfigError', 'InputError', 'DivergenceError', 'ModelFormatError', 'DisposedError', 'WorkerError']) {
    assert.ok(b[name].prototype instanceof Error, `bnwasm.${name} extends Error`);
  }
}

/** Checks that `fn` throws (or rejects with) an instance of `Class` carrying `code`. */
async function rejectsWith(fn, Class, code) {
  let caught = null;
  try {
    await fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught !== null, `expected ${Class.name} ${code}, nothing was thrown`);
  assert.ok(caught instanceof Class, `expected an instance of the ${Class.name} the app imported, got ${caught?.name}: ${caught?.message}`);
  assert.equal(caught.code, code);
  return caught;
}

const sameValues = (a, b, what) => assert.deepEqual(Array.from(a), Array.from(b), what);

/** Main thread: create, train, predict, save/load, an InputError, dispose. */
async function mainThread(b) {
  exportsOf(b);
  const before = (await b.memoryUsage()).liveNetworks;
  const { x, y } = clusters(600);
  const net = await b.createNetwork(config);
  const first = net.evaluate(x, y);
  const history = await net.fit(x, y, { epochs: 8, batchSize: 32 });
  assert.equal(history.loss.length, 8);
  const after = net.evaluate(x, y);
  // The clusters are separable: training that works brings the loss well down (the untrained
  // network sits near ln 3 = 1.1) and classifies nearly every example.
  assert.ok(after.loss < first.loss / 4, `loss ${first.loss} -> ${after.loss}`);
  assert.ok(after.accuracy > 0.95, `accuracy ${after.accuracy}`);

  const p = net.predict(x.subarray(0, 4));
  assert.ok(p instanceof Float32Array, 'predict returns this realm\'s Float32Array');
  assert.equal(p.length, 3);
  sameValues(p, net.predictBatch(x.subarray(0, 8)).subarray(0, 3), 'predict(row 0) equals predictBatch row 0');

  const bytes = net.save();
  assert.ok(bytes instanceof Uint8Array);
  const again = await b.loadNetwork(bytes);
  sameValues(again.predict(x.subarray(0, 4)), p, 'the loaded network predicts as the saved one');
  again.dispose();

  const error = await rejectsWith(() => net.predict(new Float32Array(3)), b.InputError, 'BNWASM_WRONG_LENGTH');
  assert.ok(error instanceof b.BnwasmError && error instanceof Error);
  assert.equal(error.name, 'InputError');
  await rejectsWith(() => b.loadNetwork(new Uint8Array([1, 2, 3])), b.ModelFormatError, 'BNWASM_CORRUPT_MODEL');

  net.dispose();
  await rejectsWith(() => net.predict(x.subarray(0, 4)), b.DisposedError, 'BNWASM_DISPOSED');
  assert.equal((await b.memoryUsage()).liveNetworks, before, 'every network disposed');
}

/** In a worker: createTrainer, fit with progress, snapshot, predict, an InputError from the worker, terminate. */
async function inWorker(b) {
  exportsOf(b);
  const { x, y } = clusters(600);
  const trainer = await b.createTrainer(config);
  try {
    let progress = 0;
    const history = await trainer.fit(x, y, { epochs: 8, batchSize: 32, onProgress: () => progress++ });
    assert.equal(history.loss.length, 8);
    assert.ok(progress > 0, 'progress messages arrived');
    assert.ok(history.loss[7] < history.loss[0], `loss ${history.loss[0]} -> ${history.loss[7]}`);

    const net = await trainer.snapshot();
    const evaluation = await trainer.evaluate(x, y);
    assert.ok(evaluation.accuracy > 0.95, `accuracy ${evaluation.accuracy}`);
    const inWorkerOut = await trainer.predict(x.subarray(0, 4));
    assert.ok(inWorkerOut instanceof Float32Array, 'trainer.predict returns this realm\'s Float32Array');
    sameValues(net.predict(x.subarray(0, 4)), inWorkerOut, 'snapshot predicts as the worker');

    // Thrown in the worker, rebuilt on this side as the class this app imported.
    const error = await rejectsWith(() => trainer.predict(new Float32Array(3)), b.InputError, 'BNWASM_WRONG_LENGTH');
    assert.match(error.message, /predict\(\)/);
    assert.ok(error instanceof b.BnwasmError);

    const again = await b.loadNetwork(await trainer.save());
    sameValues(again.predict(x.subarray(0, 4)), inWorkerOut, 'the worker\'s save() loads on this side');
    again.dispose();
    net.dispose();
  } finally {
    trainer.terminate();
  }
  assert.equal(trainer.terminated, true);
  await rejectsWith(() => trainer.predict(x.subarray(0, 4)), b.DisposedError, 'BNWASM_DISPOSED');
}

/**
 * bnwasm/interop loaded the app's way: toONNX on a network the app's bnwasm made (the converters
 * registered on that very class), importONNX back to an instance of it that predicts the same
 * bits, and a corrupt file refused with the app's ModelFormatError.
 */
async function interop(b, i) {
  for (const name of ['importONNX', 'toONNX', 'loadSafetensors', 'toSafetensors', 'importTfjsLayers', 'toTfjsLayers']) {
    assert.equal(typeof i[name], 'function', `bnwasm/interop.${name}`);
  }
  const { x, y } = clusters(96);
  const net = await b.createNetwork(config);
  await net.fit(x, y, { epochs: 2, batchSize: 32 });
  const back = await i.importONNX(net.toONNX());
  assert.ok(back instanceof b.Network, 'importONNX returns the Network class of the app\'s bnwasm');
  sameValues(back.predictBatch(x), net.predictBatch(x), 'the ONNX round trip predicts the same');
  const fromSafetensors = await i.loadSafetensors(net.toSafetensors(), config);
  sameValues(fromSafetensors.predictBatch(x), net.predictBatch(x), 'the safetensors round trip predicts the same');
  await rejectsWith(() => i.importONNX(new Uint8Array([8, 7, 18, 4, 1])), b.ModelFormatError, 'BNWASM_CORRUPT_MODEL');
  for (const n of [net, back, fromSafetensors]) n.dispose();
}

/**
 * Where the app's bnwasm came from: the installed tarball, and the entry its loader asks for
 * (`resolved` is what require.resolve or import.meta.resolve gave the app).
 */
function entryOf(resolved, kind) {
  const file = String(resolved).replace(/\\/g, '/');
  assert.match(file, /\/node_modules\/bnwasm\//, `bnwasm resolves to the installed package, got ${file}`);
  // require gets the generated CommonJS file; import an ES module of web/src (Node's entry there).
  const expected = kind === 'require' ? /\/web\/dist\/(bnwasm|interop)\.cjs$/ : /\/web\/src\/(interop\/)?[\w.-]+\.js$/;
  assert.match(file, expected, `the ${kind} entry`);
}

module.exports = { mainThread, inWorker, interop, entryOf };
