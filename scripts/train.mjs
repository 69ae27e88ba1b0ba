#!/usr/bin/env node
// Trains the default network (784-256-BN-ReLU-256-BN-ReLU-10, Adam 1e-3, batch 64) on
// Fashion-MNIST through createTrainer: the network lives in a worker thread while this
// thread draws a progress bar. Then a snapshot (a main-thread Network) reports test
// accuracy by single-example inference with the learned gamma, beta and running averages.
// Ctrl+C stops training after the current mini-batch and still reports.
//   node scripts/train.mjs [--epochs N] [--batch-size N] [--seed N]
import { parseArgs } from 'node:util';
import { createTrainer } from '../web/src/index.node.js';
import { CLASS_NAMES, fashionMnistConfig, loadFashionMnist } from './fashion-mnist.mjs';

const { values: args } = parseArgs({
  options: {
    epochs: { type: 'string', default: '1' },
    'batch-size': { type: 'string', default: '64' },
    seed: { type: 'string', default: '1' },
  },
});
const epochs = Number(args.epochs);
const batchSize = Number(args['batch-size']);

const config = fashionMnistConfig({ seed: Number(args.seed) });

function bar(fraction, width = 30) {
  const full = Math.round(Math.min(1, fraction) * width);
  return '[' + '#'.repeat(full) + '-'.repeat(width - full) + ']';
}

const { train, test } = loadFashionMnist();
console.log(`Fashion-MNIST: ${train.n} training and ${test.n} test images`);
const trainer = await createTrainer(config);
const tty = process.stdout.isTTY;
const controller = new AbortController();
process.once('SIGINT', () => controller.abort());
const started = performance.now();
let lastLine = 0;
const history = await trainer.fit(train.x, train.y, {
  epochs,
  batchSize,
  transfer: true, // the training set moves to the worker; this thread does not need it again
  signal: controller.signal,
  progressInterval: tty ? 100 : 2000,
  onProgress(p) {
    const done = (p.epoch + p.batch / p.batchesPerEpoch) / epochs;
    const elapsed = (performance.now() - started) / 1000;
    const eta = done > 0 ? (elapsed / done) * (1 - done) : NaN;
    const line =
      `epoch ${p.epoch + 1}/${epochs} ${bar(done)} step ${p.step} loss ${p.loss.toFixed(4)} ` +
      `${Math.round(p.examplesPerSecond)} examples/s, ${Number.isFinite(eta) ? Math.round(eta) : '?'} s left`;
    if (tty) process.stdout.write(`\r${line.padEnd(lastLine)}`);
    else console.log(line);
    lastLine = line.length;
  },
});
if (tty) process.stdout.write('\n');
const seconds = (performance.now() - started) / 1000;
console.log(
  `${history.aborted ? 'stopped after' : 'trained'} ${history.steps} steps in ${seconds.toFixed(1)} s ` +
    `(${Math.round((history.steps * batchSize) / seconds)} examples/s in the worker)` +
    (history.loss.length ? `, last epoch's mean loss ${history.loss[history.loss.length - 1].toFixed(4)}` : ''),
);

// Test time on this thread: one example at a time, normalized with the running averages.
const net = await trainer.snapshot();
trainer.terminate();
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
console.log(`test accuracy, single-example inference with running averages (snapshot): ${((100 * correct) / test.n).toFixed(2)}%`);
for (let k = 0; k < 10; k++) {
  console.log(`  ${CLASS_NAMES[k].padEnd(12)} ${((100 * confusion[k][k]) / confusion[k].reduce((a, b) => a + b)).toFixed(1)}%`);
}
net.dispose();
