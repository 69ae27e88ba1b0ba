// A network without layers (`layers: []`), through the public API: its output is its input
// (an image's C * H * W values in NCHW order); softmaxCrossEntropy predicts the softmax of
// the input; training has nothing to change (a step computes the loss and counts itself);
// save/load, toInference, evaluate and fit work as for any network.
//
// Tolerances: the core's float32 softmax against float64, relative to each probability: the
// argument z - max(z) rounds by |z - max| u (u = 2^-24), which exp turns into a relative
// error of as much; with inputs in [-3, 3] that is <= 6u, then exp 1u, the sum of 5 terms 4u,
// 1 / sum and the product 1u each: 13u, so 16u. The training loss is float32 as well (the
// sum of exp off by 11u relative, 11u on its log, 1u of the log's rounding): 16u absolute.
import { ConfigError, InputError, createNetwork, createTrainer, loadNetwork } from 'bnwasm';
import { bytesEqual, expectClose, gaussian, rng } from './helpers.js';

const U = 2 ** -24;
const FEATURES = 5;

function uniform(n, seed) {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => 6 * next() - 3);
}

// Row-wise softmax in float64.
function softmax(x, k) {
  const p = new Float64Array(x.length);
  for (let r = 0; r < x.length / k; r++) {
    const row = x.subarray(r * k, (r + 1) * k);
    const max = Math.max(...row);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += p[r * k + j] = Math.exp(row[j] - max);
    for (let j = 0; j < k; j++) p[r * k + j] /= sum;
  }
  return p;
}

const meanCrossEntropy = (x, y, k) => {
  const p = softmax(x, k);
  return y.reduce((total, label, r) => total - Math.log(p[r * k + label]), 0) / y.length;
};

describe('createNetwork with layers: []', () => {
  test('is a network whose output is its input', async () => {
    const net = await createNetwork({ inputSize: FEATURES, layers: [] });
    expect(net.layers).toEqual([]);
    expect(net.config.layers).toEqual([]);
    expect(net.config.inputSize).toBe(FEATURES);
    expect(net.inputSize).toBe(FEATURES);
    expect(net.outputSize).toBe(FEATURES);
    expect(net.getWeights()).toEqual([]);
    expect(net.steps).toBe(0);
    net.dispose();
  });

  test('softmaxCrossEntropy predicts the softmax of the input; predict and predictBatch agree bit for bit', async () => {
    const net = await createNetwork({ inputSize: FEATURES, layers: [] });
    const x = uniform(9 * FEATURES, 1);
    const batch = net.predictBatch(x);
    expectClose(batch, softmax(x, FEATURES), { atol: 0, rtol: 16 * U, what: 'predictBatch' });
    for (let r = 0; r < 9; r++) {
      expect(Array.from(net.predict(x.subarray(r * FEATURES, (r + 1) * FEATURES)))).toEqual(Array.from(batch.subarray(r * FEATURES, (r + 1) * FEATURES)));
    }
    net.dispose();
  });

  test('meanSquaredError outputs the input itself; an image input gives its C * H * W values in order', async () => {
    const flat = await createNetwork({ inputSize: FEATURES, layers: [], loss: 'meanSquaredError' });
    const x = uniform(4 * FEATURES, 2);
    expect(flat.predictBatch(x)).toEqual(x);
    expect(flat.predict(x.subarray(0, FEATURES))).toEqual(x.subarray(0, FEATURES));
    flat.dispose();

    const image = await createNetwork({ inputShape: [2, 3, 2], layers: [], loss: 'meanSquaredError' });
    expect(image.inputSize).toBe(12);
    expect(image.outputSize).toBe(12);
    const xi = uniform(3 * 12, 3);
    expect(image.predictBatch(xi)).toEqual(xi);
    image.dispose();
  });

  test('a training step computes the loss and changes nothing but the step count', async () => {
    const net = await createNetwork({ inputSize: FEATURES, layers: [], optimizer: { type: 'sgd', learningRate: 0.5 } });
    const x = uniform(8 * FEATURES, 4);
    const y = Int32Array.from({ length: 8 }, (_, i) => (3 * i) % FEATURES);
    const before = net.predictBatch(x);
    const saved = net.save();
    const loss = net.trainBatch(x, y);
    expect(Math.abs(loss - meanCrossEntropy(x, y, FEATURES))).toBeLessThanOrEqual(16 * U);
    expect(net.steps).toBe(1);
    expect(net.predictBatch(x)).toEqual(before);
    // One example is a mini-batch: there is no batch norm.
    net.trainBatch(x.subarray(0, FEATURES), y.subarray(0, 1));
    expect(net.steps).toBe(2);
    // The saved model differs only in the step count.
    const again = await loadNetwork(saved);
    expect(again.steps).toBe(0);
    expect(again.predictBatch(x)).toEqual(before);
    again.dispose();

    // fit runs its loop, the loss of the same data every epoch.
    const history = await net.fit(x, y, { epochs: 3, batchSize: 8, shuffle: false });
    expect(history.loss).toEqual([loss, loss, loss]);
    expect(history.steps).toBe(5);
    // recomputeStatistics has no batch norm to recompute.
    let reports = 0;
    await net.recomputeStatistics(x, { onProgress: () => reports++ });
    expect(reports).toBe(0);
    expect(net.predictBatch(x)).toEqual(before);
    net.dispose();
  });

  test('a trainer runs one in its worker', async () => {
    const trainer = await createTrainer({ inputSize: FEATURES, layers: [] });
    try {
      const x = uniform(16 * FEATURES, 9);
      const y = Int32Array.from({ length: 16 }, (_, i) => i % FEATURES);
      const progress = [];
      const history = await trainer.fit(x, y, { epochs: 2, batchSize: 4, onProgress: (p) => progress.push(p) });
      expect(history.steps).toBe(8);
      expect(progress.length).toBeGreaterThan(0);
      const p = await trainer.predict(x.subarray(0, FEATURES));
      expectClose(p, softmax(x.subarray(0, FEATURES), FEATURES), { atol: 0, rtol: 16 * U, what: 'trainer.predict' });
      const net = await trainer.snapshot();
      expect(net.layers).toEqual([]);
      expect(net.steps).toBe(8);
      net.dispose();
    } finally {
      trainer.terminate();
    }
  });

  test('evaluate is the loss and accuracy of the input as logits', async () => {
    const net = await createNetwork({ inputSize: FEATURES, layers: [] });
    const x = uniform(10 * FEATURES, 5);
    const y = Int32Array.from({ length: 10 }, (_, i) => i % FEATURES);
    const { loss, accuracy } = net.evaluate(x, y);
    // float64 sums of exp of float32 differences (each off by <= 6u): 8u per row.
    expect(Math.abs(loss - meanCrossEntropy(x, y, FEATURES))).toBeLessThanOrEqual(8 * U);
    const hits = Array.from(y).filter((label, r) => {
      const row = Array.from(x.subarray(r * FEATURES, (r + 1) * FEATURES));
      return row.indexOf(Math.max(...row)) === label;
    }).length;
    expect(accuracy).toBe(hits / 10);

    const mse = await createNetwork({ inputSize: FEATURES, layers: [], loss: 'meanSquaredError' });
    const normal = gaussian(rng(6));
    const t = Float32Array.from({ length: x.length }, () => normal());
    const expected = x.reduce((s, v, i) => s + (v - t[i]) ** 2, 0) / x.length;
    expectClose([mse.evaluate(x, t).loss], [expected], { atol: 0, rtol: 1e-12, what: 'mse loss' });
    [net, mse].forEach((n) => n.dispose());
  });

  test('saves, loads and folds to the same network', async () => {
    const net = await createNetwork({ inputShape: [3, 2, 2], layers: [], seed: 4 });
    const x = uniform(6 * 12, 7);
    net.trainBatch(x, Int32Array.from([0, 3, 11, 5, 7, 1]));
    const bytes = net.save();
    const back = await loadNetwork(bytes);
    expect(back.config).toEqual(net.config);
    expect(back.layers).toEqual([]);
    expect(back.steps).toBe(1);
    expect(bytesEqual(back.save(), bytes)).toBe(true);
    expect(back.predictBatch(x)).toEqual(net.predictBatch(x));
    const inference = await net.toInference();
    expect(inference.layers).toEqual([]);
    expect(inference.predictBatch(x)).toEqual(net.predictBatch(x));
    [net, back, inference].forEach((n) => n.dispose());
  });
});

describe('what a network without layers refuses', () => {
  test('layers must still be given, as an array', async () => {
    for (const [layers, got] of [[undefined, 'undefined'], ['dense', '"dense"'], [{ type: 'dense' }, 'Object']]) {
      const config = { inputSize: FEATURES, ...(layers === undefined ? {} : { layers }) };
      const error = await createNetwork(config).catch((e) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect(error.message).toMatch(new RegExp(`^createNetwork\\(\\): config: layers must be an array of layer configs, got ${got}$`));
    }
  });

  test('softmaxCrossEntropy needs two inputs to be two classes', async () => {
    const error = await createNetwork({ inputSize: 1, layers: [] }).catch((e) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toBe(
      'createNetwork(): config: loss needs at least 2 outputs, the input of a network without layers has 1, got "softmaxCrossEntropy"',
    );
    const mse = await createNetwork({ inputSize: 1, layers: [], loss: 'meanSquaredError' });
    expect(mse.outputSize).toBe(1);
    mse.dispose();
  });

  test('there is no layer to take activations of, keep or replace', async () => {
    const net = await createNetwork({ inputSize: FEATURES, layers: [] });
    const x = uniform(2 * FEATURES, 8);
    expect(() => net.activations(x, 0)).toThrow(/^activations\(\): the network has no layers \(its output is its input\), got layer 0$/);
    await expect(net.replaceHead({ after: 0, layers: [{ type: 'dense', units: 2 }] })).rejects.toThrow(
      /^replaceHead\(\): after must name a layer, by index in \[0, 0\) or by name, got 0$/,
    );
    // Inputs are checked as for any network.
    expect(() => net.predict(new Float32Array(4))).toThrow(InputError);
    expect(() => net.trainBatch(x, Int32Array.from([0, 5]))).toThrow(/labels must be integers in \[0, 5\)/);
    net.dispose();
  });
});
