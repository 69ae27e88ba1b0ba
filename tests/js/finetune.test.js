// Fine-tuning through the public API: replaceHead keeps a network up to a layer (weights,
// running statistics, batch counts) and adds new layers; freeze keeps the body's weights;
// fit's batchNorm option trains every batch norm with batch statistics or frozen on its
// running averages (then one example makes a mini-batch); the same in the worker; and the
// layers MobileNet-like networks bring (relu6, clip, dropout, globalMaxPool) train, save and
// load. (Their gradients: tests/cpp/finetune_test.cpp.)
import { InputError, createNetwork, loadNetwork, loadTrainer } from 'bnwasm';
import { fashionMnistResNetConfig, loadFashionMnist } from '../../scripts/fashion-mnist.mjs';
import { bytesEqual } from './helpers.js';
import { batchesTracked } from '../../web/src/network.js';

let data;
let base; // the residual network, trained a little on Fashion-MNIST: the "pretrained" body
beforeAll(async () => {
  data = loadFashionMnist({ trainLimit: 2000, testLimit: 200 });
  base = await createNetwork(fashionMnistResNetConfig());
  await base.fit(data.train.x, data.train.y, { epochs: 1, batchSize: 64 });
}, 120_000);
afterAll(() => base?.dispose());

const tensorsOf = (net, filter) => net.getWeights().filter(filter).map((t) => Array.from(t.values));
// A 5-class task from the first 100 training images: labels folded onto 0..4.
const task = () => ({ x: data.train.x.subarray(0, 100 * 784), y: Int32Array.from(data.train.y.subarray(0, 100), (v) => v % 5) });

test('replaceHead keeps the body (weights, running statistics, batch counts) and adds a new head', async () => {
  const tuned = await base.replaceHead({ after: 'layer2.0.bn2', layers: [{ type: 'add', inputs: ['layer2.0.bn2', 'layer2.0.downsample.1'] }, { type: 'relu' }, { type: 'globalAvgPool' }, { type: 'dense', units: 5, name: 'head' }] });
  try {
    expect(tuned.outputSize).toBe(5);
    // Everything up to layer2.0.bn2 is kept, the skip branch too (the new add reads it).
    const names = tuned.config.layers.map((l) => l.name).filter(Boolean);
    expect(names).toContain('layer2.0.downsample.1');
    const body = (net) => tensorsOf(net, (t) => net.config.layers[t.layer].name?.startsWith('layer2.0.conv2'));
    expect(body(tuned)).toEqual(body(base));
    const x = data.test.x.subarray(0, 8 * 784);
    expect(Array.from(tuned.activations(x, 'layer2.0.bn2'))).toEqual(Array.from(base.activations(x, 'layer2.0.bn2')));
    const bn = (net, name) => net.config.layers.findIndex((l) => l.name === name);
    expect(batchesTracked(tuned, bn(tuned, 'layer2.0.bn2'))).toBe(batchesTracked(base, bn(base, 'layer2.0.bn2')));
    expect(batchesTracked(tuned, bn(tuned, 'layer2.0.bn2'))).toBeGreaterThan(0);
    expect(base.outputSize).toBe(10); // the original is unchanged
  } finally {
    tuned.dispose();
  }
});

test("freeze and batchNorm: 'frozen': the body's weights and running averages stay bit for bit, the head learns, batches of one train", async () => {
  const tuned = await base.replaceHead({ after: base.config.layers.length - 2, layers: [{ type: 'dense', units: 5 }], freeze: true, optimizer: { type: 'adam', learningRate: 0.01 } });
  try {
    expect(tuned.config.layers.filter((l) => 'trainable' in l).every((l) => l.trainable === (l.units === 5))).toBe(true);
    const before = tuned.getWeights();
    const { x, y } = task();
    const history = await tuned.fit(x, y, { epochs: 4, batchSize: 1, batchNorm: 'frozen' });
    expect(history.steps).toBe(400);
    const after = tuned.getWeights();
    const head = tuned.config.layers.length - 1;
    for (let k = 0; k < before.length; k++) {
      const same = bytesEqual(new Uint8Array(before[k].values.buffer), new Uint8Array(after[k].values.buffer));
      expect([before[k].layer, before[k].name, same]).toEqual([before[k].layer, before[k].name, before[k].layer !== head]);
    }
    expect(history.loss.at(-1)).toBeLessThan(history.loss[0]);
    // Batch norm with batch statistics needs two examples: the same fit without the option refuses.
    await expect(tuned.fit(x, y, { batchSize: 1 })).rejects.toMatchObject({ name: 'InputError', code: 'BNWASM_BATCH_TOO_SMALL' });
    await expect(tuned.fit(x, y, { batchNorm: 'eval' })).rejects.toThrow(/^fit\(\): batchNorm must be 'batch' or 'frozen' \(or left out: each layer's mode\), got "eval"$/);
  } finally {
    tuned.dispose();
  }
}, 120_000);

test("without freeze and with batchNorm: 'batch' the body learns and its running averages move; recomputeStatistics re-estimates them (AdaBN)", async () => {
  const tuned = await base.replaceHead({ after: base.config.layers.length - 2, layers: [{ type: 'dense', units: 5 }] });
  try {
    const stats = (net) => tensorsOf(net, (t) => t.name === 'runningMean');
    const conv = (net) => tensorsOf(net, (t) => t.name === 'weight' && t.layer === 0);
    const [s0, c0] = [stats(tuned), conv(tuned)];
    const { x, y } = task();
    await tuned.fit(x, y, { epochs: 1, batchSize: 10, batchNorm: 'batch' });
    expect(stats(tuned)).not.toEqual(s0);
    expect(conv(tuned)).not.toEqual(c0);
    await tuned.recomputeStatistics(x);
    const mean = tuned.getWeights().find((t) => t.layer === 1 && t.name === 'runningMean').values;
    const a = tuned.activations(x, 0);
    const c = mean.length;
    const expected = new Float64Array(c);
    for (let i = 0; i < a.length; i++) expected[Math.floor(i / (28 * 28)) % c] += a[i] / (100 * 28 * 28);
    for (let k = 0; k < c; k++) expect(Math.abs(mean[k] - expected[k])).toBeLessThan(1e-5 * (1 + Math.abs(expected[k])));
  } finally {
    tuned.dispose();
  }
}, 120_000);

test('the new network fine-tunes in the worker: loadTrainer of its bytes, fit with frozen batch norm', async () => {
  const tuned = await base.replaceHead({ after: base.config.layers.length - 2, layers: [{ type: 'dense', units: 5 }], freeze: true });
  const trainer = await loadTrainer(tuned.save());
  try {
    const { x, y } = task();
    const history = await trainer.fit(x, y, { epochs: 2, batchSize: 4, batchNorm: 'frozen' });
    expect(history.steps).toBe(50);
    const net = await trainer.snapshot();
    const body = (n) => tensorsOf(n, (t) => t.layer < n.config.layers.length - 1);
    expect(body(net)).toEqual(body(tuned));
    net.dispose();
  } finally {
    trainer.terminate();
    tuned.dispose();
  }
}, 120_000);

test("replaceHead's bad options are InputErrors naming the option", async () => {
  await expect(base.replaceHead({ after: 'nope', layers: [] })).rejects.toThrow(/^replaceHead\(\): after must name a layer, by index in \[0, 21\) or by name, got "nope"$/);
  await expect(base.replaceHead({ after: 3, layers: [], extra: 1 })).rejects.toThrow(/unknown option 'extra'/);
  await expect(base.replaceHead({ after: 3, layers: [{ type: 'dense', units: 0 }] })).rejects.toThrow(/^replaceHead\(\): layers\[4\]: units must be an integer in \[1, 16777216\], got 0$/);
});

test('relu6, clip, dropout and globalMaxPool train, save and load; dropout is the identity at inference', async () => {
  const net = await createNetwork({
    inputShape: [1, 28, 28],
    layers: [
      { type: 'conv2d', filters: 4, kernelSize: 3, padding: 1, useBias: false },
      { type: 'batchNorm' },
      { type: 'relu6' },
      { type: 'conv2d', filters: 6, kernelSize: 3, stride: 2, padding: 1 },
      { type: 'clip', min: -1, max: 2 },
      { type: 'globalMaxPool' },
      { type: 'dropout', rate: 0.2 },
      { type: 'dense', units: 10 },
    ],
    optimizer: { type: 'adam', learningRate: 0.01 },
  });
  try {
    const history = await net.fit(data.train.x.subarray(0, 500 * 784), data.train.y.subarray(0, 500), { epochs: 3, batchSize: 25 });
    expect(history.loss[2]).toBeLessThan(history.loss[0]);
    const x = data.test.x.subarray(0, 5 * 784);
    const again = await loadNetwork(net.save());
    expect(Array.from(again.predictBatch(x))).toEqual(Array.from(net.predictBatch(x)));
    again.dispose();
    // Dropout passes its input on at inference.
    expect(Array.from(net.activations(x, 6))).toEqual(Array.from(net.activations(x, 5)));
  } finally {
    net.dispose();
  }
});
