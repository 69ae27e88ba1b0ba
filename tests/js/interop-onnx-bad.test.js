// importONNX refuses graphs it cannot represent with a ModelFormatError that names
// the op and the node, and leaves no network behind. The graphs are written with
// the exporter's own encoder (encodeModel), edited one thing at a time.
import { memoryUsage, ModelFormatError } from 'bnwasm';
import { importONNX } from 'bnwasm/interop';
import * as ort from 'onnxruntime-web';
import { encodeModel } from '../../web/src/interop/onnx.js';
import { expectClose } from './helpers.js';

ort.env.wasm.numThreads = 1;

const float = (value) => ({ type: 'float', value });
const int = (value) => ({ type: 'int', value });

// input [N, 3] -> Gemm (4x3) -> BatchNormalization -> Relu -> output
function graph(edit = (g) => g) {
  const g = {
    opset: 15,
    nodes: [
      { op: 'Gemm', name: '/0/Gemm', inputs: ['input', 'w', 'b'], output: 'h', attributes: { transB: int(1) } },
      { op: 'BatchNormalization', name: '/1/BN', inputs: ['h', 'g', 'beta', 'm', 'v'], output: 'n', attributes: { epsilon: float(1e-5), training_mode: int(0) } },
      { op: 'Relu', name: '/2/Relu', inputs: ['n'], output: 'output', attributes: {} },
    ],
    initializers: [
      { name: 'w', dims: [4, 3], values: new Float32Array(12).fill(0.5) },
      { name: 'b', dims: [4], values: new Float32Array(4) },
      { name: 'g', dims: [4], values: new Float32Array(4).fill(1) },
      { name: 'beta', dims: [4], values: new Float32Array(4) },
      { name: 'm', dims: [4], values: new Float32Array(4) },
      { name: 'v', dims: [4], values: new Float32Array(4).fill(1) },
    ],
    input: { name: 'input', width: 3 },
    output: { name: 'output', width: 4 },
  };
  return encodeModel(edit(g) ?? g);
}

const refused = async (bytes, pattern) => {
  const before = (await memoryUsage()).liveNetworks;
  const error = await importONNX(bytes).then(
    () => null,
    (e) => e,
  );
  expect(error).toBeInstanceOf(ModelFormatError);
  expect(error.code).toBe('BNWASM_CORRUPT_MODEL');
  expect(error.message).toMatch(pattern);
  expect((await memoryUsage()).liveNetworks).toBe(before);
  return error;
};

test('the unedited graph imports (so each refusal below is the edit)', async () => {
  const net = await importONNX(graph());
  expect(net.config.layers.map((l) => l.type)).toEqual(['dense', 'batchNorm', 'relu']);
  net.dispose();
});

test('float64 initializers are rounded to float32', async () => {
  const values = Float64Array.from({ length: 12 }, (_, i) => 0.1 * (i + 1) + 1e-12);
  const net = await importONNX(
    graph((g) => {
      g.initializers[0].values = values;
    }),
  );
  expect(net.getWeights()[0].values).toEqual(Float32Array.from(values));
  net.dispose();
});

test('a float64 model (model.double()) imports; bnwasm computes it in float32, as close to ONNX Runtime as float32 allows', async () => {
  const DOUBLE = 11;
  const f64 = (g) => {
    for (const t of g.initializers) t.values = Float64Array.from(t.values, (v, i) => v + 0.01 * Math.sin(i + t.values.length));
    g.input.elemType = DOUBLE;
    g.output.elemType = DOUBLE;
  };
  const bytes = graph(f64);
  const net = await importONNX(bytes);
  expect(net.config.layers.map((l) => l.type)).toEqual(['dense', 'batchNorm', 'relu']);
  const x = Float64Array.from({ length: 15 }, (_, i) => Math.sin(3 * i));
  const session = await ort.InferenceSession.create(bytes);
  const { output } = await session.run({ input: new ort.Tensor('float64', x, [5, 3]) });
  await session.release();
  // float64 weights and inputs rounded to float32 (2^-24 relative) through a 3-term dot product
  // and a batch norm of values below 3: within 1e-6 of the float64 result.
  expectClose(net.predictBatch(Float32Array.from(x)), output.data, { atol: 1e-6, rtol: 0, what: 'float64 model' });
  net.dispose();
});

test('an input of an integer type is refused by its type name', async () => {
  for (const [type, name] of [[2, 'uint8'], [6, 'int32'], [7, 'int64']]) {
    const error = await refused(
      graph((g) => {
        g.input.elemType = type;
      }),
      new RegExp(`input 'input' is ${name}; importONNX reads float, double and float16 inputs \\(bnwasm computes in float32\\)`),
    );
    expect(error.reason).toBe('data-type');
  }
});

test('batch norm wrapped in Unsqueeze/Squeeze of a trailing axis (negative or not) reads as BatchNorm1d', async () => {
  const plain = await importONNX(graph());
  const x = Float32Array.from({ length: 15 }, (_, i) => Math.sin(i));
  for (const [unsqueeze, squeeze] of [[2, 2], [-1, -1], [2, -1]]) {
    const net = await importONNX(
      graph((g) => {
        g.initializers.push({ name: 'ua', dims: [1], values: BigInt64Array.of(BigInt(unsqueeze)) });
        g.initializers.push({ name: 'sa', dims: [1], values: BigInt64Array.of(BigInt(squeeze)) });
        g.nodes.splice(1, 0, { op: 'Unsqueeze', name: 'u', inputs: ['h', 'ua'], output: 'h3', attributes: {} });
        g.nodes[2].inputs[0] = 'h3';
        g.nodes[2].output = 'n3';
        g.nodes.splice(3, 0, { op: 'Squeeze', name: 's', inputs: ['n3', 'sa'], output: 'n', attributes: {} });
      }),
    );
    expect(net.predictBatch(x)).toEqual(plain.predictBatch(x));
    net.dispose();
  }
  await refused(
    graph((g) => {
      g.initializers.push({ name: 'ua', dims: [1], values: BigInt64Array.of(0n) });
      g.nodes.splice(1, 0, { op: 'Unsqueeze', name: 'u', inputs: ['h', 'ua'], output: 'h3', attributes: {} });
      g.nodes[2].inputs[0] = 'h3';
    }),
    /Unsqueeze node 'u' inserts an axis before the batch axis/,
  );
  plain.dispose();
});

test('an unknown op names the op and the node', async () => {
  await refused(
    graph((g) => {
      g.nodes[2].op = 'LeakyRelu';
    }),
    /importONNX\(\): LeakyRelu node '\/2\/Relu' is not supported \(importONNX reads Gemm, MatMul, Add, BatchNormalization/,
  );
  await refused(
    graph((g) => {
      g.nodes[0].op = 'ConvTranspose';
    }),
    /ConvTranspose node '\/0\/Gemm' is not supported/,
  );
});

test('wrong shapes', async () => {
  await refused(
    graph((g) => {
      g.initializers[0].dims = [3, 4]; // transB=1 reads it as 3 units of 4 inputs
    }),
    /Gemm node '\/0\/Gemm' expects 4 inputs, the layer before it gives 3/,
  );
  await refused(
    graph((g) => {
      g.initializers[4] = { name: 'm', dims: [3], values: new Float32Array(3) };
    }),
    /BatchNormalization node '\/1\/BN' 'm' has 3 values, the input has 4 features/,
  );
  await refused(
    graph((g) => {
      g.initializers[1] = { name: 'b', dims: [5], values: new Float32Array(5) };
    }),
    /Gemm node '\/0\/Gemm' has the bias 'b' of shape \[5\]; bnwasm's bias is one value per unit: \[4\], \[1, 4\] or one value/,
  );
});

test('training mode, a varying second input, a graph that branches, a bad output', async () => {
  await refused(
    graph((g) => {
      g.nodes[1].attributes.training_mode = int(1);
    }),
    /BatchNormalization node '\/1\/BN' has training_mode=1; export the model in eval mode/,
  );
  await refused(
    graph((g) => {
      g.nodes[0].inputs[1] = 'input';
    }),
    /Gemm node '\/0\/Gemm' input 'input' is not a constant/,
  );
  await refused(
    graph((g) => {
      g.nodes[2].inputs = ['h'];
    }),
    /BatchNormalization node '\/1\/BN' computes 'n', which leads nowhere: no later node reads it and it is not the graph's output/,
  );
  await refused(
    graph((g) => {
      g.output.name = 'n';
    }),
    /the graph's output must be the value its last layer computes, got 'n'/,
  );
});

test('opsets outside 13..17 and a negative running variance', async () => {
  await refused(
    graph((g) => {
      g.opset = 11;
    }),
    /the model uses opset 11; importONNX reads opsets 13 to 17/,
  );
  await refused(
    graph((g) => {
      g.initializers[5].values = new Float32Array(4).fill(-1);
    }),
    /runningVariance.*>= 0/,
  );
});

test('not ONNX at all', async () => {
  await refused(new TextEncoder().encode('{"modelTopology": {}}'), /ModelProto/);
  await refused(new Uint8Array([0x08]), /a varint is cut short/);
  await refused(new Uint8Array(0), /no ONNX graph/);
});
