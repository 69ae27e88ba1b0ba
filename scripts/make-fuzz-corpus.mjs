#!/usr/bin/env node
// Writes the fuzzer's seed corpus (tests/fuzz/corpus/): small valid models of
// each kind in the current format (3: a self-describing config; the *-v1-* and
// *-v2-* seeds are format 1 and 2 files, kept for the loader's legacy path), each prefixed with the mode byte the fuzz target reads (0: bytes
// as they are; 1: repair length and CRC after mutation).
import { mkdirSync, writeFileSync } from 'node:fs';
import { createNetwork } from '../web/src/index.node.js';

const dir = new URL('../tests/fuzz/corpus/', import.meta.url);
mkdirSync(dir, { recursive: true });
const configs = {
  'dense-bn-relu-sgd': { inputSize: 3, layers: [{ type: 'dense', units: 4, useBias: false }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dense', units: 2 }], optimizer: { type: 'sgd', learningRate: 0.1, momentum: 0.9 } },
  'bn-first-adam': { inputSize: 2, layers: [{ type: 'batchNorm', biasCorrection: true }, { type: 'dense', units: 3 }, { type: 'tanh' }, { type: 'dense', units: 2 }] },
  'conv-bn-pool': { inputShape: [1, 4, 5], layers: [{ type: 'conv2d', filters: 2, kernelSize: [2, 3], padding: 'same', useBias: false }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'maxPool2d', poolSize: 2 }, { type: 'conv2d', filters: 2, kernelSize: 1 }, { type: 'avgPool2d', poolSize: 1 }, { type: 'flatten' }, { type: 'dense', units: 2 }] },
  'residual-graph': { inputShape: [2, 4, 4], layers: [{ type: 'conv2d', filters: 2, kernelSize: 3, padding: [1, 0, 1, 2], name: 'a' }, { type: 'batchNorm' }, { type: 'relu', name: 'r' }, { type: 'conv2d', filters: 2, kernelSize: 3, padding: 'same' }, { type: 'batchNorm', name: 'b' }, { type: 'add', inputs: ['r', 'b'] }, { type: 'globalAvgPool' }, { type: 'dense', units: 2 }] },
  'cumulative-renorm-mse': { inputSize: 2, layers: [{ type: 'dense', units: 3 }, { type: 'batchNorm', statistics: 'cumulative', runningVariance: 'biased', renorm: { rMax: 2, dMax: 1 } }, { type: 'sigmoid' }, { type: 'dense', units: 1 }], loss: 'meanSquaredError' },
};
for (const [name, config] of Object.entries(configs)) {
  const net = await createNetwork(config);
  const x = new Float32Array(4 * net.inputSize).map((_, i) => Math.sin(i));
  const y = config.loss === 'meanSquaredError' ? new Float32Array(4) : new Int32Array([0, 1, 0, 1]);
  net.trainBatch(x, y);
  const bytes = net.save();
  for (const mode of [0, 1]) {
    const seed = new Uint8Array(bytes.length + 1);
    seed[0] = mode;
    seed.set(bytes, 1);
    writeFileSync(new URL(`${name}-mode${mode}.bin`, dir), seed);
  }
  net.dispose();
}
console.log('wrote', Object.keys(configs).length * 2, 'seeds to tests/fuzz/corpus/');
