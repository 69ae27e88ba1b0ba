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
  if (layer.type === 'conv2d') {
    checkKeys(where, layer, ['type', 'filters', 'kernelSize', ...Object.keys(CONV2D_DEFAULTS)]);
    const l = { type: 'conv2d', filters: layer.filters, kernelSize: layer.kernelSize, ...CONV2D_DEFAULTS, ...layer };
    positiveInt(where, 'filters', l.filters);
    l.kernelSize = pair(where, 'kernelSize', l.kernelSize, 1);
    l.stride = pair(where, 'stride', l.stride, 1);
    if (l.padding !== 'same') l.padding = pair(where, 'padding', l.padding, 0, " or 'same'");
    else if (l.stride[0] !== 1 || l.stride[1] !== 1) fail(where, `padding 'same' needs stride 1 (as in PyTorch), got stride [${l.stride}]`);
    bool(where, 'useBias', l.useBias);
    oneOf(where, 'init', l.init, INITS);
    number(where, 'initStd', l.initStd, { min: 0, minOpen: true });
    return l;
  }
  if (layer.type === 'maxPool2d' || layer.type === 'avgPool2d') {
    checkKeys(where, layer, ['type', 'poolSize', 'stride']);
    const poolSize = pair(where, 'poolSize', layer.poolSize, 1);
    const stride = layer.stride === undefined ? poolSize : pair(where, 'stride', layer.stride, 1);
    return { type: layer.type, poolSize, stride };
  }
  checkKeys(where, layer, ['type']);
  return { type: layer.type };
}

// A number or [h, w] of integers >= min, as [h, w].
function pair(where, name, value, min, alternative = '') {
  const v = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(v) || v.length !== 2 || !v.every((x) => Number.isInteger(x) && x >= min && x <= 65536)) {
    fail(where, `${name} must be an integer in [${min}, 65536] or [height, width] of them${alternative}, got ${show(value)}`);
  }
  return [v[0], v[1]];
}

// An array's values, anything else as describe() puts it.
const show = (v) => (Array.isArray(v) ? `[${v.map((x) => describe(x)).join(', ')}]` : describe(v));

const shapeText = (s) => (s.length === 3 ? `${s[1]}x${s[2]}` : `${s[0]} flat features`);

/**
 * The shape of each layer's output, [channels, height, width] for images and
 * [features] for flat values, of a normalized config. Throws ConfigError for a
 * layer whose input shape does not fit it (the core checks the same, spec.cpp).
 * @param {object} config normalized
 * @param {string} [fn]
 * @returns {number[][]}
 */
export function layerShapes(config, fn = 'createNetwork') {
  let shape = config.inputShape ?? [config.inputSize];
  return config.layers.map((l, i) => {
    const where = `${fn}(): layers[${i}]`;
    const image = shape.length === 3;
    if (['conv2d', 'maxPool2d', 'avgPool2d', 'globalAvgPool'].includes(l.type) && !image) {
      fail(
        where,
        `${l.type} needs an image input [channels, height, width] (set inputShape, and put no dense, flatten or globalAvgPool layer before it), got ${shapeText(shape)}`,
      );
    }
    const size = shape.reduce((a, b) => a * b, 1);
    if (l.type === 'dense') shape = [l.units];
    else if (l.type === 'flatten') shape = [size];
    else if (l.type === 'globalAvgPool') shape = [shape[0]];
    else if (l.type === 'conv2d') {
      const [kh, kw] = l.kernelSize;
      // 'same' pads k - 1 in total (the odd one below and right, as PyTorch).
      const [ph, pw] = l.padding === 'same' ? [kh - 1, kw - 1] : [2 * l.padding[0], 2 * l.padding[1]];
      const h = shape[1] + ph, w = shape[2] + pw;
      if (kh > h || kw > w) {
        fail(where, `kernelSize ${kh}x${kw} is larger than its ${shapeText(shape)} input${ph + pw > 0 ? ` with padding (${h}x${w})` : ''}`);
      }
      shape = [l.filters, Math.floor((h - kh) / l.stride[0]) + 1, Math.floor((w - kw) / l.stride[1]) + 1];
    } else if (l.type === 'maxPool2d' || l.type === 'avgPool2d') {
      const [kh, kw] = l.poolSize;
      if (kh > shape[1] || kw > shape[2]) fail(where, `poolSize ${kh}x${kw} leaves nothing of its ${shapeText(shape)} input`);
      shape = [shape[0], Math.floor((shape[1] - kh) / l.stride[0]) + 1, Math.floor((shape[2] - kw) / l.stride[1]) + 1];
    }
    return shape;
  });
}

/**
 * Channels of each batch-norm layer (the length of its gamma, beta and
 * statistics): an image's channels, or the features of a flat input.
 * @returns {Map<number, number>} layer index -> channels
 */
export function batchNormChannels(config) {
  const shapes = layerShapes(config);
  const channels = new Map();
  config.layers.forEach((l, i) => {
    const input = i === 0 ? (config.inputShape ?? [config.inputSize]) : shapes[i - 1];
    if (l.type === 'batchNorm') channels.set(i, input[0]);
  });
  return channels;
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
  checkKeys(`${fn}(): config`, config, ['inputSize', 'inputShape', 'layers', 'loss', 'optimizer', 'seed']);
  const where = `${fn}(): config`;
  let inputShape;
  if (config.inputShape !== undefined) {
    const s = config.inputShape;
    if (!Array.isArray(s) || s.length !== 3 || !s.every((v) => Number.isInteger(v) && v >= 1 && v <= 2 ** 24)) {
      fail(where, `inputShape must be [channels, height, width], three integers in [1, ${2 ** 24}], got ${show(s)}`);
    }
    inputShape = [s[0], s[1], s[2]];
    const size = s[0] * s[1] * s[2];
    if (size > 2 ** 24) fail(where, `inputShape [${s}] holds ${size} values, at most ${2 ** 24}`);
    if (config.inputSize !== undefined && config.inputSize !== size) {
      fail(where, `inputSize ${describe(config.inputSize)} does not match inputShape [${s}] (${size} values); give one of them`);
    }
  } else {
    positiveInt(where, 'inputSize', config.inputSize);
  }
  const inputSize = inputShape ? inputShape[0] * inputShape[1] * inputShape[2] : config.inputSize;
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
  const out = { inputSize, ...(inputShape && { inputShape }), layers, loss, optimizer, seed };
  layerShapes(out, fn);
  if (outputSize(out) < 2 && loss === 'softmaxCrossEntropy') {
    fail(where, `softmaxCrossEntropy needs at least 2 outputs, the last layer has ${outputSize(out)}`);
  }
  return out;
}

/** The number of features a normalized config's last layer produces. */
export function outputSize(config) {
  return layerShapes(config).at(-1).reduce((a, b) => a * b, 1);
}

const SPEC_HEADER = 15;
const LAYER_FIELDS = 19;

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
    ...(c.inputShape ?? [0, 0, 0]),
  ];
  for (const l of c.layers) {
    const d = { ...DENSE_DEFAULTS, units: l.filters ?? 0, ...BATCH_NORM_DEFAULTS, ...l };
    const kernel = l.kernelSize ?? l.poolSize ?? [0, 0];
    const stride = l.stride ?? [1, 1];
    const padding = Array.isArray(l.padding) ? l.padding : [0, 0];
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
      ...kernel,
      ...stride,
      ...padding,
      l.padding === 'same' ? 1 : 0,
    );
  }
  return spec;
}

/** The normalized config of a spec vector (the inverse of toSpec). */
export function fromSpec(spec) {
  const layers = [];
  for (let i = 0; i < spec[11]; i++) {
    const f = spec.slice(SPEC_HEADER + i * LAYER_FIELDS, SPEC_HEADER + (i + 1) * LAYER_FIELDS);
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
  const inputShape = spec[13] > 0 ? { inputShape: [spec[12], spec[13], spec[14]] } : {};
  return { inputSize: spec[0], ...inputShape, layers, loss: LOSSES[spec[1]], optimizer, seed: spec[2] };
}
