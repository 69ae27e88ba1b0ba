// The public API contract, through the package entry point only.
import { createNetwork, loadNetwork } from 'bnwasm';
import { blobs, bytesEqual, expectClose, smallConfig } from './helpers.js';

describe('createNetwork', () => {
  test('fills every default in the normalized config', async () => {
    const net = await createNetwork({ inputSize: 3, layers: [{ type: 'dense', units: 2 }, { type: 'batchNorm' }] });
    expect(net.config).toEqual({
      inputSize: 3,
      layers: [
        { type: 'dense', units: 2, useBias: true, init: 'auto', initStd: 0.01, trainable: true },
        { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5, runningVariance: 'unbiased', statistics: 'ema', biasCorrection: false, renorm: null, mode: 'batch', trainable: true },
      ],
      loss: 'softmaxCrossEntropy',
      optimizer: { type: 'adam', learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 },
      seed: 1,
    });
    expect(net.inputSize).toBe(3);
    expect(net.outputSize).toBe(2);
    net.dispose();
  });

  test('the same seed gives the same network, another seed another one', async () => {
    const a = await createNetwork(smallConfig({ seed: 11 }));
    const b = await createNetwork(smallConfig({ seed: 11 }));
    const c = await createNetwork(smallConfig({ seed: 12 }));
    expect(bytesEqual(a.save(), b.save())).toBe(true);
    expect(bytesEqual(a.save(), c.save())).toBe(false);
    [a, b, c].forEach((n) => n.dispose());
  });

  test('lists tensors in PyTorch layout with fresh batch-norm state', async () => {
    const net = await createNetwork(smallConfig());
    const w = net.getWeights();
    expect(w.map((t) => [t.layer, t.name, t.shape])).toEqual([
      [0, 'weight', [16, 4]],
      [1, 'gamma', [16]],
      [1, 'beta', [16]],
      [1, 'runningMean', [16]],
      [1, 'runningVariance', [16]],
      [3, 'weight', [3, 16]],
      [3, 'bias', [3]],
    ]);
    expect([...w[1].values].every((v) => v === 1)).toBe(true); // gamma
    expect([...w[2].values].every((v) => v === 0)).toBe(true); // beta
    expect([...w[3].values].every((v) => v === 0)).toBe(true); // running mean starts at 0
    expect([...w[4].values].every((v) => v === 1)).toBe(true); // running variance at 1
    // He uniform for the dense layer that feeds ReLU through batch norm: |w| <= sqrt(6 / fan_in).
    expect(Math.max(...w[0].values.map(Math.abs))).toBeLessThanOrEqual(Math.sqrt(6 / 4));
    net.dispose();
  });
});

describe('training and inference', () => {
  test('trainBatch lowers the loss on a learnable problem and fit reaches high accuracy', async () => {
    const net = await createNetwork(smallConfig());
    const { x, y } = blobs(300);
    const first = net.trainBatch(x.subarray(0, 32 * 4), y.subarray(0, 32));
    expect(Number.isFinite(first)).toBe(true);
    const history = await net.fit(x, y, { epochs: 20, batchSize: 30 });
    expect(history.loss).toHaveLength(20);
    expect(history.loss[19]).toBeLessThan(first / 2);
    const test = blobs(300, 4, 99);
    // Bayes accuracy of these blobs is about 0.9; a learned network gets close to it.
    expect(net.evaluate(test.x, test.y).accuracy).toBeGreaterThan(0.8);
    expect(net.steps).toBe(1 + 20 * 10);
    net.dispose();
  });

  test('predict returns probabilities; predictBatch row i equals predict(row i) bit for bit', async () => {
    const net = await createNetwork(smallConfig());
    const { x, y } = blobs(96);
    await net.fit(x, y, { epochs: 3, batchSize: 16 });
    const all = net.predictBatch(x);
    const out = new Float32Array(3);
    for (let i = 0; i < 96; i++) {
      const p = net.predict(x.subarray(i * 4, i * 4 + 4));
      expect(p.reduce((a, b) => a + b)).toBeCloseTo(1, 6);
      expect([...p]).toEqual([...all.subarray(i * 3, i * 3 + 3)]);
      expect(net.predict(x.subarray(i * 4, i * 4 + 4), out)).toBe(out);
      expect([...out]).toEqual([...p]);
    }
    net.dispose();
  });

  test('inference normalizes with the running statistics, gamma and beta only (closed form)', async () => {
    const net = await createNetwork(smallConfig());
    const { x, y } = blobs(64);
    await net.fit(x, y, { epochs: 2, batchSize: 16 });
    const t = Object.fromEntries(net.getWeights().map((w) => [`${w.layer}.${w.name}`, w.values]));
    const eps = 1e-5;
    for (let i = 0; i < 8; i++) {
      const xi = x.subarray(i * 4, i * 4 + 4);
      // float64 forward from the tensors: dense (no bias) -> BN (running) -> ReLU -> dense -> softmax
      const h = Array.from({ length: 16 }, (_, u) => {
        let z = 0;
        for (let k = 0; k < 4; k++) z += t['0.weight'][u * 4 + k] * xi[k];
        const bn = ((z - t['1.runningMean'][u]) / Math.sqrt(t['1.runningVariance'][u] + eps)) * t['1.gamma'][u] + t['1.beta'][u];
        return Math.max(0, bn);
      });
      const logits = [0, 1, 2].map((o) => t['3.bias'][o] + h.reduce((s, hv, u) => s + t['3.weight'][o * 16 + u] * hv, 0));
      const zmax = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - zmax));
      const sum = e.reduce((a, b) => a + b);
      // float32 inference vs float64 closed form: a few ulps per op over ~20-term sums.
      expectClose(net.predict(xi), e.map((v) => v / sum), { rtol: 1e-5, atol: 1e-6, what: `example ${i}` });
    }
    net.dispose();
  });

  test('an example predicts the same whatever else is in its batch (no batch statistics at test time)', async () => {
    const net = await createNetwork(smallConfig());
    const { x, y } = blobs(64);
    await net.fit(x, y, { epochs: 2, batchSize: 16 });
    const alone = net.predictBatch(x.subarray(0, 4));
    const shifted = x.slice(0, 40).map((v, i) => (i < 4 ? v : v * 10 + 100));
    expect([...net.predictBatch(shifted).subarray(0, 3)]).toEqual([...alone]);
    net.dispose();
  });

  test('meanSquaredError regresses float targets; evaluate reports loss only', async () => {
    const net = await createNetwork({
      inputSize: 2,
      layers: [{ type: 'dense', units: 16, useBias: false }, { type: 'batchNorm' }, { type: 'tanh' }, { type: 'dense', units: 1 }],
      loss: 'meanSquaredError',
      optimizer: { type: 'sgd', learningRate: 0.05, momentum: 0.9 },
    });
    const n = 256;
    const x = new Float32Array(n * 2).map((_, i) => Math.sin(i * 1.7) * 2);
    const y = new Float32Array(n).map((_, i) => x[2 * i] * 0.5 - x[2 * i + 1]);
    const before = net.evaluate(x, y);
    expect(before).toEqual({ loss: expect.any(Number) });
    await net.fit(x, y, { epochs: 30, batchSize: 32 });
    expect(net.evaluate(x, y).loss).toBeLessThan(before.loss / 20);
    net.dispose();
  });

  test('fit reports batches and epochs, validates on validationData, and stops on abort', async () => {
    const net = await createNetwork(smallConfig());
    const { x, y } = blobs(100);
    const steps = [];
    const epochs = [];
    const history = await net.fit(x, y, {
      epochs: 2,
      batchSize: 32,
      validationData: [x, y],
      onBatchEnd: (step, logs) => steps.push([step, logs.epoch, logs.batch]),
      onEpochEnd: (epoch, logs) => epochs.push([epoch, logs]),
    });
    // 100 = 32 + 32 + 32 + 4 per epoch
    expect(steps.map((s) => s[0])).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(epochs).toHaveLength(2);
    expect(history.valAccuracy).toHaveLength(2);
    expect(history.valLoss[1]).toBeCloseTo(net.evaluate(x, y).loss, 12);

    const controller = new AbortController();
    const before = net.steps;
    await net.fit(x, y, { epochs: 5, batchSize: 10, onBatchEnd: (step) => step === before + 3 && controller.abort(), signal: controller.signal });
    expect(net.steps).toBe(before + 3);
    net.dispose();
  });

  test('a trailing mini-batch of one example is skipped (batch norm cannot train on it)', async () => {
    const net = await createNetwork(smallConfig());
    const { x, y } = blobs(33);
    await net.fit(x, y, { epochs: 1, batchSize: 16 });
    expect(net.steps).toBe(2);
    net.dispose();
  });
});

describe('weights', () => {
  test('setWeights writes any subset, and dense weights are [units, inputs]', async () => {
    const net = await createNetwork({ inputSize: 3, layers: [{ type: 'dense', units: 2 }], loss: 'meanSquaredError' });
    net.setWeights([
      { layer: 0, name: 'weight', shape: [2, 3], values: [1, 2, 3, 4, 5, 6] },
      { layer: 0, name: 'bias', values: new Float32Array([0.5, -0.5]) },
    ]);
    // y = W x + b with W row-major [units, inputs]
    expect([...net.predict(new Float32Array([1, 0, -1]))]).toEqual([1 - 3 + 0.5, 4 - 6 - 0.5]);
    net.setWeights([{ layer: 0, name: 'bias', values: [0, 0] }]);
    expect([...net.predict(new Float32Array([1, 0, -1]))]).toEqual([-2, -2]);
    net.dispose();
  });

  test('running statistics set from outside are what inference uses', async () => {
    const net = await createNetwork({ inputSize: 2, layers: [{ type: 'batchNorm', epsilon: 1e-3 }, { type: 'dense', units: 2 }] });
    net.setWeights([
      { layer: 0, name: 'runningMean', values: [1, -1] },
      { layer: 0, name: 'runningVariance', values: [4, 0.25] },
      { layer: 0, name: 'gamma', values: [2, 1] },
      { layer: 0, name: 'beta', values: [0, 3] },
      { layer: 1, name: 'weight', values: [1, 0, 0, 1] },
      { layer: 1, name: 'bias', values: [0, 0] },
    ]);
    const p = net.predict(new Float32Array([3, 0]));
    const z = [((3 - 1) / Math.sqrt(4 + 1e-3)) * 2, (1 / Math.sqrt(0.25 + 1e-3)) * 1 + 3];
    const e = z.map((v) => Math.exp(v - Math.max(...z)));
    expectClose(p, e.map((v) => v / (e[0] + e[1])), { rtol: 1e-6, atol: 1e-7, what: 'softmax' });
    net.dispose();
  });
});

describe('save and load', () => {
  test('round trip is bit-exact and keeps the config', async () => {
    const net = await createNetwork(smallConfig({ optimizer: { type: 'sgd', learningRate: 0.1, momentum: 0.9, nesterov: true } }));
    const { x, y } = blobs(64);
    await net.fit(x, y, { epochs: 2, batchSize: 16 });
    const bytes = net.save();
    const again = await loadNetwork(bytes);
    expect(bytesEqual(again.save(), bytes)).toBe(true);
    expect(again.config).toEqual(net.config);
    expect(again.steps).toBe(net.steps);
    expect([...again.predictBatch(x)]).toEqual([...net.predictBatch(x)]);
    await expect(loadNetwork(bytes.buffer)).resolves.toBeDefined();
    net.dispose();
    again.dispose();
  });

  test.each([
    ['adam', { type: 'adam', learningRate: 0.01 }, { statistics: 'ema' }],
    ['sgd with momentum', { type: 'sgd', learningRate: 0.05, momentum: 0.9 }, { statistics: 'cumulative' }],
    ['adam, bias-corrected averages', { type: 'adam', learningRate: 0.01 }, { biasCorrection: true }],
  ])('training resumed after loading continues exactly as uninterrupted training (%s)', async (_, optimizer, bn) => {
    const config = smallConfig({ optimizer, layers: [{ type: 'dense', units: 16, useBias: false }, { type: 'batchNorm', ...bn }, { type: 'relu' }, { type: 'dense', units: 3 }] });
    const { x, y } = blobs(90);
    const straight = await createNetwork(config);
    await straight.fit(x, y, { epochs: 2, batchSize: 16 });
    const interrupted = await createNetwork(config);
    await interrupted.fit(x, y, { epochs: 1, batchSize: 16 });
    const resumed = await loadNetwork(interrupted.save());
    interrupted.dispose();
    await resumed.fit(x, y, { epochs: 1, batchSize: 16 }); // same shuffle stream, same moments
    expect(bytesEqual(resumed.save(), straight.save())).toBe(true);
    resumed.dispose();
    straight.dispose();
  });
});

describe('checkpoints', () => {
  test('fit resumed from a mid-epoch checkpoint continues exactly as uninterrupted training', async () => {
    const config = smallConfig({ optimizer: { type: 'adam', learningRate: 0.01 } });
    const { x, y } = blobs(100);
    const options = { epochs: 3, batchSize: 16 }; // 7 batches an epoch
    const straight = await createNetwork(config);
    const checkpoints = [];
    await straight.fit(x, y, { ...options, checkpointEvery: 5, onCheckpoint: (c) => checkpoints.push(c) });
    expect(checkpoints.map((c) => [c.step, c.epoch, c.batch])).toEqual([[5, 0, 5], [10, 1, 3], [15, 2, 1], [20, 2, 6]]);
    for (const checkpoint of checkpoints) {
      const resumed = await loadNetwork(checkpoint.bytes);
      await resumed.fit(x, y, { ...options, resumeFrom: checkpoint });
      expect(resumed.steps).toBe(straight.steps);
      expect(bytesEqual(resumed.save(), straight.save())).toBe(true);
      resumed.dispose();
    }
    // A checkpoint only fits the network state it was taken from.
    await expect(straight.fit(x, y, { ...options, resumeFrom: checkpoints[0] })).rejects.toMatchObject({ code: 'BNWASM_INVALID_ARGUMENT' });
    straight.dispose();
  });
});

describe('dispose', () => {
  test('frees the network; every later call throws DisposedError; dispose twice is harmless', async () => {
    const net = await createNetwork(smallConfig());
    net.dispose();
    net.dispose();
    expect(net.disposed).toBe(true);
    const x = new Float32Array(8);
    const calls = {
      predict: () => net.predict(x.subarray(0, 4)),
      predictBatch: () => net.predictBatch(x),
      trainBatch: () => net.trainBatch(x, new Int32Array(2)),
      evaluate: () => net.evaluate(x, new Int32Array(2)),
      getWeights: () => net.getWeights(),
      setWeights: () => net.setWeights([]),
      save: () => net.save(),
      steps: () => net.steps,
    };
    for (const [name, call] of Object.entries(calls)) {
      expect(call).toThrow(expect.objectContaining({ name: 'DisposedError', code: 'BNWASM_DISPOSED', message: `${name}(): the network has been disposed` }));
    }
    await expect(net.fit(x, new Int32Array(2))).rejects.toMatchObject({ code: 'BNWASM_DISPOSED' });
  });
});

describe('one training loop', () => {
  test('learning rate 0 is accepted and only refreshes the batch-norm running statistics', async () => {
    const net = await createNetwork(smallConfig({ optimizer: { type: 'sgd', learningRate: 0 } }));
    const before = net.getWeights();
    const { x, y } = blobs(64);
    await net.fit(x, y, { epochs: 1, batchSize: 16 });
    for (const [k, t] of net.getWeights().entries()) {
      const same = t.values.every((v, i) => v === before[k].values[i]);
      expect([t.name, same]).toEqual([t.name, !t.name.startsWith('running')]);
    }
    net.dispose();
  });

  test('Network.fit reports progress, holds on an onBatchEnd promise and stops on its signal', async () => {
    const net = await createNetwork(smallConfig());
    const { x, y } = blobs(256);
    const events = [];
    const controller = new AbortController();
    let held = 0;
    const history = await net.fit(x, y, {
      epochs: 3,
      batchSize: 16,
      progressInterval: 0,
      trackUnits: [0, 3],
      validationData: [x, y],
      signal: controller.signal,
      onProgress: (p) => events.push(p),
      onBatchEnd: (step) => {
        if (step === 20) controller.abort();
        if (step % 5 === 0) return new Promise((resolve) => setTimeout(() => resolve(held++), 1));
        return undefined;
      },
    });
    expect(history).toMatchObject({ steps: 20, aborted: true, epoch: [0, 1] });
    expect(held).toBe(4); // steps 5, 10, 15 and 20 were held and went on
    expect(events.map((p) => p.step)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(events[0].validation).toMatchObject({ step: 0 });
    expect(events[0].batchNorm.map((b) => [b.layer, Array.from(b.units)])).toEqual([[1, [0, 3]]]);
    // The reported running statistics are the network's own.
    const last = events.at(-1).batchNorm[0];
    const running = net.getWeights().find((t) => t.layer === 1 && t.name === 'runningMean').values;
    expect(Array.from(last.runningMean)).toEqual([running[0], running[3]]);
    net.dispose();
  });
});
