// Networks without layers through interop. importONNX reads a graph that computes no layer (a
// lone Softmax or LogSoftmax over [N, features], an Identity, a Reshape/Flatten/Squeeze/
// Unsqueeze that only views the input, a Sum of one input) as a network without layers, and
// its predictions are what ONNX Runtime computes for the same graph; toONNX writes such a
// network (here with an image input: Flatten, then Softmax) as a graph ONNX Runtime and
// onnx.checker accept; safetensors writes an empty state dict, which PyTorch's
// load_state_dict(strict=True) takes for the module with no parameters; TF.js loads the image
// one (Permutes and a Flatten) with the same outputs.
//
// Tolerance against ONNX Runtime: 1e-6 absolute on probabilities (<= 1) and on the identity
// (exact). Both engines compute the softmax in float32 over 4 to 6 values: each probability
// is off by a few tens of u = 6e-8 relative at most, 1e-6 is ~16 u on values <= 1. A view
// moves no value: bnwasm's rows are ONNX's values in row-major order, bit for bit.
import * as ort from 'onnxruntime-web';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetwork, ModelFormatError } from 'bnwasm';
import { importONNX, importTfjsLayers, loadSafetensors, toSafetensors } from 'bnwasm/interop';
import { encodeModel } from '../../web/src/interop/onnx.js';
import { readSafetensors } from '../../web/src/interop/safetensors.js';
import { torchModule } from '../../web/src/interop/common.js';
import { expectClose, rng } from './helpers.js';
import { loadInTfjs, onnxCheckAll } from './interop-helpers.js';

ort.env.wasm.numThreads = 1;

const int = (value) => ({ type: 'int', value });
const ints = (value) => ({ type: 'ints', value });
const I64 = (values) => BigInt64Array.from(values.map(BigInt));

// A one-node graph on an input of shape [N, ...inDims] with an output of [N, ...outDims].
const graph = (node, inDims, outDims, initializers = [], opset = 15) =>
  encodeModel({
    opset,
    nodes: [{ name: `/${node.op}`, output: 'output', attributes: {}, inputs: ['input'], ...node }],
    initializers,
    input: { name: 'input', dims: inDims },
    output: { name: 'output', dims: outDims },
  });

const uniform = (n, seed) => {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => 6 * next() - 3);
};

async function runtime(bytes, x, dims) {
  const session = await ort.InferenceSession.create(bytes);
  const { output } = await session.run({ input: new ort.Tensor('float32', x, dims) });
  await session.release();
  return output.data;
}

describe('importONNX: a graph that computes no layer is a network without layers', () => {
  const N = 7;
  // Every row gives its opset: Jest passes a callback in place of a missing last argument.
  const softmaxes = [
    ['Softmax axis 1', { op: 'Softmax', attributes: { axis: int(1) } }, 15],
    ['Softmax axis -1', { op: 'Softmax', attributes: { axis: int(-1) } }, 15],
    ['Softmax, opset 13 default axis (-1)', { op: 'Softmax' }, 13],
    ['LogSoftmax axis 1', { op: 'LogSoftmax', attributes: { axis: int(1) } }, 15],
    ['LogSoftmax, default axis', { op: 'LogSoftmax' }, 17],
  ];
  test.each(softmaxes)('%s over [N, 5]: softmaxCrossEntropy, predicting the probabilities', async (_, node, opset) => {
    const bytes = graph(node, [5], [5], [], opset);
    const net = await importONNX(bytes);
    expect(net.config.layers).toEqual([]);
    expect(net.config.loss).toBe('softmaxCrossEntropy');
    expect(net.outputSize).toBe(5);
    const x = uniform(N * 5, 1);
    const reference = await runtime(bytes, x, [N, 5]);
    // LogSoftmax: bnwasm outputs probabilities, exp of ONNX's output.
    const want = node.op === 'LogSoftmax' ? reference.map(Math.exp) : reference;
    expectClose(net.predictBatch(x), want, { atol: 1e-6, rtol: 0, what: `${node.op}: predictBatch` });
    net.dispose();
  });

  const views = [
    ['Identity', { op: 'Identity' }, [6], [6]],
    ['Flatten of [N, 6]', { op: 'Flatten', attributes: { axis: int(1) } }, [6], [6]],
    ['Reshape [N, 2, 3] to [N, 6]', { op: 'Reshape', inputs: ['input', 'shape'] }, [2, 3], [6], [{ name: 'shape', dims: [2], values: I64([0, -1]) }]],
    ['Reshape [N, 6] to [N, 3, 2]', { op: 'Reshape', inputs: ['input', 'shape'] }, [6], [3, 2], [{ name: 'shape', dims: [3], values: I64([-1, 3, 2]) }]],
    ['Squeeze [N, 6, 1] to [N, 6]', { op: 'Squeeze', inputs: ['input', 'axes'] }, [6, 1], [6], [{ name: 'axes', dims: [1], values: I64([2]) }]],
    ['Unsqueeze [N, 6] to [N, 1, 6]', { op: 'Unsqueeze', inputs: ['input', 'axes'] }, [6], [1, 6], [{ name: 'axes', dims: [1], values: I64([1]) }]],
    ['Sum of one input', { op: 'Sum' }, [6], [6]],
    ['Identity of an image [N, 2, 3, 2]', { op: 'Identity' }, [2, 3, 2], [2, 3, 2]],
  ];
  test.each(views)('%s: meanSquaredError, predicting the input', async (name, node, inDims, outDims, initializers = []) => {
    const bytes = graph(node, inDims, outDims, initializers);
    const net = await importONNX(bytes);
    expect(net.config.layers).toEqual([]);
    expect(net.config.loss).toBe('meanSquaredError');
    if (inDims.length === 3) expect(net.config.inputShape).toEqual(inDims);
    const size = inDims.reduce((a, b) => a * b, 1);
    expect(net.outputSize).toBe(size);
    const x = uniform(N * size, 2);
    const reference = await runtime(bytes, x, [N, ...inDims]);
    expect(net.predictBatch(x)).toEqual(reference);
    expect(reference).toEqual(x);
    net.dispose();
  });

  test('an output that is not the input, or not the softmax, is refused', async () => {
    // A constant output: the graph computes nothing from its input.
    const constant = graph({ op: 'Identity', inputs: ['c'] }, [2], [2], [{ name: 'c', dims: [1, 2], values: Float32Array.of(1, 2) }]);
    const error = await importONNX(constant).catch((e) => e);
    expect(error).toBeInstanceOf(ModelFormatError);
    expect(error.reason).toBe('outputs');
    expect(error.message).toBe("importONNX(): the graph's output must be its input (or a view of it), as it computes no layer, got 'output'");
    // A Softmax whose output is not the graph's: the network's predictions would not be the graph's.
    const aside = encodeModel({
      opset: 15,
      nodes: [
        { op: 'Identity', name: '/id', inputs: ['input'], output: 'output', attributes: {} },
        { op: 'Softmax', name: '/softmax', inputs: ['input'], output: 'p', attributes: { axis: int(1) } },
      ],
      initializers: [],
      input: { name: 'input', dims: [3] },
      output: { name: 'output', dims: [3] },
    });
    const second = await importONNX(aside).catch((e) => e);
    expect(second).toBeInstanceOf(ModelFormatError);
    expect(second.reason).toBe('outputs');
    expect(second.message).toBe("importONNX(): the graph's output 'output' is not that of the Softmax node '/softmax', 'p'");
    // A lone Softmax over one value is not two classes: the core's refusal.
    const one = await importONNX(graph({ op: 'Softmax', attributes: { axis: int(1) } }, [1], [1])).catch((e) => e);
    expect(one).toBeInstanceOf(ModelFormatError);
    expect(one.reason).toBe('bnwasm-refuses');
    expect(one.message).toMatch(/loss needs at least 2 outputs, the input of a network without layers has 1/);
  });
});

test('toONNX of an image network without layers: Flatten then Softmax, in ONNX Runtime and onnx.checker', async () => {
  const net = await createNetwork({ inputShape: [2, 3, 2], layers: [] });
  const x = uniform(5 * 12, 3);
  const files = [];
  for (const opset of [13, 17]) {
    const bytes = net.toONNX({ opset });
    files.push({ name: `empty-image-${opset}`, bytes });
    const output = await runtime(bytes, x, [5, 2, 3, 2]);
    expectClose(output, net.predictBatch(x), { atol: 1e-6, rtol: 0, what: `opset ${opset}: ONNX Runtime output` });
  }
  expect(onnxCheckAll(files)).toBe('2 checked');
  // Read back, ONNX's Flatten of an image is bnwasm's flatten layer: the same function.
  const back = await importONNX(net.toONNX());
  expect(back.config.layers.map((l) => l.type)).toEqual(['flatten']);
  expect(back.predictBatch(x)).toEqual(net.predictBatch(x));
  [net, back].forEach((n) => n.dispose());
});

describe('safetensors of a network without layers', () => {
  test('an empty state dict, read back by loadSafetensors', async () => {
    const net = await createNetwork({ inputSize: 4, layers: [] });
    const bytes = toSafetensors(net);
    expect(readSafetensors(bytes, 'test').tensors.size).toBe(0);
    const back = await loadSafetensors(bytes, net.config);
    const x = uniform(3 * 4, 4);
    expect(back.layers).toEqual([]);
    expect(back.predictBatch(x)).toEqual(net.predictBatch(x));
    // A file with a tensor the config does not have is still refused.
    const other = await createNetwork({ inputSize: 4, layers: [{ type: 'dense', units: 2 }] });
    await expect(loadSafetensors(toSafetensors(other), net.config)).rejects.toThrow(/the file has tensors the config does not: 0\.weight, 0\.bias/);
    [net, back, other].forEach((n) => n.dispose());
  });

  // Tolerance: PyTorch's float64 softmax of the float32 input against bnwasm's float32 one,
  // relative 16 u (tests/js/empty-network.test.js), under 1e-6 on probabilities <= 1.
  test.each([
    ['softmax, flat', { inputSize: 5, layers: [] }],
    ['mse, image', { inputShape: [2, 2, 3], layers: [], loss: 'meanSquaredError' }],
  ])('PyTorch loads it strictly into the module with no parameters (%s)', async (_, config) => {
    const net = await createNetwork(config);
    const size = net.inputSize;
    const x = uniform(6 * size, 5);
    const dir = mkdtempSync(join(tmpdir(), 'bnwasm-empty-st-'));
    try {
      writeFileSync(join(dir, 'model.json'), JSON.stringify(torchModule(net)));
      writeFileSync(join(dir, 'net.safetensors'), net.toSafetensors());
      writeFileSync(join(dir, 'x.json'), JSON.stringify(Array.from({ length: 6 }, (_, r) => Array.from(x.subarray(r * size, (r + 1) * size)))));
      const script = new URL('../../scripts/pytorch/safetensors_roundtrip.py', import.meta.url).pathname;
      const log = execFileSync('/usr/bin/python3', [script, join(dir, 'model.json'), join(dir, 'net.safetensors'), join(dir, 'x.json'), dir], { encoding: 'utf8' });
      expect(log).toMatch(/loaded 0 tensors strictly, trained 0 steps/);
      const torchOut = JSON.parse(readFileSync(join(dir, 'outputs.json'), 'utf8')).flat();
      expectClose(net.predictBatch(x), torchOut, { atol: 1e-6, rtol: 0, what: 'PyTorch outputs' });
      const back = await loadSafetensors(readFileSync(join(dir, 'trained.safetensors')), net.config);
      expect(back.predictBatch(x)).toEqual(net.predictBatch(x));
      back.dispose();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    net.dispose();
  });
});

test('toTfjsLayers of an image network without layers loads in TF.js with the same outputs, and reads back', async () => {
  await tf.setBackend('cpu');
  const net = await createNetwork({ inputShape: [2, 3, 2], layers: [] });
  const x = uniform(5 * 12, 6);
  const exported = net.toTfjsLayers();
  const model = await loadInTfjs(exported);
  const out = model.predict(tf.tensor4d(x, [5, 2, 3, 2])).dataSync();
  // Both softmaxes in float32 over 12 values (the argument of the ONNX Runtime check above).
  expectClose(out, net.predictBatch(x), { atol: 1e-6, rtol: 0, what: 'TF.js predict' });
  // Keras's Flatten of the image is bnwasm's flatten layer: the same function.
  const back = await importTfjsLayers(exported.modelJson, exported.weightData);
  expect(back.config.layers.map((l) => l.type)).toEqual(['flatten']);
  expect(back.predictBatch(x)).toEqual(net.predictBatch(x));
  [net, back].forEach((n) => n.dispose());
});
