// Compiled by tests/js/types.test.js with `tsc --noEmit --strict`: the shipped
// declarations must accept the README's usage and reject misuse.
import { createNetwork, loadNetwork, InputError, type Checkpoint, type Network, type NetworkConfig } from 'bnwasm';

const config: NetworkConfig = {
  inputSize: 784,
  layers: [
    { type: 'dense', units: 256, useBias: false },
    { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5, runningVariance: 'biased', statistics: 'ema' },
    { type: 'relu' },
    { type: 'dense', units: 10 },
  ],
  loss: 'softmaxCrossEntropy',
  optimizer: { type: 'adam', learningRate: 1e-3 },
  seed: 1,
};

// The CNN of issue 10: image input, conv and pooling layers.
const cnn: NetworkConfig = {
  inputShape: [1, 28, 28],
  layers: [
    { type: 'conv2d', filters: 16, kernelSize: 3, padding: 'same', useBias: false },
    { type: 'batchNorm' },
    { type: 'relu' },
    { type: 'maxPool2d', poolSize: 2 },
    { type: 'conv2d', filters: 32, kernelSize: [3, 3], stride: [1, 1], padding: [1, 1] },
    { type: 'avgPool2d', poolSize: 2, stride: 1 },
    { type: 'globalAvgPool' },
    { type: 'flatten' },
    { type: 'dense', units: 10 },
  ],
};

export async function convTour(x: Float32Array): Promise<number> {
  const net = await createNetwork(cnn);
  const shape: number[] = net.getWeights()[0].shape;
  // @ts-expect-error: padding is a number, [h, w], [top, left, bottom, right], 'same' or 'valid' ('full' is not)
  await createNetwork({ inputShape: [1, 4, 4], layers: [{ type: 'conv2d', filters: 2, kernelSize: 3, padding: 'full' }] });
  // A residual connection: layers named and read by name.
  const residual = await createNetwork({
    inputShape: [1, 4, 4],
    layers: [
      { type: 'conv2d', filters: 2, kernelSize: 3, padding: 'same', name: 'a' },
      { type: 'conv2d', filters: 2, kernelSize: 3, padding: [1, 1, 1, 1], name: 'b' },
      { type: 'add', inputs: ['a', 'b'] },
      { type: 'globalAvgPool' },
      { type: 'dense', units: 2 },
    ],
  });
  const shapes: number[][] = residual.layers.map((l) => l.outputShape);
  // @ts-expect-error: inputs are layer names, not indices
  await createNetwork({ inputSize: 2, layers: [{ type: 'relu', name: 'r' }, { type: 'add', inputs: [0, 1] }] });
  // @ts-expect-error: a conv layer needs its number of filters
  await createNetwork({ inputShape: [1, 4, 4], layers: [{ type: 'conv2d', kernelSize: 3 }] });
  return net.predict(x.subarray(0, 784)).length + shape.length + shapes.length;
}

export async function tour(x: Float32Array, y: Uint8Array): Promise<number> {
  const net: Network = await createNetwork(config);
  const loss: number = net.trainBatch(x, y);
  let saved: Checkpoint | undefined;
  const history = await net.fit(x, y, {
    epochs: 1,
    batchSize: 64,
    onBatchEnd: (step, logs) => void (step + logs.loss),
    checkpointEvery: 100,
    onCheckpoint: (c) => (saved = c),
  });
  if (saved) await (await loadNetwork(saved.bytes)).fit(x, y, { epochs: 1, batchSize: 64, resumeFrom: saved });
  const p: Float32Array = net.predict(x.subarray(0, 784));
  const { accuracy } = net.evaluate(x, y);
  const w = net.getWeights();
  net.setWeights([{ layer: w[0].layer, name: 'gamma', values: new Float32Array(256) }]);
  await net.recomputeStatistics(x, { batchSize: 512, onProgress: (p) => void p.examplesDone });
  const hidden: Float32Array = net.activations(x, 1);
  const folded = await net.toInference();
  folded.predict(x.subarray(0, 784));
  // @ts-expect-error: a folded network does not train
  folded.trainBatch(x, y);
  folded.dispose();
  const again = await loadNetwork(net.save());
  again.dispose();
  net.dispose();
  try {
    net.predict(p);
  } catch (e) {
    if (e instanceof InputError) return e.index ?? -1;
  }
  // @ts-expect-error: 'batchnorm' is not a layer type (it is 'batchNorm')
  await createNetwork({ inputSize: 2, layers: [{ type: 'batchnorm' }] });
  // @ts-expect-error: predict takes a Float32Array, not a number[]
  net.predict([1, 2, 3]);
  return loss + history.loss.length + (accuracy ?? 0) + hidden.length;
}
