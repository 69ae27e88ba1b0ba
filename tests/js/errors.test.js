// Every kind of bad input gets an Error subclass with a stable code and a
// message naming the call, the argument, the expectation and what came; and
// the network is exactly as before the call.
import { createNetwork, loadNetwork, BnwasmError, ConfigError, InputError, DivergenceError, ModelFormatError } from 'bnwasm';
import { blobs, bytesEqual, smallConfig } from './helpers.js';

let net;
let x;
let y;
beforeEach(async () => {
  net = await createNetwork(smallConfig());
  ({ x, y } = blobs(32));
  net.trainBatch(x, y); // running statistics and optimizer state are not at their initial values
});
afterEach(() => net.dispose());

/** Runs the bad call, checks the error, and checks that nothing in the network changed. */
function expectRejected(call, { type = InputError, code, message }) {
  const before = net.save();
  const probe = net.predictBatch(x);
  let error;
  try {
    call();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(type);
  expect(error).toBeInstanceOf(BnwasmError);
  expect(error.code).toBe(code);
  expect(error.message).toMatch(message);
  expect(bytesEqual(net.save(), before)).toBe(true);
  expect([...net.predictBatch(x)]).toEqual([...probe]);
  // Still usable: a good step goes through.
  expect(Number.isFinite(net.trainBatch(x, y))).toBe(true);
}

describe('input data', () => {
  test.each([
    ['x is a plain array', () => net.trainBatch([...x], y), 'BNWASM_WRONG_TYPE', /^trainBatch\(\): x must be a Float32Array, got Array\(128\)$/],
    ['x is a Float64Array', () => net.trainBatch(new Float64Array(x), y), 'BNWASM_WRONG_TYPE', /x must be a Float32Array, got Float64Array\(128\)/],
    ['x length not a multiple of inputSize', () => net.trainBatch(x.subarray(0, 127), y), 'BNWASM_WRONG_LENGTH', /x has 127 values, expected a positive multiple of inputSize 4 \(31 rows and 3 values left over\)/],
    ['x empty', () => net.trainBatch(new Float32Array(0), new Int32Array(0)), 'BNWASM_WRONG_LENGTH', /x has 0 values/],
    ['y length differs from x rows', () => net.trainBatch(x, y.subarray(0, 31)), 'BNWASM_WRONG_LENGTH', /^trainBatch\(\): y has 31 labels, x has 32 examples$/],
    ['labels as floats', () => net.trainBatch(x, new Float32Array(y)), 'BNWASM_WRONG_TYPE', /y must hold class labels as an Int32Array or Uint8Array, got Float32Array\(32\)/],
    ['label above range', () => net.trainBatch(x, y.map((v, i) => (i === 7 ? 3 : v))), 'BNWASM_LABEL_OUT_OF_RANGE', /^trainBatch\(\): y\[7\] is 3, labels must be integers in \[0, 3\)$/],
    ['negative label', () => net.trainBatch(x, y.map((v, i) => (i === 2 ? -1 : v))), 'BNWASM_LABEL_OUT_OF_RANGE', /y\[2\] is -1/],
    ['NaN in x', () => net.trainBatch(x.map((v, i) => (i === 9 ? NaN : v)), y), 'BNWASM_NON_FINITE', /^trainBatch\(\): x\[9\] is NaN, expected a finite number$/],
    ['Infinity in x', () => net.trainBatch(x.map((v, i) => (i === 5 ? Infinity : v)), y), 'BNWASM_NON_FINITE', /x\[5\] is Infinity/],
    ['-Infinity in x', () => net.trainBatch(x.map((v, i) => (i === 0 ? -Infinity : v)), y), 'BNWASM_NON_FINITE', /x\[0\] is -Infinity/],
    ['a batch of one', () => net.trainBatch(x.subarray(0, 4), y.subarray(0, 1)), 'BNWASM_BATCH_TOO_SMALL', /at least 2 examples \(batch norm's variance over one example is meaningless\), got 1/],
    ['predict with 3 values', () => net.predict(x.subarray(0, 3)), 'BNWASM_WRONG_LENGTH', /^predict\(\): x has 3 values, the network expects 4 \(one example\)$/],
    ['predict with two examples', () => net.predict(x.subarray(0, 8)), 'BNWASM_WRONG_LENGTH', /x has 8 values, the network expects 4/],
    ['predict with NaN', () => net.predict(new Float32Array([0, NaN, 0, 0])), 'BNWASM_NON_FINITE', /^predict\(\): x\[1\] is NaN, expected a finite number$/],
    ['predict with a number[]', () => net.predict([0, 0, 0, 0]), 'BNWASM_WRONG_TYPE', /predict\(\): x must be a Float32Array, got Array\(4\)/],
    ['predict into a wrong out', () => net.predict(x.subarray(0, 4), new Float32Array(2)), 'BNWASM_WRONG_TYPE', /out must be a Float32Array\(3\), got Float32Array\(2\)/],
    ['predictBatch with a ragged length', () => net.predictBatch(x.subarray(0, 10)), 'BNWASM_WRONG_LENGTH', /predictBatch\(\): xs has 10 values/],
    ['predictBatch with Infinity past the first chunk', () => net.predictBatch(new Float32Array(4 * 600).fill(1).map((v, i) => (i === 4 * 550 + 2 ? Infinity : v))), 'BNWASM_NON_FINITE', /^predictBatch\(\): xs\[2202\] is Infinity, expected a finite number$/],
    ['evaluate with a bad label', () => net.evaluate(x, y.map((v, i) => (i === 4 ? 9 : v))), 'BNWASM_LABEL_OUT_OF_RANGE', /^evaluate\(\): ys\[4\] is 9/],
    ['evaluate with wrong label count', () => net.evaluate(x, y.subarray(1)), 'BNWASM_WRONG_LENGTH', /evaluate\(\): ys has 31 labels, x has 32 examples/],
  ])('%s', (_, call, code, message) => expectRejected(call, { code, message }));

  test('fit checks all data before training a single step', async () => {
    const before = net.save();
    const bad = x.map((v, i) => (i === 120 ? NaN : v));
    await expect(net.fit(bad, y, { batchSize: 8 })).rejects.toMatchObject({ code: 'BNWASM_NON_FINITE', message: 'fit(): x[120] is NaN, expected a finite number' });
    await expect(net.fit(x, y.map((v, i) => (i === 31 ? 200 : v)), { batchSize: 8 })).rejects.toMatchObject({ code: 'BNWASM_LABEL_OUT_OF_RANGE' });
    await expect(net.fit(x, y, { batchSize: 1 })).rejects.toMatchObject({ code: 'BNWASM_BATCH_TOO_SMALL' });
    await expect(net.fit(x, y, { epochs: 0 })).rejects.toMatchObject({ code: 'BNWASM_INVALID_ARGUMENT', message: expect.stringContaining('epochs must be a positive integer, got 0') });
    await expect(net.fit(x, y, { epoch: 2 })).rejects.toMatchObject({ message: expect.stringContaining("unknown option 'epoch'") });
    await expect(net.fit(x, y, { validationData: [x] })).rejects.toMatchObject({ message: expect.stringContaining('validationData must be [x, y]') });
    expect(bytesEqual(net.save(), before)).toBe(true);
  });

  test('meanSquaredError targets: type, length, NaN', async () => {
    const reg = await createNetwork({ inputSize: 2, layers: [{ type: 'dense', units: 2 }], loss: 'meanSquaredError' });
    const xs = new Float32Array(8);
    expect(() => reg.trainBatch(xs, new Int32Array(8))).toThrow(/y must hold targets as a Float32Array, got Int32Array\(8\)/);
    expect(() => reg.trainBatch(xs, new Float32Array(7))).toThrow(/y has 7 values, expected 8 \(4 examples x 2 outputs\)/);
    expect(() => reg.trainBatch(xs, new Float32Array(8).fill(NaN))).toThrow(/^trainBatch\(\): y\[0\] is NaN, expected a finite number$/);
    reg.dispose();
  });
});

describe('setWeights', () => {
  test.each([
    ['not an array', () => net.setWeights({}), 'BNWASM_WRONG_TYPE', /expected an array of \{layer, name, values\}, got Object/],
    ['unknown tensor', () => net.setWeights([{ layer: 2, name: 'weight', values: [] }]), 'BNWASM_INVALID_ARGUMENT', /list\[0\]: the network has no tensor 'weight' in layer 2 \(it has 0:weight, 1:gamma/],
    ['wrong shape', () => net.setWeights([{ layer: 0, name: 'weight', shape: [4, 16], values: new Float32Array(64) }]), 'BNWASM_WRONG_LENGTH', /shape must be \[16,4\], got Array\(2\) \[4,16\]/],
    ['wrong length', () => net.setWeights([{ layer: 3, name: 'bias', values: [1, 2] }]), 'BNWASM_WRONG_LENGTH', /\(layer 3 bias\): values must hold 3 numbers, got Array\(2\)/],
    ['NaN value', () => net.setWeights([{ layer: 1, name: 'gamma', values: new Float32Array(16).fill(1).map((v, i) => (i === 3 ? NaN : v)) }]), 'BNWASM_NON_FINITE', /\(layer 1 gamma\): values\[3\] is NaN, expected a finite number$/],
    ['negative running variance', () => net.setWeights([{ layer: 1, name: 'runningVariance', values: new Float32Array(16).fill(-1) }]), 'BNWASM_NON_FINITE', /values\[0\] is -1, expected a finite number >= 0/],
    ['a bad entry after a good one writes neither', () => net.setWeights([{ layer: 1, name: 'beta', values: new Float32Array(16).fill(5) }, { layer: 1, name: 'gamma', values: [1] }]), 'BNWASM_WRONG_LENGTH', /list\[1\]/],
  ])('%s', (_, call, code, message) => expectRejected(call, { code, message }));
});

describe('divergence', () => {
  test.each([
    ['sgd, learning rate 1e6', { type: 'sgd', learningRate: 1e6 }],
    ['sgd with momentum, learning rate 1e6', { type: 'sgd', learningRate: 1e6, momentum: 0.9 }],
    ['sgd, learning rate 1e38', { type: 'sgd', learningRate: 1e38 }],
  ])('%s: the first step that would go non-finite is refused and changes nothing', async (_, optimizer) => {
    const wild = await createNetwork(smallConfig({ optimizer }));
    let error = null;
    let before;
    let probe;
    for (let step = 0; step < 20 && error === null; step++) {
      before = wild.save();
      probe = wild.predictBatch(x);
      try {
        wild.trainBatch(x, y);
      } catch (e) {
        error = e;
      }
    }
    expect(error).toBeInstanceOf(DivergenceError);
    expect(error.code).toBe('BNWASM_DIVERGED');
    expect(error.message).toMatch(/^trainBatch\(\): the (training loss is (NaN|Infinity)|update would make a parameter non-finite|gradient is not finite).*; nothing was changed\. Try a lower learning rate\.$/);
    expect(bytesEqual(wild.save(), before)).toBe(true);
    expect([...wild.predictBatch(x)]).toEqual([...probe]);
    wild.dispose();
  });

  test('Adam bounds its step by the learning rate, so 1e6 stays finite: no false alarm', async () => {
    const adam = await createNetwork(smallConfig({ optimizer: { type: 'adam', learningRate: 1e6 } }));
    for (let step = 0; step < 20; step++) expect(Number.isFinite(adam.trainBatch(x, y))).toBe(true);
    adam.dispose();
  });
});

describe('configs', () => {
  const base = smallConfig();
  test.each([
    ['not an object', null, /createNetwork\(\): config must be an object, got null/],
    ['unknown top-level option', { ...base, lossFunction: 'mse' }, /unknown option 'lossFunction'/],
    ['inputSize 0', { ...base, inputSize: 0 }, /inputSize must be an integer in \[1, 16777216\], got 0/],
    ['inputSize 2.5', { ...base, inputSize: 2.5 }, /inputSize must be an integer.*got 2\.5/],
    ['layers not an array', { ...base, layers: { type: 'dense', units: 2 } }, /config: layers must be an array of layer configs, got Object$/],
    ['unknown layer type', { ...base, layers: [{ type: 'conv3d' }] }, /layers\[0\]: type must be one of 'dense', 'batchNorm', 'relu', 'sigmoid', 'tanh', 'flatten', 'relu6', 'clip', 'dropout', 'conv2d', 'maxPool2d', 'avgPool2d', 'globalAvgPool', 'globalMaxPool', 'add', 'concat', got "conv3d"/],
    ['layer type in the wrong case', { ...base, layers: [{ type: 'batchnorm' }] }, /got "batchnorm"/],
    ['unknown layer option', { ...base, layers: [{ type: 'batchNorm', momentun: 0.9 }] }, /layers\[0\]: unknown option 'momentun' \(expected one of type, momentum, epsilon/],
    ['negative units', { ...base, layers: [{ type: 'dense', units: -3 }] }, /layers\[0\]: units must be an integer in \[1, 16777216\], got -3/],
    ['momentum 1', { ...base, layers: [{ type: 'batchNorm', momentum: 1 }] }, /momentum must be a finite number in \[0, 1\), got 1/],
    ['momentum NaN', { ...base, layers: [{ type: 'batchNorm', momentum: NaN }] }, /momentum must be a finite number in \[0, 1\), got NaN/],
    ['epsilon 0', { ...base, layers: [{ type: 'batchNorm', epsilon: 0 }] }, /layers\[0\]: epsilon must be a finite number > 0, got 0$/],
    ['unknown runningVariance', { ...base, layers: [{ type: 'batchNorm', runningVariance: 'sample' }] }, /runningVariance must be one of 'biased', 'unbiased', got "sample"/],
    ['bias correction with cumulative', { ...base, layers: [{ type: 'batchNorm', statistics: 'cumulative', biasCorrection: true }] }, /biasCorrection applies to statistics 'ema' only/],
    ['learning rate Infinity', { ...base, optimizer: { type: 'adam', learningRate: Infinity } }, /optimizer: learningRate must be a finite number >= 0, got Infinity$/],
    ['learning rate negative', { ...base, optimizer: { type: 'sgd', learningRate: -0.1 } }, /learningRate must be a finite number.*got -0\.1/],
    ['unknown optimizer', { ...base, optimizer: { type: 'rmsprop' } }, /optimizer: type must be one of 'sgd', 'adam', got "rmsprop"/],
    ['sgd option on adam', { ...base, optimizer: { type: 'adam', momentum: 0.9 } }, /optimizer: unknown option 'momentum'/],
    ['unknown loss', { ...base, loss: 'hinge' }, /loss must be one of 'softmaxCrossEntropy', 'meanSquaredError', got "hinge"/],
    ['one output for softmax', { ...base, layers: [{ type: 'dense', units: 1 }] }, /config: loss needs at least 2 outputs, the last layer has 1, got \"softmaxCrossEntropy\"$/],
    ['seed -1', { ...base, seed: -1 }, /seed must be an integer in \[0, 4294967295\], got -1/],
  ])('%s', async (_, config, message) => {
    const error = await createNetwork(config).catch((e) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.code).toBe('BNWASM_INVALID_CONFIG');
    expect(error.message).toMatch(message);
  });
});

describe('model bytes', () => {
  test('wrong type', async () => {
    await expect(loadNetwork('BNWM')).rejects.toMatchObject({ name: 'InputError', code: 'BNWASM_WRONG_TYPE' });
  });

  test('wrong magic, wrong version, truncation, bit flips: ModelFormatError, never a crash', async () => {
    const bytes = net.save();
    const expectCorrupt = async (b, message) => {
      const e = await loadNetwork(b).catch((err) => err);
      expect(e).toBeInstanceOf(ModelFormatError);
      expect(e.code).toBe('BNWASM_CORRUPT_MODEL');
      expect(e.message).toMatch(message);
    };
    await expectCorrupt(new Uint8Array(0), /not a bnwasm model/);
    await expectCorrupt(Uint8Array.from(bytes, (v, i) => (i === 0 ? 0x50 : v)), /not a bnwasm model \(the bytes do not start with "BNWM"\)/);
    const v4 = bytes.slice();
    v4[4] = 4;
    await expectCorrupt(v4, /model format version 4 is not supported \(this build reads versions 1 to 3\)/);
    for (const cut of [1, 15, 16, 100, bytes.length - 4, bytes.length - 1]) {
      await expectCorrupt(bytes.subarray(0, cut), cut < 16 ? /not a bnwasm model/ : /truncated/);
    }
    const padded = new Uint8Array(bytes.length + 1);
    padded.set(bytes);
    await expectCorrupt(padded, /truncated or padded/);
    // Flip one bit in each of 200 positions spread over the payload and the checksum.
    for (let k = 0; k < 200; k++) {
      const i = 12 + Math.floor((k * (bytes.length - 12)) / 200);
      const flipped = bytes.slice();
      flipped[i] ^= 1 << k % 8;
      await expectCorrupt(flipped, /checksum mismatch/);
    }
    // The network the bytes came from is untouched, and the good bytes still load.
    const good = await loadNetwork(bytes);
    expect([...good.predictBatch(x)]).toEqual([...net.predictBatch(x)]);
    good.dispose();
  });
});
