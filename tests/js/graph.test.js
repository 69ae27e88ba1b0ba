// Graphs through the public API: layers that name their inputs, add and concat. What a graph
// gets wrong is a ConfigError naming the layer and the field; a branching network exports to
// ONNX (ONNX Runtime agrees, onnx.checker accepts) and imports back. (Gradients on graphs: the
// finite differences of tests/cpp/graph_test.cpp; the residual network: resnet.test.js.)
import * as ort from 'onnxruntime-web';
import { ConfigError, createNetwork, describeNetwork } from 'bnwasm';
import { importONNX } from 'bnwasm/interop';
import { expectClose, gaussian, rng } from './helpers.js';
import { onnxCheckAll, worstOf } from './interop-helpers.js';

// Two branches side by side (a 1x1 and a 3x3 conv of the same input) and the input itself,
// joined along the channels, then a residual connection over the joined block.
const inception = {
  inputShape: [2, 6, 6],
  layers: [
    { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same', useBias: false, name: 'stem' },
    { type: 'batchNorm' },
    { type: 'relu', name: 'x' },
    { type: 'conv2d', filters: 2, kernelSize: 1, name: 'p' },
    { type: 'conv2d', filters: 3, kernelSize: 3, padding: 1, useBias: false, inputs: ['x'] },
    { type: 'batchNorm', name: 'q' },
    { type: 'concat', inputs: ['p', 'q', 'x'], name: 'joined' },
    { type: 'relu' },
    { type: 'conv2d', filters: 9, kernelSize: 1, useBias: false },
    { type: 'batchNorm', name: 'r' },
    { type: 'add', inputs: ['joined', 'r'] },
    { type: 'globalAvgPool' },
    { type: 'dense', units: 3 },
  ],
  optimizer: { type: 'adam', learningRate: 0.02 },
};

const images = (n, seed) => {
  const normal = gaussian(rng(seed));
  return Float32Array.from({ length: n * 72 }, () => normal());
};

test('describeNetwork gives each layer its inputs and shapes: concat adds up the channels', async () => {
  const { layers } = await describeNetwork(inception);
  const joined = layers[6];
  expect(joined.inputs).toEqual([3, 5, 2]);
  expect(joined.inputShapes).toEqual([[2, 6, 6], [3, 6, 6], [4, 6, 6]]);
  expect(joined.outputShape).toEqual([9, 6, 6]);
  expect(layers[10].inputs).toEqual([6, 9]);
  expect(layers.at(-1).outputShape).toEqual([3]);
});

test('a branching network trains, exports to ONNX that ONNX Runtime runs as predictBatch does, and imports back', async () => {
  const net = await createNetwork(inception);
  const x = images(16, 1);
  const y = Int32Array.from({ length: 16 }, (_, i) => i % 3);
  const first = net.trainBatch(x, y);
  for (let step = 0; step < 20; step++) net.trainBatch(x, y);
  expect(net.trainBatch(x, y)).toBeLessThan(first);
  const xs = images(7, 2);
  const expected = net.predictBatch(xs);
  const files = [];
  for (const fold of [false, true]) {
    const bytes = net.toONNX({ opset: 17, fold });
    files.push({ name: `inception-${fold}`, bytes });
    const session = await ort.InferenceSession.create(bytes);
    const { output } = await session.run({ input: new ort.Tensor('float32', xs, [7, 2, 6, 6]) });
    await session.release();
    // Another float32 engine: 1e-5 on probabilities (interop-conv.test.js gives the argument).
    expectClose(output.data, expected, { atol: 1e-5, rtol: 0, what: `fold ${fold}: ONNX Runtime` });
    console.log(`inception-like graph, fold ${fold}: worst |bnwasm - ONNX Runtime| ${worstOf(output.data, expected)}`);
  }
  expect(onnxCheckAll(files)).toBe('2 checked');
  const back = await importONNX(net.toONNX());
  expect(back.config.layers.map((l) => l.type)).toEqual(net.config.layers.map((l) => l.type));
  expect(back.layers.map((l) => l.inputs)).toEqual(net.layers.map((l) => l.inputs));
  expectClose(back.predictBatch(xs), expected, { atol: 1e-6, rtol: 0, what: 'importONNX(toONNX())' });
  back.dispose();
  net.dispose();
});

describe('what a graph gets wrong is a ConfigError naming the layer and the field', () => {
  const base = { inputSize: 4, layers: [] };
  test.each([
    ['an unknown name', [{ type: 'relu', name: 'a' }, { type: 'add', inputs: ['a', 'b'] }, { type: 'dense', units: 2 }],
      /^createNetwork\(\): layers\[1\]: inputs\[1\] names no layer of this network \('input' is the network's input\), got "b"$/],
    ['a later name (a cycle)', [{ type: 'relu', name: 'a', inputs: ['b'] }, { type: 'relu', name: 'b' }, { type: 'dense', units: 2 }],
      /^createNetwork\(\): layers\[0\] \(a\): inputs\[0\] names a later layer; a layer's inputs come before it \(a network has no cycles\), got "b"$/],
    ['inputs whose shapes do not fit', [{ type: 'dense', units: 3, name: 'a' }, { type: 'add', inputs: ['a', 'input'] }, { type: 'dense', units: 2 }],
      /^createNetwork\(\): layers\[1\]: inputs\[1\] has shape \[4\], inputs\[0\] has \[3\]; add needs inputs of one shape, got "input"$/],
    ['one input to add', [{ type: 'relu', name: 'a' }, { type: 'add', inputs: ['a'] }, { type: 'dense', units: 2 }],
      /^createNetwork\(\): layers\[1\]: inputs must name 2 or more layers for a add layer, got \["a"\]$/],
    ['a branch that leads nowhere', [{ type: 'relu', name: 'a' }, { type: 'dense', units: 2, inputs: ['input'] }],
      /^createNetwork\(\): layers\[0\] \(a\): feeds no later layer; only the last layer is the network's output/],
    ['two layers of one name', [{ type: 'relu', name: 'a' }, { type: 'relu', name: 'a' }, { type: 'dense', units: 2 }],
      /^createNetwork\(\): layers\[1\] \(a\): name is already the name of layers\[0\], got "a"$/],
    ['inputs that are not names', [{ type: 'relu', name: 'a' }, { type: 'add', inputs: [0, 1] }, { type: 'dense', units: 2 }],
      /^createNetwork\(\): layers\[1\]: inputs must be an array of the names of earlier layers, got \[0, 1\]$/],
  ])('%s', async (_, layers, message) => {
    const error = await createNetwork({ ...base, layers }).catch((e) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.message).toMatch(message);
    expect(error.path).toMatch(/^layers\[\d\]/);
  });
});
