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
