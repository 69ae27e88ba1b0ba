// bnwasm <-> TF.js layers (tfjs-layers 4.22 with the CPU backend): toTfjsLayers()
// loads in tf.loadLayersModel and predicts what predictBatch does; a model built and
// trained in tfjs-layers imports with importTfjsLayers() and predicts what
// model.predict does, and one more training step moves the moving statistics the
// way tfjs's own trainOnBatch does (Keras momentum, biased variance).
//
// Tolerance: 1e-5 absolute on outputs of magnitude <= ~3; both engines are float32
// with dot products of <= 12 terms and the same batch-norm formula, so they differ
// by a few tens of u = 6e-8 at most (the argument of interop-onnx-export.test.js).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { createNetwork, ModelFormatError } from 'bnwasm';
import { importTfjsLayers, toTfjsLayers } from 'bnwasm/interop';
import { expectClose, gaussian, rng } from './helpers.js';
import { artifactsOf, loadInTfjs, worstOf } from './interop-helpers.js';

const TOLERANCE = { atol: 1e-5, rtol: 0 };

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function data(n, width, seed) {
  const normal = gaussian(rng(seed));
  return Float32Array.from({ length: n * width }, (_, i) => 1.5 * normal() + (i % width) * 0.3);
}

let worstOut = 0;
let worstIn = 0;

describe('bnwasm -> TF.js', () => {
  const configs = {
    softmax: {
      inputSize: 6,
      layers: [{ type: 'dense', units: 12 }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dense', units: 4 }],
    },
    'mse, no bias, bn options, sigmoid, tanh, input bn': {
      inputSize: 6,
      loss: 'meanSquaredError',
      layers: [
        { type: 'batchNorm', epsilon: 1e-3, momentum: 0.99, runningVariance: 'biased' },
        { type: 'dense', units: 10, useBias: false },
        { type: 'batchNorm', statistics: 'cumulative' },
        { type: 'sigmoid' },
        { type: 'dense', units: 8 },
        { type: 'tanh' },
        { type: 'dense', units: 2 },
      ],
    },
    // Without layers: a softmax Activation of the input, or a linear one (the identity).
    'no layers, softmax': { inputSize: 6, layers: [] },
    'no layers, mse': { inputSize: 6, loss: 'meanSquaredError', layers: [] },
  };
  for (const [name, config] of Object.entries(configs)) {
    test(name, async () => {
      const net = await createNetwork({ ...config, optimizer: { type: 'adam', learningRate: 0.05 } });
      const x = data(32, 6, 1);
      const y = config.loss === 'meanSquaredError' ? data(32, net.outputSize, 2) : Int32Array.from({ length: 32 }, (_, i) => i % 4);
      for (let step = 0; step < 5; step++) net.trainBatch(x, y);
      const exported = net.toTfjsLayers();
      expect(exported).toEqual(toTfjsLayers(net));
      const model = await loadInTfjs(exported);
      const xt = data(40, 6, 3);
      const out = model.predict(tf.tensor2d(xt, [40, 6])).dataSync();
      const expected = net.predictBatch(xt);
      expectClose(out, expected, { ...TOLERANCE, what: `${name}: tfjs predict` });
      worstOut = Math.max(worstOut, worstOf(out, expected));
      // And back: bnwasm -> TF.js -> bnwasm is exact.
      const back = await importTfjsLayers(exported.modelJson, exported.weightData, { runningVariance: 'unbiased' });
      expect(back.predictBatch(xt)).toEqual(expected);
      back.dispose();
      net.dispose();
    });
  }
});

describe('TF.js -> bnwasm', () => {
  // tfjs-layers 4.22 cannot train a BatchNormalization without center or scale
  // (it reads the missing beta/gamma), so only the untrained model drops them.
  function buildModel({ trainable = true } = {}) {
    const model = tfl.sequential({
      layers: [
        tfl.layers.dense({ units: 12, inputShape: [6], activation: 'relu' }),
        tfl.layers.batchNormalization(),
        tfl.layers.dense({ units: 10, useBias: false }),
        tfl.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-4, center: trainable }),
        tfl.layers.activation({ activation: 'tanh' }),
        // Dropout is random in training: only the untrained model has one.
        ...(trainable ? [] : [tfl.layers.dropout({ rate: 0.1 })]),
        tfl.layers.dense({ units: 8, activation: 'sigmoid' }),
        tfl.layers.batchNormalization({ scale: trainable }),
        tfl.layers.dense({ units: 3, activation: 'softmax' }),
      ],
    });
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'sparseCategoricalCrossentropy' });
    return model;
  }

  test('a trained tfjs-layers model predicts the same in bnwasm, and trains on the same way', async () => {
    const model = buildModel();
    const x = tf.tensor2d(data(64, 6, 4), [64, 6]);
    const y = tf.tensor1d(Array.from({ length: 64 }, (_, i) => i % 3), 'float32');
    await model.fit(x, y, { epochs: 3, batchSize: 16, shuffle: false, verbose: 0 });
    const { modelJson, weightData } = await artifactsOf(model);
    const net = await importTfjsLayers(modelJson, weightData, { optimizer: { type: 'sgd', learningRate: 0.1 } });
    expect(net.config.layers.map((l) => l.type).join()).toBe('dense,relu,batchNorm,dense,batchNorm,tanh,dense,sigmoid,batchNorm,dense');
    expect(net.config.layers.filter((l) => l.type === 'batchNorm').map((l) => [l.momentum, l.epsilon, l.runningVariance])).toEqual([
      [0.99, 1e-3, 'biased'],
      [0.9, 1e-4, 'biased'],
      [0.99, 1e-3, 'biased'],
    ]);
    const xt = data(40, 6, 5);
    const expected = model.predict(tf.tensor2d(xt, [40, 6])).dataSync();
    const actual = net.predictBatch(xt);
    expectClose(actual, expected, { ...TOLERANCE, what: 'bnwasm predictBatch of the tfjs model' });
    worstIn = Math.max(worstIn, worstOf(actual, expected));

    // One training step each on the same batch: the moving statistics must agree.
    const xb = data(16, 6, 6);
    const yb = Int32Array.from({ length: 16 }, (_, i) => (i * 7) % 3);
    await model.trainOnBatch(tf.tensor2d(xb, [16, 6]), tf.tensor1d(Array.from(yb), 'float32'));
    net.trainBatch(xb, yb);
    const after = await artifactsOf(model);
    const tfWeights = new Float32Array(after.weightData);
    let offset = 0;
    const byName = new Map(after.modelJson.weightsManifest[0].weights.map((w) => {
      const n = w.shape.reduce((a, b) => a * b, 1);
      const v = tfWeights.subarray(offset, offset + n);
      offset += n;
      return [w.name, v];
    }));
    const bnNames = model.layers.filter((l) => l.getClassName() === 'BatchNormalization').map((l) => l.name);
    const bnLayers = net.config.layers.flatMap((l, i) => (l.type === 'batchNorm' ? [i] : []));
    const weights = net.getWeights();
    bnLayers.forEach((layer, k) => {
      for (const [ours, theirs] of [['runningMean', 'moving_mean'], ['runningVariance', 'moving_variance']]) {
        const v = weights.find((t) => t.layer === layer && t.name === ours).values;
        expectClose(v, byName.get(`${bnNames[k]}/${theirs}`), { rtol: 1e-5, atol: 1e-6, what: `${bnNames[k]} ${theirs}` });
      }
    });
    net.dispose();
  });

  test('moving statistics are matched by name, not position; center and scale false', async () => {
    const model = buildModel({ trainable: false });
    const { modelJson, weightData } = await artifactsOf(model);
    const specs = modelJson.weightsManifest[0].weights;
    const floats = new Float32Array(weightData);
    const pieces = [];
    let offset = 0;
    for (const s of specs) {
      const n = s.shape.reduce((a, b) => a * b, 1);
      pieces.push([s, floats.slice(offset, offset + n)]);
      offset += n;
    }
    pieces.reverse();
    const shuffled = { ...modelJson, weightsManifest: [{ paths: ['weights.bin'], weights: pieces.map(([s]) => s) }] };
    const data2 = new Float32Array(floats.length);
    offset = 0;
    for (const [, v] of pieces) {
      data2.set(v, offset);
      offset += v.length;
    }
    const a = await importTfjsLayers(modelJson, weightData);
    const b = await importTfjsLayers(shuffled, data2.buffer);
    expect(b.getWeights()).toEqual(a.getWeights());
    const xt = data(20, 6, 8);
    const expected = model.predict(tf.tensor2d(xt, [20, 6])).dataSync();
    expectClose(b.predictBatch(xt), expected, { ...TOLERANCE, what: 'center/scale false' });
    a.dispose();
    b.dispose();
  });

  test('unsupported layers, shapes and truncated weights are refused', async () => {
    const { modelJson, weightData } = await artifactsOf(buildModel());
    const conv = structuredClone(modelJson);
    conv.modelTopology.config.layers.splice(1, 0, { class_name: 'Conv1D', config: { name: 'conv' } });
    await expect(importTfjsLayers(conv, weightData)).rejects.toThrow(/layer 'conv' is a "Conv1D", not supported/);
    await expect(importTfjsLayers(modelJson, new Uint8Array(weightData).subarray(0, 100))).rejects.toThrow(ModelFormatError);
    const wrongShape = structuredClone(modelJson);
    wrongShape.modelTopology.config.layers[0].config.units = 11;
    await expect(importTfjsLayers(wrongShape, weightData)).rejects.toThrow(/kernel' has shape \[6,12\], expected \[6,11\]/);
    await expect(importTfjsLayers('{"modelTopology": ', weightData)).rejects.toThrow(/modelJson is not valid JSON/);
  });
});

afterAll(() => console.log(`TF.js: worst |tfjs - bnwasm| export ${worstOut}, import ${worstIn}`));
