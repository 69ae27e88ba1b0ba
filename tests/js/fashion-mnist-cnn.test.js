// The batch-normalized CNN of issue 10 on Fashion-MNIST, one epoch at batch 64:
// conv 16 3x3 'same' -> BN -> ReLU -> max pool 2, conv 32 the same, dense 128 ->
// BN -> ReLU, dense 10, Adam 1e-3. Single-example inference with the running
// averages must reach 88% (PyTorch 1.13 on the same job: 88.3-90.1% across data
// orders and initialisations, mean 89.2%), and single-example and batch
// inference must agree bit for bit on all 10,000 test examples.
import { createNetwork } from 'bnwasm';
import { fashionMnistCnnConfig, loadFashionMnist } from '../../scripts/fashion-mnist.mjs';

const argmax = (p) => p.reduce((best, v, k) => (v > p[best] ? k : best), 0);

// Training one epoch of a CNN takes tens of seconds (minutes on a busy machine):
// the timeout is generous because speed is not what this test checks.
const TIMEOUT_MS = 15 * 60 * 1000;

test('one epoch at batch 64 reaches >= 88% test accuracy by single-example inference', async () => {
  const { train, test: testSet } = loadFashionMnist();
  const net = await createNetwork(fashionMnistCnnConfig());
  const started = performance.now();
  await net.fit(train.x, train.y, { epochs: 1, batchSize: 64 });
  const seconds = (performance.now() - started) / 1000;
  expect(net.steps).toBe(Math.ceil(60000 / 64));

  const batch = net.predictBatch(testSet.x);
  const p = new Float32Array(10);
  let correct = 0;
  let disagreements = 0;
  for (let i = 0; i < testSet.n; i++) {
    net.predict(testSet.x.subarray(i * 784, (i + 1) * 784), p);
    correct += argmax(p) === testSet.y[i];
    const row = batch.subarray(i * 10, (i + 1) * 10);
    for (let k = 0; k < 10; k++) disagreements += p[k] !== row[k];
  }
  const accuracy = correct / testSet.n;
  // Informational (speed is measured by `npm run bench`, never asserted here).
  console.log(
    `Fashion-MNIST CNN, 1 epoch, batch 64: single-example test accuracy ${(100 * accuracy).toFixed(2)}%, ` +
      `${Math.round(60000 / seconds)} examples/s through fit() (${seconds.toFixed(1)} s)`,
  );
  expect(disagreements).toBe(0); // bit-identical, not merely close
  expect(accuracy).toBeGreaterThanOrEqual(0.88);
  expect(net.evaluate(testSet.x, testSet.y).accuracy).toBeCloseTo(accuracy, 10);
  net.dispose();
}, TIMEOUT_MS);
