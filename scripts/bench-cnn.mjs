#!/usr/bin/env node
// The CNN benchmark (issue 10): bnwasm against TensorFlow.js 4.22 (wasm and
// cpu backends) on the Fashion-MNIST CNN of bench/model.mjs, same data, in
// interleaved rounds (each engine in a fresh Node process, rotating order), as
// scripts/bench.mjs does for the dense network. Prints a table and writes
// bench/results/bench-cnn-<time>.json.
//   npm run bench:cnn [-- --rounds N] [-- --quick]
// Goals from the issue: training >= 8x TF.js wasm, single-image predict >= 5x,
// batch predict >= 1.5x. TF.js 4.22's wasm backend cannot train this CNN (no
// Conv2DBackpropFilter kernel, tensorflow/tfjs#8474): training is compared with
// TF.js's cpu backend, the one that can, and the wasm backend's error is shown.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CNN_FORWARD_FLOP, CNN_TRAIN_FLOP } from '../bench/model.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, quick: { type: 'boolean', default: false } },
});
const rounds = Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`--rounds must be a positive integer, got ${args.rounds}`);
const engines = ['bnwasm', 'tfjs-wasm', 'tfjs-cpu'];
const log = (line) => process.stderr.write(`${line}\n`);
const median = (a) => {
  const s = a.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

log('bench:cnn: building the wasm module and the peak probe');
execFileSync('bash', ['scripts/build.sh'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
execFileSync('bash', ['bench/build-wasm.sh'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });

const samples = Object.fromEntries(engines.map((e) => [e, []]));
const peaks = [];
const load = [loadavg()[0]];
for (let r = 0; r < rounds; r++) {
  for (const engine of engines.map((_, i) => engines[(i + r) % engines.length])) {
    log(`bench:cnn: round ${r + 1}/${rounds}: ${engine}`);
    const child = spawnSync('node', ['bench/run-engine.mjs', engine, '--model', 'cnn', ...(args.quick ? ['--quick'] : [])], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`bench/run-engine.mjs ${engine} --model cnn exited with ${child.status}`);
    samples[engine].push(JSON.parse(child.stdout.trim().split('\n').pop()));
  }
  peaks.push(JSON.parse(execFileSync('node', ['build/bench/peak.cjs'], { cwd: root, encoding: 'utf8' }).trim()).peakGflops);
  load.push(loadavg()[0]);
}

const med = {};
const medCpu = {};
for (const e of engines) {
  med[e] = {};
  medCpu[e] = {};
  for (const m of ['train64', 'predictOneUs', 'batchPredict']) med[e][m] = median(samples[e].map((s) => s[m]));
  for (const m of ['train64', 'batchPredict']) medCpu[e][m] = median(samples[e].map((s) => s.cpu[m]));
}
const b = med.bnwasm;
const w = med['tfjs-wasm'];
const c = med['tfjs-cpu'];
// Training against the TF.js backend that can train (wasm cannot, see above).
const trainPeer = Number.isFinite(w.train64) ? w : c;
const ratio = (m) => (m === 'predictOneUs' ? w[m] / b[m] : b[m] / (m === 'train64' ? trainPeer : w)[m]);
const wasmTrainError = samples['tfjs-wasm'].find((s) => s.trainError)?.trainError;
const goals = { train64: 8, predictOneUs: 5, batchPredict: 1.5 };
const peak = median(peaks);
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');
const rows = [
  ['Fashion-MNIST CNN', 'bnwasm', 'TF.js wasm', 'TF.js cpu', 'bnwasm / TF.js', 'goal (vs TF.js wasm)'],
  ...[
    ['training, batch 64 (examples/s)', 'train64', 0],
    ['single-image predict p50 (us)', 'predictOneUs', 1],
    ['batch predict, 1000 images (examples/s)', 'batchPredict', 0],
  ].map(([label, m, d]) => [
    label,
    fmt(b[m], d),
    Number.isFinite(w[m]) ? fmt(w[m], d) : 'cannot train',
    fmt(c[m], d),
    `${fmt(ratio(m), 2)}x${m === 'predictOneUs' ? ' faster' : ''}${m === 'train64' && trainPeer === c ? ' (vs cpu)' : ' (vs wasm)'}`,
    m === 'train64' && trainPeer === c
      ? `>= ${goals[m]}x: TF.js wasm cannot train`
      : `>= ${goals[m]}x ${ratio(m) >= goals[m] ? 'met' : 'NOT met'}`,
  ]),
];
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
const line = (r) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(' | ')} |`;
const gflops = (rate, flop) => (rate * flop) / 1e9;
const out = [
  `bnwasm CNN benchmark: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.versions.node}, ` +
    `medians of ${rounds} interleaved rounds; 1-minute load average ${load.map((l) => l.toFixed(1)).join(', ')}` +
    (Math.max(...load) > cpus().length ? ' (above the core count: other work shared the machine, the numbers are low and noisy)' : ''),
  line(rows[0]),
  `|${widths.map((wd, c) => (c === 0 ? '-'.repeat(wd + 2) : `${'-'.repeat(wd + 1)}:`)).join('|')}|`,
  ...rows.slice(1).map(line),
  '',
  ...(wasmTrainError ? [`TF.js wasm training: ${wasmTrainError} (tensorflow/tfjs#8474)`] : []),
  `wasm SIMD128 peak (f32x4 mul+add chains, median of ${peaks.length}): ${fmt(peak, 1)} GFLOP/s`,
  `effective training rate, batch 64: bnwasm ${fmt(gflops(b.train64, CNN_TRAIN_FLOP), 2)} GFLOP/s wall-clock, ` +
    `${fmt(gflops(medCpu.bnwasm.train64, CNN_TRAIN_FLOP), 2)} per CPU-second (${fmt((100 * gflops(medCpu.bnwasm.train64, CNN_TRAIN_FLOP)) / peak, 0)}% of peak); ` +
    `TF.js cpu ${fmt(gflops(c.train64, CNN_TRAIN_FLOP), 2)} GFLOP/s (${fmt(CNN_TRAIN_FLOP / 1e6, 2)} MFLOP per example)`,
  `effective batch predict: bnwasm ${fmt(gflops(b.batchPredict, CNN_FORWARD_FLOP), 2)} GFLOP/s, TF.js wasm ${fmt(gflops(w.batchPredict, CNN_FORWARD_FLOP), 2)} GFLOP/s ` +
    `(${fmt(CNN_FORWARD_FLOP / 1e6, 2)} MFLOP per image)`,
  `per CPU-second: training ${fmt(medCpu.bnwasm.train64)} vs TF.js cpu ${fmt(medCpu['tfjs-cpu'].train64)} (${fmt(medCpu.bnwasm.train64 / medCpu['tfjs-cpu'].train64, 2)}x), ` +
    `batch predict ${fmt(medCpu.bnwasm.batchPredict)} vs TF.js wasm ${fmt(medCpu['tfjs-wasm'].batchPredict)} (${fmt(medCpu.bnwasm.batchPredict / medCpu['tfjs-wasm'].batchPredict, 2)}x) examples/s`,
];
console.log(out.join('\n'));
const dir = join(root, 'bench/results');
mkdirSync(dir, { recursive: true });
const file = join(dir, `bench-cnn-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(
  file,
  JSON.stringify({ date: new Date().toISOString(), machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.versions.node }, rounds, quick: args.quick, loadAverage: load, flopPerExample: { train: CNN_TRAIN_FLOP, forward: CNN_FORWARD_FLOP }, medians: med, mediansPerCpuSecond: medCpu, peakGflops: peak, samples, table: out }, null, 2),
);
console.log(`\nwrote ${file.slice(root.length + 1)}`);
