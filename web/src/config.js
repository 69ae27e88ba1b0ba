// Network configs: validation with defaults, and the flat spec vector the core
// reads (its layout is documented once, in cpp/include/bnwasm/network.h).
import { ConfigError, describe } from './errors.js';

// In the order of the core's LayerType (cpp/include/bnwasm/network.h).
const LAYER_TYPES = ['dense', 'batchNorm', 'relu', 'sigmoid', 'tanh', 'conv2d', 'maxPool2d', 'avgPool2d', 'globalAvgPool', 'flatten'];
const LOSSES = ['softmaxCrossEntropy', 'meanSquaredError'];
const OPTIMIZERS = ['sgd', 'adam'];
const INITS = ['auto', 'heUniform', 'glorotUniform', 'normal'];
const RUNNING_VARIANCE = ['biased', 'unbiased'];
const STATISTICS = ['ema', 'cumulative'];

// Each option's default, written once.
const DENSE_DEFAULTS = { useBias: true, init: 'auto', initStd: 0.01 };
const CONV2D_DEFAULTS = { stride: 1, padding: 0, useBias: true, init: 'auto', initStd: 0.01 };
// A pool's stride defaults to its poolSize.
const BATCH_NORM_DEFAULTS = {
  momentum: 0.9,
  epsilon: 1e-5,
  runningVariance: 'unbiased',
  statistics: 'ema',
  biasCorrection: false,
  renorm: null,
};
const RENORM_DEFAULTS = { rMax: 3, dMax: 5 };
const SGD_DEFAULTS = { learningRate: 0.01, momentum: 0, nesterov: false, weightDecay: 0 };
const ADAM_DEFAULTS = { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 };
const NETWORK_DEFAULTS = { loss: 'softmaxCrossEntropy', seed: 1 };

/**
 * Every config option's default, written once: normalizeConfig fills them in, and a test
 * (tests/js/schema.test.js) checks that the types, the README and the core's structs say the same.
 */
export const CONFIG_DEFAULTS = {
  network: NETWORK_DEFAULTS,
  dense: DENSE_DEFAULTS,
  conv2d: CONV2D_DEFAULTS,
  batchNorm: BATCH_NORM_DEFAULTS,
  renorm: RENORM_DEFAULTS,
  sgd: SGD_DEFAULTS,
  adam: ADAM_DEFAULTS,
};

const fail = (where, message) => {
  throw new ConfigError(`${where}: ${message}`);
};

function checkKeys(where, object, allowed) {
  for (const key of Object.keys(object)) {
    if (!allowed.includes(key)) {
      fail(where, `unknown option '${key}' (expected one of ${allowed.join(', ')})`);
    }
  }
}

// Ranges are the core's to check (it checks model files too, and says which field is wrong);
// here a numeric option only has to be a number.
function number(where, name, value) {
  if (typeof value !== 'number') fail(where, `${name} must be a number, got ${describe(value)}`);
  return value;
}

function oneOf(where, name, value, options) {
  if (!options.includes(value)) {
    fail(where, `${name} must be one of ${options.map((o) => `'${o}'`).join(', ')}, got ${describe(value)}`);
  }
  return value;
}

function bool(where, name, value) {
  if (typeof value !== 'boolean') fail(where, `${name} must be true or false, got ${describe(value)}`);
  return value;
}

function plainObject(where, name, value) {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(where, `${name} must be an object, got ${describe(value)}`);
  }
  return value;
}

function normalizeLayer(fn, layer, i) {
  const where = `${fn}(): layers[${i}]`;
  plainObject(`${fn}()`, `layers[${i}]`, layer);
  oneOf(where, 'type', layer.type, LAYER_TYPES);
  if (layer.type === 'dense') {
    checkKeys(where, layer, ['type', 'units', ...Object.keys(DENSE_DEFAULTS)]);
    const l = { type: 'dense', ...DENSE_DEFAULTS, ...layer };
    number(where, 'units', l.units);
    bool(where, 'useBias', l.useBias);
    oneOf(where, 'init', l.init, INITS);
    number(where, 'initStd', l.initStd);
    return l;
  }
  if (layer.type === 'batchNorm') {
    checkKeys(where, layer, ['type', ...Object.keys(BATCH_NORM_DEFAULTS)]);
    const l = { type: 'batchNorm', ...BATCH_NORM_DEFAULTS, ...layer };
    number(where, 'momentum', l.momentum);
    number(where, 'epsilon', l.epsilon);
    oneOf(where, 'runningVariance', l.runningVariance, RUNNING_VARIANCE);
    oneOf(where, 'statistics', l.statistics, STATISTICS);
    bool(where, 'biasCorrection', l.biasCorrection);
    if (l.renorm !== null) {
      plainObject(where, 'renorm', l.renorm);
      checkKeys(`${where}.renorm`, l.renorm, Object.keys(RENORM_DEFAULTS));
      l.renorm = { ...RENORM_DEFAULTS, ...l.renorm };
      number(`${where}.renorm`, 'rMax', l.renorm.rMax);
      number(`${where}.renorm`, 'dMax', l.renorm.dMax);
    }
    return l;
  }
  if (layer.type === 'conv2d') {
    checkKeys(where, layer, ['type', 'filters', 'kernelSize', ...Object.keys(CONV2D_DEFAULTS)]);
    const l = { type: 'conv2d', filters: layer.filters, kernelSize: layer.kernelSize, ...CONV2D_DEFAULTS, ...layer };
    number(where, 'filters', l.filters);
    l.kernelSize = pair(where, 'kernelSize', l.kernelSize);
    l.stride = pair(where, 'stride', l.stride);
    if (l.padding !== 'same') l.padding = pair(where, 'padding', l.padding, " or 'same'");
    bool(where, 'useBias', l.useBias);
    oneOf(where, 'init', l.init, INITS);
    number(where, 'initStd', l.initStd);
    return l;
  }
  if (layer.type === 'maxPool2d' || layer.type === 'avgPool2d') {
    checkKeys(where, layer, ['type', 'poolSize', 'stride']);
    const poolSize = pair(where, 'poolSize', layer.poolSize);
    const stride = layer.stride === undefined ? poolSize : pair(where, 'stride', layer.stride);
    return { type: layer.type, poolSize, stride };
  }
  checkKeys(where, layer, ['type']);
  return { type: layer.type };
}

// A number or [h, w] of numbers, as [h, w] (the core checks the values).
function pair(where, name, value, alternative = '') {
  const v = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => typeof x === 'number')) {
    fail(where, `${name} must be a number or [height, width] of numbers${alternative}, got ${show(value)}`);
  }
  return [v[0], v[1]];
}

// An array's values, anything else as describe() puts it.
const show = (v) => (Array.isArray(v) ? `[${v.map((x) => describe(x)).join(', ')}]` : describe(v));

function normalizeOptimizer(fn, optimizer) {
  const where = `${fn}(): optimizer`;
  plainObject(`${fn}()`, 'optimizer', optimizer);
  oneOf(where, 'type', optimizer.type, OPTIMIZERS);
  if (optimizer.type === 'sgd') {
    checkKeys(where, optimizer, ['type', ...Object.keys(SGD_DEFAULTS)]);
    const o = { type: 'sgd', ...SGD_DEFAULTS, ...optimizer };
    number(where, 'learningRate', o.learningRate);
    number(where, 'momentum', o.momentum);
    bool(where, 'nesterov', o.nesterov);
    number(where, 'weightDecay', o.weightDecay);
    return o;
  }
  checkKeys(where, optimizer, ['type', ...Object.keys(ADAM_DEFAULTS)]);
  const o = { type: 'adam', ...ADAM_DEFAULTS, ...optimizer };
  for (const key of ['learningRate', 'beta1', 'beta2', 'epsilon', 'weightDecay']) number(where, key, o[key]);
  return o;
}

/**
 * Checks what only JS can see in a network config (its shape, option names, enum strings,
 * booleans, that numbers are numbers) and fills in every default. The core checks the
 * values (ranges, sizes, limits) when the network is built; see specError.
 * @param {object} config
 * @param {string} [fn] the public function, for messages
 */
export function normalizeConfig(config, fn = 'createNetwork') {
  plainObject(`${fn}()`, 'config', config);
  checkKeys(`${fn}(): config`, config, ['inputSize', 'inputShape', 'layers', 'loss', 'optimizer', 'seed']);
  const where = `${fn}(): config`;
  let inputShape;
  let inputSize = config.inputSize;
  if (config.inputShape !== undefined) {
    const s = config.inputShape;
    if (!Array.isArray(s) || s.length !== 3 || !s.every((v) => typeof v === 'number')) {
      fail(where, `inputShape must be [channels, height, width], three numbers, got ${show(s)}`);
    }
    inputShape = [s[0], s[1], s[2]];
    const size = s[0] * s[1] * s[2];
    if (inputSize !== undefined && inputSize !== size) {
      fail(where, `inputSize ${describe(inputSize)} does not match inputShape [${s}] (${size} values); give one of them`);
    }
    inputSize = size;
  }
  number(where, 'inputSize', inputSize);
  if (!Array.isArray(config.layers) || config.layers.length === 0) {
    fail(where, `layers must be a non-empty array, got ${describe(config.layers)}`);
  }
  const layers = config.layers.map((layer, i) => normalizeLayer(fn, layer, i));
  const loss = oneOf(where, 'loss', config.loss ?? NETWORK_DEFAULTS.loss, LOSSES);
  const optimizer = normalizeOptimizer(fn, config.optimizer ?? { type: 'adam' });
  const seed = number(where, 'seed', config.seed ?? NETWORK_DEFAULTS.seed);
  return { inputSize, ...(inputShape && { inputShape }), layers, loss, optimizer, seed };
}

const flag = (v) => (v ? 1 : 0);
const shownFlag = (v) => v === 1;
const enumField = (names) => ({ encode: (v) => names.indexOf(v), show: (v) => names[v] ?? v });

// The core's flat spec vector, written once: the header fields, then LAYER_FIELDS for each
// layer (cpp/include/bnwasm/network.h, SpecField and LayerField, has the same order). Each
// field names where it lives in a normalized config, how it is encoded, and how a value the
// core refused is shown in an error.
const HEADER_FIELDS = [
  { where: 'config', name: 'inputSize', get: (c) => c.inputSize },
  { where: 'config', name: 'loss', get: (c) => c.loss, ...enumField(LOSSES) },
  { where: 'config', name: 'seed', get: (c) => c.seed },
  { where: 'optimizer', name: 'type', get: (c) => c.optimizer.type, ...enumField(OPTIMIZERS) },
  { where: 'optimizer', name: 'learningRate', get: (c) => c.optimizer.learningRate },
  { where: 'optimizer', name: 'momentum', get: (c) => c.optimizer.momentum ?? 0 },
  { where: 'optimizer', name: 'nesterov', get: (c) => c.optimizer.nesterov ?? false, encode: flag, show: shownFlag },
  { where: 'optimizer', name: 'beta1', get: (c) => c.optimizer.beta1 ?? ADAM_DEFAULTS.beta1 },
  { where: 'optimizer', name: 'beta2', get: (c) => c.optimizer.beta2 ?? ADAM_DEFAULTS.beta2 },
  { where: 'optimizer', name: 'epsilon', get: (c) => c.optimizer.epsilon ?? ADAM_DEFAULTS.epsilon },
  { where: 'optimizer', name: 'weightDecay', get: (c) => c.optimizer.weightDecay },
  { where: 'config', name: 'layers', get: (c) => c.layers.length },
  { where: 'config', name: 'inputShape[0]', get: (c) => c.inputShape?.[0] ?? 0 },
  { where: 'config', name: 'inputShape[1]', get: (c) => c.inputShape?.[1] ?? 0 },
  { where: 'config', name: 'inputShape[2]', get: (c) => c.inputShape?.[2] ?? 0 },
];
// A conv or pool layer's [h, w] option, one field per value.
const sizeField = (key, k) => (l) => (l[key] ?? l.poolSize ?? [0, 0])[k];
const POOL_NAMES = (name) => ({ maxPool2d: name, avgPool2d: name });
const LAYER_FIELDS = [
  { name: 'type', get: (l) => l.type, ...enumField(LAYER_TYPES) },
  { name: 'units', names: { conv2d: 'filters' }, get: (l) => l.units ?? l.filters ?? 0 },
  { name: 'useBias', get: (l) => l.useBias ?? DENSE_DEFAULTS.useBias, encode: flag, show: shownFlag },
  { name: 'init', get: (l) => l.init ?? DENSE_DEFAULTS.init, ...enumField(INITS) },
  { name: 'initStd', get: (l) => l.initStd ?? DENSE_DEFAULTS.initStd },
  { name: 'momentum', get: (l) => l.momentum ?? BATCH_NORM_DEFAULTS.momentum },
  { name: 'epsilon', get: (l) => l.epsilon ?? BATCH_NORM_DEFAULTS.epsilon },
  { name: 'runningVariance', get: (l) => l.runningVariance ?? BATCH_NORM_DEFAULTS.runningVariance, ...enumField(RUNNING_VARIANCE) },
  { name: 'statistics', get: (l) => l.statistics ?? BATCH_NORM_DEFAULTS.statistics, ...enumField(STATISTICS) },
  { name: 'biasCorrection', get: (l) => l.biasCorrection ?? false, encode: flag, show: shownFlag },
  { where: 'renorm', name: 'rMax', get: (l) => l.renorm?.rMax ?? 0 },
  { where: 'renorm', name: 'dMax', get: (l) => l.renorm?.dMax ?? 0 },
  { name: 'kernelSize[0]', names: POOL_NAMES('poolSize[0]'), get: sizeField('kernelSize', 0) },
  { name: 'kernelSize[1]', names: POOL_NAMES('poolSize[1]'), get: sizeField('kernelSize', 1) },
  { name: 'stride[0]', get: (l) => l.stride?.[0] ?? 1 },
  { name: 'stride[1]', get: (l) => l.stride?.[1] ?? 1 },
  { name: 'padding[0]', get: (l) => (Array.isArray(l.padding) ? l.padding[0] : 0) },
  { name: 'padding[1]', get: (l) => (Array.isArray(l.padding) ? l.padding[1] : 0) },
  { name: 'padding', get: (l) => l.padding === 'same', encode: flag, show: (v) => (v === 1 ? 'same' : v) },
];

const encode = (field, value) => (field.encode ? field.encode(value) : value);

/** The core's flat spec vector for a normalized config. */
export function toSpec(c) {
  const spec = HEADER_FIELDS.map((f) => encode(f, f.get(c)));
  for (const l of c.layers) spec.push(...LAYER_FIELDS.map((f) => encode(f, f.get(l))));
  return spec;
}

/**
 * The message for a spec value the core refused ({index, value, message} from the core):
 * "layers[1]: momentum must be a finite number in [0, 1), got 1".
 */
export function specError({ index, value, message }, layers) {
  const { where, field, layer } = specField(index);
  const name = field.names?.[layers?.[layer]?.type] ?? field.name;
  return `${where}: ${name} ${message}, got ${describe(field.show ? field.show(value) : value)}`;
}

/**
 * The field at a position of the flat spec, where it lives ('config', 'optimizer', 'layers[2]', ...),
 * and its layer's index (undefined for a header field).
 */
export function specField(index) {
  const header = index < HEADER_FIELDS.length;
  const k = header ? index : (index - HEADER_FIELDS.length) % LAYER_FIELDS.length;
  const field = header ? HEADER_FIELDS[k] : LAYER_FIELDS[k];
  const i = header ? undefined : Math.floor((index - HEADER_FIELDS.length) / LAYER_FIELDS.length);
  const layer = `layers[${i}]`;
  return { field, layer: i, where: header ? field.where : field.where ? `${layer}.${field.where}` : layer };
}

/** The normalized config of a spec vector (the inverse of toSpec). */
export function fromSpec(spec) {
  const header = HEADER_FIELDS.length;
  const layers = [];
  for (let i = 0; i < spec[11]; i++) {
    const f = spec.slice(header + i * LAYER_FIELDS.length, header + (i + 1) * LAYER_FIELDS.length);
    const type = LAYER_TYPES[f[0]];
    if (type === 'conv2d') {
      layers.push({
        type,
        filters: f[1],
        kernelSize: [f[12], f[13]],
        stride: [f[14], f[15]],
        padding: f[18] === 1 ? 'same' : [f[16], f[17]],
        useBias: f[2] === 1,
        init: INITS[f[3]],
        initStd: f[4],
      });
    } else if (type === 'maxPool2d' || type === 'avgPool2d') {
      layers.push({ type, poolSize: [f[12], f[13]], stride: [f[14], f[15]] });
    } else if (type === 'dense') {
      layers.push({ type, units: f[1], useBias: f[2] === 1, init: INITS[f[3]], initStd: f[4] });
    } else if (type === 'batchNorm') {
      layers.push({
        type,
        momentum: f[5],
        epsilon: f[6],
        runningVariance: RUNNING_VARIANCE[f[7]],
        statistics: STATISTICS[f[8]],
        biasCorrection: f[9] === 1,
        renorm: f[10] > 0 ? { rMax: f[10], dMax: f[11] } : null,
      });
    } else {
      layers.push({ type });
    }
  }
  const type = OPTIMIZERS[spec[3]];
  const optimizer =
    type === 'sgd'
      ? { type, learningRate: spec[4], momentum: spec[5], nesterov: spec[6] === 1, weightDecay: spec[10] }
      : { type, learningRate: spec[4], beta1: spec[7], beta2: spec[8], epsilon: spec[9], weightDecay: spec[10] };
  const inputShape = spec[13] > 0 ? { inputShape: [spec[12], spec[13], spec[14]] } : {};
  return { inputSize: spec[0], ...inputShape, layers, loss: LOSSES[spec[1]], optimizer, seed: spec[2] };
}
