// Shared helpers for the Jest suites.

// The project's one seeded generator (mulberry32) and its Box-Muller normal.
import { createNetwork } from 'bnwasm';
import { gaussian, rng } from '../../web/demo/experiments/common.js';

export { gaussian, rng };

/**
 * Three Gaussian blobs in `dims` dimensions, classes 0..2: a small problem a
 * network learns in a few hundred steps.
 */
export function blobs(n, dims = 4, seed = 7) {
  const random = rng(seed);
  const normal = gaussian(random);
  const x = new Float32Array(n * dims);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    y[i] = c;
    for (let d = 0; d < dims; d++) x[i * dims + d] = (d % 3 === c ? 2.5 : 0) + normal();
  }
  return { x, y };
}

export const smallConfig = (overrides = {}) => ({
  inputSize: 4,
  layers: [
    { type: 'dense', units: 16, useBias: false },
    { type: 'batchNorm' },
    { type: 'relu' },
    { type: 'dense', units: 3 },
  ],
  optimizer: { type: 'adam', learningRate: 0.01 },
  seed: 5,
  ...overrides,
});

/** Throws with the worst element's index, expected and actual value when arrays differ beyond tolerance. */
export function expectClose(actual, expected, { rtol, atol, what = 'value' }) {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const excess = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
    if (!(excess <= worstExcess)) {
      worst = i;
      worstExcess = excess;
      if (Number.isNaN(excess)) break;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${what}[${worst}]: expected ${expected[worst]}, got ${actual[worst]} ` +
        `(|diff| ${Math.abs(actual[worst] - expected[worst])} > atol ${atol} + rtol ${rtol} * |expected|)`,
    );
  }
}

export const bytesEqual = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * The Fashion-MNIST job both accuracy tests run: a fresh network from `config`, one epoch at
 * batch 64, then every test example through predict() (single-example inference with the
 * running averages) and predictBatch(). Returns the network (the caller disposes it), the
 * single-example accuracy, how many output values the two paths disagree on, and the seconds
 * fit took (printed, never asserted).
 */
export async function fashionMnistOneEpoch(config, { train, test }) {
  const net = await createNetwork(config);
  const started = performance.now();
  await net.fit(train.x, train.y, { epochs: 1, batchSize: 64 });
  const seconds = (performance.now() - started) / 1000;
  const argmax = (p) => p.reduce((best, v, k) => (v > p[best] ? k : best), 0);
  const batch = net.predictBatch(test.x);
  const p = new Float32Array(10);
  let correct = 0;
  let disagreements = 0;
  for (let i = 0; i < test.n; i++) {
    net.predict(test.x.subarray(i * 784, (i + 1) * 784), p);
    correct += argmax(p) === test.y[i];
    const row = batch.subarray(i * 10, (i + 1) * 10);
    for (let k = 0; k < 10; k++) disagreements += p[k] !== row[k];
  }
  return { net, accuracy: correct / test.n, disagreements, seconds };
}
