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
const SGD_DEFAULTS = { learningRate: 0.01, momentum: 0, nesterov: false, weightDecay: 0 };
const ADAM_DEFAULTS = { learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0 };
const NETWORK_DEFAULTS = { loss: 'softmaxCrossEntropy', seed: 1 };

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

function positiveInt(where, name, value, max = 2 ** 24) {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    fail(where, `${name} must be an integer in [1, ${max}], got ${describe(value)}`);
  }
  return value;
}

function number(where, name, value, { min = -Infinity, max = Infinity, minOpen = false, maxOpen = false } = {}) {
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (minOpen ? value > min : value >= min) &&
    (maxOpen ? value < max : value <= max);
  if (!ok) {
    const lo = `${minOpen ? '(' : '['}${min}`;
    const hi = `${max}${maxOpen ? ')' : ']'}`;
    fail(where, `${name} must be a finite number in ${lo}, ${hi}, got ${describe(value)}`);
  }
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
    positiveInt(where, 'units', l.units);
    bool(where, 'useBias', l.useBias);
    oneOf(where, 'init', l.init, INITS);
    number(where, 'initStd', l.initStd, { min: 0, minOpen: true });
    return l;
  }
  if (layer.type === 'batchNorm') {
    checkKeys(where, layer, ['type', ...Object.keys(BATCH_NORM_DEFAULTS)]);
    const l = { type: 'batchNorm', ...BATCH_NORM_DEFAULTS, ...layer };
    number(where, 'momentum', l.momentum, { min: 0, max: 1, maxOpen: true });
    number(where, 'epsilon', l.epsilon, { min: 0, minOpen: true });
    oneOf(where, 'runningVariance', l.runningVariance, RUNNING_VARIANCE);
    oneOf(where, 'statistics', l.statistics, STATISTICS);
    bool(where, 'biasCorrection', l.biasCorrection);
    if (l.biasCorrection && l.statistics !== 'ema') {
      fail(where, "biasCorrection applies to statistics 'ema' only");
    }
    if (l.renorm !== null) {
      plainObject(where, 'renorm', l.renorm);
      checkKeys(`${where}.renorm`, l.renorm, ['rMax', 'dMax']);
      l.renorm = { rMax: 3, dMax: 5, ...l.renorm };
      number(`${where}.renorm`, 'rMax', l.renorm.rMax, { min: 1 });
      number(`${where}.renorm`, 'dMax', l.renorm.dMax, { min: 0 });
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
    number(where, 'learningRate', o.learningRate, { min: 0, minOpen: true });
    number(where, 'momentum', o.momentum, { min: 0, max: 1, maxOpen: true });
    bool(where, 'nesterov', o.nesterov);
    if (o.nesterov && o.momentum === 0) fail(where, 'nesterov needs momentum > 0');
    number(where, 'weightDecay', o.weightDecay, { min: 0 });
    return o;
  }
  checkKeys(where, optimizer, ['type', ...Object.keys(ADAM_DEFAULTS)]);
  const o = { type: 'adam', ...ADAM_DEFAULTS, ...optimizer };
  number(where, 'learningRate', o.learningRate, { min: 0, minOpen: true });
  number(where, 'beta1', o.beta1, { min: 0, max: 1, maxOpen: true });
  number(where, 'beta2', o.beta2, { min: 0, max: 1, maxOpen: true });
  number(where, 'epsilon', o.epsilon, { min: 0, minOpen: true });
  number(where, 'weightDecay', o.weightDecay, { min: 0 });
  return o;
}

/**
 * Checks a network config and fills in every default. Throws ConfigError naming
 * the offending field, what it must be and what it was.
 * @param {object} config
 * @param {string} [fn] the public function, for messages
 */
export function normalizeConfig(config, fn = 'createNetwork') {
  plainObject(`${fn}()`, 'config', config);
  checkKeys(`${fn}(): config`, config, ['inputSize', 'layers', 'loss', 'optimizer', 'seed']);
  const where = `${fn}(): config`;
  positiveInt(where, 'inputSize', config.inputSize);
  if (!Array.isArray(config.layers) || config.layers.length === 0) {
    fail(where, `layers must be a non-empty array, got ${describe(config.layers)}`);
  }
  const layers = config.layers.map((layer, i) => normalizeLayer(fn, layer, i));
  const loss = oneOf(where, 'loss', config.loss ?? NETWORK_DEFAULTS.loss, LOSSES);
  const optimizer = normalizeOptimizer(fn, config.optimizer ?? { type: 'adam' });
  const seed = config.seed ?? NETWORK_DEFAULTS.seed;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    fail(where, `seed must be an integer in [0, 4294967295], got ${describe(seed)}`);
  }
  const out = { inputSize: config.inputSize, layers, loss, optimizer, seed };
  if (outputSize(out) < 2 && loss === 'softmaxCrossEntropy') {
    fail(where, `softmaxCrossEntropy needs at least 2 outputs, the last layer has ${outputSize(out)}`);
  }
  return out;
}

/** The number of features a normalized config's last layer produces. */
export function outputSize(config) {
  let width = config.inputSize;
  for (const l of config.layers) if (l.type === 'dense') width = l.units;
  return width;
}

const LAYER_FIELDS = 12;

/** The core's flat spec vector for a normalized config. */
export function toSpec(c) {
  const o = c.optimizer;
  const spec = [
    c.inputSize,
    LOSSES.indexOf(c.loss),
    c.seed,
    OPTIMIZERS.indexOf(o.type),
    o.learningRate,
    o.momentum ?? 0,
    o.nesterov ? 1 : 0,
    o.beta1 ?? 0.9,
    o.beta2 ?? 0.999,
    o.epsilon ?? 1e-8,
    o.weightDecay,
    c.layers.length,
  ];
  for (const l of c.layers) {
    const d = { ...DENSE_DEFAULTS, units: 0, ...BATCH_NORM_DEFAULTS, ...l };
    spec.push(
      LAYER_TYPES.indexOf(l.type),
      d.units,
      d.useBias ? 1 : 0,
      INITS.indexOf(d.init),
      d.initStd,
      d.momentum,
      d.epsilon,
      d.runningVariance === 'unbiased' ? 1 : 0,
      d.statistics === 'cumulative' ? 1 : 0,
      d.biasCorrection ? 1 : 0,
      d.renorm ? d.renorm.rMax : 0,
      d.renorm ? d.renorm.dMax : 0,
    );
  }
  return spec;
}

/** The normalized config of a spec vector (the inverse of toSpec). */
export function fromSpec(spec) {
  const layers = [];
  for (let i = 0; i < spec[11]; i++) {
    const f = spec.slice(12 + i * LAYER_FIELDS, 12 + (i + 1) * LAYER_FIELDS);
    const type = LAYER_TYPES[f[0]];
    if (type === 'dense') {
      layers.push({ type, units: f[1], useBias: f[2] === 1, init: INITS[f[3]], initStd: f[4] });
    } else if (type === 'batchNorm') {
      layers.push({
        type,
        momentum: f[5],
        epsilon: f[6],
        runningVariance: f[7] === 1 ? 'unbiased' : 'biased',
        statistics: f[8] === 1 ? 'cumulative' : 'ema',
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
