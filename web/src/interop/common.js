// What every converter shares: PyTorch state_dict names, the tensors of a
// network grouped by layer, and building a Network from converted parts so that
// a failure leaves nothing half-built.
import { normalizeConfig, specField } from '../config.js';
import { ConfigError, InputError, ModelFormatError, describe } from '../errors.js';
import { openNetwork, setBatchesTracked } from '../network.js';

// bnwasm tensor name -> the suffix nn.Linear, nn.Conv2d and nn.BatchNorm1d/2d use in a state_dict.
export const STATE_DICT_SUFFIX = {
  weight: 'weight',
  bias: 'bias',
  gamma: 'weight',
  beta: 'bias',
  runningMean: 'running_mean',
  runningVariance: 'running_var',
};

/** `N.weight` etc.: the state_dict key of tensor `name` of the module at index N of an nn.Sequential. */
export function stateDictName(n, name) {
  return `${n}.${STATE_DICT_SUFFIX[name]}`;
}

/** The zeros a conv2d layer adds around its input, as ONNX orders them: [top, left, bottom, right]. */
export function convPads(layer) {
  if (layer.padding !== 'same') return [layer.padding[0], layer.padding[1], layer.padding[0], layer.padding[1]];
  // 'same' (stride 1) pads kernel - 1 in all, the odd one below and right, as PyTorch and the core do.
  const [th, tw] = [layer.kernelSize[0] - 1, layer.kernelSize[1] - 1];
  return [th >> 1, tw >> 1, th - (th >> 1), tw - (tw >> 1)];
}

/** A layer's output shape from its input shape: [C, H, W] for an image, [features] once flat (as the core has it). */
export function nextShape(layer, shape) {
  const window = (k, stride, [c, h, w], [top, left, bottom, right] = [0, 0, 0, 0]) => [
    c,
    Math.floor((h + top + bottom - k[0]) / stride[0]) + 1,
    Math.floor((w + left + right - k[1]) / stride[1]) + 1,
  ];
  switch (layer.type) {
    case 'dense':
      return [layer.units];
    case 'flatten':
      return [shape.reduce((a, b) => a * b, 1)];
    case 'globalAvgPool':
      return [shape[0]];
    case 'conv2d':
      return [layer.filters, ...window(layer.kernelSize, layer.stride, shape, convPads(layer)).slice(1)];
    case 'maxPool2d':
    case 'avgPool2d':
      return window(layer.poolSize, layer.stride, shape);
    default:
      return shape;
  }
}

/**
 * How a config lines up with the nn.Sequential built layer by layer from it, whose
 * state_dict names the safetensors tensors and whose torch.onnx.export graph toONNX
 * follows. One module per layer, plus an nn.Flatten where bnwasm flattens implicitly:
 * before a dense layer whose input PyTorch still holds as an image [N, C, H, W] (after
 * a conv, pooling, per-channel batch norm or activation, or after globalAvgPool, whose
 * nn.AdaptiveAvgPool2d(1) leaves [N, C, 1, 1]). That nn.Flatten takes an index, so the
 * layers after it sit one further on; with an explicit { type: 'flatten' } in the
 * config, module N is layers[N].
 * Per layer: `index` (its module in the nn.Sequential), `flattenBefore` (PyTorch
 * needs an nn.Flatten just before it) and `input` (its input shape as bnwasm has it).
 * `image` says whether the last output is still an image to PyTorch.
 */
export function torchLayout(config) {
  let image = config.inputShape !== undefined;
  let shape = image ? [...config.inputShape] : [config.inputSize];
  let next = 0;
  const layers = config.layers.map((layer) => {
    const flattenBefore = layer.type === 'dense' && image;
    if (flattenBefore) next++;
    const entry = { index: next++, flattenBefore, input: shape };
    shape = nextShape(layer, shape);
    if (layer.type === 'dense' || layer.type === 'flatten') image = false;
    return entry;
  });
  return { layers, output: shape, image };
}

/** The tensors of getWeights() grouped by layer: result[i][name] = values. */
export function layerTensors(weights, layerCount) {
  const out = Array.from({ length: layerCount }, () => ({}));
  for (const t of weights) out[t.layer][t.name] = t.values;
  return out;
}

/**
 * Checks the options a caller passes to an import function (loss, optimizer)
 * before anything is read, so their errors name the caller's mistake and not
 * the file. Returns them normalized.
 */
export function checkImportOptions(fn, options, allowed) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InputError(`${fn}(): options must be an object, got ${describe(options)}`, 'BNWASM_WRONG_TYPE');
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new InputError(`${fn}(): unknown option '${key}' (expected one of ${allowed.join(', ')})`, 'BNWASM_INVALID_ARGUMENT');
    }
  }
  // The optimizer and loss checks of createNetwork, on a one-layer stand-in.
  normalizeConfig(
    { inputSize: 2, layers: [{ type: 'relu' }], loss: options.loss ?? 'softmaxCrossEntropy', optimizer: options.optimizer },
    fn,
  );
  if (options.runningVariance !== undefined && !['biased', 'unbiased'].includes(options.runningVariance)) {
    throw new ConfigError(`${fn}(): runningVariance must be 'biased' or 'unbiased', got ${describe(options.runningVariance)}`);
  }
}

/**
 * Bytes given as a Uint8Array (a Node Buffer is one) or an ArrayBuffer, from this
 * realm or another (a worker's, an iframe's): checked by tag, not instanceof.
 */
export function asBytes(fn, name, bytes) {
  const tag = Object.prototype.toString.call(bytes);
  if (tag === '[object ArrayBuffer]') return new Uint8Array(bytes);
  if (tag === '[object Uint8Array]') return bytes;
  throw new InputError(`${fn}(): ${name} must be a Uint8Array or ArrayBuffer, got ${describe(bytes)}`, 'BNWASM_WRONG_TYPE');
}

/**
 * A Network from a config read out of a file, its tensors and its
 * batch-norm step counts. A config or tensor the core refuses is the file's
 * fault: ModelFormatError. On any failure the network is disposed.
 * @param {string} fn
 * @param {object} config
 * @param {{layer: number, name: string, values: Float32Array}[]} weights
 * @param {Map<number, number>} [tracked] layer -> num_batches_tracked
 */
export async function buildNetwork(fn, config, weights, tracked = new Map()) {
  // A config the file implies but bnwasm refuses is the file's fault; the optimizer is the caller's.
  let net;
  try {
    net = await openNetwork(fn, config);
  } catch (e) {
    if (e instanceof ConfigError && !(e.index >= 0 && specField(e.index).where === 'optimizer')) {
      throw new ModelFormatError(`${e.message} (read from the file)`);
    }
    throw e;
  }
  try {
    net.setWeights(weights);
    for (const [layer, n] of tracked) setBatchesTracked(net, layer, n);
  } catch (e) {
    net.dispose();
    if (e instanceof InputError) throw new ModelFormatError(`${fn}(): ${e.message}`, { cause: e });
    throw e;
  }
  return net;
}

