// The default network on Fashion-MNIST, one epoch: single-example inference
// with the running averages must reach 83% (PyTorch lands between 82.9% and
// 85.2% on the same job across seeds, mean 84.0%), and single-example and
// batch inference must agree on every test example.
import { fashionMnistConfig, loadFashionMnist } from '../../scripts/fashion-mnist.mjs';
import { fashionMnistOneEpoch } from './helpers.js';

test('one epoch at batch 64 reaches >= 83% test accuracy by single-example inference', async () => {
  const { train, test: testSet } = loadFashionMnist();
  expect(train.n).toBe(60000);
  expect(testSet.n).toBe(10000);
  const { net, accuracy, disagreements, seconds } = await fashionMnistOneEpoch(fashionMnistConfig(), { train, test: testSet });
  expect(net.steps).toBe(Math.ceil(60000 / 64));
  // Informational (speed is measured by `npm run bench`, never asserted here).
  console.log(
    `Fashion-MNIST, 1 epoch, batch 64: single-example test accuracy ${(100 * accuracy).toFixed(2)}%, ` +
      `${Math.round(60000 / seconds)} examples/s through fit()`,
  );
  expect(disagreements).toBe(0); // bit-identical, not merely close
  expect(accuracy).toBeGreaterThanOrEqual(0.83);
  expect(net.evaluate(testSet.x, testSet.y).accuracy).toBeCloseTo(accuracy, 10);
  net.dispose();
});
