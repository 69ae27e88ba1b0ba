#!/usr/bin/env node
// One thread's training rate on the CPU this process is pinned to (scripts/bench.mjs runs it
// under `taskset -c i` for each CPU), printed as one JSON line. The CPUs of a shared machine are
// not always equal: a virtual CPU whose physical core another tenant also runs on is slower,
// and N threads can then at most reach sum(rate_i) / max(rate_i) of one thread on the fastest.
// With --cpu i (bench/timing.mjs's concurrentCoreRates, one process per CPU at once) the line
// also names the CPU, so the lines can be told apart.
//   node bench/core-speed.mjs [--model mlp|cnn] [--cpu i]
import { loadFashionMnist } from '../scripts/fashion-mnist.mjs';
import { CNN_CONFIG, MLP_CONFIG } from './model.mjs';
import { batchSteps, warmUp } from './timing.mjs';

const option = (name) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const model = option('--model') ?? 'mlp';
const cpu = option('--cpu');
const { createNetwork, configure } = await import('../web/src/index.node.js');
configure({ threads: 1 });
const { train } = loadFashionMnist({ trainLimit: 4096, testLimit: 1 });
const net = await createNetwork(model === 'cnn' ? CNN_CONFIG : MLP_CONFIG);
const BATCH = 64;
const step = batchSteps(net, train, BATCH);
// Warm-up as in bench/run-engine.mjs (V8's optimizing tier), then 1 s of steps.
const i = await warmUp(step);
const t0 = performance.now();
let steps = 0;
while (performance.now() - t0 < 1000 || steps < 3) await step(i + steps++);
const train64 = (steps * BATCH) / ((performance.now() - t0) / 1000);
console.log(JSON.stringify({ model, train64, ...(cpu !== undefined && { cpu: Number(cpu) }) }));
net.dispose();
process.exit(0);
