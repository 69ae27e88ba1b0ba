// Run by tests/js/memory.test.js in a child process with --expose-gc, so
// garbage collection can be forced. Prints one JSON line of measurements.
import { configure, createNetwork, loadNetwork, memoryUsage, threadCount } from '../../web/src/index.node.js';

// argv[2]: the threads setting ('default': none, every core).
if (process.argv[2] && process.argv[2] !== 'default') configure({ threads: Number(process.argv[2]) });

const config = {
  inputSize: 16,
  layers: [{ type: 'dense', units: 32, useBias: false }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dense', units: 4 }],
  seed: 2,
};
const x = new Float32Array(8 * 16).map((_, i) => Math.sin(i));
const y = new Int32Array(8).map((_, i) => i % 4);
const settle = async () => {
  for (let i = 0; i < 3; i++) {
    global.gc();
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
};
const heapJs = () => process.memoryUsage().heapUsed;
const result = { threads: await threadCount() };

// Warm up every path once so lazily grown buffers are in place.
const warm = await createNetwork(config);
warm.trainBatch(x, y);
warm.predict(x.subarray(0, 16));
await (await loadNetwork(warm.save())).dispose();
await settle();

// 1. 100,000 single-example predicts on one network.
{
  const net = await createNetwork(config);
  net.trainBatch(x, y);
  const out = new Float32Array(4);
  net.predict(x.subarray(0, 16), out);
  await settle();
  const before = { ...(await memoryUsage()), js: heapJs() };
  for (let i = 0; i < 100000; i++) net.predict(x.subarray((i % 8) * 16, (i % 8) * 16 + 16), out);
  await settle();
  const after = { ...(await memoryUsage()), js: heapJs() };
  result.predict = { before, after };
  net.dispose();
}
// 2. 1,000 create/train/dispose cycles.
{
  await settle();
  const before = { ...(await memoryUsage()), js: heapJs() };
  for (let i = 0; i < 1000; i++) {
    const net = await createNetwork(config);
    net.trainBatch(x, y);
    net.dispose();
  }
  await settle();
  result.createDispose = { before, after: { ...(await memoryUsage()), js: heapJs() } };
}
// 3. 1,000 save/load cycles.
{
  const net = await createNetwork(config);
  net.trainBatch(x, y);
  await settle();
  const before = { ...(await memoryUsage()), js: heapJs() };
  for (let i = 0; i < 1000; i++) {
    const again = await loadNetwork(net.save());
    again.dispose();
  }
  await settle();
  result.saveLoad = { before, after: { ...(await memoryUsage()), js: heapJs() } };
  net.dispose();
}
// 4. Networks nobody disposes are freed by the FinalizationRegistry.
{
  await settle();
  const before = await memoryUsage();
  // In a function of its own, so no stack slot or scope keeps the last one alive.
  const forget = async () => {
    for (let i = 0; i < 200; i++) {
      const net = await createNetwork(config);
      net.trainBatch(x, y);
    }
  };
  await forget();
  const during = await memoryUsage();
  await settle();
  await settle();
  result.forgotten = { before, during, after: await memoryUsage() };
}
warm.dispose();
console.log(JSON.stringify(result));
