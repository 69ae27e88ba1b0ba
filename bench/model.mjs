// The benchmark models, written once for every engine: the dense network 784 -> dense 256
// (no bias) -> BN -> ReLU -> dense 256 (no bias) -> BN -> ReLU -> dense 10, softmax
// cross-entropy, Adam 1e-3, BN momentum 0.9 (weight of the past), eps 1e-5; and the CNN of
// issue 10 (fashionMnistCnnConfig).
import { fashionMnistCnnConfig } from '../scripts/fashion-mnist.mjs';

export const INPUT = 784;
export const HIDDEN = 256;
export const CLASSES = 10;
export const MOMENTUM = 0.9;
export const EPSILON = 1e-5;
export const LEARNING_RATE = 1e-3;

export const MLP_CONFIG = {
  inputSize: INPUT,
  layers: [
    { type: 'dense', units: HIDDEN, useBias: false },
    { type: 'batchNorm', momentum: MOMENTUM, epsilon: EPSILON },
    { type: 'relu' },
    { type: 'dense', units: HIDDEN, useBias: false },
    { type: 'batchNorm', momentum: MOMENTUM, epsilon: EPSILON },
    { type: 'relu' },
    { type: 'dense', units: CLASSES },
  ],
  loss: 'softmaxCrossEntropy',
  optimizer: { type: 'adam', learningRate: LEARNING_RATE },
  seed: 1,
};
export const CNN_CONFIG = fashionMnistCnnConfig();

/**
 * FLOP per example of a model, from the multiply-adds the core counts per layer (a
 * multiply-add is 2 FLOP): `forward`; `train`, the forward pass, the weight gradients (as
 * many again) and the input gradients of every layer with weights but the first (nobody
 * needs the input's gradient); `layers`, each layer's forward FLOP; `conv`, the convolutions'.
 * Needs the built module (scripts/build.sh).
 */
export async function networkFlops(describeNetwork, config) {
  const { layers } = await describeNetwork(config);
  const layer = layers.map((l) => 2 * l.macs);
  const forward = layer.reduce((a, b) => a + b, 0);
  const first = layer.find((f) => f > 0) ?? 0;
  const conv = layers.reduce((s, l, i) => s + (l.type === 'conv2d' ? layer[i] : 0), 0);
  return { forward, train: 3 * forward - first, layers: layer, conv };
}

/** FLOP per example of the dense model and of the CNN (see networkFlops). */
export async function modelFlops() {
  const { describeNetwork } = await import('../web/src/index.node.js');
  return { mlp: await networkFlops(describeNetwork, MLP_CONFIG), cnn: await networkFlops(describeNetwork, CNN_CONFIG) };
}
