#!/usr/bin/env node
// Milliseconds per training step of the dense network, averaged over each 100 steps from the
// first, in a fresh process: how long the rate takes to settle (V8's optimizing tier) and how it
// moves after (the machine). docs/performance.md quotes it.
//   node bench/steps.mjs [threads] [steps] [batch]
// (threads: configure({ threads }), default every core; steps 1500; batch 64)
import { loadFashionMnist } from '../scripts/fashion-mnist.mjs';
import { MLP_CONFIG } from './model.mjs';
import { batchSteps } from './timing.mjs';

const threads = process.argv[2] === undefined ? undefined : Number(process.argv[2]);
const total = Number(process.argv[3] ?? 1500);
const batch = Number(process.argv[4] ?? 64);
const { createNetwork, configure, threadCount } = await import('../web/src/index.node.js');
if (threads !== undefined) configure({ threads });
const { train } = loadFashionMnist({ trainLimit: 8192, testLimit: 1 });
const net = await createNetwork(MLP_CONFIG);
const step = batchSteps(net, train, batch);
const per100 = [];
let t0 = performance.now();
for (let s = 1; s <= total; s++) {
  await step(s);
  if (s % 100 === 0) {
    const t = performance.now();
    per100.push(((t - t0) / 100).toFixed(2));
    t0 = t;
  }
}
console.log(`${await threadCount()} thread(s), batch ${batch}, ms per step over each 100 steps: ${per100.join(' ')}`);
net.dispose();
process.exit(0);
