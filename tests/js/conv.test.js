// Convolutional networks through the public API: configs and their errors,
// weights, predict/predictBatch, save/load, toInference, recomputeStatistics,
// activations and the worker. (Numbers against PyTorch: pytorch-parity.test.js;
// gradients and kernels: tests/cpp.)
import { createNetwork, createTrainer, loadNetwork, ConfigError, InputError } from 'bnwasm';
import { bytesEqual, expectClose, gaussian, rng } from './helpers.js';

// 1x8x8 images of three classes: a horizontal bar, a vertical bar or a
// diagonal, at a random place, plus noise.
function images(n, seed = 3) {
  const random = rng(seed);
  const normal = gaussian(random);
  const x = new Float32Array(n * 64);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    y[i] = c;
    const at = 1 + Math.floor(random() * 6);
    for (let r = 0; r < 8; r++) {
      for (let q = 0; q < 8; q++) {
        const on = c === 0 ? r === at : c === 1 ? q === at : r === q;
        x[i * 64 + r * 8 + q] = (on ? 2 : 0) + 0.5 * normal();
      }
    }
  }
  return { x, y };
}

const cnn = (overrides = {}) => ({
  inputShape: [1, 8, 8],
  layers: [
    { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same', useBias: false },
    { type: 'batchNorm' },
    { type: 'relu' },
    { type: 'maxPool2d', poolSize: 2 },
    { type: 'conv2d', filters: 6, kernelSize: [2, 3], stride: [1, 2], padding: 1 },
    { type: 'batchNorm', momentum: 0.8, runningVariance: 'biased' },
    { type: 'relu' },
    { type: 'avgPool2d', poolSize: 2, stride: 1 },
    { type: 'flatten' },
    { type: 'dense', units: 3 },
  ],
  optimizer: { type: 'adam', learningRate: 0.01 },
  seed: 11,
  ...overrides,
});

const data = images(600);

describe('configs', () => {
  test('conv and pool options are normalized to [height, width], a pool stride to its poolSize', async () => {
    const net = await createNetwork(cnn());
    const c = net.config;
    expect(c.inputSize).toBe(64);
    expect(c.inputShape).toEqual([1, 8, 8]);
    expect(c.layers[0]).toEqual({
      type: 'conv2d', filters: 4, kernelSize: [3, 3], stride: [1, 1], padding: 'same', dilation: [1, 1], groups: 1,
      useBias: false, init: 'auto', initStd: 0.01, trainable: true,
    });
    expect(c.layers[3]).toEqual({ type: 'maxPool2d', poolSize: [2, 2], stride: [2, 2], padding: [0, 0], ceilMode: false });
    expect(c.layers[4]).toMatchObject({ kernelSize: [2, 3], stride: [1, 2], padding: [1, 1], useBias: true });
    expect(c.layers[7]).toEqual({ type: 'avgPool2d', poolSize: [2, 2], stride: [1, 1], padding: [0, 0], ceilMode: false, countIncludePad: true });
    // 1x8x8 -> conv 'same' 4x8x8 -> pool 4x4x4 -> conv 2x3 stride [1, 2] pad 1 -> 6x5x2 -> avg 2 stride 1 -> 6x4x1
    expect(net.outputSize).toBe(3);
    const w = net.getWeights();
    expect(w.map((t) => `${t.layer}:${t.name}:${t.shape}`)).toEqual([
      '0:weight:4,1,3,3', '1:gamma:4', '1:beta:4', '1:runningMean:4', '1:runningVariance:4',
      '4:weight:6,4,2,3', '4:bias:6', '5:gamma:6', '5:beta:6', '5:runningMean:6', '5:runningVariance:6',
      '9:weight:3,24', '9:bias:3',
    ]);
    const again = await loadNetwork(net.save());
    expect(again.config).toEqual(c);
    again.dispose();
    net.dispose();
  });

  test('inputSize may be given with a matching inputShape', async () => {
    const net = await createNetwork(cnn({ inputSize: 64 }));
    expect(net.inputSize).toBe(64);
    net.dispose();
  });

  const base = cnn();
  const cases = [
    ['kernel larger than its input', { ...base, inputShape: [1, 4, 4], layers: [{ type: 'conv2d', filters: 2, kernelSize: 5 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: kernelSize\[0\] must be at most 4, the height of its 4x4 input, got 5$/],
    ['kernel larger than its padded input', { ...base, inputShape: [1, 3, 3], layers: [{ type: 'conv2d', filters: 2, kernelSize: [6, 1], padding: 1 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: kernelSize\[0\] must be at most 5, the height of its 3x3 input with padding \(5x5\), got 6$/],
    ['a pool that leaves nothing', { ...base, inputShape: [2, 6, 6], layers: [{ type: 'maxPool2d', poolSize: 4 }, { type: 'avgPool2d', poolSize: 2 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[1\]: poolSize\[0\] must be at most 1, the height of its 1x1 input \(else it leaves nothing\), got 2$/],
    ['conv on flat features', { ...base, inputShape: undefined, inputSize: 64 },
      /^createNetwork\(\): layers\[0\]: type needs an image input \[channels, height, width\] \(set inputShape, and put no dense, flatten or globalAvgPool layer before it\), not 64 flat features, got "conv2d"$/],
    ['pool after flatten', { ...base, layers: [{ type: 'flatten' }, { type: 'maxPool2d', poolSize: 2 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[1\]: type needs an image input .*, not 64 flat features, got "maxPool2d"$/],
    ['groups that do not divide the channels', { ...base, layers: [{ type: 'conv2d', filters: 2, kernelSize: 3, groups: 2 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: groups must divide the input's 1 channels and the 2 filters, got 2$/],
    ['kernelSize 0', { ...base, layers: [{ type: 'conv2d', filters: 2, kernelSize: 0 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: kernelSize\[0\] must be an integer in \[1, 65536\], got 0$/],
    ['padding "full"', { ...base, layers: [{ type: 'conv2d', filters: 2, kernelSize: 3, padding: 'full' }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: padding must be 'same', 'sameLower', 'valid', a number, \[height, width\] or \[top, left, bottom, right\] of numbers, got "full"$/],
    ['padding of three numbers', { ...base, layers: [{ type: 'conv2d', filters: 2, kernelSize: 3, padding: [1, 1, 1] }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: padding must be 'same', 'sameLower', 'valid', .* got \[1, 1, 1\]$/],
    ['missing filters', { ...base, layers: [{ type: 'conv2d', kernelSize: 3 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: filters must be a number, got undefined$/],
    ['filters 0', { ...base, layers: [{ type: 'conv2d', filters: 0, kernelSize: 3 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: filters must be an integer in \[1, 16777216\], got 0$/],
    ['kernelSize [3, 2.5]', { ...base, layers: [{ type: 'conv2d', filters: 2, kernelSize: [3, 2.5] }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: kernelSize\[1\] must be an integer in \[1, 65536\], got 2.5$/],
    ['poolSize [2]', { ...base, layers: [{ type: 'maxPool2d', poolSize: [2] }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: poolSize must be a number or \[height, width\] of numbers, got \[2\]$/],
    ['poolSize 0', { ...base, layers: [{ type: 'maxPool2d', poolSize: 0 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: poolSize\[0\] must be an integer in \[1, 65536\], got 0$/],
    ['inputShape of two numbers', { ...base, inputShape: [8, 8] },
      /^createNetwork\(\): config: inputShape must be \[channels, height, width\], three numbers, got \[8, 8\]$/],
    ['inputShape with a 0', { ...base, inputShape: [1, 0, 8] },
      /^createNetwork\(\): config: inputShape\[1\] must be an integer in \[1, 16777216\], got 0$/],
    ['inputSize that contradicts inputShape', { ...base, inputSize: 63 },
      /^createNetwork\(\): config: inputSize does not match inputShape \[1,8,8\] \(64 values\); give one of them, got 63$/],
    ['unknown conv option', { ...base, layers: [{ type: 'conv2d', filters: 2, kernelSize: 3, dilations: 2 }, { type: 'dense', units: 2 }] },
      /^createNetwork\(\): layers\[0\]: unknown option 'dilations'/],
  ];
  test.each(cases)('%s: ConfigError', async (_, config, message) => {
    const error = await createNetwork(config).catch((e) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.code).toBe('BNWASM_INVALID_CONFIG');
    expect(error.message).toMatch(message);
  });
});

// The interop converters (ONNX, safetensors, TF.js) of conv networks: interop-conv.test.js.

describe('a trained CNN', () => {
  let net;
  beforeAll(async () => {
    net = await createNetwork(cnn());
    await net.fit(data.x, data.y, { epochs: 4, batchSize: 32 });
  });
  afterAll(() => net.dispose());

  test('learns the three patterns', () => {
    expect(net.evaluate(data.x, data.y).accuracy).toBeGreaterThan(0.9);
  });

  test('predict equals predictBatch bit for bit, and allocates nothing with out', () => {
    const all = net.predictBatch(data.x);
    const out = new Float32Array(3);
    for (let i = 0; i < 600; i++) {
      const p = net.predict(data.x.subarray(i * 64, (i + 1) * 64), out);
      expect(p).toBe(out);
      for (let k = 0; k < 3; k++) if (p[k] !== all[i * 3 + k]) throw new Error(`example ${i} class ${k}: ${p[k]} vs ${all[i * 3 + k]}`);
    }
  });

  test('evaluate is the mean cross-entropy of predictBatch', () => {
    const p = net.predictBatch(data.x);
    let loss = 0;
    for (let i = 0; i < 600; i++) loss -= Math.log(p[i * 3 + data.y[i]]);
    expect(net.evaluate(data.x, data.y).loss).toBeCloseTo(loss / 600, 5);
  });

  test('save/load: same predictions, and training continues identically', async () => {
    const copy = await loadNetwork(net.save());
    expect(bytesEqual(copy.predictBatch(data.x), net.predictBatch(data.x))).toBe(true);
    const a = await createNetwork(cnn());
    const b = await loadNetwork(a.save());
    await a.fit(data.x, data.y, { epochs: 1, batchSize: 50 });
    await b.fit(data.x, data.y, { epochs: 1, batchSize: 50 });
    expect(bytesEqual(a.save(), b.save())).toBe(true);
    for (const n of [copy, a, b]) n.dispose();
  });

  test('toInference folds each conv + batch norm into the conv', async () => {
    const folded = await net.toInference();
    expect(folded.config.layers.map((l) => l.type)).toEqual(['conv2d', 'relu', 'maxPool2d', 'conv2d', 'relu', 'avgPool2d', 'flatten', 'dense']);
    expect(folded.config.layers[0]).toMatchObject({ kernelSize: [3, 3], padding: 'same', useBias: true });
    // The core folds in float64, per filter: W' = W * s, b' = (b - mean) * s + beta with
    // s = gamma / sqrt(var + eps); the same float64 steps here give the same float32 values.
    const w = net.getWeights();
    const get = (ws, layer, name) => ws.find((t) => t.layer === layer && t.name === name)?.values;
    const f = folded.getWeights();
    for (const [conv, bn, to] of [[0, 1, 0], [4, 5, 3]]) {
      const weight = get(w, conv, 'weight'), bias = get(w, conv, 'bias');
      const gamma = get(w, bn, 'gamma'), beta = get(w, bn, 'beta');
      const mean = get(w, bn, 'runningMean'), variance = get(w, bn, 'runningVariance');
      const perFilter = weight.length / gamma.length;
      const wantW = new Float32Array(weight.length), wantB = new Float32Array(gamma.length);
      for (let u = 0; u < gamma.length; u++) {
        const scale = gamma[u] / Math.sqrt(variance[u] + net.config.layers[bn].epsilon);
        for (let k = 0; k < perFilter; k++) wantW[u * perFilter + k] = weight[u * perFilter + k] * scale;
        wantB[u] = ((bias ? bias[u] : 0) - mean[u]) * scale + beta[u];
      }
      expect(get(f, to, 'weight')).toEqual(wantW);
      expect(get(f, to, 'bias')).toEqual(wantB);
    }
    // As for dense layers (statistics.test.js): folding reorders float32 roundings, ~1e-7 per op.
    expectClose(folded.predictBatch(data.x), net.predictBatch(data.x), { rtol: 1e-5, atol: 1e-6, what: 'folded probabilities' });
    folded.dispose();
  });

  test('activations has the [c, h, w] values of each layer per example', () => {
    const sizes = [256, 256, 256, 64, 60, 60, 60, 24, 24, 3];
    sizes.forEach((size, layer) => expect(net.activations(data.x.subarray(0, 5 * 64), layer)).toHaveLength(5 * size));
  });

  test('recomputeStatistics: per channel over examples and positions', async () => {
    const copy = await loadNetwork(net.save());
    await copy.recomputeStatistics(data.x);
    const w = copy.getWeights();
    // Layer 0's outputs (the conv) are layer 1's inputs: 4 channels of 8x8.
    for (const [layer, positions, unbiased] of [[1, 64, true], [5, 10, false]]) {
      const z = copy.activations(data.x, layer - 1);
      const channels = w.find((t) => t.layer === layer && t.name === 'gamma').values.length;
      const mean = new Float64Array(channels), m2 = new Float64Array(channels);
      const m = 600 * positions;
      for (let i = 0; i < 600; i++) for (let c = 0; c < channels; c++) for (let p = 0; p < positions; p++) mean[c] += z[(i * channels + c) * positions + p];
      mean.forEach((v, c) => (mean[c] = v / m));
      for (let i = 0; i < 600; i++) for (let c = 0; c < channels; c++) for (let p = 0; p < positions; p++) m2[c] += (z[(i * channels + c) * positions + p] - mean[c]) ** 2;
      const variance = m2.map((v) => v / (unbiased ? m - 1 : m));
      // float64 sums of the same float32 inputs, rounded once to float32.
      expectClose(w.find((t) => t.layer === layer && t.name === 'runningMean').values, mean, { rtol: 1e-6, atol: 1e-9, what: `layer ${layer} mean` });
      expectClose(w.find((t) => t.layer === layer && t.name === 'runningVariance').values, variance, { rtol: 1e-6, atol: 1e-9, what: `layer ${layer} variance` });
    }
    copy.dispose();
  });

  test('setWeights checks a conv weight against [filters, inChannels, kh, kw]', () => {
    expect(() => net.setWeights([{ layer: 0, name: 'weight', shape: [4, 9], values: new Float32Array(36) }])).toThrow(
      /setWeights\(\): list\[0\] \(layer 0 weight\): shape must be \[4,1,3,3\], got Array\(2\) \[4,9\]/,
    );
  });
});

describe('the worker', () => {
  test('trains a CNN with per-channel progress, and its snapshot predicts the same', async () => {
    const t = await createTrainer(cnn());
    const events = [];
    await t.fit(data.x, data.y, { epochs: 1, batchSize: 30, progressInterval: 0, trackUnits: 3, onProgress: (p) => events.push(p) });
    expect(events).toHaveLength(20);
    const last = events.at(-1);
    expect(last.batchNorm.map((b) => b.layer)).toEqual([1, 5]);
    for (const b of last.batchNorm) expect(Array.from(b.units)).toEqual([0, 1, 2]);
    const net = await t.snapshot();
    const rm = net.getWeights().find((w) => w.layer === 5 && w.name === 'runningMean').values;
    expect(Array.from(last.batchNorm[1].runningMean)).toEqual(Array.from(rm.subarray(0, 3)));
    const x0 = data.x.slice(0, 64);
    expect(Array.from(await t.predict(x0))).toEqual(Array.from(net.predict(x0)));
    const error = await t.fit(data.x, data.y, { epochs: 1, trackUnits: [4] }).catch((e) => e);
    expect(error).toBeInstanceOf(InputError);
    expect(error.message).toBe('fit(): trackUnits has unit 4, batch-norm layer 1 has 4 units');
    net.dispose();
    t.terminate();
  });
});
