// Run by tests/js/threads.test.js in a child process, one per thread count (the thread count is
// fixed once a realm has loaded bnwasm). Prints one JSON line.
//   node threads-check.mjs <threads | default> [train | views | terminate | trainers | fault]
import { createHash } from 'node:crypto';
import { configure, createNetwork, createTrainer, memoryUsage, threadCount } from '../../web/src/index.node.js';

const [threadsArg, what = 'train'] = process.argv.slice(2);
if (threadsArg !== 'default') configure({ threads: Number(threadsArg) });
const hash = (bytes) => createHash('sha256').update(bytes).digest('hex').slice(0, 16);
const floats = (n, seed) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.7311 + seed) * 1.5);
const labels = (n, k) => Int32Array.from({ length: n }, (_, i) => (i * 7) % k);

// Wide enough that the GEMMs, batch norms, convolutions and the optimizer split into pieces.
const dense = {
  inputSize: 300,
  layers: [
    { type: 'dense', units: 200, useBias: false }, { type: 'batchNorm' }, { type: 'relu' },
    { type: 'dense', units: 150 }, { type: 'batchNorm', biasCorrection: true }, { type: 'tanh' },
    { type: 'dense', units: 10 },
  ],
  optimizer: { type: 'adam', learningRate: 0.01 },
  seed: 3,
};
const cnn = {
  inputShape: [3, 16, 16],
  layers: [
    { type: 'conv2d', filters: 8, kernelSize: 3, padding: 'same', useBias: false }, { type: 'batchNorm' }, { type: 'relu' },
    { type: 'maxPool2d', poolSize: 2 },
    { type: 'conv2d', filters: 12, kernelSize: 3 }, { type: 'batchNorm' }, { type: 'relu' },
    { type: 'avgPool2d', poolSize: 2 }, { type: 'flatten' },
    { type: 'dense', units: 10 },
  ],
  optimizer: { type: 'sgd', learningRate: 0.05, momentum: 0.9 },
  seed: 4,
};

async function trainAndPredict(config, inputSize, rows, steps) {
  const net = await createNetwork(config);
  for (let s = 0; s < steps; s++) net.trainBatch(floats(rows * inputSize, s), labels(rows, 10));
  const outputs = net.predictBatch(floats(100 * inputSize, 99));
  const result = { model: hash(net.save()), outputs: hash(new Uint8Array(outputs.buffer)) };
  net.dispose();
  return result;
}

// ('trainers' starts its trainers before this realm loads bnwasm, so it asks last.)
const result = what === 'trainers' ? {} : { threads: await threadCount() };
if (what === 'train') {
  result.dense = await trainAndPredict(dense, 300, 300, 3);
  result.cnn = await trainAndPredict(cnn, 3 * 16 * 16, 24, 3);
  // Memory grows (16 MiB at first) while the pool's threads are there: 2048 x 2048 weights with
  // their gradient and Adam's two moments need 64 MiB.
  const before = (await memoryUsage()).wasmMemoryBytes;
  result.grown = await trainAndPredict(
    { ...dense, inputSize: 2048, layers: [{ type: 'dense', units: 2048, useBias: false }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dense', units: 10 }] },
    2048, 64, 2,
  );
  result.memoryGrew = (await memoryUsage()).wasmMemoryBytes > before;
} else if (what === 'views') {
  // The memory grows where this thread's glue does not see it, as when a pool thread grows it:
  // the heap views must follow it. A block as large as the whole memory was ends past the old
  // end (its last floats read back through HEAPF32), and a network made after the growth
  // predicts what one made before it did.
  const { loadModule } = await import('../../web/src/module.js');
  const mod = await loadModule('full');
  const before = await trainAndPredict(dense, 300, 300, 1);
  const oldBytes = mod.wasmMemory.buffer.byteLength;
  mod.wasmMemory.grow(oldBytes / 65536);
  const block = mod._malloc(oldBytes);
  mod.HEAPF32.fill(7, block >>> 2, (block + oldBytes) >>> 2);
  const tail = mod.HEAPF32.subarray((block + oldBytes) / 4 - 4, (block + oldBytes) / 4);
  result.views = {
    viewBytes: mod.HEAPF32.byteLength === mod.wasmMemory.buffer.byteLength,
    tail: Array.from(tail),
    sameOutputs: JSON.stringify(await trainAndPredict(dense, 300, 300, 1)) === JSON.stringify(before),
  };
  mod._free(block);
} else if (what === 'terminate') {
  // The worker is stopped in the middle of a step: the fit rejects, and the process then ends
  // by itself (the test times it), with no thread left holding it.
  const trainer = await createTrainer(dense);
  result.workerThreads = trainer.threads;
  const n = 64 * 200;
  const fit = trainer.fit(floats(n * 300, 1), labels(n, 10), { epochs: 100, batchSize: 64 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  trainer.terminate();
  result.fit = await fit.then(() => 'resolved', (error) => error.name);
} else if (what === 'fault') {
  // A pool thread traps in the middle of a job (bn_test_pool_fault: as a bug in a kernel would).
  // The call waiting for it throws instead of waiting for ever, so does the next step of a network
  // on that module, and a network made after it runs on one thread with the same results as ever.
  // The networks made before it keep throwing, and the module loaded since stays (so does the
  // rule that configure() comes before the first module).
  const { loadModule } = await import('../../web/src/module.js');
  const mod = await loadModule('full');
  const net = await createNetwork(dense);
  const old = await createNetwork(dense);
  const errorOf = (fn) => {
    try {
      fn();
      return 'returned';
    } catch (error) {
      return `${error.name} ${error.code}`;
    }
  };
  result.fault = errorOf(() => mod._bn_test_pool_fault());
  result.step = errorOf(() => net.trainBatch(floats(300 * 300, 0), labels(300, 10)));
  net.dispose();
  result.configure = errorOf(() => configure({ threads: 4 }));
  result.after = await trainAndPredict(dense, 300, 300, 3);
  const single = await loadModule('dense');
  result.old = errorOf(() => old.trainBatch(floats(300 * 300, 0), labels(300, 10)));
  old.dispose();
  result.kept = (await loadModule('dense')) === single;
  result.threadsAfter = await threadCount();
} else if (what === 'trainers') {
  // A trainer whose config the core refuses, two trainers one after the other, then a network in
  // this realm: where threads cannot start, the refused trainer's worker finds it and its client
  // warns at once (the warnings counted when the refusal arrives); the next trainers and this
  // realm start on one thread without trying again.
  let warnings = 0;
  const warn = console.warn;
  console.warn = (...args) => {
    warnings += 1;
    warn(...args);
  };
  const refused = await createTrainer({ ...dense, layers: [{ type: 'dense', units: 0 }] }).then(() => 'made', (error) => error.code);
  result.refused = [refused, warnings];
  const first = await createTrainer(dense);
  const second = await createTrainer(dense);
  result.trainerThreads = [first.threads, second.threads];
  first.terminate();
  second.terminate();
  result.threads = await threadCount();
}
console.log(JSON.stringify(result));
