// The benchmark model, written once for every engine: 784 -> dense 256 (no
// bias) -> BN -> ReLU -> dense 256 (no bias) -> BN -> ReLU -> dense 10,
// softmax cross-entropy, Adam 1e-3, BN momentum 0.9 (weight of the past), eps 1e-5.
export const INPUT = 784;
export const HIDDEN = 256;
export const CLASSES = 10;
export const MOMENTUM = 0.9;
export const EPSILON = 1e-5;
export const LEARNING_RATE = 1e-3;

// Multiply-adds count 2 FLOP. Forward: every dense layer; backward: dW for
// every dense layer, dX for all but the first (nobody needs the input's gradient).
const dense = [
  [INPUT, HIDDEN],
  [HIDDEN, HIDDEN],
  [HIDDEN, CLASSES],
];
export const FORWARD_FLOP = dense.reduce((s, [i, o]) => s + 2 * i * o, 0);
export const TRAIN_FLOP = 2 * FORWARD_FLOP + dense.slice(1).reduce((s, [i, o]) => s + 2 * i * o, 0);

// The CNN benchmark model (issue 10), the network of fashionMnistCnnConfig():
// 1x28x28 -> conv 16 3x3 'same' (no bias) -> BN -> ReLU -> max pool 2 -> conv 32
// 3x3 'same' (no bias) -> BN -> ReLU -> max pool 2 -> dense 128 (no bias) -> BN
// -> ReLU -> dense 10. FLOP as above: conv layers count 2 * filters * positions
// * (inChannels * 3 * 3); the first layer needs no input gradient.
const convAndDense = [
  2 * 16 * 28 * 28 * (1 * 9), // conv 1
  2 * 32 * 14 * 14 * (16 * 9), // conv 2
  2 * (32 * 7 * 7) * 128, // dense 1
  2 * 128 * CLASSES, // dense 2
];
export const CNN_FORWARD_FLOP = convAndDense.reduce((s, f) => s + f, 0);
export const CNN_CONV_FLOP = convAndDense[0] + convAndDense[1];
export const CNN_TRAIN_FLOP = 2 * CNN_FORWARD_FLOP + convAndDense.slice(1).reduce((s, f) => s + f, 0);
