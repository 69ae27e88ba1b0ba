// What every converter shares: PyTorch state_dict names, the tensors of a
// network grouped by layer, and building a Network from converted parts so that
// a failure leaves nothing half-built.
import { normalizeConfig, specField } from '../config.js';
import { ConfigError, InputError, ModelFormatError, describe } from '../errors.js';
import { openNetwork, setBatchesTracked } from '../network.js';

// bnwasm tensor name -> the suffix nn.Linear / nn.BatchNorm1d use in a state_dict.
export const STATE_DICT_SUFFIX = {
  weight: 'weight',
  bias: 'bias',
  gamma: 'weight',
  beta: 'bias',
  runningMean: 'running_mean',
  runningVariance: 'running_var',
};

/** `N.weight` etc.: the state_dict key of layer i's tensor in an nn.Sequential built from the config. */
export function stateDictName(i, name) {
  return `${i}.${STATE_DICT_SUFFIX[name]}`;
}

/** The layer types the converters know: dense networks (conv and pooling layers are not converted yet). */
const CONVERTIBLE = ['dense', 'batchNorm', 'relu', 'sigmoid', 'tanh'];

/**
 * Refuses a config with a layer no converter knows (conv2d, pooling, flatten), naming the
 * layer and its type, before anything is written or read.
 */
export function checkConvertible(fn, config) {
  const i = config.layers.findIndex((l) => !CONVERTIBLE.includes(l.type));
  if (i >= 0) {
    const type = config.layers[i].type;
    throw new InputError(
      `${fn}(): layers[${i}] is a ${type} layer; ${fn} converts only ${CONVERTIBLE.join(', ')} layers`,
      'BNWASM_INVALID_ARGUMENT',
      { layer: i, type },
    );
  }
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

