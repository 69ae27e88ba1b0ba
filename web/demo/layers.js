// What the page says about a network's layers: each layer's output shape and a one-line
// description, from a config (as written, or normalized: network.config). For display only:
// the core checks the shapes when it builds the network (cpp/src/spec.cpp's next_shape), and
// this follows the same arithmetic.

/** A number or [h, w], as [h, w]; `fallback` when absent (the config defaults). */
const pair = (v, fallback) => (v === undefined ? fallback : typeof v === 'number' ? [v, v] : v);

/** A layer's output: c channels of h x w when spatial, else c flat features (h = w = 1). */
const flat = (c) => ({ c, h: 1, w: 1, spatial: false });

function nextShape(l, s) {
  switch (l.type) {
    case 'dense':
      return flat(l.units);
    case 'flatten':
      return flat(s.c * s.h * s.w);
    case 'globalAvgPool':
      return flat(s.c);
    case 'conv2d': {
      const [kh, kw] = pair(l.kernelSize);
      const [sh, sw] = pair(l.stride, [1, 1]);
      // 'same' pads kernel - 1 in all (stride is 1 then); otherwise padding on each side.
      const padding = l.padding === 'same' ? [(kh - 1) / 2, (kw - 1) / 2] : pair(l.padding, [0, 0]);
      const [ph, pw] = [2 * padding[0], 2 * padding[1]];
      return { c: l.filters, h: Math.floor((s.h + ph - kh) / sh) + 1, w: Math.floor((s.w + pw - kw) / sw) + 1, spatial: true };
    }
    case 'maxPool2d':
    case 'avgPool2d': {
      const [kh, kw] = pair(l.poolSize);
      const [sh, sw] = pair(l.stride, [kh, kw]);
      return { c: s.c, h: Math.floor((s.h - kh) / sh) + 1, w: Math.floor((s.w - kw) / sw) + 1, spatial: true };
    }
    default:
      return s; // batch norm and activations keep the shape
  }
}

/** The input shape and every layer's output shape. @returns {{input, layers: object[]}} */
export function layerShapes(config) {
  const input = config.inputShape
    ? { c: config.inputShape[0], h: config.inputShape[1], w: config.inputShape[2], spatial: true }
    : flat(config.inputSize);
  let s = input;
  return { input, layers: config.layers.map((l) => (s = nextShape(l, s))) };
}

export const shapeText = (s) => (s.spatial ? `${s.c}×${s.h}×${s.w}` : String(s.c));

const pairText = ([h, w]) => `${h}×${w}`;

/** One line per layer: what it is, its options that matter here, and its output shape. */
export function describeLayers(config) {
  const { input, layers } = layerShapes(config);
  const lines = config.layers.map((l, i) => {
    const into = layers[i - 1] ?? input;
    let text;
    switch (l.type) {
      case 'dense':
        text = `dense ${l.units}${l.useBias === false ? ', no bias' : ''}`;
        break;
      case 'conv2d': {
        const stride = pair(l.stride, [1, 1]);
        const padding = l.padding === 'same' ? 'same' : pair(l.padding, [0, 0]);
        text =
          `conv2d ${l.filters} filters ${pairText(pair(l.kernelSize))}` +
          (stride.some((v) => v !== 1) ? `, stride ${pairText(stride)}` : '') +
          (padding === 'same' ? ", padding 'same'" : padding.some((v) => v !== 0) ? `, padding ${pairText(padding)}` : '') +
          (l.useBias === false ? ', no bias' : '');
        break;
      }
      case 'batchNorm':
        text = `batch norm ${into.spatial ? `per channel (${into.c})` : `(${into.c} units)`}` + (l.momentum !== undefined ? `, momentum ${l.momentum}` : '');
        break;
      case 'maxPool2d':
      case 'avgPool2d':
        text = `${l.type === 'maxPool2d' ? 'max' : 'average'} pool ${pairText(pair(l.poolSize))}`;
        break;
      default:
        text = l.type;
    }
    return { type: l.type, text, shape: shapeText(layers[i]) };
  });
  return { input: shapeText(input), lines };
}

/**
 * The first conv layer and the layer whose output shows its feature maps: the last of the batch
 * norm and activation layers right after it (what the next layer sees), or the conv itself.
 * Null for a network without conv layers.
 */
export function firstConv(config) {
  const conv = config.layers.findIndex((l) => l.type === 'conv2d');
  if (conv < 0) return null;
  let maps = conv;
  const keepsShape = (l) => !['dense', 'conv2d', 'flatten', 'maxPool2d', 'avgPool2d', 'globalAvgPool'].includes(l?.type);
  while (maps + 1 < config.layers.length && keepsShape(config.layers[maps + 1])) maps++;
  return { conv, maps, shape: layerShapes(config).layers[maps] };
}
