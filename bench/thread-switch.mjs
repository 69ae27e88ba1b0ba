#!/usr/bin/env node
// Threads against one thread in one process: the threaded module, one network, switched between
// 1 thread and every core every few steps (training at batch 64, batch predict of 1000, and
// single-example predict's p50), printed as one JSON line. The engine rounds compare
// separate processes, and on a shared machine one process's rate can differ from the next one's
// by half (the same one-thread job ran 2.4 to 3.8 ms a step in six processes on one CPU); here
// both sides share the process, the memory layout and the minutes, and each pair of blocks is a
// ratio of its own.
// The one-thread side is the threaded build with its pool stopped (set_thread_count(1)), not the
// single-thread build that configure({ threads: 1 }) loads: the same code at both counts.
// Single predict is also timed on the two builds an application gets (predictOneBuilds): the
// single-thread build, from a copy of the package in a temporary folder (Node keeps one instance
// of a module per URL, and configure() is per instance), against the threaded one, the same
// weights on both. Placement decides single predict between processes (one process ran 14.1 us,
// the next 21.0 us, on the same build), so one process is where a few percent can show.
//   node bench/thread-switch.mjs [--model mlp|cnn] [--quick]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadFashionMnist } from '../scripts/fashion-mnist.mjs';
import { CNN_CONFIG, INPUT, MLP_CONFIG } from './model.mjs';
import { alternatePairs, batchSteps, blockRate, copyPackage, p50Us, quietPoolStopWarning, threadedPool, warmUp } from './timing.mjs';

const model = process.argv.includes('--model') ? process.argv[process.argv.indexOf('--model') + 1] : 'mlp';
if (!['mlp', 'cnn'].includes(model)) throw new Error(`unknown --model '${model}' (expected mlp or cnn)`);
const quick = process.argv.includes('--quick');
const PAIRS = quick ? 6 : 20;
const BATCH = 64;
// Steps (calls) per block: about 60 ms of the dense network's training, 100-200 ms of the CNN's.
const STEPS = model === 'cnn' ? 6 : 30;
const PREDICT_ROWS = 1000;

// The pool is stopped and restarted from Node's main thread (first, before the module loads).
quietPoolStopWarning();
const { createNetwork } = await import('../web/src/index.node.js');
const { mod, setThreads } = await threadedPool('bench/thread-switch.mjs');
const threads = mod.bnwasmThreads;

const { train, test } = loadFashionMnist({ trainLimit: 8192, testLimit: PREDICT_ROWS });
const net = await createNetwork(model === 'cnn' ? CNN_CONFIG : MLP_CONFIG);
const trainStep = batchSteps(net, train, BATCH);
let at = 0;
const step = () => trainStep(at++);
const xs = test.x.subarray(0, PREDICT_ROWS * INPUT);
const jobs = {
  train64: { calls: STEPS, run: step, examples: BATCH },
  batchPredict: { calls: model === 'cnn' ? 1 : 4, run: () => net.predictBatch(xs), examples: PREDICT_ROWS },
};

// Single-example predict's p50 (us) over 200 calls, after 50 untimed. Its m = 1 path never
// splits, so this checks that a running pool does not slow it.
const row = (i) => test.x.subarray((i % PREDICT_ROWS) * INPUT, (i % PREDICT_ROWS + 1) * INPUT);
// Single predict's p50 on a network (this one, or the single-thread build's copy below).
const p50On = (network) => () => p50Us((x) => network.predict(x), row, 50, 200);

// PAIRS pairs (alternatePairs) of the one-thread side and the every-core side: ratio is the
// median of the pairs' speedups of the every-core side.
function alternate(oneSide, allSide, lowerIsBetter = false) {
  const { first, second, ratio, ratios } = alternatePairs(oneSide, allSide, PAIRS, lowerIsBetter);
  return { oneThread: first, allThreads: second, ratio, ratioMin: Math.min(...ratios), ratioMax: Math.max(...ratios) };
}

// measure() at 1 thread and at every core.
function pairs(measure, lowerIsBetter = false) {
  const at = (n) => () => {
    setThreads(n);
    return measure();
  };
  return alternate(at(1), at(threads), lowerIsBetter);
}

setThreads(threads);
await warmUp(() => step());
const out = { model, threads };
for (const [name, job] of Object.entries(jobs)) out[name] = pairs(() => blockRate(job));
out.predictOneUs = pairs(p50On(net), true);
setThreads(threads);

// The single-thread build in this process: a copy of web/src and web/dist.
const copy = mkdtempSync(join(tmpdir(), 'bnwasm-switch-'));
try {
  copyPackage(copy);
  const single = await import(pathToFileURL(join(copy, 'src', 'index.node.js')).href);
  single.configure({ threads: 1 });
  const stNet = await single.loadNetwork(net.save());
  const singleModule = await import(pathToFileURL(join(copy, 'src', 'module.js')).href);
  const builds = (await singleModule.loadedModules()).map((m) => m.bnwasmBuild);
  if (builds.includes('threaded')) throw new Error(`the copy loaded the threaded build (${builds.join(', ')})`);
  out.predictOneBuilds = { build: builds.join(', '), ...alternate(p50On(stNet), p50On(net), true) };
  stNet.dispose();
} finally {
  rmSync(copy, { recursive: true, force: true });
}
net.dispose();
console.log(JSON.stringify(out));
process.exit(0);
