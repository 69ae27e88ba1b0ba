// bnwasm through its public API, the way an application calls it.
// BNWASM_ENTRY points at another copy of web/src/index.js (a baseline build
// next to its dist/) for before/after comparisons.
import { pathToFileURL } from 'node:url';
import { CLASSES, EPSILON, HIDDEN, INPUT, LEARNING_RATE, MOMENTUM } from '../model.mjs';
import { fashionMnistCnnConfig } from '../../scripts/fashion-mnist.mjs';

// model 'mlp' (the dense network above) or 'cnn' (fashionMnistCnnConfig, the CNN of issue 10).
export async function createEngine(model = 'mlp') {
  const entry = process.env.BNWASM_ENTRY ? pathToFileURL(process.env.BNWASM_ENTRY).href : '../../web/src/index.node.js';
  const { createNetwork } = await import(entry);
  const net = await createNetwork(model === 'cnn' ? fashionMnistCnnConfig() : {
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
  });
  const out = new Float32Array(CLASSES);
  return {
    name: 'bnwasm',
    // Batches are typed arrays: what bnwasm takes as they are.
    prepareBatches(x, y, batch, count) {
      const list = [];
      for (let b = 0; b < count; b++) {
        list.push([x.subarray(b * batch * INPUT, (b + 1) * batch * INPUT), y.subarray(b * batch, (b + 1) * batch)]);
      }
      return list;
    },
    async trainBatch([xb, yb]) {
      return net.trainBatch(xb, yb);
    },
    predictOne(x) {
      return net.predict(x, out);
    },
    predictBatch(xs) {
      return net.predictBatch(xs);
    },
    // The same trained network with every batch norm folded into its dense
    // layer (Network.toInference), as an engine for the inference measurements.
    async folded() {
      const f = await net.toInference();
      const fout = new Float32Array(CLASSES);
      return {
        predictOne: (x) => f.predict(x, fout),
        predictBatch: (xs) => f.predictBatch(xs),
        dispose: () => f.dispose(),
      };
    },
    dispose() {
      net.dispose();
    },
  };
}
