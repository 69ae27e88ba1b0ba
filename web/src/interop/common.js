// What every converter shares: the core's description of a network (shapes,
// tensors and their PyTorch names: converters ask, never work them out), the
// PyTorch module each layer is, and building a Network from converted parts so
// that a failure leaves nothing half-built.
import { describeNetwork, networkSchema } from '../config.js';
import { ConfigError, InputError, ModelFormatError, describe } from '../errors.js';
import { openNetwork, setBatchesTracked } from '../network.js';

/**
 * The PyTorch module of each layer, whose name prefixes its state_dict keys (and the
 * initializer names of an ONNX export). A named layer is the module of that name
 * (`layer1.0.conv1`: the graph's own module paths); the others count as an nn.Sequential
 * built layer by layer from the config, which has an nn.Flatten where bnwasm flattens
 * implicitly: before a dense layer whose input is still an image to PyTorch (after a conv,
 * pooling, per-channel batch norm or activation, or after globalAvgPool, whose
 * nn.AdaptiveAvgPool2d(1) leaves [N, C, 1, 1]). That nn.Flatten takes an index, so the
 * layers after it sit one further on; with an explicit { type: 'flatten' } in the config,
 * module N is layers[N].
 * `layers` is the core's description (network.layers or describeNetwork). Per layer:
 * `module` (its name or index), `flattenBefore` (the index of the nn.Flatten PyTorch needs
 * just before it, or null), `imageIn` (its input is an image to PyTorch); `image`: whether the
 * last output (the input, for a network without layers) is still an image to PyTorch;
 * `next`: the index after the last module (for a Flatten or Softmax after it).
 */
export function torchLayout(config, layers) {
  // To PyTorch an activation stays [N, C, H, W] (or [N, C, 1, 1]) until a dense or flatten layer.
  const image = [];
  let next = 0;
  const modules = config.layers.map((layer, i) => {
    const info = layers[i];
    const imageIn = info.inputs.some((p) => (p < 0 ? config.inputShape !== undefined : image[p]));
    image[i] = imageIn && info.type !== 'dense' && info.type !== 'flatten';
    const flattenBefore = info.type === 'dense' && imageIn ? next++ : null;
    const module = layer.name ?? String(next);
    next++;
    return { module, flattenBefore, imageIn };
  });
  // Without layers the output is the input: an image when the network takes images.
  return { layers: modules, image: modules.length === 0 ? config.inputShape !== undefined : image.at(-1), next };
}

/**
 * The PyTorch module of a network, layer by layer, for scripts that build it in PyTorch
 * (scripts/pytorch/safetensors_roundtrip.py): per layer its module name (torchLayout), the
 * index of the nn.Flatten before it, whether its input is an image to PyTorch, its config,
 * the layers it reads and its tensors' PyTorch names and shapes, as the core describes them.
 * @param {{config: object, layers: object[]}} net a Network, or describeNetwork's result
 */
export function torchModule({ config, layers }) {
  const layout = torchLayout(config, layers);
  return {
    loss: config.loss,
    inputShape: config.inputShape ?? [config.inputSize],
    image: layout.image,
    layers: layers.map((info, i) => ({
      ...layout.layers[i],
      config: config.layers[i],
      inputs: info.inputs,
      tensors: info.tensors.map((t) => ({ name: t.torch, shape: t.shape })),
    })),
  };
}

/** `module.suffix`: a tensor's state_dict key, from the core's PyTorch name for it. */
export const stateDictName = (module, torchName) => `${module}.${torchName}`;

/** The tensors of getWeights() grouped by layer: result[i][name] = values. */
export function layerTensors(weights, layerCount) {
  const out = Array.from({ length: layerCount }, () => ({}));
  for (const t of weights) out[t.layer][t.name] = t.values;
  return out;
}

/**
 * Checks the options a caller passes to an import function (loss, optimizer,
 * runningVariance) before anything is read, so their errors name the caller's mistake and
 * not the file; the core checks them, on a one-layer stand-in.
 */
export async function checkImportOptions(fn, options, allowed) {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InputError(`${fn}(): options must be an object, got ${describe(options)}`, 'BNWASM_WRONG_TYPE');
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new InputError(`${fn}(): unknown option '${key}' (expected one of ${allowed.join(', ')})`, 'BNWASM_INVALID_ARGUMENT');
    }
  }
  await describeNetwork({ inputSize: 2, layers: [{ type: 'relu' }], loss: options.loss ?? 'softmaxCrossEntropy', optimizer: options.optimizer }, fn);
  if (options.runningVariance !== undefined) {
    const schema = await networkSchema();
    const values = schema.layers.find((l) => l.type === 'batchNorm').options.find((o) => o.name === 'runningVariance').values;
    if (!values.includes(options.runningVariance)) {
      throw new ConfigError(`${fn}(): runningVariance must be one of ${values.map((v) => `'${v}'`).join(', ')}, got ${describe(options.runningVariance)}`);
    }
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
 * A config read out of a file, as the core describes it ({config, layers}): a config the
 * file implies but bnwasm refuses is the file's fault (ModelFormatError); the optimizer is
 * the caller's.
 */
export async function describeFileConfig(fn, config) {
  try {
    return await describeNetwork(config, fn);
  } catch (e) {
    throw fileFault(e);
  }
}

const fileFault = (e) => (e instanceof ConfigError && e.path !== 'optimizer' ? new ModelFormatError(`${e.message} (read from the file)`) : e);

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
  let net;
  try {
    net = await openNetwork(fn, config);
  } catch (e) {
    throw fileFault(e);
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
