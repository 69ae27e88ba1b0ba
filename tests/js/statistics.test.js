// Test-time statistics: population statistics, bias-corrected running
// averages, folded inference and batch renormalization, each against an
// independent float64 computation in the test.
import { createNetwork } from 'bnwasm';
import { blobs, bytesEqual, expectClose, gaussian, rng } from './helpers.js';

const twoBn = (bn = {}) => ({
  inputSize: 4,
  layers: [
    { type: 'dense', units: 8, useBias: false },
    { type: 'batchNorm', ...bn },
    { type: 'relu' },
    { type: 'dense', units: 6, useBias: true },
    { type: 'batchNorm', ...bn },
    { type: 'tanh' },
    { type: 'dense', units: 3 },
  ],
  optimizer: { type: 'adam', learningRate: 0.02 },
  seed: 3,
});

/** float64 mean and variance (N or N-1) of the columns of a row-major (n, c) array. */
function columnStats(rows, n, c, unbiased) {
  const mean = new Float64Array(c);
  const variance = new Float64Array(c);
  for (let i = 0; i < n; i++) for (let j = 0; j < c; j++) mean[j] += rows[i * c + j] / n;
  for (let i = 0; i < n; i++) for (let j = 0; j < c; j++) variance[j] += (rows[i * c + j] - mean[j]) ** 2;
  for (let j = 0; j < c; j++) variance[j] /= unbiased ? n - 1 : n;
  return { mean, variance };
}

/** float64 dense: (n, in) x W[units, in]^T + b. */
function dense(x, n, w, b, units) {
  const inputs = w.length / units;
  const out = new Float64Array(n * units);
  for (let i = 0; i < n; i++)
    for (let u = 0; u < units; u++) {
      let z = b ? b[u] : 0;
      for (let k = 0; k < inputs; k++) z += w[u * inputs + k] * x[i * inputs + k];
      out[i * units + u] = z;
    }
  return out;
}

describe('recomputeStatistics (population statistics)', () => {
  test.each(['unbiased', 'biased'])('equals a float64 layer-by-layer reference (%s variance)', async (runningVariance) => {
    const net = await createNetwork(twoBn({ runningVariance }));
    const { x, y } = blobs(500);
    await net.fit(x, y, { epochs: 2, batchSize: 25 });
    const progress = [];
    await net.recomputeStatistics(x, { batchSize: 64, onProgress: (p) => progress.push(p) });
    expect(progress.at(-1)).toEqual({ layer: 4, examplesDone: 1000, examplesTotal: 1000 });

    // Independent float64 forward: each BN normalizes with the population
    // statistics of its own input, computed here from the layer before.
    const t = Object.fromEntries(net.getWeights().map((w) => [`${w.layer}.${w.name}`, w.values]));
    const unbiased = runningVariance === 'unbiased';
    const n = 500;
    const z1 = dense(x, n, t['0.weight'], null, 8);
    const s1 = columnStats(z1, n, 8, unbiased);
    const h1 = z1.map((z, i) => Math.max(0, ((z - s1.mean[i % 8]) / Math.sqrt(s1.variance[i % 8] + 1e-5)) * t['1.gamma'][i % 8] + t['1.beta'][i % 8]));
    const z2 = dense(h1, n, t['3.weight'], t['3.bias'], 6);
    const s2 = columnStats(z2, n, 6, unbiased);
    // float32 forward vs float64: relative error of a few float32 ulps through two
    // short dot products (8 and 4 terms); the means are small, so an absolute floor too.
    expectClose(t['1.runningMean'], s1.mean, { rtol: 2e-5, atol: 1e-6, what: 'layer 1 mean' });
    expectClose(t['1.runningVariance'], s1.variance, { rtol: 2e-5, atol: 1e-6, what: 'layer 1 variance' });
    expectClose(t['4.runningMean'], s2.mean, { rtol: 2e-5, atol: 1e-6, what: 'layer 4 mean' });
    expectClose(t['4.runningVariance'], s2.variance, { rtol: 2e-5, atol: 1e-6, what: 'layer 4 variance' });
    net.dispose();
  });

  test('chunk size does not matter beyond float rounding, and bad input is rejected before any change', async () => {
    const net = await createNetwork(twoBn());
    const { x, y } = blobs(300);
    await net.fit(x, y, { epochs: 1, batchSize: 30 });
    const before = net.save();
    await expect(net.recomputeStatistics(x.map((v, i) => (i === 17 ? NaN : v)))).rejects.toMatchObject({ code: 'BNWASM_NON_FINITE' });
    await expect(net.recomputeStatistics(x.subarray(0, 4))).rejects.toMatchObject({ code: 'BNWASM_BATCH_TOO_SMALL' });
    expect(bytesEqual(net.save(), before)).toBe(true);
    await net.recomputeStatistics(x, { batchSize: 7 });
    const a = net.getWeights().filter((w) => w.name.startsWith('running'));
    await net.recomputeStatistics(x, { batchSize: 300 });
    const b = net.getWeights().filter((w) => w.name.startsWith('running'));
    // float64 accumulation: chunking changes only the final float32 rounding.
    a.forEach((w, k) => expectClose(w.values, b[k].values, { rtol: 1e-6, atol: 1e-7, what: w.name }));
    net.dispose();
  });
});

describe('biasCorrection', () => {
  test('running averages equal the closed form raw_t / (1 - momentum^t), raw from zero', async () => {
    const m = 0.9;
    // Batch norm first, so its input is exactly the x fed in.
    const net = await createNetwork({
      inputSize: 3,
      layers: [{ type: 'batchNorm', momentum: m, biasCorrection: true }, { type: 'dense', units: 2 }],
      optimizer: { type: 'sgd', learningRate: 0.1 },
    });
    const random = rng(4);
    const normal = gaussian(random);
    const raw = { mean: new Float64Array(3), variance: new Float64Array(3) };
    for (let t = 1; t <= 6; t++) {
      const B = 8;
      const x = new Float32Array(B * 3).map((_, i) => 5 * (i % 3) + (1 + t) * normal());
      net.trainBatch(x, new Int32Array(B).map((_, i) => i % 2));
      const s = columnStats(x, B, 3, true);
      for (let j = 0; j < 3; j++) {
        raw.mean[j] = m * raw.mean[j] + (1 - m) * s.mean[j];
        raw.variance[j] = m * raw.variance[j] + (1 - m) * s.variance[j];
      }
      const w = Object.fromEntries(net.getWeights().map((v) => [v.name, v.values]));
      const correction = 1 - m ** t;
      // float32 batch statistics and EMA vs float64: a few ulps.
      expectClose(w.runningMean, raw.mean.map((v) => v / correction), { rtol: 1e-5, atol: 1e-6, what: `mean after ${t}` });
      expectClose(w.runningVariance, raw.variance.map((v) => v / correction), { rtol: 1e-5, atol: 1e-6, what: `variance after ${t}` });
      if (t === 1) expectClose(w.runningMean, s.mean, { rtol: 1e-6, atol: 1e-6, what: 'one step: exactly the batch mean' });
    }
    net.dispose();
  });
});

describe('toInference (folded batch norm)', () => {
  test('matches the unfolded network to 1e-5 relative, with batch norms gone', async () => {
    const net = await createNetwork(twoBn());
    const { x, y } = blobs(400);
    await net.fit(x, y, { epochs: 3, batchSize: 20 });
    const folded = await net.toInference();
    expect(folded.config.layers.map((l) => l.type)).toEqual(['dense', 'relu', 'dense', 'tanh', 'dense']);
    expect(folded.trainBatch).toBeUndefined();
    const a = net.predictBatch(x);
    const b = folded.predictBatch(x);
    // Folding reorders float32 roundings (scale applied to W instead of z): ~1e-7 per op.
    expectClose(b, a, { rtol: 1e-5, atol: 1e-7, what: 'folded probabilities' });
    expectClose(folded.predict(x.subarray(0, 4)), a.subarray(0, 3), { rtol: 1e-5, atol: 1e-7, what: 'folded single example' });
    folded.dispose();
    net.dispose();
  });
});

describe('renorm (batch renormalization)', () => {
  test('rMax = 1, dMax = 0 is plain batch norm, bit for bit', async () => {
    const plain = await createNetwork(twoBn());
    const renorm = await createNetwork(twoBn({ renorm: { rMax: 1, dMax: 0 } }));
    const { x, y } = blobs(200);
    await plain.fit(x, y, { epochs: 2, batchSize: 4 });
    await renorm.fit(x, y, { epochs: 2, batchSize: 4 });
    const p = plain.getWeights();
    renorm.getWeights().forEach((w, k) => expect([...w.values]).toEqual([...p[k].values]));
    plain.dispose();
    renorm.dispose();
  });

  test('with room to correct, r and d change training; the result is saved and reloaded', async () => {
    const plain = await createNetwork(twoBn());
    const renorm = await createNetwork(twoBn({ renorm: { rMax: 3, dMax: 5 } }));
    expect(renorm.config.layers[1].renorm).toEqual({ rMax: 3, dMax: 5 });
    const { x, y } = blobs(100);
    plain.trainBatch(x.subarray(0, 16), y.subarray(0, 4));
    renorm.trainBatch(x.subarray(0, 16), y.subarray(0, 4));
    plain.trainBatch(x.subarray(16, 32), y.subarray(4, 8));
    renorm.trainBatch(x.subarray(16, 32), y.subarray(4, 8));
    expect([...renorm.getWeights()[0].values]).not.toEqual([...plain.getWeights()[0].values]);
    plain.dispose();
    renorm.dispose();
  });
});

describe('activations', () => {
  test('a layer output equals the float64 forward of the layers before it', async () => {
    const net = await createNetwork(twoBn());
    const { x, y } = blobs(60);
    await net.fit(x, y, { epochs: 1, batchSize: 20 });
    const t = Object.fromEntries(net.getWeights().map((w) => [`${w.layer}.${w.name}`, w.values]));
    const z1 = dense(x, 60, t['0.weight'], null, 8);
    const bn = z1.map((z, i) => ((z - t['1.runningMean'][i % 8]) / Math.sqrt(t['1.runningVariance'][i % 8] + 1e-5)) * t['1.gamma'][i % 8] + t['1.beta'][i % 8]);
    expectClose(net.activations(x, 1), bn, { rtol: 1e-5, atol: 1e-6, what: 'batch-norm output' });
    expect(() => net.activations(x, 7)).toThrow(/activations\(\): layer must be an integer in \[0, 7\), got 7/);
    net.dispose();
  });
});
