// Imports what scripts/pytorch/train_ddp.py wrote (model.onnx and
// model.safetensors) into bnwasm, checks that both give the same network,
// predicts the test set one example at a time and prints the accuracy next to
// PyTorch's eval accuracy and the largest output difference; optionally
// refreshes the population statistics and saves a bnwasm model.
//
//   node scripts/pytorch/import_ddp.mjs DIR [--recompute-statistics] [--save FILE]
//
// Exits with status 1 when the accuracies differ by more than 0.1 point or an
// output by more than 1e-5.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { importONNX, loadSafetensors } from '../../web/src/interop/index.node.js';
import { loadFashionMnist } from '../fashion-mnist.mjs';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'recompute-statistics': { type: 'boolean', default: false }, save: { type: 'string' } },
});
const dir = positionals[0];
if (!dir) {
  console.error('usage: node scripts/pytorch/import_ddp.mjs DIR [--recompute-statistics] [--save FILE]');
  process.exit(2);
}
const reference = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8'));
const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
const fromOnnx = await importONNX(readFileSync(join(dir, 'model.onnx')), { loss: 'softmaxCrossEntropy' });
const net = await loadSafetensors(readFileSync(join(dir, 'model.safetensors')), config);

// The two files must describe the same network: equal tensors, equal layers.
const a = fromOnnx.getWeights();
const b = net.getWeights();
const same = a.length === b.length && a.every((t, i) => t.layer === b[i].layer && t.name === b[i].name && t.values.every((v, k) => v === b[i].values[k]));
console.log(`ONNX and safetensors imports identical: ${same}`);
fromOnnx.dispose();

const { test } = loadFashionMnist({ trainLimit: args['recompute-statistics'] ? reference.trainLimit : 0, testLimit: reference.testCount });
const probabilities = new Float64Array(readFileSync(join(dir, 'test-probabilities.f64')).buffer.slice(0));

function singleExampleAccuracy() {
  const out = new Float32Array(10);
  let correct = 0;
  let worst = 0;
  for (let i = 0; i < test.y.length; i++) {
    net.predict(test.x.subarray(i * 784, (i + 1) * 784), out);
    let best = 0;
    for (let c = 0; c < 10; c++) {
      if (out[c] > out[best]) best = c;
      worst = Math.max(worst, Math.abs(out[c] - probabilities[i * 10 + c]));
    }
    if (best === test.y[i]) correct++;
  }
  return { accuracy: correct / test.y.length, worst };
}

const pct = (v) => `${(100 * v).toFixed(2)}%`;
const { accuracy, worst } = singleExampleAccuracy();
const gap = Math.abs(accuracy - reference.accuracy) * 100;
console.log(`DDP run: ${reference.processes} processes x batch ${reference.batchSizePerProcess}, ${reference.steps} steps, PyTorch ${reference.torch}`);
console.log(`test accuracy (${test.y.length} examples): PyTorch eval ${pct(reference.accuracy)}   bnwasm predict() one at a time ${pct(accuracy)}   (gap ${gap.toFixed(2)} points)`);
console.log(`largest |bnwasm - PyTorch float64| over ${test.y.length * 10} probabilities: ${worst.toExponential(2)}`);
const ok = gap <= 0.1 && worst <= 1e-5 && same;

if (args['recompute-statistics']) {
  const { train } = loadFashionMnist({ trainLimit: reference.trainLimit, testLimit: 0 });
  await net.recomputeStatistics(train.x);
  const after = singleExampleAccuracy();
  console.log(`after recomputeStatistics over ${train.y.length} training examples: bnwasm ${pct(after.accuracy)}`);
}
if (args.save) {
  writeFileSync(args.save, net.save());
  console.log(`saved ${args.save} (open it with loadNetwork, or in the demo: npm start, then Open a model…)`);
}
net.dispose();
if (!ok) {
  console.error('import_ddp: bnwasm and PyTorch disagree beyond 0.1 point of accuracy or 1e-5 in an output');
  process.exit(1);
}
