#!/usr/bin/env node
// Two builds of the package in one process, taking turns: how a change to the core moves a rate.
// Separate processes disagree by more than most changes are worth on a shared machine (the
// same build's dense training ran 34,000 to 47,000 examples/s on two threads within ten
// minutes), and even blocks that alternate in one process move by a few percent: so each pair of
// blocks (one per build, the first of the pair alternating) gives a ratio of its own, and the
// median of the ratios is the answer. Running one folder against itself (an A/A run) shows the
// noise of the moment; docs/performance.md quotes both. The copy loaded second ran 0.2-1.6%
// faster in A/A runs (its memory, its place in V8's code space): --both-orders runs A B and then
// B A, each in a process of its own, and prints the geometric mean of the two ratios, where that
// cancels. The CPUs' distance (cpuDistance) is printed from before and after, since it decides
// what two threads can do. (scripts/bench-ab.mjs compares whole rows of the benchmark between
// processes, round by round: for changes larger than the drift between processes.)
//
//   node bench/ab.mjs --save DIR       copies web/src and web/dist (this build) to DIR
//   node bench/ab.mjs A B [--model mlp|cnn] [--job train|predict] [--batch 64]
//                         [--threads N] [--pairs 30] [--both-orders]
// A and B are package folders with src/ and dist/ (a --save copy, or web itself): prints one
// JSON line, ratio = B / A. --threads goes to each copy's configure() (default: every core;
// 1 is the single-thread module, as applications get it).
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { loadFashionMnist } from '../scripts/fashion-mnist.mjs';
import { CNN_CONFIG, INPUT, MLP_CONFIG } from './model.mjs';
import { alternatePairs, batchSteps, blockRate, copyPackage, cpuDistance, quietPoolStopWarning, warmUp } from './timing.mjs';

const { values: opts, positionals: folders } = parseArgs({
  allowPositionals: true,
  options: {
    save: { type: 'string' },
    model: { type: 'string', default: 'mlp' },
    job: { type: 'string', default: 'train' },
    batch: { type: 'string', default: '64' },
    threads: { type: 'string' },
    pairs: { type: 'string', default: '30' },
    'both-orders': { type: 'boolean', default: false },
  },
});

if (opts.save !== undefined) {
  const dir = resolve(opts.save);
  rmSync(dir, { recursive: true, force: true });
  copyPackage(dir);
  console.log(`saved web/src and web/dist to ${dir}`);
  process.exit(0);
}

const [a, b] = folders;
const { model, job } = opts;
const batch = Number(opts.batch);
const threads = opts.threads === undefined ? undefined : Number(opts.threads);
const pairs = Number(opts.pairs);
if (folders.length !== 2) throw new Error(`bench/ab.mjs A B: give two package folders, got ${folders.length} (see the header)`);
if (resolve(a) === resolve(b)) throw new Error(`bench/ab.mjs A B: ${a} twice is one instance of the package; for an A/A run, --save a copy and give it beside ${a}`);
for (const dir of folders) {
  if (!existsSync(join(dir, 'src', 'index.node.js')) || !existsSync(join(dir, 'dist'))) throw new Error(`${dir} is not a package folder (src/index.node.js and dist/)`);
}
if (!['mlp', 'cnn'].includes(model)) throw new Error(`unknown --model '${model}' (expected mlp or cnn)`);
if (!['train', 'predict'].includes(job)) throw new Error(`unknown --job '${job}' (expected train or predict)`);
if (!(Number.isInteger(batch) && batch >= 2)) throw new Error(`--batch must be an integer of at least 2, got ${opts.batch}`);
if (!(Number.isInteger(pairs) && pairs >= 1)) throw new Error(`--pairs must be a positive integer, got ${opts.pairs}`);

if (opts['both-orders']) {
  // Each order in a process of its own; B / A is r(A, B) and also 1 / r(B, A).
  const given = ['model', 'job', 'batch', 'threads', 'pairs'].flatMap((k) => (opts[k] === undefined ? [] : [`--${k}`, opts[k]]));
  const once = (first, second) => {
    const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), first, second, ...given], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    if (child.status !== 0) throw new Error(`bench/ab.mjs ${first} ${second} exited with ${child.status}`);
    return JSON.parse(child.stdout.trim().split('\n').pop());
  };
  const ab = once(a, b), ba = once(b, a);
  console.log(JSON.stringify({ ...ab, a: Math.round(Math.sqrt(ab.a * ba.b)), b: Math.round(Math.sqrt(ab.b * ba.a)), ratio: +Math.sqrt(ab.ratio / ba.ratio).toFixed(3), ratioAB: ab.ratio, ratioBA: ba.ratio, ratioQuartiles: undefined, roundTripNs: [...ab.roundTripNs, ...ba.roundTripNs] }));
  process.exit(0);
}

const PREDICT_ROWS = 1000;
// Calls per block: about 40-60 ms of the dense network's work, 100-200 ms of the CNN's.
const calls = job === 'predict' ? (model === 'cnn' ? 1 : 4) : model === 'cnn' ? 6 : Math.max(1, Math.round((30 * 64) / batch));
const examples = job === 'predict' ? PREDICT_ROWS : batch;

quietPoolStopWarning();
const { train, test } = loadFashionMnist({ trainLimit: 8192, testLimit: PREDICT_ROWS });
const xs = test.x.subarray(0, PREDICT_ROWS * INPUT);

// One copy of the package (Node keeps a module instance per URL, so each folder's configure()
// and wasm are its own) and its network, warmed up; rate() times a block (examples/s).
async function side(dir) {
  const api = await import(pathToFileURL(join(resolve(dir), 'src', 'index.node.js')).href);
  if (threads !== undefined) api.configure({ threads });
  const net = await api.createNetwork(model === 'cnn' ? CNN_CONFIG : MLP_CONFIG);
  const step = batchSteps(net, train, batch);
  let at = 0;
  const run = job === 'predict' ? () => net.predictBatch(xs) : () => step(at++);
  await warmUp(run);
  return { threads: await api.threadCount(), rate: () => blockRate({ calls, run, examples }) };
}

const before = cpuDistance();
const sides = [await side(a), await side(b)];
const { first, second, ratio, ratios } = alternatePairs(sides[0].rate, sides[1].rate, pairs);
const after = cpuDistance();
const sorted = [...ratios].sort((x, y) => x - y);
const quartile = (q) => +sorted[Math.floor(q * (sorted.length - 1))].toFixed(3);
console.log(
  JSON.stringify({
    model, job, batch: job === 'train' ? batch : PREDICT_ROWS, threads: sides.map((s) => s.threads), pairs,
    a: Math.round(first), b: Math.round(second),
    ratio: +ratio.toFixed(3), ratioQuartiles: [quartile(0.25), quartile(0.75)],
    roundTripNs: [before?.roundTripNs, after?.roundTripNs],
  }),
);
process.exit(0);
