#!/usr/bin/env node
// One command for the whole benchmark: bnwasm against TensorFlow.js 4.22 (wasm
// and cpu backends) on the same model and Fashion-MNIST data, plus a peak
// f32x4 probe and the kernels' own throughput in wasm. Prints a table and
// writes bench/results/<time>.json.
//   npm run bench [-- --rounds N] [-- --quick]
// Each round runs every engine once, each in a fresh Node process, in a
// rotating order, so slow drift of a shared machine hits every engine alike;
// the table shows medians over the rounds.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { FORWARD_FLOP, TRAIN_FLOP } from '../bench/model.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    quick: { type: 'boolean', default: false },
    engines: { type: 'string', default: 'bnwasm,tfjs-wasm,tfjs-cpu' },
  },
});
const rounds = Number(args.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new RangeError(`--rounds must be a positive integer, got ${args.rounds}`);
const engines = args.engines.split(',');

const median = (a) => {
  const s = a.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const log = (line) => process.stderr.write(`${line}\n`);
const run = (cmd, argv) => execFileSync(cmd, argv, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

// ---- builds ---------------------------------------------------------------------------
if (!existsSync(join(root, 'web/dist/bnwasm.wasm'))) {
  log('bench: building the wasm module (npm run build)');
  run('bash', ['scripts/build.sh']);
}
log('bench: building the peak and kernel probes (bench/build-wasm.sh)');
run('bash', ['bench/build-wasm.sh']);

// ---- bytes a browser downloads ------------------------------------------------------------
async function bundleBytes(entryCode, wasmFiles, label) {
  const { build } = await import('esbuild');
  const result = await build({
    stdin: { contents: entryCode, resolveDir: root, loader: 'js' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2020',
    write: false,
    logLevel: 'silent',
    // Node-only branches (reading the .wasm from disk) are never fetched by a page.
    external: ['node:*', 'fs', 'path', 'os', 'worker_threads', 'crypto', 'perf_hooks', 'util'],
  });
  const js = result.outputFiles[0].contents;
  const wasm = wasmFiles.map((f) => readFileSync(join(root, f)));
  const jsGzip = gzipSync(js, { level: 9 }).length;
  const wasmGzip = wasm.reduce((s, b) => s + gzipSync(b, { level: 9 }).length, 0);
  return { label, jsBytes: js.length, jsGzip, wasmBytes: wasm.reduce((s, b) => s + b.length, 0), wasmGzip, totalGzip: jsGzip + wasmGzip };
}
const size = {
  bnwasm: await bundleBytes("export * from './web/src/index.js';", ['web/dist/bnwasm.wasm'], 'bnwasm (index.js bundle + bnwasm.wasm)'),
  // The wasm backend fetches one of its three binaries; with SIMD and no
  // cross-origin isolation, the SIMD one.
  tfjs: await bundleBytes(
    "export * from '@tensorflow/tfjs-core'; export * from '@tensorflow/tfjs-layers'; export * from '@tensorflow/tfjs-backend-wasm';",
    ['node_modules/@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm'],
    'TF.js core + layers + wasm backend (+ simd .wasm)',
  ),
};

// ---- probes ---------------------------------------------------------------------------
const probe = (file, argv = []) => JSON.parse(run('node', [join('build/bench', file), ...argv]).trim());

// ---- interleaved rounds -------------------------------------------------------------------
const samples = Object.fromEntries(engines.map((e) => [e, []]));
const peaks = [];
const kernelRuns = [];
for (let r = 0; r < rounds; r++) {
  const order = engines.map((_, i) => engines[(i + r) % engines.length]);
  for (const engine of order) {
    log(`bench: round ${r + 1}/${rounds}: ${engine}`);
    const child = spawnSync('node', ['bench/run-engine.mjs', engine, ...(args.quick ? ['--quick'] : [])], {
      cwd: root,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`bench/run-engine.mjs ${engine} exited with ${child.status}`);
    samples[engine].push(JSON.parse(child.stdout.trim().split('\n').pop()));
  }
  log(`bench: round ${r + 1}/${rounds}: peak and kernel probes`);
  peaks.push(probe('peak.cjs'));
  kernelRuns.push(probe('kernels.cjs', ['64']));
}
// Per kernel and shape, the median over the rounds.
const kernels = { batch: 64, gflops: {} };
for (const key of Object.keys(kernelRuns[0].gflops)) kernels.gflops[key] = median(kernelRuns.map((k) => k.gflops[key]));

// ---- summary ------------------------------------------------------------------------------
const metrics = ['train64', 'train256', 'predictOneUs', 'batchPredict'];
const med = {};
const medCpu = {};
for (const e of engines) {
  med[e] = {};
  medCpu[e] = {};
  for (const m of metrics) med[e][m] = median(samples[e].map((s) => s[m]));
  for (const m of ['train64', 'train256', 'batchPredict']) medCpu[e][m] = median(samples[e].map((s) => s.cpu[m]));
}
const peak = median(peaks.map((p) => p.peakGflops));
const b = med.bnwasm;
const w = med['tfjs-wasm'];
const ratio = (m) => (b && w ? (m === 'predictOneUs' ? w[m] / b[m] : b[m] / w[m]) : NaN);
const gflops = (rate) => (rate * TRAIN_FLOP) / 1e9;
const targets = {
  train64: { need: 10, ok: ratio('train64') >= 10 },
  train256: { need: 10, ok: ratio('train256') >= 10 },
  predictOneUs: { need: 5, ok: ratio('predictOneUs') >= 5 },
  batchPredict: { need: 1.2, ok: ratio('batchPredict') >= 1.2 },
  bytes: { need: 0.2, ok: size.bnwasm.totalGzip <= size.tfjs.totalGzip / 5 },
};

const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');
const kib = (n) => `${fmt(n / 1024, 1)} KiB`;
const rows = [
  ['', 'bnwasm', 'TF.js wasm', 'TF.js cpu', 'bnwasm / TF.js wasm', 'target'],
  ...[
    ['training, batch 64 (examples/s)', 'train64', 0],
    ['training, batch 256 (examples/s)', 'train256', 0],
    ['single-example predict p50 (us)', 'predictOneUs', 1],
    ['batch predict, 1000 examples (examples/s)', 'batchPredict', 0],
  ].map(([label, m, d]) => [
    label,
    fmt(b?.[m], d),
    fmt(w?.[m], d),
    fmt(med['tfjs-cpu']?.[m], d),
    `${fmt(ratio(m), 2)}x${m === 'predictOneUs' ? ' faster' : ''}`,
    `>= ${targets[m].need}x ${targets[m].ok ? 'met' : 'NOT met'}`,
  ]),
  [
    'bytes a browser downloads (gzip)',
    kib(size.bnwasm.totalGzip),
    kib(size.tfjs.totalGzip),
    '',
    `${fmt(size.bnwasm.totalGzip / size.tfjs.totalGzip, 3)}x`,
    `<= 0.2x ${targets.bytes.ok ? 'met' : 'NOT met'}`,
  ],
];
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
const line = (r) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(' | ')} |`;
const out = [];
out.push(`bnwasm benchmark: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.versions.node}, medians of ${rounds} interleaved rounds`);
out.push(line(rows[0]));
out.push(`|${widths.map((wd, c) => (c === 0 ? '-'.repeat(wd + 2) : `${'-'.repeat(wd + 1)}:`)).join('|')}|`);
for (const r of rows.slice(1)) out.push(line(r));
out.push('');
const kernelAt = (k, key) => k.gflops[key];
out.push(`wasm SIMD128 peak (f32x4 mul+add chains, median of ${peaks.length}): ${fmt(peak, 1)} GFLOP/s`);
const bc = medCpu.bnwasm;
const wc = medCpu['tfjs-wasm'];
for (const [m, B] of [['train64', 64], ['train256', 256]]) {
  out.push(
    `effective training rate, batch ${B}: bnwasm ${fmt(gflops(b?.[m]), 1)} GFLOP/s wall-clock, ${fmt(gflops(bc?.[m]), 1)} per CPU-second ` +
      `= ${fmt((100 * gflops(b?.[m])) / peak, 0)}% / ${fmt((100 * gflops(bc?.[m])) / peak, 0)}% of peak; ` +
      `TF.js wasm ${fmt(gflops(w?.[m]), 2)} GFLOP/s (${fmt(TRAIN_FLOP / 1e6, 2)} MFLOP per example)`,
  );
}
if (bc && wc) {
  // On a shared machine the rate per CPU-second is what each engine does with
  // a core to itself; its ratio should agree with the wall-clock one.
  out.push(
    `per CPU-second: training batch 64 ${fmt(bc.train64)} vs ${fmt(wc.train64)} (${fmt(bc.train64 / wc.train64, 2)}x), ` +
      `batch 256 ${fmt(bc.train256)} vs ${fmt(wc.train256)} (${fmt(bc.train256 / wc.train256, 2)}x), ` +
      `batch predict ${fmt(bc.batchPredict)} vs ${fmt(wc.batchPredict)} (${fmt(bc.batchPredict / wc.batchPredict, 2)}x) examples/s`,
  );
}
out.push(`single-example predict: ${fmt(FORWARD_FLOP / 1e6, 2)} MFLOP dense; bnwasm skips the zero inputs and ReLU zeros exactly`);
const bnSamples = samples.bnwasm ?? [];
if (bnSamples.length > 0 && bnSamples[0].foldedPredictOneUs !== undefined) {
  const fOne = median(bnSamples.map((s) => s.foldedPredictOneUs));
  const fBatch = median(bnSamples.map((s) => s.foldedBatchPredict));
  out.push(
    `folded inference (toInference: batch norm folded into dense): predict p50 ${fmt(fOne, 1)} us vs ${fmt(b.predictOneUs, 1)} unfolded ` +
      `(${fmt(b.predictOneUs / fOne, 2)}x), batch predict ${fmt(fBatch)} vs ${fmt(b.batchPredict)} examples/s (${fmt(fBatch / b.batchPredict, 2)}x)`,
  );
}
out.push(
  `kernels in wasm, medians (GFLOP/s): forward 64x256x784 packed 4x8 ${fmt(kernelAt(kernels, 'fwd1 64x256x784 gemm_packed_4x8'), 1)}, ` +
    `dW 256x784x64 as a^T b ${fmt(kernelAt(kernels, 'dW1 256x784x64 gemm_tn_packed_4x8'), 1)}, ` +
    `one row 1x256x784 dense 1x32 ${fmt(kernelAt(kernels, 'predict1 1x256x784 gemm_packed_1x32'), 1)}`,
);
out.push(`bytes: bnwasm JS ${kib(size.bnwasm.jsGzip)} + wasm ${kib(size.bnwasm.wasmGzip)}; TF.js JS ${kib(size.tfjs.jsGzip)} + wasm ${kib(size.tfjs.wasmGzip)} (gzip -9)`);
const nativeDir = join(root, 'bench/results');
const native = existsSync(nativeDir) ? readdirSync(nativeDir).filter((f) => f.startsWith('native-')).sort().pop() : undefined;
out.push(native ? `native Google Benchmark of the same kernels: bench/results/${native} (npm run bench:native)` : 'native Google Benchmark of the same kernels: run npm run bench:native');
console.log(out.join('\n'));

mkdirSync(nativeDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const file = join(nativeDir, `bench-${stamp}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.versions.node },
      rounds,
      quick: args.quick,
      flopPerExample: { train: TRAIN_FLOP, forward: FORWARD_FLOP },
      medians: med,
      mediansPerCpuSecond: medCpu,
      ratiosVsTfjsWasm: Object.fromEntries(metrics.map((m) => [m, ratio(m)])),
      targets,
      peakGflops: peak,
      peaks,
      effectiveTrainGflops: { train64: gflops(b?.train64), train256: gflops(b?.train256) },
      size,
      kernels,
      samples,
      table: out,
    },
    null,
    2,
  ),
);
console.log(`\nwrote ${file.slice(root.length + 1)}`);
