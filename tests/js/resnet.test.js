// The small residual network of the registry issue (fashionMnistResNetConfig: a conv stem, a
// residual block, a block that downsamples with a 1x1 stride-2 conv on its skip, global
// pooling, a dense head) through everything a graph must do: the same layers as PyTorch's
// SmallResNet (scripts/pytorch/small_resnet.py) traced by torch.fx; training on Fashion-MNIST
// with fit and in the worker; save/load; ONNX (onnx.checker, ONNX Runtime, importONNX back);
// safetensors under the module's own state_dict names (SmallResNet.load_state_dict(strict=True),
// and back); activations by name, recomputeStatistics, toInference and setWeights on a graph.
// Training steps and outputs against PyTorch float64: pytorch-parity.test.js (its
// resnet-small-* fixture). Tolerances as in interop-conv.test.js, whose comment gives the
// argument: ONNX Runtime is another float32 engine, 1e-5 absolute on probabilities; PyTorch
// float64 on the same float32 weights, 2e-6 + 1e-5 |e|. Here dot products have up to
// 16 * 9 = 144 terms (the convolutions of the second block), three times interop-conv's 45:
// measured, the worst differences below (2.4e-7 both) are some 40x under these bounds.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-web';
import { createNetwork, createTrainer, describeNetwork, loadNetwork } from 'bnwasm';
import { importONNX, loadSafetensors } from 'bnwasm/interop';
import { readSafetensors } from '../../web/src/interop/safetensors.js';
import { torchModule } from '../../web/src/interop/common.js';
import { fashionMnistResNetConfig, loadFashionMnist } from '../../scripts/fashion-mnist.mjs';
import { bytesEqual, expectClose } from './helpers.js';
import { onnxCheckAll, worstOf } from './interop-helpers.js';

const ENGINE = { atol: 1e-5, rtol: 0 };
const TORCH = { atol: 2e-6, rtol: 1e-5 };
const SCRIPT = new URL('../../scripts/pytorch/safetensors_roundtrip.py', import.meta.url).pathname;
const FIXTURE = JSON.parse(readFileSync(new URL('../fixtures/pytorch/resnet-small-two-blocks-b4-sgdm.json', import.meta.url), 'utf8'));

let data;
let net; // trained once on Fashion-MNIST, shared by the tests below
beforeAll(async () => {
  data = loadFashionMnist({ trainLimit: 12000, testLimit: 1000 });
  net = await createNetwork(fashionMnistResNetConfig());
  await net.fit(data.train.x, data.train.y, { epochs: 1, batchSize: 64 });
}, 300_000);
afterAll(() => net?.dispose());

const worst = {};
afterAll(() => console.log(`residual network, worst |difference|: ${JSON.stringify(worst, null, 1)}`));

test("the fixture's network, traced from PyTorch's SmallResNet by torch.fx, is fashionMnistResNetConfig()'s", async () => {
  const ours = await describeNetwork(fashionMnistResNetConfig({ inputShape: FIXTURE.config.inputShape }));
  const theirs = await describeNetwork(FIXTURE.config);
  expect(theirs.config.layers).toEqual(ours.config.layers);
  expect(theirs.layers.map((l) => l.inputs)).toEqual(ours.layers.map((l) => l.inputs));
  // Two additions, each of a block's output and its skip.
  expect(ours.layers.filter((l) => l.type === 'add').map((l) => l.inputs.length)).toEqual([2, 2]);
});

test('trains on Fashion-MNIST with fit: well above chance on test images it never saw', () => {
  const { accuracy } = net.evaluate(data.test.x, data.test.y);
  console.log(`residual network, 1 epoch of 12,000 Fashion-MNIST images: test accuracy ${accuracy}`);
  expect(accuracy).toBeGreaterThan(0.5); // chance is 0.1
});

test('saves and loads bit for bit, and trains on identically', async () => {
  const bytes = net.save();
  const a = await loadNetwork(bytes);
  const b = await loadNetwork(bytes);
  const x = data.test.x.subarray(0, 16 * 784);
  expect(Array.from(a.predictBatch(x))).toEqual(Array.from(net.predictBatch(x)));
  const y = data.test.y.subarray(0, 16);
  a.trainBatch(x, y);
  b.trainBatch(x, y);
  expect(bytesEqual(a.save(), b.save())).toBe(true);
  a.dispose();
  b.dispose();
});

test('trains in the worker; its snapshot predicts what the worker does', async () => {
  const trainer = await createTrainer(fashionMnistResNetConfig());
  try {
    const x = data.train.x.subarray(0, 512 * 784);
    const y = data.train.y.subarray(0, 512);
    const history = await trainer.fit(x, y, { epochs: 3, batchSize: 32 });
    expect(history.steps).toBe(48);
    expect(history.loss[2]).toBeLessThan(history.loss[0]);
    const snapshot = await trainer.snapshot();
    const one = data.test.x.subarray(0, 784);
    expect(Array.from(await trainer.predict(one))).toEqual(Array.from(snapshot.predict(one)));
    expect(snapshot.layers.map((l) => l.type)).toContain('add');
    snapshot.dispose();
  } finally {
    trainer.terminate();
  }
}, 120_000);

test('exports to ONNX at opsets 13-17, folded and not: onnx.checker accepts, ONNX Runtime agrees, importONNX reads it back', async () => {
  const n = 12;
  const x = data.test.x.subarray(0, n * 784);
  const expected = net.predictBatch(x);
  const files = [];
  for (const opset of [13, 14, 15, 16, 17]) {
    for (const fold of [false, true]) {
      const bytes = net.toONNX({ opset, fold });
      files.push({ name: `resnet-${opset}-${fold}`, bytes });
      const session = await ort.InferenceSession.create(bytes);
      const { output } = await session.run({ input: new ort.Tensor('float32', x, [n, 1, 28, 28]) });
      await session.release();
      expectClose(output.data, expected, { ...ENGINE, what: `opset ${opset} fold ${fold}: ONNX Runtime` });
      worst[`ONNX Runtime, fold ${fold}`] = Math.max(worst[`ONNX Runtime, fold ${fold}`] ?? 0, worstOf(output.data, expected));
    }
  }
  expect(onnxCheckAll(files)).toBe('10 checked');
  // The unfolded export reads back into the same graph: names from the initializers, the
  // additions as add layers, the same outputs.
  const back = await importONNX(net.toONNX({ opset: 17 }));
  expect(back.config.layers.map((l) => l.type)).toEqual(net.config.layers.map((l) => l.type));
  expect(back.config.layers.filter((l) => l.name?.startsWith('layer2.0.')).map((l) => l.name)).toEqual(
    net.config.layers.filter((l) => l.name?.startsWith('layer2.0.')).map((l) => l.name),
  );
  expect(back.layers.map((l) => l.inputs)).toEqual(net.layers.map((l) => l.inputs));
  expectClose(back.predictBatch(x), expected, { atol: 1e-6, rtol: 0, what: 'importONNX(toONNX())' });
  worst['toONNX -> importONNX'] = worstOf(back.predictBatch(x), expected);
  back.dispose();
}, 120_000);

test("safetensors under SmallResNet's own state_dict names: load_state_dict(strict=True) in PyTorch, the same outputs, and back", async () => {
  const bytes = net.toSafetensors();
  const keys = [...readSafetensors(bytes, 'test').tensors.keys()];
  expect(keys).toContain('layer2.0.downsample.0.weight');
  expect(keys).toContain('layer1.0.bn2.running_var');
  expect(keys).toContain('fc.bias');
  const n = 8;
  const x = data.test.x.subarray(0, n * 784);
  const rows = Array.from({ length: n }, (_, r) => Array.from(x.subarray(r * 784, (r + 1) * 784)));
  const dir = mkdtempSync(join(tmpdir(), 'bnwasm-resnet-'));
  try {
    writeFileSync(join(dir, 'model.json'), JSON.stringify(torchModule(net)));
    writeFileSync(join(dir, 'net.safetensors'), bytes);
    writeFileSync(join(dir, 'x.json'), JSON.stringify(rows));
    // PyTorch's own SmallResNet class, not a module built from the config.
    const log = execFileSync('/usr/bin/python3', [SCRIPT, join(dir, 'model.json'), join(dir, 'net.safetensors'), join(dir, 'x.json'), dir, 'small_resnet'], { encoding: 'utf8' });
    expect(log).toMatch(new RegExp(`loaded ${keys.length} tensors strictly, trained 3 steps`));
    const torchOut = JSON.parse(readFileSync(join(dir, 'outputs.json'), 'utf8')).flat();
    expectClose(net.predictBatch(x), torchOut, { ...TORCH, what: 'SmallResNet with bnwasm weights' });
    worst['bnwasm -> safetensors -> SmallResNet'] = worstOf(net.predictBatch(x), torchOut);
    const back = await loadSafetensors(readFileSync(join(dir, 'trained.safetensors')), net.config);
    const trainedOut = JSON.parse(readFileSync(join(dir, 'trained-outputs.json'), 'utf8')).flat();
    expectClose(back.predictBatch(x), trainedOut, { ...TORCH, what: 'bnwasm with SmallResNet-trained weights' });
    worst['SmallResNet (trained) -> safetensors -> bnwasm'] = worstOf(back.predictBatch(x), trainedOut);
    back.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 120_000);

test('activations by name, recomputeStatistics, toInference and setWeights work on the graph', async () => {
  const copy = await loadNetwork(net.save());
  try {
    const x = data.train.x.subarray(0, 300 * 784);
    await copy.recomputeStatistics(x);
    // Each batch norm's running mean is now the mean of what its producer gives, per channel,
    // and the skip's batch norm reads the 1x1 conv, not the layer before it in the list.
    const skip = copy.config.layers.findIndex((l) => l.name === 'layer2.0.downsample.1');
    expect(copy.layers[skip].inputs).toEqual([skip - 1]);
    const conv = copy.activations(x, 'layer2.0.downsample.0');
    const [C, H, W] = copy.layers[skip - 1].outputShape;
    const mean = new Float64Array(C);
    for (let i = 0; i < conv.length; i++) mean[Math.floor(i / (H * W)) % C] += conv[i] / (300 * H * W);
    const running = copy.getWeights().find((t) => t.layer === skip && t.name === 'runningMean').values;
    expectClose(running, mean, { atol: 1e-5, rtol: 1e-5, what: 'population mean of the skip conv' });
    expect(copy.activations(x.subarray(0, 784), 'layer1.0.bn2')).toEqual(copy.activations(x.subarray(0, 784), copy.config.layers.findIndex((l) => l.name === 'layer1.0.bn2')));
    expect(() => copy.activations(x, 'nope')).toThrow(/activations\(\): no layer is named "nope"/);

    // Every batch norm reads a conv it alone reads: all six fold in.
    const inference = await copy.toInference();
    expect(inference.config.layers.filter((l) => l.type === 'batchNorm')).toHaveLength(0);
    const xs = data.test.x.subarray(0, 20 * 784);
    expectClose(inference.predictBatch(xs), copy.predictBatch(xs), { atol: 2e-6, rtol: 0, what: 'folded residual network' });
    inference.dispose();

    const w = copy.getWeights();
    const fc = w.find((t) => t.name === 'weight' && t.layer === copy.config.layers.length - 1);
    // A head of zeros answers every image with its bias alone.
    copy.setWeights([{ layer: fc.layer, name: 'weight', values: new Float32Array(fc.values.length) }]);
    expect(Array.from(copy.predict(xs.subarray(0, 784)))).toEqual(Array.from(copy.predict(xs.subarray(784, 2 * 784))));
  } finally {
    copy.dispose();
  }
}, 120_000);
