// ONNX: export of a Network's inference graph, and import of the graphs
// torch.onnx.export writes for networks of Linear, BatchNorm1d, Conv2d (grouped,
// dilated), BatchNorm2d, pooling, Flatten, Dropout, activations (ReLU6 as Clip) and
// residual additions and concatenations. Both directions go through a
// plain description of the graph ({nodes, initializers, input, output}) and
// tables keyed by layer type (export) or op type (import). Conv networks take
// [N, C, H, W] input, as torch.onnx.export writes them; their images are
// bnwasm's flat NCHW examples.
import { describer } from '../config.js';
import { ConfigError, InputError, ModelFormatError, describe } from '../errors.js';
import { foldedCopy } from '../network.js';
import { Writer, decode } from './protobuf.js';
import { asBytes, buildNetwork, checkImportOptions, layerTensors, stateDictName, torchLayout } from './common.js';

// TensorProto.DataType values read or written here.
const FLOAT = 1;
const INT32 = 6;
const INT64 = 7;
const BOOL = 9;
const FLOAT16 = 10;
const DOUBLE = 11;
// Every TensorProto.DataType by name, for messages ("uint8", not "2").
const TYPE_NAMES = {
  0: 'undefined', 1: 'float', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64', 8: 'string', 9: 'bool',
  10: 'float16', 11: 'double', 12: 'uint32', 13: 'uint64', 14: 'complex64', 15: 'complex128', 16: 'bfloat16',
};
const typeName = (t) => TYPE_NAMES[t] ?? `data type ${t}`;
// AttributeProto.AttributeType
const ATTR_FLOAT = 1;
const ATTR_INT = 2;
const ATTR_STRING = 3;
const ATTR_TENSOR = 4;
const ATTR_INTS = 7;

// The largest finite float32: ONNX's default Clip bounds (numeric_limits<float>::max() and lowest()).
const FLOAT_MAX = 3.4028234663852886e38;

export const MIN_OPSET = 13;
export const MAX_OPSET = 17;
// The IR version of the ONNX release that brought each opset (onnx 1.8 to 1.12):
// a newer IR is refused by older checkers and runtimes.
const IR_VERSION = { 13: 7, 14: 7, 15: 8, 16: 8, 17: 8 };

// ---- writing --------------------------------------------------------------------------------

// Float32Array is written as float, Float64Array as double, BigInt64Array as int64
// (raw little-endian data).
function writeTensor(t) {
  const raw = new Uint8Array(t.values.buffer, t.values.byteOffset, t.values.byteLength);
  const dataType = t.values instanceof Float64Array ? DOUBLE : t.values instanceof BigInt64Array ? INT64 : FLOAT;
  return new Writer().packedInts(1, t.dims).int(2, dataType).string(8, t.name).bytes(9, raw);
}

function writeAttribute(name, a) {
  const w = new Writer().string(1, name);
  if (a.type === 'float') return w.float(2, a.value).int(20, ATTR_FLOAT);
  if (a.type === 'ints') return w.packedInts(8, a.value).int(20, ATTR_INTS);
  if (a.type === 'string') return w.string(4, a.value).int(20, ATTR_STRING);
  return w.int(3, a.value).int(20, ATTR_INT);
}

// A tensor of shape [batch, ...dims] with a dynamic batch dimension (float unless elemType says).
function writeValueInfo(name, dims, elemType = FLOAT) {
  const shape = new Writer().message(1, new Writer().string(2, 'batch'));
  for (const d of dims) shape.message(1, new Writer().int(1, d));
  const tensorType = new Writer().int(1, elemType).message(2, shape);
  return new Writer().string(1, name).message(2, new Writer().message(1, tensorType));
}

/** ModelProto bytes of a graph description. */
export function encodeModel({ opset, nodes, initializers, input, output }) {
  const graph = new Writer();
  for (const node of nodes) {
    const n = new Writer();
    for (const name of node.inputs) n.string(1, name);
    n.string(2, node.output).string(3, node.name).string(4, node.op);
    for (const [name, a] of Object.entries(node.attributes)) n.message(5, writeAttribute(name, a));
    graph.message(1, n);
  }
  graph.string(2, 'bnwasm');
  for (const t of initializers) graph.message(5, writeTensor(t));
  // dims after the batch axis, or a width for [batch, width]; elemType a TensorProto.DataType (float by default).
  graph.message(11, writeValueInfo(input.name, input.dims ?? [input.width], input.elemType));
  graph.message(12, writeValueInfo(output.name, output.dims ?? [output.width], output.elemType));
  return new Writer()
    .int(1, IR_VERSION[opset] ?? 8)
    .string(2, 'bnwasm')
    .message(7, graph)
    .message(8, new Writer().int(2, opset))
    .finish();
}

const float = (value) => ({ type: 'float', value });
const int = (value) => ({ type: 'int', value });
const ints = (value) => ({ type: 'ints', value });

// Per layer type: the nodes and initializers of one layer; returns the name of
// its output value. `t` holds the layer's tensors by bnwasm name, `m` is its
// PyTorch module (common.js torchLayout; the initializers take its state_dict
// names), `info` the core's description of it (shapes, tensors and their PyTorch
// names, a conv's pads) and `ins` the names of its input values.
const initializers = (g, m, info, t) => info.tensors.map((x) => g.initializer(stateDictName(m, x.torch), x.shape, t[x.name]));
const EXPORT_LAYER = {
  dense: (g, layer, t, m, info, ins) => g.node('Gemm', m, [...ins, ...initializers(g, m, info, t)], { alpha: float(1), beta: float(1), transB: int(1) }),
  batchNorm(g, layer, t, m, info, ins) {
    // ONNX's momentum is the weight of the past, like bnwasm's.
    const attributes = { epsilon: float(layer.epsilon), momentum: float(layer.momentum) };
    // training_mode arrived with BatchNormalization-14; version 9 (opset 13) is inference only.
    if (g.opset >= 14) attributes.training_mode = int(0);
    return g.node('BatchNormalization', m, [...ins, ...initializers(g, m, info, t)], attributes);
  },
  // pads as the core resolves them ('same' and 'sameLower' included).
  conv2d: (g, layer, t, m, info, ins) =>
    g.node('Conv', m, [...ins, ...initializers(g, m, info, t)], {
      dilations: ints(layer.dilation),
      group: int(layer.groups),
      kernel_shape: ints(layer.kernelSize),
      pads: ints(info.pads),
      strides: ints(layer.stride),
    }),
  maxPool2d: (g, layer, t, m, info, ins) =>
    g.node('MaxPool', m, ins, { ceil_mode: int(layer.ceilMode ? 1 : 0), kernel_shape: ints(layer.poolSize), pads: ints(info.pads), strides: ints(layer.stride) }),
  // ONNX's count_include_pad defaults to 0, bnwasm's (PyTorch's) to true: always written.
  avgPool2d: (g, layer, t, m, info, ins) =>
    g.node('AveragePool', m, ins, {
      ceil_mode: int(layer.ceilMode ? 1 : 0),
      count_include_pad: int(layer.countIncludePad ? 1 : 0),
      kernel_shape: ints(layer.poolSize),
      pads: ints(info.pads),
      strides: ints(layer.stride),
    }),
  // [N, C, 1, 1], as nn.AdaptiveAvgPool2d(1); the Flatten before the next Gemm (or the output) makes it [N, C].
  globalAvgPool: (g, layer, t, m, info, ins) => g.node('GlobalAveragePool', m, ins),
  globalMaxPool: (g, layer, t, m, info, ins) => g.node('GlobalMaxPool', m, ins),
  flatten: (g, layer, t, m, info, ins) => g.node('Flatten', m, ins, { axis: int(1) }),
  relu: (g, layer, t, m, info, ins) => g.node('Relu', m, ins),
  // torch writes nn.ReLU6 as Clip(0, 6); Clip-13's bounds are scalar inputs.
  relu6: (g, layer, t, m, info, ins) => g.node('Clip', m, [...ins, g.scalar(`/${m}/min`, 0), g.scalar(`/${m}/max`, 6)]),
  clip: (g, layer, t, m, info, ins) => g.node('Clip', m, [...ins, g.scalar(`/${m}/min`, layer.min), g.scalar(`/${m}/max`, layer.max)]),
  // Inference: the identity; the ratio keeps the layer's rate for a runtime that trains, and for importONNX.
  dropout: (g, layer, t, m, info, ins) => g.node('Dropout', m, [...ins, g.scalar(`/${m}/ratio`, layer.rate)]),
  sigmoid: (g, layer, t, m, info, ins) => g.node('Sigmoid', m, ins),
  tanh: (g, layer, t, m, info, ins) => g.node('Tanh', m, ins),
  // torch writes a + b as Add; three or more inputs as one Sum.
  add: (g, layer, t, m, info, ins) => g.node(ins.length === 2 ? 'Add' : 'Sum', m, ins),
  // Channels of [N, C, H, W], or features of [N, F]: axis 1 either way.
  concat: (g, layer, t, m, info, ins) => g.node('Concat', m, ins, { axis: int(1) }),
};

/**
 * ONNX ModelProto bytes of a network's inference graph: input `input`
 * ([batch, features], or [batch, C, H, W] for a network with an inputShape) and
 * output `output` ([batch, outputs]), with a dynamic batch dimension.
 * @param {import('../network.js').Network} net
 * @param {{opset?: number, fold?: boolean}} [options]
 * @returns {Uint8Array}
 */
export function toONNX(net, options = {}) {
  if (options === null || typeof options !== 'object') {
    throw new InputError(`toONNX(): options must be an object, got ${describe(options)}`, 'BNWASM_WRONG_TYPE');
  }
  for (const key of Object.keys(options)) {
    if (key !== 'opset' && key !== 'fold') {
      throw new InputError(`toONNX(): unknown option '${key}' (expected one of opset, fold)`, 'BNWASM_INVALID_ARGUMENT');
    }
  }
  const { opset = 15, fold = false } = options;
  if (!Number.isInteger(opset) || opset < MIN_OPSET || opset > MAX_OPSET) {
    throw new InputError(`toONNX(): opset must be an integer in [${MIN_OPSET}, ${MAX_OPSET}], got ${describe(opset)}`, 'BNWASM_INVALID_ARGUMENT');
  }
  if (typeof fold !== 'boolean') {
    throw new InputError(`toONNX(): fold must be true or false, got ${describe(fold)}`, 'BNWASM_INVALID_ARGUMENT');
  }
  if (fold) {
    // The core folds (the same folding toInference() uses); its network exports unfolded.
    const folded = foldedCopy(net);
    try {
      return toONNX(folded, { opset });
    } finally {
      folded.dispose();
    }
  }
  const config = net.config;
  const layers = net.layers;
  const tensors = layerTensors(net.getWeights(), config.layers.length);
  const g = {
    opset,
    nodes: [],
    initializers: [],
    initializer(name, dims, values) {
      this.initializers.push({ name, dims, values });
      return name;
    },
    // A float scalar (shape []) initializer.
    scalar(name, value) {
      return this.initializer(name, [], Float32Array.of(value));
    },
    node(op, m, inputs, attributes = {}) {
      const output = `/${m}/${op}_output_0`;
      this.nodes.push({ op, name: `/${m}/${op}`, inputs, output, attributes });
      return output;
    },
  };
  const layout = torchLayout(config, layers);
  const outputs = [];
  config.layers.forEach((layer, i) => {
    const { module, flattenBefore } = layout.layers[i];
    let ins = layers[i].inputs.map((p) => (p < 0 ? 'input' : outputs[p]));
    // bnwasm flattens an image implicitly before a dense layer; ONNX's Gemm needs [N, features].
    if (flattenBefore !== null) ins = [g.node('Flatten', flattenBefore, ins, { axis: int(1) })];
    outputs.push(EXPORT_LAYER[layer.type](g, layer, tensors[i], module, layers[i], ins));
  });
  // A network without layers outputs its input (flattened, and through the softmax, as any network's).
  let end = outputs.at(-1) ?? 'input';
  if (layout.image) end = g.node('Flatten', layout.next, [end], { axis: int(1) });
  if (config.loss === 'softmaxCrossEntropy') g.node('Softmax', layout.next + (layout.image ? 1 : 0), [end], { axis: int(1) });
  // ONNX names the output apart from the input: a graph that is only its input is an Identity.
  if (g.nodes.length === 0) g.node('Identity', layout.next, [end]);
  g.nodes[g.nodes.length - 1].output = 'output';
  return encodeModel({
    opset,
    nodes: g.nodes,
    initializers: g.initializers,
    input: { name: 'input', dims: config.inputShape ?? [config.inputSize] },
    output: { name: 'output', dims: [net.outputSize] },
  });
}

// ---- reading --------------------------------------------------------------------------------

function float16ToFloat(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

const ELEMENT_BYTES = { [FLOAT]: 4, [INT32]: 4, [INT64]: 8, [BOOL]: 1, [FLOAT16]: 2, [DOUBLE]: 8 };

/**
 * A TensorProto as {name, dims, dataType, values}: float32, float64 and float16
 * become a Float32Array (rounded to float32, the precision bnwasm computes in);
 * integer and bool types become an array of Numbers.
 */
function readTensor(msg, where) {
  const name = msg.string(8);
  const at = `${where} '${name}'`;
  const dims = msg.ints(1).map((d) => {
    if (d < 0n || d > 2n ** 31n) throw new ModelFormatError(`${at}: dimension ${d} is out of range`, { reason: 'tensor' });
    return Number(d);
  });
  const dataType = Number(msg.int(2));
  if (msg.int(14) === 1n) throw new ModelFormatError(`${at}: external data is not supported; save the model with its tensors inside`, { reason: 'tensor' });
  if (!(dataType in ELEMENT_BYTES)) {
    throw new ModelFormatError(`${at}: ${typeName(dataType)} tensors are not read (float, float16, double, int32, int64, bool are)`, { reason: 'data-type' });
  }
  const count = dims.reduce((a, b) => a * b, 1);
  const raw = msg.bytes(9);
  let values;
  if (raw !== null) {
    const size = ELEMENT_BYTES[dataType];
    if (raw.length !== count * size) {
      throw new ModelFormatError(`${at}: raw_data has ${raw.length} bytes, its shape [${dims}] of ${typeName(dataType)} needs ${count * size}`, { reason: 'tensor' });
    }
    const view = new DataView(raw.buffer, raw.byteOffset, raw.length);
    const read = {
      [FLOAT]: (k) => view.getFloat32(k * 4, true),
      [DOUBLE]: (k) => view.getFloat64(k * 8, true),
      [FLOAT16]: (k) => float16ToFloat(view.getUint16(k * 2, true)),
      [INT32]: (k) => view.getInt32(k * 4, true),
      [INT64]: (k) => Number(view.getBigInt64(k * 8, true)),
      [BOOL]: (k) => view.getUint8(k),
    }[dataType];
    values = Array.from({ length: count }, (_, k) => read(k));
  } else if (dataType === FLOAT) {
    values = Array.from(msg.floats(4));
  } else if (dataType === DOUBLE) {
    values = Array.from(msg.doubles(10));
  } else if (dataType === INT64) {
    values = msg.ints(7).map(Number);
  } else {
    // int32_data holds int32, bool and (as uint16 bits) float16 values.
    values = msg.ints(5).map((v) => (dataType === FLOAT16 ? float16ToFloat(Number(v) & 0xffff) : Number(v)));
  }
  if (values.length !== count) {
    throw new ModelFormatError(`${at}: holds ${values.length} values, its shape [${dims}] needs ${count}`, { reason: 'tensor' });
  }
  const isFloat = dataType === FLOAT || dataType === DOUBLE || dataType === FLOAT16;
  return { name, dims, dataType, values: isFloat ? Float32Array.from(values) : values };
}

function readAttribute(msg, where) {
  const name = msg.string(1);
  const type = Number(msg.int(20));
  if (type === ATTR_FLOAT) return [name, msg.float(2, 0)];
  if (type === ATTR_INT) return [name, Number(msg.int(3))];
  if (type === ATTR_INTS) return [name, msg.ints(8).map(Number)];
  if (type === ATTR_STRING) return [name, msg.string(4)];
  if (type === ATTR_TENSOR) {
    const t = msg.message(5, 't');
    if (t === null) throw new ModelFormatError(`${where}: attribute '${name}' has no tensor`, { reason: 'tensor' });
    return [name, readTensor(t, `${where} attribute '${name}'`)];
  }
  return [name, { unsupportedType: type }];
}

/** The plain description of a ModelProto: opset, nodes, initializers, inputs, outputs. */
export function decodeModel(bytes, fn) {
  const model = decode(bytes, `${fn}(): ModelProto`);
  const graph = model.message(7, 'graph');
  if (graph === null) throw new ModelFormatError(`${fn}(): the bytes hold no ONNX graph (ModelProto.graph is missing)`, { reason: 'not-onnx' });
  let opset = null;
  for (const o of model.messages(8, 'opset_import')) {
    const domain = o.string(1);
    if (domain === '' || domain === 'ai.onnx') opset = Number(o.int(2));
  }
  if (opset === null) throw new ModelFormatError(`${fn}(): the model imports no version of the default ONNX opset`, { reason: 'opset' });
  if (graph.has(15)) throw new ModelFormatError(`${fn}(): sparse initializers are not supported`, { reason: 'tensor' });
  const nodes = graph.messages(1, 'node').map((n, k) => {
    const name = n.string(3) || `#${k}`;
    const where = `${fn}(): node '${name}'`;
    return {
      name,
      op: n.string(4),
      domain: n.string(7),
      inputs: n.strings(1),
      outputs: n.strings(2),
      attributes: new Map(n.messages(5, 'attribute').map((a) => readAttribute(a, where))),
    };
  });
  const initializers = new Map();
  for (const t of graph.messages(5, 'initializer')) {
    const tensor = readTensor(t, `${fn}(): initializer`);
    initializers.set(tensor.name, tensor);
  }
  // TypeProto's value: a tensor_type (1), or a sequence (4), map (5), optional (9) or sparse tensor (8).
  const KINDS = { 4: 'a sequence', 5: 'a map', 8: 'a sparse tensor', 9: 'an optional' };
  const valueInfo = (v) => {
    const name = v.string(1);
    const type = v.message(2, 'type');
    const kind = type === null ? 'untyped' : (Object.entries(KINDS).find(([field]) => type.has(Number(field)))?.[1] ?? 'a tensor');
    const tensorType = type?.message(1, 'tensor_type');
    const shape = tensorType?.message(2, 'shape');
    const dims = shape ? shape.messages(1, 'dim').map((d) => (d.has(1) ? Number(d.int(1)) : null)) : null;
    return { name, kind, elemType: tensorType ? Number(tensorType.int(1)) : null, dims };
  };
  return {
    irVersion: Number(model.int(1)),
    opset,
    nodes,
    initializers,
    inputs: graph.messages(11, 'input').map(valueInfo),
    outputs: graph.messages(12, 'output').map(valueInfo),
  };
}

// ---- import ---------------------------------------------------------------------------------

// The importer walks the nodes in order. Every value a node computes from the
// network's input is an activation: the output of a bnwasm layer, seen by ONNX
// with the dimensions `dims` after the batch axis (ONNX may hold a layer's
// output with more axes than bnwasm, [C, 1, 1] after a GlobalAveragePool, or
// view bnwasm's flat rows in any shape that keeps the batch axis: the values of
// a row are the same, in row-major order). Every other input of a node must be
// a constant (an initializer or a Constant node's output). Each op handler
// checks its node and appends bnwasm layers, each named and wired to its inputs
// by name; the core gives every layer's output shape as it is added.
//
// Every refusal is a ModelFormatError with a `reason` that docs/interop.md lists
// ("ONNX ops: what importONNX reads"), and `op` and `node` when a node is at fault.
const IMPORT_OP = {
  Gemm(s, node) {
    const [a, b, c] = node.inputs;
    const x = s.activation(node, a);
    const alpha = s.attr(node, 'alpha', 1);
    const beta = s.attr(node, 'beta', 1);
    if (s.attr(node, 'transA', 0) !== 0) s.refuse(node, 'has transA=1: the activation transposed mixes the batch with the features; no bnwasm layer does that', 'trans-a');
    const w = s.constant(node, b, 2);
    const transB = s.attr(node, 'transB', 0) === 1;
    const [units, inputs] = transB ? w.dims : [w.dims[1], w.dims[0]];
    s.expectFlat(node, x, inputs);
    const weight = transB ? w.values.slice() : transpose(w.values, w.dims[0], w.dims[1]);
    if (alpha !== 1) for (let k = 0; k < weight.length; k++) weight[k] *= alpha;
    const bias = c === undefined || c === '' ? null : broadcastBias(s, node, s.constant(node, c), units, beta);
    s.push(node, { type: 'dense', units, useBias: bias !== null }, bias ? { weight, bias } : { weight }, [x]);
  },
  MatMul(s, node) {
    const x = s.activation(node, node.inputs[0]);
    const w = s.constant(node, node.inputs[1], 2);
    s.expectFlat(node, x, w.dims[0]);
    s.push(node, { type: 'dense', units: w.dims[1], useBias: false }, { weight: transpose(w.values, w.dims[0], w.dims[1]) }, [x]);
  },
  Add(s, node) {
    if (node.inputs.length !== 2) s.refuse(node, `has ${node.inputs.length} inputs, expected 2`, 'input-count');
    const [a, b] = node.inputs.map((name) => s.isActivation(name));
    // Two activations: a residual connection.
    if (a && b) return s.push(node, { type: 'add' }, {}, node.inputs.map((name) => s.activation(node, name)));
    // An activation and a constant: the bias of a MatMul (or of a Gemm without one) just before it.
    const k = a ? 0 : 1;
    const x = s.activation(node, node.inputs[k]);
    const producer = x.layer >= 0 ? s.layers[x.layer] : null;
    if (producer?.type !== 'dense' || producer.useBias || s.consumers(node.inputs[k]) !== 1) {
      s.refuse(node, `adds the constant '${node.inputs[1 - k]}', which is read only as the bias of a MatMul or Gemm (without one) that only it reads`, 'constant');
    }
    s.tensors[x.layer].bias = broadcastBias(s, node, s.constant(node, node.inputs[1 - k]), producer.units, 1);
    producer.useBias = true;
    s.alias(node, x);
  },
  BatchNormalization(s, node) {
    const x = s.activation(node, node.inputs[0]);
    if (s.attr(node, 'training_mode', 0) !== 0) s.refuse(node, 'has training_mode=1; export the model in eval mode', 'training-mode');
    if (node.outputs.filter((o) => o !== '').length > 1) s.refuse(node, 'has the running-statistics outputs of training mode; export the model in eval mode', 'training-mode');
    if (node.inputs.length !== 5) s.refuse(node, `has ${node.inputs.length} inputs, expected 5`, 'input-count');
    // Per channel of an image (BatchNorm2d), or per feature of [N, C] (or [N, C, 1...]).
    const perFeature = !x.image && x.dims.length >= 1 && x.dims.slice(1).every((d) => d === 1);
    if (!s.isImage(x) && !perFeature) {
      s.refuse(node, `normalizes an input of shape [N, ${x.dims}]; bnwasm has batch norm on [N, C] and on images [N, C, H, W]`, 'normalized-axes');
    }
    const c = x.dims[0];
    const [gamma, beta, runningMean, runningVariance] = node.inputs.slice(1).map((name) => {
      const t = s.constant(node, name, 1);
      if (t.dims[0] !== c) s.refuse(node, `'${name}' has ${t.dims[0]} values, the input has ${c} features`, 'constant-shape');
      return t.values;
    });
    const layer = { type: 'batchNorm', momentum: s.attr(node, 'momentum', 0.9), epsilon: s.attr(node, 'epsilon', 1e-5), runningVariance: s.runningVariance };
    s.push(node, layer, { gamma, beta, runningMean, runningVariance }, [x], x.dims);
  },
  Relu: (s, node) => activation(s, node, 'relu'),
  Clip(s, node) {
    const x = s.activation(node, node.inputs[0]);
    // Clip-13's bounds are optional scalar inputs; ONNX's defaults are the float range.
    const bound = (k, fallback) => {
      const name = node.inputs[k];
      if (name === undefined || name === '') return fallback;
      const t = s.constant(node, name);
      if (t.values.length !== 1) s.refuse(node, `input '${name}' has shape [${t.dims}]; a bound is one value`, 'constant-shape');
      return t.values[0];
    };
    const min = bound(1, -FLOAT_MAX);
    const max = bound(2, FLOAT_MAX);
    // nn.ReLU6 is written as Clip(0, 6).
    s.push(node, min === 0 && max === 6 ? { type: 'relu6' } : { type: 'clip', min, max }, {}, [x], x.dims);
  },
  Sigmoid: (s, node) => activation(s, node, 'sigmoid'),
  Tanh: (s, node) => activation(s, node, 'tanh'),
  Softmax: (s, node) => softmax(s, node),
  LogSoftmax: (s, node) => softmax(s, node),
  Flatten(s, node) {
    const x = s.activation(node, node.inputs[0]);
    const rank = x.dims.length + 1;
    const given = s.attr(node, 'axis', 1);
    const axis = given < 0 ? given + rank : given;
    if (axis !== 1) s.refuse(node, `has axis=${given} of a rank-${rank} input; only axis 1 keeps the batch axis apart from the features`, 'batch-axis');
    s.flatten(node, x);
  },
  Conv(s, node) {
    const input = s.activation(node, node.inputs[0], true);
    const x = input.padded?.source ?? input;
    s.expectImage(node, x);
    const groups = s.attr(node, 'group', 1);
    if (!Number.isSafeInteger(groups) || groups < 1) s.refuse(node, `has group=${JSON.stringify(groups)}, expected a positive integer`, 'group');
    // W is [filters, channels / group, kh, kw]; the core checks that the filters divide by the groups.
    const w = s.constant(node, node.inputs[1], 4);
    const [filters, perGroup, kh, kw] = w.dims;
    if (perGroup * groups !== x.dims[0]) {
      s.refuse(node, `weight '${w.name}' has shape [${w.dims}]: ${perGroup} input channels per group of ${groups}, the input has ${x.dims[0]}`, 'constant-shape');
    }
    const { stride, padding, dilation } = s.window(node, [kh, kw], 'conv', input.padded);
    const b = node.inputs[2];
    const bias = b === undefined || b === '' ? null : s.constant(node, b, 1);
    if (bias && bias.dims[0] !== filters) s.refuse(node, `bias '${bias.name}' has shape [${bias.dims}], expected [${filters}]`, 'constant-shape');
    // dilation and groups written only when they are not 1, as a person writes the config.
    const layer = { type: 'conv2d', filters, kernelSize: [kh, kw], stride, padding, useBias: bias !== null };
    if (dilation.some((d) => d !== 1)) layer.dilation = dilation;
    if (groups !== 1) layer.groups = groups;
    s.push(node, layer, bias ? { weight: w.values, bias: bias.values } : { weight: w.values }, [x]);
  },
  MaxPool: (s, node) => pool(s, node, 'maxPool2d'),
  AveragePool: (s, node) => pool(s, node, 'avgPool2d'),
  GlobalAveragePool: (s, node) => globalPool(s, node, 'globalAvgPool'),
  GlobalMaxPool: (s, node) => globalPool(s, node, 'globalMaxPool'),
  Pad(s, node) {
    // torch writes nn.AvgPool2d(padding=p) as a Pad of zeros + AveragePool (a Pad of nothing when p = 0):
    // zeros around an image are the padding of the Conv or AveragePool that reads them.
    const x = s.activation(node, node.inputs[0]);
    const mode = s.attr(node, 'mode', 'constant');
    const pads = node.inputs[1] === undefined || node.inputs[1] === '' ? [] : s.constant(node, node.inputs[1], 1).values;
    if (pads.every((p) => p === 0)) return s.alias(node, x);
    const value = node.inputs[2] === undefined || node.inputs[2] === '' ? 0 : s.constant(node, node.inputs[2]).values[0];
    // [N, C, H, W]'s pads: [n, c, top, left, n, c, bottom, right].
    const spatial = pads.length === 8 && [0, 1, 4, 5].every((k) => pads[k] === 0) && pads.every((p) => p >= 0);
    if (mode !== 'constant' || value !== 0 || !s.isImage(x) || !spatial) {
      s.refuse(node, `has pads [${pads}] (mode ${mode}, value ${value}); only zeros around an image ([0, 0, top, left, 0, 0, bottom, right]) are read, as the padding of the Conv or AveragePool after it`, 'pads');
    }
    const pad = [pads[2], pads[3], pads[6], pads[7]];
    s.alias(node, { ...x, dims: [x.dims[0], x.dims[1] + pad[0] + pad[2], x.dims[2] + pad[1] + pad[3]], padded: { by: node.name, node, pad, source: x } });
  },
  Reshape(s, node) {
    // x.view(x.size(0), -1) and friends: any shape that keeps the batch axis.
    const x = s.activation(node, node.inputs[0]);
    const target = s.constant(node, node.inputs[1], 1).values;
    s.view(node, x, s.reshaped(node, x, target, s.attr(node, 'allowzero', 0) === 1));
  },
  Dropout(s, node) {
    const x = s.activation(node, node.inputs[0]);
    const training = node.inputs[2];
    if (training !== undefined && training !== '' && s.constant(node, training).values[0] !== 0) {
      s.refuse(node, 'runs in training mode; export the model in eval mode', 'training-mode');
    }
    const mask = node.outputs[1];
    if (mask !== undefined && mask !== '' && s.consumers(mask) > 0) s.refuse(node, `has its mask output '${mask}' read; bnwasm's network has no such output`, 'mask');
    // The identity at inference; a dropout layer keeps the rate for fine-tuning (ratio: an optional scalar input, 0.5).
    const ratio = node.inputs[1];
    const rate = ratio === undefined || ratio === '' ? 0.5 : s.constant(node, ratio).values[0];
    s.push(node, { type: 'dropout', rate }, {}, [x], x.dims);
  },
  Identity: (s, node) => s.alias(node, s.activation(node, node.inputs[0])),
  Unsqueeze(s, node) {
    // BatchNorm1d on [N, C] is sometimes written Unsqueeze -> BatchNormalization -> Squeeze.
    const x = s.activation(node, node.inputs[0]);
    const rank = x.dims.length + 1;
    const axes = s.axes(node);
    const dims = [null, ...x.dims];
    for (const axis of axes.map((a) => (a < 0 ? a + rank + axes.length : a)).sort((a, b) => a - b)) {
      if (axis < 1) s.refuse(node, 'inserts an axis before the batch axis', 'batch-axis');
      if (axis > dims.length) s.refuse(node, `has axes [${axes}], out of range for a rank-${rank} input`, 'axis');
      dims.splice(axis, 0, 1);
    }
    s.alias(node, { ...x, dims: dims.slice(1) });
  },
  Squeeze(s, node) {
    const x = s.activation(node, node.inputs[0]);
    const rank = x.dims.length + 1;
    const given = node.inputs.length > 1 || node.attributes.has('axes');
    // Without axes every axis of size 1 goes: the batch axis too, when the input declares a batch of 1.
    if (!given && s.batch === 1) s.refuse(node, 'squeezes every axis of size 1, the batch axis of the declared batch of 1 among them', 'batch-axis');
    const axes = given ? s.axes(node).map((a) => (a < 0 ? a + rank : a)) : x.dims.flatMap((d, k) => (d === 1 ? [k + 1] : []));
    for (const axis of axes) {
      if (axis === 0) s.refuse(node, 'squeezes the batch axis', 'batch-axis');
      if (axis < 0 || axis >= rank || x.dims[axis - 1] !== 1) s.refuse(node, `squeezes axis ${axis} of [N, ${x.dims}], which is not of size 1`, 'axis');
    }
    s.alias(node, { ...x, dims: x.dims.filter((_, k) => !axes.includes(k + 1)) });
  },
  Concat(s, node) {
    const first = node.inputs.find((name) => s.isActivation(name)) ?? node.inputs[0];
    const rank = s.activation(node, first).dims.length + 1;
    const given = s.attr(node, 'axis', null);
    if (given === null || (given < 0 ? given + rank : given) !== 1) {
      s.refuse(node, `has axis ${given} of a rank-${rank} input; bnwasm joins channels or features (axis 1)`, 'axis');
    }
    const xs = node.inputs.map((name) => s.activation(node, name));
    if (xs.length === 1) return s.alias(node, xs[0]);
    s.push(node, { type: 'concat' }, {}, xs);
  },
  Sum(s, node) {
    if (node.inputs.length === 1) return s.alias(node, s.activation(node, node.inputs[0]));
    s.push(node, { type: 'add' }, {}, node.inputs.map((name) => s.activation(node, name)));
  },
};

// Ops evaluated when all their inputs are constants (torch writes some of
// these without constant folding).
const CONSTANT_OP = {
  Constant(s, node) {
    const value = node.attributes.get('value');
    if (!value || !value.dims) s.refuse(node, "has no 'value' tensor; only a Constant with one is read", 'constant-value');
    return value;
  },
  Identity: (s, node) => s.constant(node, node.inputs[0]),
  Transpose(s, node) {
    const t = s.constant(node, node.inputs[0], 2);
    const perm = s.attr(node, 'perm', [1, 0]);
    if (perm.join() === '0,1') return t;
    return { ...t, dims: [t.dims[1], t.dims[0]], values: transpose(t.values, t.dims[0], t.dims[1]) };
  },
};

/** The ops importONNX reads (CONSTANT_OP's only of constants). @internal: the conformance test covers each. */
export const READ_OPS = [...new Set([...Object.keys(IMPORT_OP), ...Object.keys(CONSTANT_OP)])];

function pool(s, node, type) {
  const input = s.activation(node, node.inputs[0], type === 'avgPool2d');
  const x = input.padded?.source ?? input;
  s.expectImage(node, x);
  const indices = node.outputs[1];
  if (indices !== undefined && indices !== '' && s.consumers(indices) > 0) s.refuse(node, `has its Indices output '${indices}' read; bnwasm has none`, 'indices');
  const kernel = s.ints(node, 'kernel_shape', null, 2, 'kernel-shape');
  // storage_order only orders the Indices, which nothing reads.
  const { stride, padding, ceilMode } = s.window(node, kernel, 'pool', input.padded);
  const layer = { type, poolSize: kernel, stride, padding, ceilMode };
  // ONNX's AveragePool divides by the values under the window unless count_include_pad = 1 (PyTorch's default is 1);
  // a Pad's zeros are values.
  if (type === 'avgPool2d') layer.countIncludePad = input.padded !== undefined || s.attr(node, 'count_include_pad', 0) === 1;
  // Rounding up, bnwasm (as PyTorch) leaves out a last window that starts in the bottom or right padding;
  // over a Pad's zeros ONNX keeps it. The core says whether there is one: the same pool over the padded image.
  if (input.padded && ceilMode) {
    const over = s.outputShape({ inputShape: input.dims }, { ...layer, padding: [0, 0] });
    if (over.join() !== s.outputShape({ inputShape: x.dims }, layer).join()) {
      s.refuse(node, `rounds up (ceil_mode 1) over the zeros of the Pad node '${input.padded.by}' to a last window inside them; bnwasm, as PyTorch, leaves that window out`, 'ceil-mode');
    }
  }
  s.push(node, layer, {}, [x]);
}

function globalPool(s, node, type) {
  const x = s.activation(node, node.inputs[0]);
  s.expectImage(node, x);
  // [N, C, 1, 1] to ONNX, flat C features to bnwasm: a Flatten after it adds no layer.
  const i = s.push(node, { type }, {}, [x]);
  s.alias(node, { ...s.output(i), dims: [x.dims[0], 1, 1] });
}

function activation(s, node, type) {
  const x = s.activation(node, node.inputs[0]);
  s.push(node, { type }, {}, [x], x.dims);
}

function softmax(s, node) {
  const x = s.activation(node, node.inputs[0]);
  const axis = s.attr(node, 'axis', -1);
  if (x.dims.length !== 1 || (axis !== 1 && axis !== -1)) s.refuse(node, `has axis ${axis} of [N, ${x.dims}]; only the feature axis of [N, C] is read`, 'axis');
  s.softmax = node;
  s.alias(node, x);
}

function transpose(values, rows, cols) {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  return out;
}

// A bias constant of shape [], [1], [units] or [1, units], times beta, as [units].
function broadcastBias(s, node, t, units, beta) {
  const n = t.values.length;
  if (!(n === units || n === 1) || t.dims.length > 2 || (t.dims.length === 2 && t.dims[0] !== 1)) {
    s.refuse(node, `has the bias '${t.name}' of shape [${t.dims}]; bnwasm's bias is one value per unit: [${units}], [1, ${units}] or one value`, 'bias-shape');
  }
  return Float32Array.from({ length: units }, (_, u) => beta * t.values[n === 1 ? 0 : u]);
}

// The PyTorch module a node's weights came from: torch.onnx.export names the
// initializers of a module's parameters by their state_dict keys
// ('layer1.0.conv1.weight'); a layer keeps that module name, so the network
// saves to the same state_dict names. Null when they are not named so (folded
// weights are 'onnx::Conv_193').
function moduleName(s, node) {
  const names = node.inputs.filter((name) => s.isInitializer(name));
  const prefixes = new Set(names.map((name) => (/^(.+)\.(weight|bias|running_mean|running_var)$/.exec(name) ?? [])[1]));
  return prefixes.size === 1 && !prefixes.has(undefined) ? [...prefixes][0] : null;
}

const product = (dims) => dims.reduce((a, b) => a * b, 1);

function importState(fn, model, options, describe) {
  const consts = new Map(model.initializers);
  const values = new Map(); // value name -> {layer (-1: the network's input), dims, image}
  const uses = new Map(); // value name -> how many node inputs and graph outputs read it
  for (const node of model.nodes) for (const name of node.inputs) uses.set(name, (uses.get(name) ?? 0) + 1);
  for (const o of model.outputs) uses.set(o.name, (uses.get(o.name) ?? 0) + 1);
  let input = null; // {inputShape} or {inputSize}
  const s = {
    layers: [],
    tensors: [],
    names: new Set(),
    softmax: null,
    batch: null, // the batch size the input declares, null when it is dynamic
    runningVariance: options.runningVariance ?? 'unbiased',
    start(name, config, dims, batch) {
      input = config;
      this.batch = batch;
      values.set(name, { layer: -1, dims, image: dims.length === 3 });
    },
    refuse(node, why, reason) {
      throw new ModelFormatError(`${fn}(): ${node.op} node '${node.name}' ${why}`, { op: node.op, node: node.name, reason });
    },
    attr(node, name, fallback) {
      const v = node.attributes.get(name);
      if (v === undefined) return fallback;
      if (typeof v === 'object' && !Array.isArray(v) && v !== null && 'unsupportedType' in v) {
        this.refuse(node, `attribute '${name}' has a type (${v.unsupportedType}) this reader does not take`, 'attribute-type');
      }
      return v;
    },
    isActivation: (name) => values.has(name),
    value: (name) => values.get(name),
    isInitializer: (name) => model.initializers.has(name),
    consumers: (name) => uses.get(name) ?? 0,
    constant(node, name, rank) {
      const t = consts.get(name);
      if (t === undefined) this.refuse(node, `input '${name}' is not a constant (an initializer or Constant); only the layer's input may vary`, 'not-constant');
      if (rank !== undefined && t.dims.length !== rank) this.refuse(node, `input '${name}' has shape [${t.dims}], expected ${rank} dimensions`, 'constant-shape');
      return t;
    },
    setConstant(name, t) {
      consts.set(name, t);
    },
    axes(node) {
      const axes = node.inputs.length > 1 ? this.constant(node, node.inputs[1], 1).values : this.attr(node, 'axes', []);
      if (!Array.isArray(axes) || !axes.every(Number.isSafeInteger)) this.refuse(node, `has axes ${JSON.stringify(axes)}, expected a list of integers`, 'axis');
      return axes;
    },
    // The value `name`; a Pad's zeros only where the caller takes them as its padding (`padded`).
    activation(node, name, padded = false) {
      const x = values.get(name);
      if (x === undefined) {
        this.refuse(node, `reads '${name}', which is neither the graph's input nor computed from it by an earlier node`, 'not-activation');
      }
      if (x.padded && !padded) this.refuse(node, `reads '${name}', the zeros the Pad node '${x.padded.by}' adds; only a Conv or AveragePool takes them, as its padding`, 'pads');
      return x;
    },
    ints(node, name, fallback, length, reason) {
      const v = this.attr(node, name, fallback);
      if (!Array.isArray(v) || v.length !== length || !v.every(Number.isSafeInteger)) this.refuse(node, `has ${name} ${JSON.stringify(v)}, expected ${length} integers`, reason);
      return v;
    },
    // The shape bnwasm holds a value in: the core's output shape of its layer, or the input's.
    coreShape: (x) => (x.layer < 0 ? (input.inputShape ?? [input.inputSize]) : s.shapes[x.layer]),
    // An image to bnwasm that ONNX sees as the same [C, H, W].
    isImage(x) {
      return x.image && x.dims.join() === this.coreShape(x).join();
    },
    expectImage(node, x) {
      if (!this.isImage(x)) this.refuse(node, `gets an input of shape [N, ${x.dims}]; it needs an image [N, C, H, W] (and bnwasm no flatten or dense layer before it)`, 'image');
    },
    expectFlat(node, x, inputs) {
      if (x.dims.length !== 1) this.refuse(node, `gets an input of shape [N, ${x.dims}]; it needs [N, features] (add a Flatten before it)`, 'flat');
      if (x.dims[0] !== inputs) this.refuse(node, `expects ${inputs} inputs, the layer before it gives ${x.dims[0]}`, 'constant-shape');
    },
    // strides, padding ([top, left, bottom, right], 'same' for SAME_UPPER, 'sameLower' for
    // SAME_LOWER: the core resolves them), a conv's dilation and a pool's ceil mode, of a
    // Conv (`kind` 'conv') or pooling ('pool') node.
    // A Pad's zeros before it (`padded`) add to explicit pads: a Conv's, or a pool's own none.
    window(node, kernel, kind, padded) {
      const given = this.ints(node, 'kernel_shape', kernel, 2, 'kernel-shape');
      if (given.join() !== kernel.join() || !kernel.every((k) => k >= 1)) this.refuse(node, `has kernel_shape [${given}], its weight [${kernel}]`, 'kernel-shape');
      const stride = this.ints(node, 'strides', [1, 1], 2, 'strides');
      if (!stride.every((v) => v >= 1)) this.refuse(node, `has strides [${stride}], expected two positive numbers`, 'strides');
      const dilation = this.ints(node, 'dilations', [1, 1], 2, 'dilations');
      if (!dilation.every((d) => d >= 1)) this.refuse(node, `has dilations [${dilation}], expected two positive numbers`, 'dilations');
      if (kind === 'pool' && dilation.some((d) => d !== 1)) this.refuse(node, `has dilations [${dilation}]; bnwasm's pooling has dilation 1 only`, 'dilations');
      const ceilMode = this.attr(node, 'ceil_mode', 0);
      if (ceilMode !== 0 && ceilMode !== 1) this.refuse(node, `has ceil_mode=${JSON.stringify(ceilMode)}, expected 0 or 1`, 'ceil-mode');
      const autoPad = this.attr(node, 'auto_pad', 'NOTSET');
      const pads = this.ints(node, 'pads', [0, 0, 0, 0], 4, 'pads');
      if (!pads.every((p) => p >= 0)) this.refuse(node, `has pads [${pads}], expected four non-negative numbers`, 'pads');
      const padding = { NOTSET: pads, VALID: [0, 0, 0, 0], SAME_UPPER: 'same', SAME_LOWER: 'sameLower' }[autoPad];
      if (padding === undefined) this.refuse(node, `has auto_pad ${JSON.stringify(autoPad)}; ONNX has NOTSET, VALID, SAME_UPPER and SAME_LOWER`, 'auto-pad');
      if (padded === undefined) return { stride, padding, dilation, ceilMode: ceilMode === 1 };
      // A pool counts the Pad's zeros and not its own padding: it may not have both.
      if (typeof padding === 'string' || (kind === 'pool' && padding.some((p) => p !== 0))) {
        this.refuse(node, `reads the zeros of the Pad node '${padded.by}' and pads itself (${autoPad === 'NOTSET' ? `[${padding}]` : autoPad}); bnwasm reads the Pad's zeros${kind === 'conv' ? ' with explicit pads' : ' alone'}`, 'pads');
      }
      return { stride, padding: padding.map((p, k) => p + padded.pad[k]), dilation, ceilMode: ceilMode === 1 };
    },
    // Flatten/Reshape to [N, features]: a bnwasm flatten layer when bnwasm still has an image.
    flatten(node, x) {
      // Already flat to bnwasm: the same values, [N, features] to ONNX as well.
      if (!x.image) return this.alias(node, { ...x, dims: this.coreShape(x) });
      const i = this.push(node, { type: 'flatten' }, {}, [x]);
      return this.output(i);
    },
    // The dimensions after the batch axis of Reshape's target (0 copies the input's
    // dimension unless allowzero, -1 is what is left), which must keep the batch axis:
    // its first entry 0, -1 or the batch size the input declares.
    reshaped(node, x, target, allowZero) {
      const features = product(x.dims);
      const dims = target.slice(1).map((d, k) => (d === 0 && !allowZero ? x.dims[k] : d));
      const rest = product(dims.filter((d) => d !== -1));
      if (dims.some((d) => d === undefined || d < -1) || dims.filter((d) => d === -1).length + (target[0] === -1 ? 1 : 0) > 1) {
        this.refuse(node, `has the target shape [${target}], which no input of shape [N, ${x.dims}] fits`, 'shape');
      }
      const inferred = dims.map((d) => (d === -1 && rest > 0 && features % rest === 0 ? features / rest : d));
      const keepsBatch = (target[0] === 0 && !allowZero) || target[0] === -1 || (target[0] === this.batch && this.batch !== null);
      if (target.length === 0 || !keepsBatch || product(inferred) !== features || inferred.includes(-1)) {
        this.refuse(node, `reshapes [N, ${x.dims}] to [${target}], which does not keep the batch axis (its first entry must be 0, -1 or the batch size the input declares, the others the ${features} values of a row)`, 'batch-axis');
      }
      return inferred;
    },
    // The same values seen in another shape after the batch axis: an image to [N, features]
    // through a flatten layer (as torch's x.view(N, -1)); bnwasm's rows need no layer otherwise.
    view(node, x, dims) {
      if (x.image && dims.length === 1) return this.flatten(node, x);
      return this.alias(node, { ...x, dims });
    },
    alias(node, x) {
      if (node.outputs.length < 1 || node.outputs[0] === '') this.refuse(node, 'has no output', 'no-output');
      values.set(node.outputs[0], x);
      return x;
    },
    // The value a layer computes, as the core shapes it.
    output(i) {
      const shape = this.shapes[i];
      return { layer: i, dims: shape, image: shape.length === 3 };
    },
    shapes: [],
    nodes: [], // the node each layer came from
    // Appends a layer reading the activations `ins`; the core checks it and gives its shape.
    // A layer that keeps its input's shape keeps its ONNX dimensions too (`dims`).
    push(node, layer, tensors, ins, dims) {
      const i = this.layers.length;
      let name = moduleName(this, node);
      if (name === null || this.names.has(name) || name === 'input') name = `layer${i}`;
      this.names.add(name);
      const inputs = ins.map((x) => (x.layer < 0 ? 'input' : this.layers[x.layer].name));
      this.layers.push({ ...layer, name, inputs, fromTorch: name !== `layer${i}` });
      this.tensors.push(tensors);
      this.shapes.push(this.shapeOf(node, i));
      this.nodes.push(node);
      this.alias(node, dims === undefined ? this.output(i) : { ...this.output(i), dims });
      return i;
    },
    // The output shape of one layer on an input of this shape, as the core describes it.
    outputShape: (shape, layer) => describe({ ...shape, layers: [layer], loss: 'meanSquaredError' }).layers[0].outputShape,
    // The output shape of layer i: the core describes the layers it depends on.
    shapeOf(node, i) {
      const needed = new Set([i]);
      for (let k = i; k >= 0; k--) {
        if (needed.has(k)) for (const n of this.layers[k].inputs) if (n !== 'input') needed.add(this.layers.findIndex((l) => l.name === n));
      }
      const layers = this.layers.filter((_, k) => needed.has(k)).map(({ fromTorch, ...l }) => l);
      try {
        return describe({ ...input, layers, loss: 'meanSquaredError' }).layers.at(-1).outputShape;
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        this.refuse(node, `gives bnwasm a layer it refuses: ${e.message.replace(/^describeNetwork\(\): /, '')}`, 'bnwasm-refuses');
      }
    },
  };
  return s;
}

/**
 * The config of the imported layers, as a person would write it: a layer keeps
 * `inputs` only where it reads something other than the layer before it, and
 * its name where a later layer names it or where it is a PyTorch module's name.
 */
function tidyLayers(layers) {
  const named = new Set();
  const out = layers.map(({ fromTorch, ...layer }, i) => {
    const previous = i === 0 ? 'input' : layers[i - 1].name;
    if (layer.inputs.length === 1 && layer.inputs[0] === previous) delete layer.inputs;
    else for (const n of layer.inputs) named.add(n);
    return { layer, fromTorch };
  });
  return out.map(({ layer, fromTorch }) => {
    if (!fromTorch && !named.has(layer.name)) delete layer.name;
    return layer;
  });
}

// The input element types read: bnwasm computes in float32, so a float64 (model.double()) or
// float16 model is read with its initializers rounded to float32 and takes float32 rows.
const INPUT_TYPES = new Set([FLOAT, DOUBLE, FLOAT16]);

// A refusal of the whole graph (no node at fault).
const graphError = (message, reason) => new ModelFormatError(message, { reason });

/**
 * A trainable Network from ONNX bytes written by torch.onnx.export (or
 * toONNX) for a graph of Linear/Gemm/MatMul+Add, BatchNormalization, Conv,
 * pooling, Relu/Clip/Sigmoid/Tanh, Add/Sum of activations (residual connections),
 * Concat, Softmax/LogSoftmax, Flatten/Reshape, Pad, Dropout and Identity (IMPORT_OP;
 * docs/interop.md lists what each op may hold and why the others are refused). A graph that
 * computes no layer (an Identity or Reshape of its input, a lone Softmax) is a network
 * without layers, whose output is its input.
 * @param {Uint8Array|ArrayBuffer} bytes
 * @param {{loss?: string, optimizer?: object, runningVariance?: 'biased'|'unbiased'}} [options]
 * @returns {Promise<import('../network.js').Network>}
 */
export async function importONNX(bytes, options = {}) {
  const fn = 'importONNX';
  bytes = asBytes(fn, 'bytes', bytes);
  await checkImportOptions(fn, options, ['loss', 'optimizer', 'runningVariance']);
  let model;
  try {
    model = decodeModel(bytes, fn);
  } catch (e) {
    // protobuf.js's errors: bytes that are not a protobuf message.
    if (e instanceof ModelFormatError && e.reason === undefined) e.reason = 'not-onnx';
    throw e;
  }
  if (model.opset < MIN_OPSET || model.opset > MAX_OPSET) {
    throw graphError(`${fn}(): the model uses opset ${model.opset}; importONNX reads opsets ${MIN_OPSET} to ${MAX_OPSET}`, 'opset');
  }
  const inputs = model.inputs.filter((v) => !model.initializers.has(v.name));
  if (inputs.length !== 1) {
    throw graphError(`${fn}(): the graph has ${inputs.length} inputs (${inputs.map((v) => v.name).join(', ')}), expected 1`, 'inputs');
  }
  const input = inputs[0];
  if (input.kind !== 'a tensor') throw graphError(`${fn}(): input '${input.name}' is ${input.kind}, not a tensor`, 'not-a-tensor');
  if (!INPUT_TYPES.has(input.elemType)) {
    throw graphError(`${fn}(): input '${input.name}' is ${typeName(input.elemType)}; importONNX reads float, double and float16 inputs (bnwasm computes in float32)`, 'data-type');
  }
  if (input.dims === null || input.dims.length < 1 || input.dims.slice(1).some((d) => !(d > 0 && d <= 2 ** 24))) {
    throw graphError(
      `${fn}(): input '${input.name}' has shape [${input.dims?.map((d) => d ?? '?') ?? 'unknown'}]; importONNX reads [batch, features...] with known feature sizes`,
      'input-shape',
    );
  }
  const s = importState(fn, model, options, await describer(fn));
  const dims = input.dims.slice(1);
  // [N, C, H, W] is an image (bnwasm's inputShape); any other rank is flat features ([N] is one per example).
  const shape = dims.length === 3 ? { inputShape: dims } : { inputSize: product(dims) };
  s.start(input.name, shape, dims, input.dims[0]);
  for (const node of model.nodes) {
    if (node.domain !== '' && node.domain !== 'ai.onnx') s.refuse(node, `is in domain '${node.domain}', not the default ONNX domain`, 'domain');
    const ofActivation = node.inputs.some((name) => s.isActivation(name));
    if (!ofActivation && CONSTANT_OP[node.op] && node.outputs.length === 1) {
      s.setConstant(node.outputs[0], CONSTANT_OP[node.op](s, node));
      continue;
    }
    if (s.softmax) s.refuse(node, `follows the ${s.softmax.op} node '${s.softmax.name}', which must end the graph`, 'after-softmax');
    const handler = IMPORT_OP[node.op];
    if (handler === undefined && CONSTANT_OP[node.op]) s.refuse(node, `reads an activation; ${node.op} is read only of constants`, 'of-activation');
    if (handler === undefined) {
      s.refuse(node, `is not supported (importONNX reads ${Object.keys(IMPORT_OP).join(', ')}; Constant, Identity and Transpose of constants)`, 'unsupported-op');
    }
    handler(s, node);
  }
  // -1 when the graph computes no layer (only views of its input, a lone Softmax): a network
  // without layers, whose output is its input.
  const last = s.layers.length - 1;
  // Every layer but the last feeds a later one: a branch that ends nowhere has no bnwasm equivalent.
  const read = new Set(s.layers.flatMap((l) => l.inputs));
  const dead = s.layers.findIndex((l, i) => i < last && !read.has(l.name));
  if (dead >= 0) {
    s.refuse(s.nodes[dead], `computes '${s.nodes[dead].outputs[0]}', which leads nowhere: no later node reads it and it is not the graph's output`, 'leads-nowhere');
  }
  const output = model.outputs.length === 1 && s.isActivation(model.outputs[0].name) ? s.value(model.outputs[0].name) : null;
  if (output?.padded) s.refuse(output.padded.node, "adds zeros that are the graph's output; only a Conv or AveragePool takes them, as its padding", 'pads');
  if (output === null || output.layer !== last) {
    const want = last < 0 ? 'its input (or a view of it), as it computes no layer' : 'the value its last layer computes';
    throw graphError(`${fn}(): the graph's output must be ${want}, got ${model.outputs.map((o) => `'${o.name}'`).join(', ') || 'none'}`, 'outputs');
  }
  // The network's predictions go through the softmax: so must the graph's output.
  if (s.softmax && model.outputs[0].name !== s.softmax.outputs[0]) {
    throw graphError(`${fn}(): the graph's output '${model.outputs[0].name}' is not that of the ${s.softmax.op} node '${s.softmax.name}', '${s.softmax.outputs[0]}'`, 'outputs');
  }
  const loss = options.loss ?? (s.softmax ? 'softmaxCrossEntropy' : 'meanSquaredError');
  if (s.softmax && loss !== 'softmaxCrossEntropy') {
    throw new InputError(
      `${fn}(): loss '${loss}' cannot end in the ${s.softmax.op} node '${s.softmax.name}'; a softmax output is loss 'softmaxCrossEntropy'`,
      'BNWASM_INVALID_ARGUMENT',
    );
  }
  const config = {
    ...shape,
    layers: tidyLayers(s.layers),
    loss,
    ...(options.optimizer !== undefined ? { optimizer: options.optimizer } : {}),
  };
  const weights = s.tensors.flatMap((t, i) => Object.entries(t).map(([name, values]) => ({ layer: i, name, values })));
  try {
    return await buildNetwork(fn, config, weights);
  } catch (e) {
    // The core refuses the network or a tensor's values (a negative running variance).
    if (e instanceof ModelFormatError && e.reason === undefined) e.reason = 'bnwasm-refuses';
    throw e;
  }
}
