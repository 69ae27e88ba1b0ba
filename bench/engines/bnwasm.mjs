// bnwasm through its public API, the way an application calls it.
// BNWASM_ENTRY points at another copy of web/src/index.js (a baseline build
// next to its dist/) for before/after comparisons.
import { pathToFileURL } from 'node:url';
import { CLASSES, CNN_CONFIG, INPUT, MLP_CONFIG } from '../model.mjs';

// model 'mlp' (the dense network of bench/model.mjs) or 'cnn' (fashionMnistCnnConfig, the CNN of issue 10);
// threads: configure({ threads }) (undefined: the default, every core).
export async function createEngine(model = 'mlp', threads = undefined) {
  const entry = process.env.BNWASM_ENTRY ? pathToFileURL(process.env.BNWASM_ENTRY).href : '../../web/src/index.node.js';
  const { createNetwork, configure, threadCount } = await import(entry);
  if (threads !== undefined) configure({ threads });
  const net = await createNetwork(model === 'cnn' ? CNN_CONFIG : MLP_CONFIG);
  const out = new Float32Array(CLASSES);
  return {
    name: 'bnwasm',
    threads: threadCount ? await threadCount() : 1,
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
