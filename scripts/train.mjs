#!/usr/bin/env node
// Trains the default network (784-256-BN-ReLU-256-BN-ReLU-10, Adam 1e-3,
// batch 64) on Fashion-MNIST with a progress bar, then reports test accuracy
// by single-example inference with the learned gamma, beta and running averages.
//   node scripts/train.mjs [--epochs N] [--batch-size N] [--seed N]
import { parseArgs } from 'node:util';
import { createNetwork } from '../web/src/index.js';
import { CLASS_NAMES, loadFashionMnist } from './fashion-mnist.mjs';

const { values: args } = parseArgs({
  options: {
    epochs: { type: 'string', default: '1' },
    'batch-size': { type: 'string', default: '64' },
    seed: { type: 'string', default: '1' },
  },
});
const epochs = Number(args.epochs);
const batchSize = Number(args['batch-size']);

export const DEFAULT_CONFIG = {
  inputSize: 784,
  layers: [
    { type: 'dense', units: 256, useBias: false },
    { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 },
    { type: 'relu' },
    { type: 'dense', units: 256, useBias: false },
    { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 },
    { type: 'relu' },
    { type: 'dense', units: 10 },
  ],
  loss: 'softmaxCrossEntropy',
  optimizer: { type: 'adam', learningRate: 1e-3 },
  seed: Number(args.seed),
};

function bar(fraction, width = 30) {
  const full = Math.round(fraction * width);
  return '[' + '#'.repeat(full) + '-'.repeat(width - full) + ']';
}

const { train, test } = loadFashionMnist();
console.log(`Fashion-MNIST: ${train.n} training and ${test.n} test images`);
const net = await createNetwork(DEFAULT_CONFIG);
const stepsPerEpoch = Math.floor(train.n / batchSize);
const tty = process.stdout.isTTY;
const started = performance.now();
let lastPrint = 0;
await net.fit(train.x, train.y, {
  epochs,
  batchSize,
  onBatchEnd(step, { epoch, batch, loss }) {
    const now = performance.now();
    if (now - lastPrint < (tty ? 100 : 2000) && batch + 1 < stepsPerEpoch) return;
    lastPrint = now;
    const rate = (step * batchSize) / ((now - started) / 1000);
    const line = `epoch ${epoch + 1}/${epochs} ${bar((batch + 1) / stepsPerEpoch)} step ${step} loss ${loss.toFixed(4)} ${Math.round(rate)} examples/s`;
    if (tty) process.stdout.write(`\r${line}`);
    else console.log(line);
  },
});
if (tty) process.stdout.write('\n');
const seconds = (performance.now() - started) / 1000;
console.log(`trained ${net.steps} steps in ${seconds.toFixed(1)} s (${Math.round((net.steps * batchSize) / seconds)} examples/s)`);

// Test time: one example at a time, normalized with the running averages.
const probabilities = new Float32Array(10);
const confusion = CLASS_NAMES.map(() => new Array(10).fill(0));
let correct = 0;
for (let i = 0; i < test.n; i++) {
  net.predict(test.x.subarray(i * 784, (i + 1) * 784), probabilities);
  let best = 0;
  for (let k = 1; k < 10; k++) if (probabilities[k] > probabilities[best]) best = k;
  correct += best === test.y[i];
  confusion[test.y[i]][best]++;
}
console.log(`test accuracy, single-example inference with running averages: ${((100 * correct) / test.n).toFixed(2)}%`);
for (let k = 0; k < 10; k++) {
  console.log(`  ${CLASS_NAMES[k].padEnd(12)} ${((100 * confusion[k][k]) / confusion[k].reduce((a, b) => a + b)).toFixed(1)}%`);
}
net.dispose();
