// importONNX() of the files torch.onnx.export writes (tests/fixtures/onnx, made by
// scripts/pytorch/make_onnx_fixtures.py): Flatten, Linear (Gemm, and MatMul with or
// without Add), BatchNorm1d, ReLU/Sigmoid/Tanh, Dropout, Softmax/LogSoftmax, at opsets
// 13 to 17, with and without constant folding; and conv networks (Conv2d, BatchNorm2d,
// MaxPool2d, AvgPool2d, AdaptiveAvgPool2d(1), Flatten, Linear, BatchNorm1d) exported
// both ways torch.onnx.export can: its default folds each BatchNorm2d after a Conv
// into the Conv, training=PRESERVE keeps them ('-bnkept'). predictBatch must give PyTorch's
// float64 outputs, and one trainBatch must move the running statistics the way one
// PyTorch training-mode forward does.
//
// Tolerances. The reference runs the same float32 weights and inputs in float64, so
// the difference is bnwasm's float32 arithmetic: dot products of <= 16 terms through
// <= 3 dense layers and 2 batch norms, each step a few u = 6e-8 relative to the
// magnitudes involved (inputs ~2, pre-activations up to ~10). That bounds the output
// error by a few hundred u of the largest intermediate, ~1e-5 * scale at the very
// worst; outputs are compared at |a - e| <= 2e-6 + 1e-5 * |e| (probabilities for
// softmax networks, raw values below 3 for the MSE one), which still fails for a
// wrong epsilon (1e-3 vs 1e-5), momentum convention, variance estimator or a
// transposed weight by orders of magnitude. Running statistics after a step are a
// batch mean/variance over 16 rows mixed in with weight 0.05..0.2: rtol 1e-5 plus
// 1e-6 of the statistic's scale.
// The conv fixtures are of the same kind: a 3x3 or 2x3 kernel over <= 5 channels (the
// MobileNet-like one: 3 channels, then depthwise 1 and grouped 2 per group) is a dot
// product of <= 45 terms on inputs ~2, through two or three conv layers, one dense, and
// pooling (max is exact; the mean of 4 values rounds once), so the same bound holds;
// a folded BatchNorm2d adds one float32 rounding of each folded weight (PyTorch
// folds in float32 before writing the file, and the reference uses the unfolded
// float64 model), a few u of the output. BatchNorm2d's running statistics after a
// step average over N x H x W = 16 x 8 x 8, 16 x 4 x 3 or more positions (m/(m-1) for the
// unbiased variance): the same rtol.
import { readFileSync, readdirSync } from 'node:fs';
import { ModelFormatError } from 'bnwasm';
import { importONNX } from 'bnwasm/interop';
import { expectClose } from './helpers.js';

const DIR = new URL('../fixtures/onnx/', import.meta.url);
const fixtures = readdirSync(DIR)
  .filter((f) => f.endsWith('.json'))
  .map((f) => JSON.parse(readFileSync(new URL(f, DIR), 'utf8')));

const OUTPUT_TOLERANCE = { atol: 2e-6, rtol: 1e-5 };
const worst = {};

test('the fixtures cover every op, opsets 13 to 17, folded and not (conv: batch norms folded into the Conv and kept)', () => {
  expect(fixtures.length).toBe(7);
  for (const f of fixtures) {
    const conv = f.inputShape.length === 3;
    expect(new Set(f.files.map((x) => `${x.opset}${x.constantFolding}${x.file.endsWith('-bnkept.onnx')}`)).size).toBe(conv ? 20 : 10);
  }
});

for (const fixture of fixtures) {
  describe(fixture.name, () => {
    const x = Float32Array.from(fixture.x.flat());
    const log = fixture.final === 'LogSoftmax';
    // bnwasm's softmaxCrossEntropy network outputs probabilities: exp of LogSoftmax.
    const expected = fixture.output.flat().map((v) => (log ? Math.exp(v) : v));
    const bnKeys = Object.keys(fixture.batchNorm).sort((a, b) => a - b);

    for (const { file, opset, constantFolding, batchNormKept } of fixture.files) {
      test(`${file.endsWith('-bnkept.onnx') ? 'batch norms kept, ' : ''}opset ${opset}, constant folding ${constantFolding}`, async () => {
        const bytes = readFileSync(new URL(file, DIR));
        const net = await importONNX(bytes);
        const classify = ['Softmax', 'LogSoftmax'].includes(fixture.final);
        expect(net.config.loss).toBe(classify ? 'softmaxCrossEntropy' : 'meanSquaredError');
        const actual = net.predictBatch(x);
        expectClose(actual, expected, { ...OUTPUT_TOLERANCE, what: `${file} predictBatch` });
        const kind = `${fixture.inputShape.length === 3 ? 'conv' : 'dense'}${file.endsWith('-bnkept.onnx') ? ', batch norms kept' : ''}`;
        for (let i = 0; i < expected.length; i++) worst[kind] = Math.max(worst[kind] ?? 0, Math.abs(actual[i] - expected[i]));
        // ONNX's momentum is the weight of the past, PyTorch's that of the batch.
        // (torch's default export folds a BatchNorm2d after a Conv into the Conv: batchNormKept lists the others.)
        const bnLayers = net.config.layers.filter((l) => l.type === 'batchNorm');
        expect(bnLayers.map((l) => [Math.fround(l.momentum), Math.fround(l.epsilon)])).toEqual(
          batchNormKept.map((k) => [Math.fround(1 - fixture.batchNorm[k].momentum), Math.fround(fixture.batchNorm[k].eps)]),
        );
        if (fixture.inputShape.length === 3) expect(net.config.inputShape).toEqual(fixture.inputShape);
        net.dispose();
      });
    }

    test('fine-tuning continues from the imported running statistics', async () => {
      // A file that kept every batch norm.
      const file = fixture.files.find((f) => f.batchNormKept.length === bnKeys.length);
      const bytes = readFileSync(new URL(file.file, DIR));
      const net = await importONNX(bytes, { optimizer: { type: 'sgd', learningRate: 0.1 } });
      const tune = Float32Array.from(fixture.tune.flat());
      const y = net.config.loss === 'softmaxCrossEntropy'
        ? Int32Array.from({ length: 16 }, (_, i) => i % net.outputSize)
        : new Float32Array(16 * net.outputSize).fill(0.5);
      net.trainBatch(tune, y);
      const layers = net.config.layers.flatMap((l, i) => (l.type === 'batchNorm' ? [i] : []));
      const weights = net.getWeights();
      layers.forEach((layer, k) => {
        const ref = fixture.batchNorm[bnKeys[k]];
        const get = (name) => weights.find((t) => t.layer === layer && t.name === name).values;
        const scale = (v) => Math.max(...v.map(Math.abs));
        expectClose(get('runningMean'), ref.runningMeanAfter, { rtol: 1e-5, atol: 1e-6 * scale(ref.runningMeanAfter), what: `layer ${layer} runningMean` });
        expectClose(get('runningVariance'), ref.runningVarAfter, { rtol: 1e-5, atol: 1e-6 * scale(ref.runningVarAfter), what: `layer ${layer} runningVariance` });
      });
      net.dispose();
    });
  });
}

afterAll(() => console.log(`PyTorch -> ONNX -> bnwasm: worst |predictBatch - float64 reference| ${JSON.stringify(worst)}`));

describe('importONNX refuses what it cannot represent', () => {
  const bytes = readFileSync(new URL(fixtures.find((f) => f.final === 'Softmax').files[0].file, DIR));

  test('a softmax graph with loss meanSquaredError', async () => {
    await expect(importONNX(bytes, { loss: 'meanSquaredError' })).rejects.toThrow(/loss 'meanSquaredError' cannot end in the Softmax node/);
  });
  test('bad options name the option', async () => {
    await expect(importONNX(bytes, { optimiser: {} })).rejects.toThrow(/unknown option 'optimiser'/);
    await expect(importONNX(bytes, { optimizer: { type: 'rmsprop' } })).rejects.toThrow(/optimizer: type must be one of 'sgd', 'adam', got "rmsprop"/);
    await expect(importONNX(bytes, { runningVariance: 'n-1' })).rejects.toThrow(/runningVariance must be one of 'biased', 'unbiased', got "n-1"/);
    await expect(importONNX('model.onnx')).rejects.toThrow(/bytes must be a Uint8Array or ArrayBuffer, got "model.onnx"/);
  });
  test('a truncated file', async () => {
    for (const n of [1, 10, 100, bytes.length - 1]) {
      await expect(importONNX(bytes.subarray(0, n))).rejects.toThrow(ModelFormatError);
    }
  });
});
