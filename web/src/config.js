// Network configs: validation with defaults, and the flat spec vector the core
// reads (its layout is documented once, in cpp/include/bnwasm/network.h).
import { ConfigError, describe } from './errors.js';

const LAYER_TYPES = ['dense', 'batchNorm', 'relu', 'sigmoid', 'tanh'];
const LOSSES = ['softmaxCrossEntropy', 'meanSquaredError'];
const OPTIMIZERS = ['sgd', 'adam'];
const INITS = ['auto', 'heUniform', 'glorotUniform', 'normal'];
const RUNNING_VARIANCE = ['biased', 'unbiased'];
const STATISTICS = ['ema', 'cumulative'];

// Each option's default, written once.
const DENSE_DEFAULTS = { useBias: true, init: 'auto', initStd: 0.01 };
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
  checkKeys(where, layer, ['type']);
  return { type: layer.type };
}

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
  checkKeys(`${fn}(): config`, config, ['inputSize', 'layers', 'loss', 'optimizer', 'seed']);
  const where = `${fn}(): config`;
  number(where, 'inputSize', config.inputSize);
  if (!Array.isArray(config.layers) || config.layers.length === 0) {
    fail(where, `layers must be a non-empty array, got ${describe(config.layers)}`);
  }
  const layers = config.layers.map((layer, i) => normalizeLayer(fn, layer, i));
  const loss = oneOf(where, 'loss', config.loss ?? NETWORK_DEFAULTS.loss, LOSSES);
  const optimizer = normalizeOptimizer(fn, config.optimizer ?? { type: 'adam' });
  const seed = number(where, 'seed', config.seed ?? NETWORK_DEFAULTS.seed);
  return { inputSize: config.inputSize, layers, loss, optimizer, seed };
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
];
const LAYER_FIELDS = [
  { name: 'type', get: (l) => l.type, ...enumField(LAYER_TYPES) },
  { name: 'units', get: (l) => l.units ?? 0 },
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
export function specError({ index, value, message }) {
  const header = index < HEADER_FIELDS.length;
  const k = header ? index : (index - HEADER_FIELDS.length) % LAYER_FIELDS.length;
  const field = header ? HEADER_FIELDS[k] : LAYER_FIELDS[k];
  const layer = `layers[${Math.floor((index - HEADER_FIELDS.length) / LAYER_FIELDS.length)}]`;
  const where = header ? field.where : field.where ? `${layer}.${field.where}` : layer;
  return `${where}: ${field.name} ${message}, got ${describe(field.show ? field.show(value) : value)}`;
}

/** The normalized config of a spec vector (the inverse of toSpec). */
export function fromSpec(spec) {
  const header = HEADER_FIELDS.length;
  const layers = [];
  for (let i = 0; i < spec[header - 1]; i++) {
    const f = spec.slice(header + i * LAYER_FIELDS.length, header + (i + 1) * LAYER_FIELDS.length);
    const type = LAYER_TYPES[f[0]];
    if (type === 'dense') {
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
  return { inputSize: spec[0], layers, loss: LOSSES[spec[1]], optimizer, seed: spec[2] };
}
