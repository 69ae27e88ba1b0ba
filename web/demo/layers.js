// What the page says about a network's layers, from the core's description of them
// (describeNetwork, network.layers: each layer's inputs and output shape): a one-line
// description per layer and the shapes the pictures need. Nothing here works out a shape.

/** A shape from the core ([C, H, W] or [features]) as the pictures take it. */
export const toShape = (dims) => ({ c: dims[0], h: dims[1] ?? 1, w: dims[2] ?? 1, spatial: dims.length === 3 });

const shapeText = (dims) => dims.join('×');
const pairText = ([h, w]) => (h === w ? String(h) : `${h}×${w}`);

/**
 * One line per layer: what it is, its options that matter here, and its output shape.
 * `config` is normalized (network.config, describeNetwork's config), `layers` the core's.
 */
export function describeLayers(config, layers) {
  const input = shapeText(config.inputShape ?? [config.inputSize]);
  const lines = config.layers.map((l, i) => {
    const info = layers[i];
    const into = info.inputShapes[0];
    let text;
    switch (l.type) {
      case 'dense':
        text = `dense ${l.units}${l.useBias ? '' : ', no bias'}`;
        break;
      case 'conv2d': {
        const padding = l.padding === 'same' ? ", padding 'same'" : info.pads.some((v) => v !== 0) ? `, padding ${info.pads.join('/')}` : '';
        text =
          `conv2d ${l.filters} filters ${l.kernelSize.join('×')}` +
          (l.stride.some((v) => v !== 1) ? `, stride ${pairText(l.stride)}` : '') +
          padding +
          (l.useBias ? '' : ', no bias');
        break;
      }
      case 'batchNorm':
        text = `batch norm ${into.length === 3 ? `per channel (${into[0]})` : `(${into[0]} units)`}, momentum ${l.momentum}`;
        break;
      case 'maxPool2d':
      case 'avgPool2d':
        text = `${l.type === 'maxPool2d' ? 'max' : 'average'} pool ${l.poolSize.join('×')}`;
        break;
      default:
        text = l.type;
    }
    // A layer that reads other than the one before it says which.
    const reads = info.inputs.length !== 1 || info.inputs[0] !== i - 1 ? ` of ${info.inputs.map((p) => (p < 0 ? 'the input' : `layer ${p}`)).join(' and ')}` : '';
    return { type: l.type, text: text + reads, shape: shapeText(info.outputShape) };
  });
  return { input, lines };
}

/**
 * The first conv layer and the layer whose output shows its feature maps: the last of the
 * layers right after it that keep its output's shape and have no weights of their own (batch
 * norm, activations: what the next layer sees), or the conv itself. Null for a network without
 * conv layers.
 */
export function firstConv(config, layers) {
  const conv = config.layers.findIndex((l) => l.type === 'conv2d');
  if (conv < 0) return null;
  const same = (a, b) => a.join() === b.join();
  let maps = conv;
  // A 'same' conv keeps the shape too (the ResNet's next one): its maps are not the first conv's.
  const passesOn = (l) => l.inputs.join() === String(maps) && same(l.outputShape, layers[conv].outputShape) && !l.tensors.some((t) => t.name === 'weight');
  while (maps + 1 < layers.length && passesOn(layers[maps + 1])) maps++;
  return { conv, maps, shape: toShape(layers[maps].outputShape) };
}
