// The TF.js layers format (model.json + weights.bin): export that
// tf.loadLayersModel reads, and import of Sequential models of Dense,
// BatchNormalization, Conv2D, pooling, Flatten and activations. Dense kernels
// are [in, out] there, [out, in] in bnwasm; Conv2D kernels [kh, kw, in, out]
// there, [out, in, kh, kw] in bnwasm. Keras's batch-norm momentum (0.99) is the
// weight of the past, like bnwasm's; its moving variance is the biased one.
// A conv network is written to take bnwasm's NCHW examples as they are: a Permute
// to NHWC first, channels_last layers (tfjs-core's batch norm kernels normalize
// the last axis only, so a channels_first BatchNormalization gives wrong
// numbers), and a Permute back to NCHW before flattening, so the features keep
// bnwasm's CHW order (docs/interop.md).
import { describer } from '../config.js';
import { ConfigError, InputError, ModelFormatError, describe } from '../errors.js';
import { asBytes, buildNetwork, checkImportOptions, layerTensors, torchLayout } from './common.js';

function transpose(values, rows, cols) {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c];
  return out;
}

// [out, in, kh, kw] (bnwasm, PyTorch) <-> [kh, kw, in, out] (Keras).
function toKerasKernel(w, [out, inC, kh, kw]) {
  const k = new Float32Array(w.length);
  for (let o = 0; o < out; o++) for (let c = 0; c < inC; c++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) {
    k[((y * kw + x) * inC + c) * out + o] = w[((o * inC + c) * kh + y) * kw + x];
  }
  return k;
}
function fromKerasKernel(k, [kh, kw, inC, out]) {
  const w = new Float32Array(k.length);
  for (let o = 0; o < out; o++) for (let c = 0; c < inC; c++) for (let y = 0; y < kh; y++) for (let x = 0; x < kw; x++) {
    w[((o * inC + c) * kh + y) * kw + x] = k[((y * kw + x) * inC + c) * out + o];
  }
  return w;
}

const keras = (class_name, config) => ({ class_name, config: { ...config, trainable: true, dtype: 'float32' } });
const LAST = { data_format: 'channels_last' };

// Per bnwasm layer type: the Keras layers and their weights [keras name, values,
// shape]. `info` is the core's description of the layer (its tensors' shapes, a conv's pads).
const EXPORT_LAYER = {
  dense: (layer, t, i, info) => {
    const width = info.tensors[0].shape[1];
    return {
      layer: keras('Dense', { name: `dense_${i}`, units: layer.units, activation: 'linear', use_bias: layer.useBias }),
      weights: [['kernel', transpose(t.weight, layer.units, width), [width, layer.units]], ...(layer.useBias ? [['bias', t.bias, [layer.units]]] : [])],
    };
  },
  batchNorm: (layer, t, i, info) => ({
    layer: keras('BatchNormalization', {
      name: `batch_normalization_${i}`,
      // The channel axis of an NHWC image, the feature axis otherwise.
      axis: -1,
      momentum: layer.momentum,
      epsilon: layer.epsilon,
      center: true,
      scale: true,
    }),
    weights: info.tensors.map((x) => [x.tfjs, t[x.name], x.shape]),
  }),
  conv2d: (layer, t, i, info) => {
    const [kh, kw] = layer.kernelSize;
    const shape = info.tensors[0].shape; // [filters, channels, kh, kw]
    // Keras pads only 'valid' or 'same'; other zeros come from a ZeroPadding2D in front.
    const [top, left, bottom, right] = layer.padding === 'same' ? [0, 0, 0, 0] : info.pads;
    const pad = top + left + bottom + right > 0 ? [keras('ZeroPadding2D', { name: `zero_padding2d_${i}`, padding: [[top, bottom], [left, right]], ...LAST })] : [];
    return {
      before: pad,
      layer: keras('Conv2D', {
        name: `conv2d_${i}`,
        filters: layer.filters,
        kernel_size: [kh, kw],
        // Copies: an array made in another realm (structuredClone under Jest) is not instanceof Array to tfjs-layers.
        strides: [...layer.stride],
        padding: layer.padding === 'same' ? 'same' : 'valid',
        ...LAST,
        dilation_rate: [1, 1],
        activation: 'linear',
        use_bias: layer.useBias,
      }),
      weights: [['kernel', toKerasKernel(t.weight, shape), [kh, kw, shape[1], layer.filters]], ...(layer.useBias ? [['bias', t.bias, [layer.filters]]] : [])],
    };
  },
  maxPool2d: (layer, t, i) => ({
    layer: keras('MaxPooling2D', { name: `max_pooling2d_${i}`, pool_size: [...layer.poolSize], strides: [...layer.stride], padding: 'valid', ...LAST }),
    weights: [],
  }),
  avgPool2d: (layer, t, i) => ({
    layer: keras('AveragePooling2D', { name: `average_pooling2d_${i}`, pool_size: [...layer.poolSize], strides: [...layer.stride], padding: 'valid', ...LAST }),
    weights: [],
  }),
  globalAvgPool: (layer, t, i) => ({ layer: keras('GlobalAveragePooling2D', { name: `global_average_pooling2d_${i}`, ...LAST }), weights: [] }),
  flatten: (layer, t, i) => ({ layer: flattenLayer(`flatten_${i}`), weights: [] }),
  relu: (layer, t, i) => activationLayer('relu', i),
  sigmoid: (layer, t, i) => activationLayer('sigmoid', i),
  tanh: (layer, t, i) => activationLayer('tanh', i),
};

function activationLayer(activation, i) {
  return { layer: keras('Activation', { name: `activation_${i}`, activation }), weights: [] };
}
const flattenLayer = (name) => keras('Flatten', { name });
// Permute's dims count from 1 after the batch axis: [2, 3, 1] makes NCHW NHWC, [3, 1, 2] the reverse.
const TO_NHWC = [2, 3, 1];
const TO_NCHW = [3, 1, 2];
const permuteLayer = (name, dims) => keras('Permute', { name, dims: [...dims] });

/**
 * A tfjs-layers model of the network: `modelJson` is the model.json object
 * (weights.bin is `weightData`). Load it with
 * `tf.loadLayersModel(tf.io.fromMemory({ modelTopology: modelJson.modelTopology,
 * weightSpecs: modelJson.weightsManifest[0].weights, weightData }))`, or save both
 * as files next to each other and load the model.json URL.
 * @param {import('../network.js').Network} net
 * @returns {{modelJson: object, weightData: ArrayBuffer}}
 */
export function toTfjsLayers(net) {
  const config = net.config;
  const described = net.layers;
  const graph = described.find((l) => l.inputs.length !== 1 || l.inputs[0] !== l.index - 1);
  if (graph !== undefined) {
    throw new InputError(
      `toTfjsLayers(): layers[${graph.index}] reads ${graph.inputs.map((p) => (p < 0 ? 'the input' : `layers[${p}]`)).join(' and ')}: the TF.js layers export writes Sequential models, one layer after another; export a graph with toONNX or toSafetensors`,
      'BNWASM_INVALID_ARGUMENT',
    );
  }
  const tensors = layerTensors(net.getWeights(), config.layers.length);
  const layout = torchLayout(config, described);
  const layers = [];
  const specs = [];
  const chunks = [];
  // The Keras tensor is NHWC from the first Permute until an image is flattened.
  if (config.inputShape) layers.push(permuteLayer('permute_input', TO_NHWC));
  config.layers.forEach((layer, i) => {
    const flattenBefore = layout.layers[i].flattenBefore !== null;
    const out = EXPORT_LAYER[layer.type](layer, tensors[i], i, described[i]);
    // bnwasm flattens an image in CHW order, implicitly before a dense layer; Keras's Dense would act on the last axis.
    const image = described[i].inputShapes[0].length === 3;
    if (image && (layer.type === 'flatten' || flattenBefore)) layers.push(permuteLayer(`permute_${i}`, TO_NCHW));
    if (image && flattenBefore) layers.push(flattenLayer(`flatten_before_${i}`));
    layers.push(...(out.before ?? []), out.layer);
    for (const [name, values, shape] of out.weights) {
      specs.push({ name: `${out.layer.config.name}/${name}`, shape, dtype: 'float32' });
      chunks.push(Float32Array.from(values));
    }
  });
  // The output as bnwasm holds it: the last layer's, or the input of a network without layers.
  const outputShape = described.at(-1)?.outputShape ?? config.inputShape ?? [config.inputSize];
  if (outputShape.length === 3) layers.push(permuteLayer('permute_output', TO_NCHW), flattenLayer('flatten_output'));
  if (config.loss === 'softmaxCrossEntropy') {
    layers.push(keras('Activation', { name: 'softmax', activation: 'softmax' }));
  }
  // A Sequential model needs a layer to carry its input shape: the identity, without layers.
  if (layers.length === 0) layers.push(keras('Activation', { name: 'linear', activation: 'linear' }));
  layers[0].config.batch_input_shape = [null, ...(config.inputShape ?? [config.inputSize])];
  const weightData = new Float32Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    weightData.set(c, at);
    at += c.length;
  }
  return {
    modelJson: {
      format: 'layers-model',
      generatedBy: 'bnwasm',
      convertedBy: null,
      modelTopology: { class_name: 'Sequential', config: { name: 'sequential', layers }, keras_version: 'tfjs-layers 4.22.0', backend: 'tensor_flow.js' },
      weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
    },
    weightData: weightData.buffer,
  };
}

// ---- import ---------------------------------------------------------------------------------

const ACTIVATIONS = { relu: 'relu', sigmoid: 'sigmoid', tanh: 'tanh' };

// Per Keras class: appends bnwasm layers to s. `c` is the layer's config.
const IMPORT_LAYER = {
  InputLayer: () => {},
  Dropout: () => {},
  Dense(s, c) {
    if (s.image) s.refuse(c, `is a Dense on an image [${s.image}]: Keras's Dense acts on the last axis only; bnwasm reads it after a Flatten`);
    const inputs = s.width;
    const units = s.int(c, 'units');
    // After a Flatten of NHWC, the kernel's rows are in HWC order: bnwasm's are CHW.
    const kernel = s.toChw(s.weight(c, 'kernel', [inputs, units]), units);
    s.order = null;
    const useBias = c.use_bias ?? true;
    const tensors = { weight: transpose(kernel, inputs, units) };
    if (useBias) tensors.bias = s.weight(c, 'bias', [units]);
    s.push({ type: 'dense', units, useBias }, tensors);
    s.width = units;
    s.activation(c, c.activation ?? 'linear');
  },
  BatchNormalization(s, c) {
    const axis = c.axis ?? -1;
    const a = Array.isArray(axis) && axis.length === 1 ? axis[0] : axis;
    // The channel axis of an image (per-channel batch norm), the feature axis of [batch, features].
    const allowed = !s.image ? [-1, 1] : s.layout === 'nchw' ? [1, -3] : [3, -1];
    if (!allowed.includes(a)) {
      s.refuse(c, `normalizes axis ${JSON.stringify(axis)}; bnwasm reads the ${s.image ? `channel axis (${allowed.join(' or ')}) of an ${s.layout.toUpperCase()} image` : 'feature axis (-1 or 1) of [batch, features]'}`);
    }
    const w = s.image ? s.image[0] : s.width;
    const ones = new Float32Array(w).fill(1);
    const get = (name) => s.toChw(s.weight(c, name, [w]), 1);
    s.push(
      { type: 'batchNorm', momentum: c.momentum ?? 0.99, epsilon: c.epsilon ?? 1e-3, runningVariance: s.runningVariance },
      {
        gamma: c.scale === false ? ones : get('gamma'),
        beta: c.center === false ? new Float32Array(w) : get('beta'),
        runningMean: get('moving_mean'),
        runningVariance: get('moving_variance'),
      },
    );
  },
  Permute(s, c) {
    const dims = Array.isArray(c.dims) ? c.dims.join() : JSON.stringify(c.dims);
    if (s.image && s.layout === 'nchw' && dims === TO_NHWC.join()) s.layout = 'nhwc';
    else if (s.image && s.layout === 'nhwc' && dims === TO_NCHW.join()) s.layout = 'nchw';
    else s.refuse(c, `permutes [${dims}] on ${s.image ? `an ${s.layout.toUpperCase()} image` : 'flat features'}; only NCHW <-> NHWC of an image is read`);
  },
  ZeroPadding2D(s, c) {
    s.expectImage(c);
    const p = c.padding ?? 1;
    const pairs = typeof p === 'number' ? [[p, p], [p, p]] : Array.isArray(p) && p.length === 2 ? p.map((v) => (typeof v === 'number' ? [v, v] : v)) : null;
    if (!pairs?.every((q) => Array.isArray(q) && q.length === 2 && q.every((v) => Number.isInteger(v) && v >= 0))) {
      s.refuse(c, `has padding ${JSON.stringify(p)}, expected a number, [height, width] or [[top, bottom], [left, right]]`);
    }
    const [[top, bottom], [left, right]] = pairs;
    s.pad = { name: c.name, padding: [top, left, bottom, right] };
  },
  Conv2D(s, c) {
    s.expectImage(c);
    const [kh, kw] = s.pair(c, 'kernel_size');
    const stride = s.pair(c, 'strides', [1, 1]);
    if (s.pair(c, 'dilation_rate', [1, 1]).some((d) => d !== 1)) s.refuse(c, `has dilation_rate ${JSON.stringify(c.dilation_rate)}; bnwasm has dilation 1 only`);
    if ((c.groups ?? 1) !== 1) s.refuse(c, `has groups ${c.groups}; bnwasm's conv2d has groups 1`);
    const mode = c.padding ?? 'valid';
    let padding = [0, 0];
    if (mode === 'same' && stride.join() === '1,1') padding = 'same';
    else if (mode !== 'valid') s.refuse(c, `has padding '${mode}'${mode === 'same' ? ` with strides [${stride}]` : ''}; bnwasm reads 'valid' and 'same' with stride 1`);
    if (s.pad) {
      if (padding === 'same') s.refuse(c, `has padding 'same' after ZeroPadding2D '${s.pad.name}'`);
      padding = s.pad.padding;
      s.pad = null;
    }
    const filters = s.int(c, 'filters');
    const channels = s.image[0];
    const weight = fromKerasKernel(s.weight(c, 'kernel', [kh, kw, channels, filters]), [kh, kw, channels, filters]);
    const useBias = c.use_bias ?? true;
    const layer = { type: 'conv2d', filters, kernelSize: [kh, kw], stride, padding, useBias };
    s.push(layer, useBias ? { weight, bias: s.weight(c, 'bias', [filters]) } : { weight });
    s.image = s.shapeAfter(c);
    s.activation(c, c.activation ?? 'linear');
  },
  MaxPooling2D: (s, c) => pool(s, c, 'maxPool2d'),
  AveragePooling2D: (s, c) => pool(s, c, 'avgPool2d'),
  GlobalAveragePooling2D(s, c) {
    s.expectImage(c);
    if (c.keepdims) s.refuse(c, 'has keepdims true; bnwasm reads [batch, channels]');
    s.push({ type: 'globalAvgPool' });
    s.width = s.image[0];
    s.image = null;
  },
  Activation: (s, c) => s.activation(c, c.activation),
  ReLU(s, c) {
    if (c.max_value != null || (c.negative_slope ?? 0) !== 0 || (c.threshold ?? 0) !== 0) s.refuse(c, 'has max_value, negative_slope or threshold');
    s.activation(c, 'relu');
  },
  Softmax(s, c) {
    if ((c.axis ?? -1) !== -1 && c.axis !== 1) s.refuse(c, `axis ${c.axis}`);
    s.activation(c, 'softmax');
  },
  Flatten(s, c) {
    if (!s.image) return;
    const first = c.data_format === 'channels_first';
    if (s.layout === 'nhwc' && first) s.refuse(c, 'has data_format channels_first on an NHWC tensor');
    // Keras flattens NHWC (or, with data_format channels_first, NCHW moved to NHWC first) in HWC order.
    s.order = s.layout === 'nhwc' || first ? s.image : null;
    s.push({ type: 'flatten' });
    s.width = s.shapeAfter(c)[0];
    s.image = null;
  },
};

function pool(s, c, type) {
  s.expectImage(c);
  const poolSize = s.pair(c, 'pool_size', [2, 2]);
  const stride = c.strides == null ? poolSize : s.pair(c, 'strides');
  if ((c.padding ?? 'valid') !== 'valid') s.refuse(c, `has padding '${c.padding}'; bnwasm's pooling has none ('valid')`);
  s.push({ type, poolSize, stride });
  s.image = s.shapeAfter(c);
}

// The data format of a model's input: NCHW if it opens with a Permute to NHWC (as
// toTfjsLayers writes) or its first image layer says channels_first; Keras's default
// channels_last otherwise.
function inputLayout(layerList) {
  const first = layerList.find((l) => l?.class_name !== 'InputLayer');
  const dims = first?.config?.dims;
  if (first?.class_name === 'Permute' && Array.isArray(dims) && dims.join() === TO_NHWC.join()) return 'nchw';
  const formatted = layerList.find((l) => typeof l?.config?.data_format === 'string' && l.class_name !== 'Flatten');
  return formatted?.config.data_format === 'channels_first' ? 'nchw' : 'nhwc';
}

function readManifest(fn, modelJson, weightData) {
  const manifest = modelJson.weightsManifest ?? [];
  if (!Array.isArray(manifest)) throw new ModelFormatError(`${fn}(): weightsManifest must be a list, got ${describe(manifest)}`);
  const specs = manifest.flatMap((group, g) => {
    if (!group || !Array.isArray(group.weights)) throw new ModelFormatError(`${fn}(): weightsManifest[${g}].weights must be a list`);
    return group.weights;
  });
  const view = new DataView(weightData.buffer, weightData.byteOffset, weightData.byteLength);
  const weights = new Map();
  let offset = 0;
  for (const spec of specs) {
    const where = `${fn}(): weight ${describe(spec?.name)}`;
    if (!spec || typeof spec.name !== 'string' || !Array.isArray(spec.shape) || !spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new ModelFormatError(`${where} needs a name and a shape of non-negative integers`);
    }
    if (spec.quantization) throw new ModelFormatError(`${where} is quantized; re-save the model with float32 weights`);
    if ((spec.dtype ?? 'float32') !== 'float32') throw new ModelFormatError(`${where} has dtype ${describe(spec.dtype)}, expected float32`);
    const count = spec.shape.reduce((a, b) => a * b, 1);
    if (offset + 4 * count > weightData.byteLength) {
      throw new ModelFormatError(`${where} runs past the end of weightData (needs bytes ${offset}..${offset + 4 * count}, has ${weightData.byteLength})`);
    }
    const values = new Float32Array(count);
    for (let k = 0; k < count; k++) values[k] = view.getFloat32(offset + 4 * k, true);
    weights.set(spec.name, { shape: spec.shape, values });
    offset += 4 * count;
  }
  if (offset !== weightData.byteLength) {
    throw new ModelFormatError(`${fn}(): the manifest describes ${offset} bytes of weights, weightData has ${weightData.byteLength}`);
  }
  return weights;
}

/**
 * A trainable Network from a tfjs-layers Sequential model (model.json object or
 * text, and the bytes of its weight files concatenated in manifest order).
 * Weights are matched by name (`<layer>/kernel`, `<layer>/moving_mean`, ...).
 * @param {object|string} modelJson
 * @param {ArrayBuffer|Uint8Array} weightData
 * @param {{loss?: string, optimizer?: object, runningVariance?: 'biased'|'unbiased'}} [options]
 *   runningVariance defaults to 'biased', as Keras computes it.
 * @returns {Promise<import('../network.js').Network>}
 */
export async function importTfjsLayers(modelJson, weightData, options = {}) {
  const fn = 'importTfjsLayers';
  if (typeof modelJson === 'string') {
    try {
      modelJson = JSON.parse(modelJson);
    } catch (e) {
      throw new ModelFormatError(`${fn}(): modelJson is not valid JSON (${e.message})`);
    }
    if (modelJson === null || typeof modelJson !== 'object' || Array.isArray(modelJson)) {
      throw new ModelFormatError(`${fn}(): the model.json text holds ${describe(modelJson)}, not an object`);
    }
  }
  if (modelJson === null || typeof modelJson !== 'object' || Array.isArray(modelJson)) {
    throw new InputError(`${fn}(): modelJson must be the model.json object or its text, got ${describe(modelJson)}`, 'BNWASM_WRONG_TYPE');
  }
  weightData = asBytes(fn, 'weightData', weightData);
  await checkImportOptions(fn, options, ['loss', 'optimizer', 'runningVariance']);
  const describeConfig = await describer(fn);
  let topology = modelJson.modelTopology;
  if (topology?.model_config) topology = topology.model_config; // Keras-converted files
  if (!topology || topology.class_name !== 'Sequential') {
    throw new ModelFormatError(`${fn}(): modelTopology must be a Sequential model, got ${describe(topology?.class_name ?? topology)}`);
  }
  const layerList = Array.isArray(topology.config) ? topology.config : topology.config?.layers;
  if (!Array.isArray(layerList) || layerList.length === 0) throw new ModelFormatError(`${fn}(): the Sequential model has no layers`);
  const weights = readManifest(fn, modelJson, weightData);
  const first = layerList[0]?.config ?? {};
  const inputShape = first.batch_input_shape ?? first.batch_shape ?? first.batchInputShape;
  const positive = (d) => Number.isInteger(d) && d > 0 && d <= 2 ** 24;
  if (!Array.isArray(inputShape) || ![2, 4].includes(inputShape.length) || !inputShape.slice(1).every(positive)) {
    throw new ModelFormatError(`${fn}(): the first layer must give batch_input_shape [null, features] or [null, height, width, channels] (or channels first), got ${JSON.stringify(inputShape)}`);
  }
  // An image input: bnwasm's inputShape is [C, H, W] whatever the file's layout.
  const layout = inputShape.length === 4 ? inputLayout(layerList) : null;
  const [, a, b, d] = inputShape;
  const image = layout === 'nchw' ? [a, b, d] : layout === 'nhwc' ? [d, a, b] : null;
  const used = new Set();
  const s = {
    width: inputShape[1], // the features of a flat input (an image's come with its Flatten)
    image, // [C, H, W] while the activation is an image
    layout, // the Keras tensor's layout while it is an image: 'nchw' or 'nhwc'
    order: null, // [C, H, W] while flat features are in Keras's HWC order (after a Flatten of NHWC)
    pad: null, // a ZeroPadding2D waiting for its Conv2D
    layers: [],
    tensors: [],
    softmax: null,
    runningVariance: options.runningVariance ?? 'biased',
    refuse(c, why) {
      throw new ModelFormatError(`${fn}(): layer '${c.name}' ${why}`, { layerName: c.name });
    },
    expectImage(c) {
      if (!this.image) this.refuse(c, 'needs an image input [batch, H, W, C] (or channels first)');
      const format = c.data_format ?? 'channels_last';
      if (format !== (this.layout === 'nchw' ? 'channels_first' : 'channels_last')) {
        this.refuse(c, `has data_format ${format} on an ${this.layout.toUpperCase()} tensor`);
      }
    },
    pair(c, key, fallback) {
      const v = c[key] ?? fallback;
      const p = typeof v === 'number' ? [v, v] : v;
      if (!Array.isArray(p) || p.length !== 2 || !p.every((x) => Number.isInteger(x) && x >= 1)) this.refuse(c, `has ${key} ${JSON.stringify(v)}, expected [height, width]`);
      return p;
    },
    // Rows of a [features, cols] tensor from Keras's HWC order into bnwasm's CHW order (a copy; unchanged if not permuted).
    toChw(values, cols) {
      if (!this.order) return values;
      const [C, H, W] = this.order;
      const out = new Float32Array(values.length);
      for (let ch = 0; ch < C; ch++) for (let p = 0; p < H * W; p++) {
        out.set(values.subarray((p * C + ch) * cols, (p * C + ch + 1) * cols), (ch * H * W + p) * cols);
      }
      return out;
    },
    int(c, key) {
      if (!Number.isInteger(c[key]) || c[key] < 1) this.refuse(c, `has ${key} ${describe(c[key])}, expected a positive integer`);
      return c[key];
    },
    weight(c, name, shape) {
      const key = `${c.name}/${name}`;
      let w = weights.get(key);
      if (w === undefined) {
        // Some writers prefix weight names with the model's scope: match the suffix once.
        const found = [...weights.keys()].filter((k) => k.endsWith(`/${key}`));
        if (found.length === 1) w = weights.get(found[0]);
      }
      if (w === undefined) this.refuse(c, `has no weight '${key}' in the manifest`);
      if (w.shape.join() !== shape.join()) this.refuse(c, `weight '${key}' has shape [${w.shape}], expected [${shape}]`);
      used.add(w);
      return w.values;
    },
    push(layer, tensors = {}) {
      this.layers.push(layer);
      this.tensors.push(tensors);
    },
    // The image the last layer makes, as the core shapes it (a layer it refuses is the file's fault).
    shapeAfter(c) {
      try {
        return describeConfig({ ...(image ? { inputShape: image } : { inputSize: inputShape[1] }), layers: this.layers, loss: 'meanSquaredError' }).layers.at(-1).outputShape;
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        return this.refuse(c, `gives bnwasm a layer it refuses: ${e.message.replace(/^importTfjsLayers\(\): /, '')}`);
      }
    },
    activation(c, name) {
      if (name === 'linear' || name === undefined || name === null) return;
      if (name === 'softmax') {
        if (this.softmax) this.refuse(c, 'has a second softmax');
        this.softmax = c.name;
        return;
      }
      if (!(name in ACTIVATIONS)) this.refuse(c, `has activation '${name}'; bnwasm has relu, sigmoid, tanh, softmax (last) and linear`);
      this.push({ type: ACTIVATIONS[name] });
    },
  };
  for (const [k, layer] of layerList.entries()) {
    if (!layer?.config || typeof layer.config !== 'object') throw new ModelFormatError(`${fn}(): layer ${k} has no config`);
    const c = { ...layer.config, name: layer.config.name ?? `#${k}` };
    const handler = IMPORT_LAYER[layer.class_name];
    if (handler === undefined) {
      s.refuse(c, `is a ${describe(layer.class_name)}, not supported (importTfjsLayers reads ${Object.keys(IMPORT_LAYER).join(', ')})`);
    }
    if (s.softmax && layer.class_name !== 'Dropout') s.refuse(c, `follows the softmax of layer '${s.softmax}', which must end the model`);
    if (s.pad && layer.class_name !== 'Conv2D') s.refuse(c, `follows ZeroPadding2D '${s.pad.name}'; bnwasm reads zero padding only as a Conv2D's`);
    handler(s, c);
  }
  if (s.pad) throw new ModelFormatError(`${fn}(): ZeroPadding2D '${s.pad.name}' ends the model; bnwasm reads zero padding only as a Conv2D's`);
  if (s.image) throw new ModelFormatError(`${fn}(): the model's output is an image [${s.image}]; bnwasm reads models that end flat (add a Flatten)`);
  if (s.order) throw new ModelFormatError(`${fn}(): the model ends in features in HWC order (a Flatten of NHWC); bnwasm reads models whose last Flatten is followed by a Dense`);
  if (used.size !== weights.size) {
    const unused = [...weights.entries()].filter(([, w]) => !used.has(w)).map(([name]) => name);
    throw new ModelFormatError(`${fn}(): the manifest has weights no layer reads: ${unused.join(', ')}`);
  }
  const loss = options.loss ?? (s.softmax ? 'softmaxCrossEntropy' : 'meanSquaredError');
  if (s.softmax && loss !== 'softmaxCrossEntropy') {
    throw new InputError(`${fn}(): loss '${loss}' cannot end in the softmax of layer '${s.softmax}'; a softmax output is loss 'softmaxCrossEntropy'`, 'BNWASM_INVALID_ARGUMENT');
  }
  // No bnwasm layer (a linear or softmax Activation alone): a network without layers.
  const config = { ...(image ? { inputShape: image } : { inputSize: inputShape[1] }), layers: s.layers, loss, ...(options.optimizer !== undefined ? { optimizer: options.optimizer } : {}) };
  const list = s.tensors.flatMap((t, i) => Object.entries(t).map(([name, values]) => ({ layer: i, name, values })));
  return buildNetwork(fn, config, list);
}
