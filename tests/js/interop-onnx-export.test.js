// net.toONNX(): the exported graph, run by a real runtime (onnxruntime-web's
// wasm CPU backend under Node), gives predictBatch's outputs; Debian's
// onnx.checker (full_check, with shape inference) accepts every file.
//
// Tolerance: |ONNX Runtime - predictBatch| <= 1e-5 absolute, on outputs of
// magnitude <= ~3 (probabilities, or a few units for MSE). Both engines compute in
// float32 (u = 6e-8): the dot products here have <= 16 terms and batch norm is a
// handful of operations per value, so summation order and the order of batch
// norm's arithmetic differ by at most a few tens of u (~2e-6) on values of this
// size. Folding adds one rounding of each folded weight (another few u). The
// tolerance leaves a margin of ~5 over that and is still 100x below any real
// mistake (a wrong epsilon, variance estimator, transB, or a missing softmax all
// move outputs by > 1e-3 here).
import * as ort from 'onnxruntime-web';
import { createNetwork } from 'bnwasm';
import { onnxCheckAll, worstOf } from './interop-helpers.js';
import { importONNX, toONNX } from 'bnwasm/interop';
import { expectClose, gaussian, rng } from './helpers.js';

ort.env.wasm.numThreads = 1;

const TOLERANCE = 1e-5;
const OPSETS = [13, 14, 15, 16, 17];

// Every layer type and every batch-norm option, each trained a few steps so the
// running statistics are far from their initial 0 and 1.
const CASES = {
  'dense+bn+relu softmax': {
    inputSize: 6,
    layers: [{ type: 'dense', units: 16 }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dense', units: 4 }],
  },
  'no-bias dense+bn(momentum 0.8, eps 1e-3, biased)+sigmoid mse': {
    inputSize: 6,
    loss: 'meanSquaredError',
    layers: [
      { type: 'dense', units: 12, useBias: false },
      { type: 'batchNorm', momentum: 0.8, epsilon: 1e-3, runningVariance: 'biased' },
      { type: 'sigmoid' },
      { type: 'dense', units: 3 },
    ],
  },
  'bn on inputs, tanh, bn after activation (not foldable)': {
    inputSize: 6,
    layers: [
      { type: 'batchNorm' },
      { type: 'dense', units: 10 },
      { type: 'tanh' },
      { type: 'batchNorm', epsilon: 1e-2 },
      { type: 'dense', units: 3 },
    ],
  },
  'bn cumulative, bias correction, renorm': {
    inputSize: 6,
    layers: [
      { type: 'dense', units: 10 },
      { type: 'batchNorm', statistics: 'cumulative' },
      { type: 'relu' },
      { type: 'dense', units: 8 },
      { type: 'batchNorm', biasCorrection: true, momentum: 0.95 },
      { type: 'relu' },
      { type: 'dense', units: 8, useBias: false },
      { type: 'batchNorm', renorm: { rMax: 2, dMax: 1 } },
      { type: 'tanh' },
      { type: 'dense', units: 3 },
    ],
  },
  // Clip's bounds and Dropout's ratio are float32 initializers: bounds that float32 holds exactly.
  'relu6, clip(-0.5, 2), dropout 0.25 (the identity at inference)': {
    inputSize: 6,
    layers: [
      { type: 'dense', units: 12 },
      { type: 'batchNorm' },
      { type: 'relu6' },
      { type: 'dropout', rate: 0.25 },
      { type: 'dense', units: 8 },
      { type: 'clip', min: -0.5, max: 2 },
      { type: 'dense', units: 3 },
    ],
  },
  'conv, bn, relu6, globalMaxPool, dense': {
    inputShape: [2, 6, 5],
    layers: [
      { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same' },
      { type: 'batchNorm' },
      { type: 'relu6' },
      { type: 'globalMaxPool' },
      { type: 'dense', units: 3 },
    ],
  },
  // Without layers the output is the input: through the Softmax, or an Identity.
  'no layers, softmax': { inputSize: 6, layers: [] },
  'no layers, mse (Identity)': { inputSize: 6, loss: 'meanSquaredError', layers: [] },
};
const inputDims = (config) => config.inputShape ?? [config.inputSize];
const inputSize = (config) => inputDims(config).reduce((a, b) => a * b, 1);

function data(n, inputSize, outputs, seed) {
  const normal = gaussian(rng(seed));
  const x = Float32Array.from({ length: n * inputSize }, (_, i) => 1.5 * normal() + (i % inputSize) * 0.3);
  const labels = Int32Array.from({ length: n }, (_, i) => i % outputs);
  const targets = Float32Array.from({ length: n * outputs }, () => normal());
  return { x, labels, targets };
}

async function trained(config) {
  const net = await createNetwork({ ...config, optimizer: { type: 'adam', learningRate: 0.05 }, seed: 3 });
  const { x, labels, targets } = data(32, inputSize(config), net.outputSize, 11);
  for (let step = 0; step < 6; step++) net.trainBatch(x, config.loss === 'meanSquaredError' ? targets : labels);
  return net;
}

const files = [];
// The worst differences by case (each layer and batch-norm option) and by opset, for the log.
const worstByCase = {};
const worstByOpset = {};
const raise = (table, row, key, diff) => {
  table[row] ??= {};
  table[row][key] = Math.max(table[row][key] ?? 0, diff);
};

describe('toONNX runs in ONNX Runtime with predictBatch outputs', () => {
  for (const [name, config] of Object.entries(CASES)) {
    test(name, async () => {
      const net = await trained(config);
      const { x } = data(50, inputSize(config), net.outputSize, 99);
      const expected = net.predictBatch(x);
      for (const opset of OPSETS) {
        for (const fold of [false, true]) {
          const bytes = net.toONNX({ opset, fold });
          files.push({ name: `${name}-${opset}-${fold}`.replace(/[^a-z0-9-]+/gi, '_'), bytes });
          const session = await ort.InferenceSession.create(bytes);
          const { output } = await session.run({ input: new ort.Tensor('float32', x, [50, ...inputDims(config)]) });
          await session.release();
          expect(output.dims).toEqual([50, net.outputSize]);
          expectClose(output.data, expected, { atol: TOLERANCE, rtol: 0, what: `${name} opset ${opset} fold ${fold}: ONNX Runtime output` });
          const key = `fold=${fold}`;
          const diff = worstOf(output.data, expected);
          raise(worstByCase, name, key, diff);
          raise(worstByOpset, `opset ${opset}`, key, diff);
        }
      }
      // The same network through the method (registered by importing bnwasm/interop).
      expect(net.toONNX()).toEqual(toONNX(net, { opset: 15, fold: false }));
      // And read back: the same layer types (relu6 from Clip(0, 6)), clip's bounds and dropout's rate,
      // the same outputs (batch norm's epsilon comes back rounded to float32, 1e-5 to 9.99999975e-6,
      // which moves outputs by < 1e-7 here).
      const back = await importONNX(net.toONNX());
      const options = (layers) => layers.map(({ name, ...l }) => (['clip', 'dropout'].includes(l.type) ? l : l.type));
      expect(options(back.config.layers)).toEqual(options(net.config.layers));
      expectClose(back.predictBatch(x), expected, { atol: 1e-6, rtol: 0, what: `${name}: importONNX(toONNX())` });
      back.dispose();
      net.dispose();
    });
  }

  test('a single row and a batch of 1000 run through the dynamic batch dimension', async () => {
    const net = await trained(CASES['dense+bn+relu softmax']);
    const session = await ort.InferenceSession.create(net.toONNX());
    for (const n of [1, 1000]) {
      const { x } = data(n, 6, 4, n);
      const { output } = await session.run({ input: new ort.Tensor('float32', x, [n, 6]) });
      const expected = net.predictBatch(x);
      for (let i = 0; i < expected.length; i++) expect(Math.abs(output.data[i] - expected[i])).toBeLessThanOrEqual(TOLERANCE);
    }
    await session.release();
    net.dispose();
  });

  afterAll(() => {
    const worst = {};
    for (const w of Object.values(worstByCase)) {
      for (const [key, diff] of Object.entries(w)) worst[key] = Math.max(worst[key] ?? 0, diff);
    }
    const rows = Object.entries({ ...worstByCase, ...worstByOpset }).map(
      ([row, w]) => `  ${row.padEnd(62)} ${w['fold=false'].toExponential(1)}   ${w['fold=true'].toExponential(1)}`,
    );
    console.log(
      `toONNX -> ONNX Runtime, worst |difference| over ${files.length} files: ${JSON.stringify(worst)}\n` +
        `  ${'case / opset'.padEnd(62)} fold=false fold=true\n${rows.join('\n')}`,
    );
  });
});

describe('onnx.checker', () => {
  test('check_model(full_check=True) accepts every exported file', () => {
    expect(files.length).toBe(Object.keys(CASES).length * OPSETS.length * 2);
    expect(onnxCheckAll(files)).toBe(`${files.length} checked`);
  });
});

describe('toONNX options', () => {
  test('refuses opsets outside 13..17, a non-boolean fold and unknown options', async () => {
    const net = await createNetwork(CASES['dense+bn+relu softmax']);
    expect(() => net.toONNX({ opset: 12 })).toThrow(expect.objectContaining({ code: 'BNWASM_INVALID_ARGUMENT', message: expect.stringMatching(/opset must be an integer in \[13, 17\], got 12/) }));
    expect(() => net.toONNX({ opset: 18 })).toThrow(/got 18/);
    expect(() => net.toONNX({ fold: 1 })).toThrow(/fold must be true or false, got 1/);
    expect(() => net.toONNX({ folded: true })).toThrow(/unknown option 'folded'/);
    net.dispose();
    expect(() => net.toONNX()).toThrow(expect.objectContaining({ code: 'BNWASM_DISPOSED' }));
  });
});
