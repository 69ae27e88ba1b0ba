#!/usr/bin/env node
// One command for the whole benchmark: bnwasm against TensorFlow.js 4.22 (wasm
// and cpu backends) on the same models and Fashion-MNIST data, plus a peak
// f32x4 probe and the kernels' own throughput in wasm. Prints a table for the
// dense network, then one for the CNN of issue 10, then MobileNetV2's depthwise
// convolutions (bench/wasm/depthwise.cpp), then torchvision's ResNet-18 and MobileNetV2 against
// PyTorch (training) and onnxruntime-web (predict), and writes bench/results/<time>.json.
//   npm run bench [-- --rounds N] [-- --cnn-rounds N] [-- --torchvision-rounds N] [-- --quick]
//                 [-- --model all|mlp|cnn|torchvision|resnet18,mobilenet_v2]
//   npm run bench:cnn    (the CNN table only: --model cnn)
//   npm run bench:torchvision   (the torchvision table only: --model torchvision; resnet18 or mobilenet_v2 for one)
//   npm run bench -- --browser [--rounds N] [--quick] [--model mlp|cnn] [--engines ...]
//                        issue 18's browser benchmark: headless Chromium on a cross-origin-isolated
//                        page, bnwasm on one thread and on every core (the trainer's worker) against
//                        TF.js wasm with its threads and jax-js wasm with its pool, the dense network
//                        and the CNN, 3 rounds unless --rounds (bench/browser/run.mjs)
//   BNWASM_BROWSERS=firefox,webkit npm run bench -- --browser [--rounds N] [--quick]
//   npm run bench -- --browser --per-engine [...]   bnwasm's main-thread Network in each browser
//                        engine (BNWASM_BROWSERS, as the browser tests read it; all three with
//                        --per-engine alone) next to Node, with the wasm kernels' probes
// Each round runs every engine once, each in a fresh Node process, in a
// rotating order, so slow drift of a shared machine hits every engine alike;
// the tables show medians over the rounds, and the 1-minute load average
// sampled before and after every round (above the core count, other work
// shared the machine). Each round also runs bnwasm at 1 thread and at every core in one process
// (bench/thread-switch.mjs), which compares the two counts without the spread between processes.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { CNN_CONFIG, modelFlops, networkFlops } from '../bench/model.mjs';
import { fmt, loadNote as describeLoad, median, table, threadsTable as compareThreads } from '../bench/report.mjs';
import { canPin, concurrentCoreRates, cpuDistance, medianPerCore, pinnedCoreRates } from '../bench/timing.mjs';
import { ONNX_FILE, OPTIMIZER, TORCHVISION_MODELS, TRAIN_BATCH } from '../bench/torchvision.mjs';
import { ensureTorchvisionFixtures } from './pytorch/torchvision-fixtures.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'cnn-rounds': { type: 'string', default: '3' },
    'torchvision-rounds': { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
    // Node: bnwasm,bnwasm-1t,tfjs-wasm,tfjs-cpu (jax-js too on request); --browser: bnwasm-1t,bnwasm,tfjs-wasm,jax-js.
    engines: { type: 'string' },
    model: { type: 'string', default: 'all' },
    browser: { type: 'boolean', default: false },
    'per-engine': { type: 'boolean', default: false },
  },
});
const positiveInt = (name) => {
  const n = Number(args[name]);
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be a positive integer, got ${args[name]}`);
  return n;
};
const rounds = positiveInt('rounds');
const cnnRounds = positiveInt('cnn-rounds');
const torchvisionRounds = positiveInt('torchvision-rounds');
const models = args.model.split(',');
const MODEL_NAMES = ['all', 'mlp', 'cnn', 'torchvision', ...TORCHVISION_MODELS];
if (!models.every((m) => MODEL_NAMES.includes(m))) throw new RangeError(`--model must be a comma-separated list of ${MODEL_NAMES.join(', ')}, got ${args.model}`);
const doMlp = models.includes('all') || models.includes('mlp');
const doCnn = models.includes('all') || models.includes('cnn');
const tvModels = TORCHVISION_MODELS.filter((m) => models.includes('all') || models.includes('torchvision') || models.includes(m));
const engines = (args.engines ?? (args.browser ? 'bnwasm-1t,bnwasm,tfjs-wasm,jax-js' : 'bnwasm,bnwasm-1t,tfjs-wasm,tfjs-cpu')).split(',');
const loads = { mlp: [], cnn: [], torchvision: [] };
const sampleLoad = (model) => loads[model].push(loadavg()[0]);
const loadNote = (model) => describeLoad(loads[model], cpus().length);
const log = (line) => process.stderr.write(`${line}\n`);
const run = (cmd, argv) => execFileSync(cmd, argv, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });

if (args.browser) {
  log('bench: building the wasm module and the probes (npm run build, bench/build-wasm.sh)');
  run('bash', ['scripts/build.sh']);
  run('bash', ['bench/build-wasm.sh']);
  const { browserBench, engineBench } = await import('../bench/browser/run.mjs');
  const options = {
    rounds: process.argv.some((a) => a.startsWith('--rounds')) ? positiveInt('rounds') : 3,
    quick: args.quick,
    models: [...(doMlp ? ['mlp'] : []), ...(doCnn ? ['cnn'] : [])],
  };
  // BNWASM_BROWSERS picks engines for the per-engine table, as it did before the peers' table.
  if (args['per-engine'] || process.env.BNWASM_BROWSERS) await engineBench(options);
  else await browserBench({ ...options, engines });
  process.exit(0);
}

// ---- builds ---------------------------------------------------------------------------
log('bench: building the wasm module (npm run build)');
run('bash', ['scripts/build.sh']);
log('bench: building the peak and kernel probes (bench/build-wasm.sh)');
run('bash', ['bench/build-wasm.sh']);
// FLOP per example, from the multiply-adds the core counts for each model's layers.
const { mlp, cnn } = await modelFlops();
const [FORWARD_FLOP, TRAIN_FLOP] = [mlp.forward, mlp.train];
const [CNN_FORWARD_FLOP, CNN_TRAIN_FLOP, CNN_CONV_FLOP] = [cnn.forward, cnn.train, cnn.conv];
// The CNN's two convolutions, whose shapes bench/wasm/kernels.cpp times as conv1 and conv2.
const CNN_CONFIG_CONVS = CNN_CONFIG.layers.flatMap((l, i) => (l.type === 'conv2d' ? [i] : []));

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
const size = !doMlp ? undefined : {
  // The dense network fetches the dense build (web/src/module.js); a network with a convolution
  // or pooling layer, the full one (the `conv` line below).
  bnwasm: await bundleBytes("export * from './web/src/index.js';", ['web/dist/bnwasm-dense.wasm'], 'bnwasm (index.js bundle + bnwasm-dense.wasm)'),
  // Issue 18's bound (<= 70 KiB) is on an app that imports createNetwork alone (scripts/size.mjs
  // breaks it down): the rows above count the whole API.
  createNetwork: await bundleBytes("export { createNetwork } from './web/src/index.js';", ['web/dist/bnwasm-dense.wasm'], 'createNetwork alone + bnwasm-dense.wasm'),
  conv: await bundleBytes("export * from './web/src/index.js';", ['web/dist/bnwasm.wasm'], 'bnwasm with a conv layer (index.js bundle + bnwasm.wasm)'),
  // What importing bnwasm/interop adds on top (the core's bytes do not include it).
  interop: await bundleBytes(
    "export * from './web/src/index.js'; export * from './web/src/interop/index.js';",
    ['web/dist/bnwasm-dense.wasm'],
    'bnwasm + bnwasm/interop',
  ),
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
// Every round of either model ends with the peak and kernel probes.
const peaks = [];
const kernelRuns = [];
const depthwiseRuns = [];
// One thread's training rate pinned to each CPU (bench/core-speed.mjs under taskset), per model:
// what the threads table sets its ratios against when the CPUs are not equal.
const coreSpeeds = { mlp: [], cnn: [] };
// The same with every CPU busy at once, one process each: what independent copies of the job get.
const coresTogether = { mlp: [], cnn: [] };
const pinnable = canPin() && engines.includes('bnwasm') && engines.includes('bnwasm-1t');
// Threads against one thread in one process (bench/thread-switch.mjs), per model and round.
const switches = { mlp: [], cnn: [] };
// How far apart CPU 0 and CPU 1 were just before and just after each of those runs
// (bench/native/pingpong.c): the pool's ratio follows it (bench/placement.mjs).
const distances = { mlp: [], cnn: [] };
// The dense step's pieces on one thread and on two, in one process (bench/wasm/threads.cpp).
const stepPieces = [];
const switchable = engines.includes('bnwasm') && cpus().length > 1;
function interleavedRounds(model, count) {
  const samples = Object.fromEntries(engines.map((e) => [e, []]));
  sampleLoad(model);
  for (let r = 0; r < count; r++) {
    const order = engines.map((_, i) => engines[(i + r) % engines.length]);
    for (const engine of order) {
      log(`bench: ${model} round ${r + 1}/${count}: ${engine}`);
      const argv = ['bench/run-engine.mjs', engine, '--model', model, ...(args.quick ? ['--quick'] : [])];
      const child = spawnSync('node', argv, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
      if (child.status !== 0) throw new Error(`bench/run-engine.mjs ${engine} --model ${model} exited with ${child.status}`);
      samples[engine].push(JSON.parse(child.stdout.trim().split('\n').pop()));
    }
    log(`bench: ${model} round ${r + 1}/${count}: peak and kernel probes`);
    peaks.push(probe('peak.cjs'));
    kernelRuns.push(probe('kernels.cjs', ['64']));
    depthwiseRuns.push(probe('depthwise.cjs'));
    if (switchable) {
      log(`bench: ${model} round ${r + 1}/${count}: 1 and ${cpus().length} threads in one process`);
      const before = cpuDistance();
      switches[model].push(JSON.parse(run('node', ['bench/thread-switch.mjs', '--model', model, ...(args.quick ? ['--quick'] : [])]).trim().split('\n').pop()));
      const after = cpuDistance();
      if (before && after) distances[model].push({ before, after });
      if (model === 'mlp') {
        log(`bench: mlp round ${r + 1}/${count}: the step's pieces on 1 and ${cpus().length} threads in one process`);
        stepPieces.push(probe('threads.cjs', [args.quick ? '5' : '15', String(cpus().length)]));
      }
    }
    if (pinnable) {
      log(`bench: ${model} round ${r + 1}/${count}: one thread pinned to each CPU`);
      coreSpeeds[model].push(pinnedCoreRates(model));
      log(`bench: ${model} round ${r + 1}/${count}: one thread pinned to each CPU, all at once`);
      coresTogether[model].push(concurrentCoreRates(model));
    }
    sampleLoad(model);
  }
  return samples;
}
const samples = doMlp ? interleavedRounds('mlp', rounds) : {};
const cnnSamples = doCnn ? interleavedRounds('cnn', cnnRounds) : {};
const tvSamples = tvModels.length > 0 ? measureTorchvision(torchvisionRounds) : {};
// Per kernel and shape, the median over the rounds.
const kernels = { batch: 64, gflops: {} };
for (const key of Object.keys(kernelRuns[0].gflops)) kernels.gflops[key] = median(kernelRuns.map((k) => k.gflops[key]));
const peak = median(peaks.map((p) => p.peakGflops));
const header = (model, count) =>
  `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, Node ${process.versions.node}, medians of ${count} interleaved rounds; ${loadNote(model)}`;
const out = [];
const result = {};
if (doMlp) denseTable();
if (doMlp) threadsTable('mlp', samples);
if (doMlp) piecesTable();
if (doCnn) cnnTable();
if (doCnn) threadsTable('cnn', cnnSamples);
if (doMlp || doCnn) depthwiseTable();
if (tvModels.length > 0) await torchvisionTable();
console.log(out.join('\n'));

// ---- the dense network ----------------------------------------------------------------------
function denseTable() {
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
out.push(`bnwasm benchmark, dense network: ${header('mlp', rounds)}`);
out.push(...table(rows));
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
out.push(
  `bytes: an app that imports createNetwork alone: JS ${kib(size.createNetwork.jsGzip)} + bnwasm-dense.wasm ${kib(size.createNetwork.wasmGzip)} = ` +
    `${kib(size.createNetwork.totalGzip)} (issue 18's bound, <= 70 KiB: ${size.createNetwork.totalGzip <= 70 * 1024 ? 'met' : 'NOT met'}; the row above bundles every export)`,
);
out.push(`bytes: bnwasm/interop adds ${kib(size.interop.jsGzip - size.bnwasm.jsGzip)} of JS for those who import it`);
out.push(`bytes: bnwasm JS ${kib(size.bnwasm.jsGzip)} + bnwasm-dense.wasm ${kib(size.bnwasm.wasmGzip)} (a network with a convolution fetches bnwasm.wasm, ${kib(size.conv.wasmGzip)}, instead); TF.js JS ${kib(size.tfjs.jsGzip)} + wasm ${kib(size.tfjs.wasmGzip)} (gzip -9)`);
const nativeDir = join(root, 'bench/results');
const native = existsSync(nativeDir) ? readdirSync(nativeDir).filter((f) => f.startsWith('native-')).sort().pop() : undefined;
out.push(native ? `native Google Benchmark of the same kernels: bench/results/${native} (npm run bench:native)` : 'native Google Benchmark of the same kernels: run npm run bench:native');
Object.assign(result, {
  flopPerExample: { train: TRAIN_FLOP, forward: FORWARD_FLOP },
  medians: med,
  mediansPerCpuSecond: medCpu,
  ratiosVsTfjsWasm: Object.fromEntries(metrics.map((m) => [m, ratio(m)])),
  targets,
  effectiveTrainGflops: { train64: gflops(b?.train64), train256: gflops(b?.train256) },
  size,
  samples,
});
}

// ---- the CNN of issue 10 ----------------------------------------------------------------------
// TF.js 4.22's wasm backend cannot train this CNN (no Conv2DBackpropFilter
// kernel, tensorflow/tfjs#8474): training is compared with TF.js's cpu
// backend, the one that can, and the wasm backend's error is shown.
function cnnTable() {
  const med = {};
  const medCpu = {};
  for (const e of engines) {
    med[e] = {};
    medCpu[e] = {};
    for (const m of ['train64', 'predictOneUs', 'batchPredict']) med[e][m] = median(cnnSamples[e].map((s) => s[m]));
    for (const m of ['train64', 'batchPredict']) medCpu[e][m] = median(cnnSamples[e].map((s) => s.cpu[m]));
  }
  const b = med.bnwasm ?? {};
  const w = med['tfjs-wasm'] ?? {};
  const c = med['tfjs-cpu'] ?? {};
  const trainPeer = Number.isFinite(w.train64) ? w : c;
  const ratio = (m) => (m === 'predictOneUs' ? w[m] / b[m] : b[m] / (m === 'train64' ? trainPeer : w)[m]);
  const wasmTrainError = (cnnSamples['tfjs-wasm'] ?? []).find((s) => s.trainError)?.trainError;
  const goals = { train64: 8, predictOneUs: 5, batchPredict: 1.5 };
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
  // The convolution GEMMs: the direct kernel at both layers' shapes (one
  // image, folded batch norm + ReLU epilogue), FLOP-weighted, against the peak.
  const k = (key) => kernels.gflops[key];
  const conv1 = 'conv1 16x784x9';
  const conv2 = 'conv2 32x196x144';
  const [flop1, flop2] = cnn.layers.filter((_, i) => CNN_CONFIG_CONVS.includes(i));
  const weighted = (kind) => (flop1 + flop2) / (flop1 / k(`${conv1} ${kind}`) + flop2 / k(`${conv2} ${kind}`));
  const convGemm = weighted('conv_direct_4x8');
  const pct = (g) => `${fmt((100 * g) / peak, 0)}%`;
  const gflops = (rate, flop) => (rate * flop) / 1e9;
  rows.push([
    'convolution GEMMs (GFLOP/s, % of peak)',
    `${fmt(convGemm, 1)} (${pct(convGemm)})`,
    '',
    '',
    '',
    `>= 50% of peak ${convGemm >= peak / 2 ? 'met' : 'NOT met'}`,
  ]);
  out.push(`bnwasm benchmark, CNN of issue 10: ${header('cnn', cnnRounds)}`);
  out.push(...table(rows));
  out.push('');
  if (wasmTrainError) out.push(`TF.js wasm training: ${wasmTrainError} (tensorflow/tfjs#8474)`);
  out.push(`wasm SIMD128 peak (f32x4 mul+add chains, median of ${peaks.length}): ${fmt(peak, 1)} GFLOP/s`);
  out.push(
    `convolution GEMMs in wasm, one image (GFLOP/s, % of peak): direct 4x8 kernel with the batch norm + ReLU epilogue ` +
      `conv1 ${fmt(k(`${conv1} conv_direct_4x8`), 1)} (${pct(k(`${conv1} conv_direct_4x8`))}), conv2 ${fmt(k(`${conv2} conv_direct_4x8`), 1)} (${pct(k(`${conv2} conv_direct_4x8`))}), ` +
      `FLOP-weighted ${fmt(convGemm, 1)} (${pct(convGemm)}); the whole layer with its shifted copies ${fmt(weighted('layer'), 1)} (${pct(weighted('layer'))}); ` +
      `training's backward GEMMs dweight ${fmt(weighted('dweight gemm_packed'), 1)}, input gradient ${fmt(weighted('dcol gemm_tn_packed'), 1)}`,
  );
  const wino = (kind) => k(`${conv2} winograd23_4x8 ${kind}`);
  out.push(
    `inference's conv2 (16 -> 32 channels) goes through Winograd F(2x2, 3x3) with its batch norm, ReLU and max pool fused: ` +
      `the kernel's own multiply-adds ${fmt(wino('multiply-adds'), 1)} GFLOP/s (${pct(wino('multiply-adds'))} of peak), ` +
      `${fmt(wino('effective'), 1)} GFLOP/s effective (the direct form's ${fmt(flop2 / 1e6, 2)} MFLOP per image over its time), ` +
      `the whole layer ${fmt(k(`${conv2} winograd layer effective`), 1)} effective against the direct layer's ${fmt(k(`${conv2} layer`), 1)}`,
  );
  out.push(
    `effective rates: training batch 64 ${fmt(gflops(b.train64, CNN_TRAIN_FLOP), 1)} GFLOP/s wall-clock, ` +
      `${fmt(gflops(medCpu.bnwasm?.train64, CNN_TRAIN_FLOP), 1)} per CPU-second (${pct(gflops(medCpu.bnwasm?.train64, CNN_TRAIN_FLOP))} of peak); ` +
      `batch predict ${fmt(gflops(b.batchPredict, CNN_FORWARD_FLOP), 1)} GFLOP/s, TF.js wasm ${fmt(gflops(w.batchPredict, CNN_FORWARD_FLOP), 1)} ` +
      `(${fmt(CNN_TRAIN_FLOP / 1e6, 2)} MFLOP per training example, ${fmt(CNN_FORWARD_FLOP / 1e6, 2)} per image, ${fmt(CNN_CONV_FLOP / 1e6, 2)} of it in the convolutions)`,
  );
  const wc = medCpu['tfjs-wasm'] ?? {};
  const cc = medCpu['tfjs-cpu'] ?? {};
  out.push(
    `per CPU-second: training ${fmt(medCpu.bnwasm?.train64)} vs TF.js cpu ${fmt(cc.train64)} (${fmt(medCpu.bnwasm?.train64 / cc.train64, 2)}x), ` +
      `batch predict ${fmt(medCpu.bnwasm?.batchPredict)} vs TF.js wasm ${fmt(wc.batchPredict)} (${fmt(medCpu.bnwasm?.batchPredict / wc.batchPredict, 2)}x) examples/s`,
  );
  result.cnn = {
    rounds: cnnRounds,
    flopPerExample: { train: CNN_TRAIN_FLOP, forward: CNN_FORWARD_FLOP, conv: CNN_CONV_FLOP },
    medians: med,
    mediansPerCpuSecond: medCpu,
    ratios: { train64: ratio('train64'), predictOneUs: ratio('predictOneUs'), batchPredict: ratio('batchPredict') },
    trainPeer: trainPeer === c ? 'tfjs-cpu' : 'tfjs-wasm',
    convGemmGflops: convGemm,
    convGemmPercentOfPeak: (100 * convGemm) / peak,
    samples: cnnSamples,
  };
}

// ---- bnwasm on every core against bnwasm on one (bench/report.mjs) ------------------------------
function threadsTable(model, runs) {
  const all = runs.bnwasm, one = runs['bnwasm-1t'];
  if (!all || !one) return;
  const { lines, detail } = compareThreads(model, all, one, { note: loadNote(model), cores: medianPerCore(coreSpeeds[model]), together: medianPerCore(coresTogether[model]), switches: switches[model], distances: distances[model] });
  out.push(...lines);
  (result.threads ??= {})[model] = detail;
}

// The dense step's pieces, each timed on one thread and on two in alternating blocks of one
// process; medians over the rounds. A piece alone shows what its split gives; the pieces that
// chain two jobs show what handing data from one core to the other costs.
function piecesTable() {
  if (stepPieces.length === 0) return;
  // Entries are pieces (one thread against all) or versus (two ways to the same result, both on
  // every thread); the median over the rounds of an entry's value.
  const named = (kind) => stepPieces[0].pieces.filter((p) => p[kind]).map((p) => p[kind]);
  const over = (kind) => (name, key) => median(stepPieces.map((run) => run.pieces.find((p) => p[kind] === name)[key]));
  const names = named('piece'), at = over('piece');
  const versus = named('versus'), vs = over('versus');
  const rows = [['piece of the dense step, batch 64 (build/bench/threads.cjs)', '1 thread (us)', `${stepPieces[0].threads} threads (us)`, 'ratio']];
  for (const name of names) rows.push([name, fmt(at(name, 'oneThreadUs'), 1), fmt(at(name, 'allThreadsUs'), 1), `${fmt(at(name, 'ratio'), 2)}x`]);
  out.push('');
  out.push(`the dense step's pieces in one process, one thread and ${stepPieces[0].threads} in alternating blocks ` +
    `(${stepPieces[0].reps} pairs a round, median over ${stepPieces.length} rounds):`);
  out.push(...table(rows));
  for (const name of versus)
    out.push(`${name}: ${fmt(vs(name, 'aUs'), 1)} against ${fmt(vs(name, 'bUs'), 1)} us, (b) takes ${fmt(vs(name, 'ratio'), 3)}x (a)'s time`);
  (result.threads ??= {}).pieces = Object.fromEntries(names.map((n) => [n, { oneThreadUs: at(n, 'oneThreadUs'), allThreadsUs: at(n, 'allThreadsUs'), ratio: at(n, 'ratio') }]));
  result.threads.versus = Object.fromEntries(versus.map((n) => [n, { aUs: vs(n, 'aUs'), bUs: vs(n, 'bUs'), ratio: vs(n, 'ratio') }]));
}

// ---- MobileNetV2's depthwise convolutions ------------------------------------------------------
// Per shape (torchvision's mobilenet_v2 at 3x32x32, one image, one thread): the
// kernels the build dispatches to, in GFLOP/s and share of the peak, and the
// layer's time through them against the grouped convolution that ran before
// (with relu6 as a layer of its own at inference); the totals weight each
// shape by its layers in the network. Medians over the rounds.
function depthwiseTable() {
  const keys = Object.keys(depthwiseRuns[0].values);
  const v = Object.fromEntries(keys.map((k) => [k, median(depthwiseRuns.map((r) => r.values[k]))]));
  const pct = (g) => `${fmt((100 * g) / peak, 0)}%`;
  const rate = (g) => `${fmt(g, 1)} (${pct(g)})`;
  const rows = [['shape (channels x size, stride)', 'layers', 'forward + BN + ReLU6', 'input gradient', 'weight gradient',
    'inference us: now / before', 'training us: now / before']];
  const total = { inference: 0, inferenceBefore: 0, training: 0, trainingBefore: 0, flop: 0 };
  for (const [C, size, stride, layers] of depthwiseRuns[0].shapes) {
    const n = `${C}x${size}x${size} s${stride}`;
    const inf = v[`${n} inference (us)`], infBefore = v[`${n} inference grouped (us)`];
    const train = v[`${n} training (us)`], trainBefore = v[`${n} training grouped (us)`];
    rows.push([n, String(layers), rate(v[`${n} forward`]), rate(v[`${n} dinput`]), rate(v[`${n} dweight`]),
      `${fmt(inf, 1)} / ${fmt(infBefore, 1)}`, `${fmt(train, 1)} / ${fmt(trainBefore, 1)}`]);
    total.inference += layers * inf;
    total.inferenceBefore += layers * infBefore;
    total.training += layers * train;
    total.trainingBefore += layers * trainBefore;
    const out = Math.floor((size - 1) / stride) + 1;
    total.flop += layers * 2 * C * out * out * 9;
  }
  rows.push(['all 17 layers, per image', '17', '', '', '',
    `${fmt(total.inference, 0)} / ${fmt(total.inferenceBefore, 0)} (${fmt(total.inferenceBefore / total.inference, 1)}x)`,
    `${fmt(total.training, 0)} / ${fmt(total.trainingBefore, 0)} (${fmt(total.trainingBefore / total.training, 1)}x)`]);
  out.push('');
  out.push(`MobileNetV2's depthwise convolutions at 3x32x32 in wasm, one image, one thread (GFLOP/s, % of the ` +
    `${fmt(peak, 1)} GFLOP/s peak; ${fmt(total.flop / 1e6, 2)} MFLOP forward per image); ${loadNote(doCnn ? 'cnn' : 'mlp')}`);
  out.push(...table(rows));
  result.depthwise = { values: v, shapes: depthwiseRuns[0].shapes, totals: total };
}

// ---- torchvision's ResNet-18 and MobileNetV2 ----------------------------------------------------
// Per round and model, each engine once in a fresh process, in a rotating order: bnwasm on one
// thread and on every core (training at batch TRAIN_BATCH, then single-image predict of the
// exported ONNX file), onnxruntime-web's wasm backend on one thread (predict, the same file),
// PyTorch 1.13 with torch.set_num_threads(1) (training, bench_torchvision.py); then the peak and
// kernel probes. The models: the parity test's generator (ensureTorchvisionFixtures).
function measureTorchvision(count) {
  const TV_ENGINES = ['bnwasm-1t', 'bnwasm', 'ort', 'pytorch'];
  const dir = ensureTorchvisionFixtures('onnx', { log });
  const runs = Object.fromEntries(tvModels.map((m) => [m, Object.fromEntries(TV_ENGINES.map((e) => [e, []]))]));
  sampleLoad('torchvision');
  for (let r = 0; r < count; r++) {
    for (const model of tvModels) {
      for (const engine of TV_ENGINES.map((_, i) => TV_ENGINES[(i + r) % TV_ENGINES.length])) {
        log(`bench: torchvision round ${r + 1}/${count}: ${model} ${engine}`);
        const [cmd, argv] = engine === 'pytorch'
          ? ['/usr/bin/python3', ['scripts/pytorch/bench_torchvision.py', join(dir, `${model}-initial.safetensors`), model, String(TRAIN_BATCH),
              args.quick ? '1' : '3', String(OPTIMIZER.learningRate), String(OPTIMIZER.momentum)]]
          : ['node', ['bench/run-torchvision.mjs', engine, model, dir, ...(args.quick ? ['--quick'] : [])]];
        const child = spawnSync(cmd, argv, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        if (child.status !== 0) throw new Error(`${argv[0]} ${engine} ${model} exited with ${child.status}`);
        runs[model][engine].push(JSON.parse(child.stdout.trim().split('\n').pop()));
      }
    }
    log(`bench: torchvision round ${r + 1}/${count}: peak and kernel probes`);
    peaks.push(probe('peak.cjs'));
    kernelRuns.push(probe('kernels.cjs', ['64']));
    sampleLoad('torchvision');
  }
  return { dir, runs };
}

// Per model: training images/s at batch TRAIN_BATCH against PyTorch (goal 0.5x, the mark 1x) and
// single-image predict p50 against onnxruntime-web (goal 1.5x faster), bnwasm's ratio on one
// thread (the fair comparison: both peers run one); the GFLOP/s each reaches with the FLOP the
// core counts for the network's layers (bench/model.mjs networkFlops: a training image is the
// forward pass, the weight gradients and every input gradient but the first layer's).
async function torchvisionTable() {
  const { describeNetwork } = await import('../web/src/index.node.js');
  const { dir, runs } = tvSamples;
  const pct = (g) => `${fmt((100 * g) / peak, 0)}%`;
  const threads = runs[tvModels[0]].bnwasm[0]?.threads ?? NaN;
  const rows = [['model', 'job', 'bnwasm 1 thread', `bnwasm ${threads} threads`, 'peer (1 thread)', 'bnwasm 1t / peer (per CPU-second)', 'goal',
    'GFLOP/s: bnwasm 1t / all / peer', 'share of peak: 1t / all / peer']];
  const detail = {};
  const notes = [];
  for (const model of tvModels) {
    const fixture = JSON.parse(readFileSync(join(dir, `${model}.json`), 'utf8'));
    const flop = await networkFlops(describeNetwork, fixture.config);
    const m = (engine, key) => median(runs[model][engine].map((s) => s[key]));
    const train = { one: m('bnwasm-1t', 'trainImagesPerSecond'), all: m('bnwasm', 'trainImagesPerSecond'), peer: m('pytorch', 'trainImagesPerSecond') };
    const trainCpu = { one: m('bnwasm-1t', 'cpuImagesPerSecond'), all: m('bnwasm', 'cpuImagesPerSecond'), peer: m('pytorch', 'cpuImagesPerSecond') };
    const predict = { one: m('bnwasm-1t', 'predictOneUs'), all: m('bnwasm', 'predictOneUs'), peer: m('ort', 'predictOneUs') };
    const trainG = Object.fromEntries(Object.entries(train).map(([k, v]) => [k, (v * flop.train) / 1e9]));
    const predictG = Object.fromEntries(Object.entries(predict).map(([k, v]) => [k, flop.forward / (v * 1e3)]));
    const trainRatio = train.one / train.peer;
    const predictRatio = predict.peer / predict.one;
    const three = (g, f) => [g.one, g.all, g.peer].map(f).join(' / ');
    rows.push([model, `training, batch ${TRAIN_BATCH} (images/s)`, fmt(train.one, 1), fmt(train.all, 1), `${fmt(train.peer, 1)} PyTorch`,
      `${fmt(trainRatio, 2)}x (${fmt(trainCpu.one / trainCpu.peer, 2)}x)`, `>= 0.5x ${trainRatio >= 0.5 ? 'met' : 'NOT met'}; 1x ${trainRatio >= 1 ? 'met' : 'not met'}`,
      three(trainG, (g) => fmt(g, 1)), three(trainG, pct)]);
    rows.push([model, 'single-image predict p50 (us)', fmt(predict.one, 0), fmt(predict.all, 0), `${fmt(predict.peer, 0)} ORT web`,
      `${fmt(predictRatio, 2)}x faster`, `>= 1.5x ${predictRatio >= 1.5 ? 'met' : 'NOT met'}`,
      three(predictG, (g) => fmt(g, 1)), three(predictG, pct)]);
    notes.push(`${model}: ${fmt(flop.forward / 1e6, 1)} MFLOP forward and ${fmt(flop.train / 1e6, 1)} MFLOP per training image; ` +
      `training per CPU-second: bnwasm 1 thread ${fmt(trainCpu.one, 1)}, ${threads} threads ${fmt(trainCpu.all, 1)}, PyTorch ${fmt(trainCpu.peer, 1)} images/s ` +
      `(${fmt(trainCpu.one / trainCpu.peer, 2)}x)`);
    detail[model] = { flopPerImage: flop, train, trainPerCpuSecond: trainCpu, predictOneUs: predict, trainGflops: trainG, predictGflops: predictG,
      ratios: { train: trainRatio, predict: predictRatio }, samples: runs[model] };
  }
  const profiles = [];
  for (const model of tvModels) {
    const config = JSON.parse(readFileSync(join(dir, `${model}.json`), 'utf8')).config;
    const profile = await convProfile(describeNetwork, config, (TRAIN_BATCH / detail[model].train.one) * 1000, (TRAIN_BATCH / detail[model].trainPerCpuSecond.one) * 1000);
    profiles.push(`${model}: ${profile.line}`);
    detail[model].convProfile = profile.kinds;
  }
  const torch = runs[tvModels[0]].pytorch[0];
  out.push('');
  out.push(`torchvision models at 3x32x32 (weights=None, num_classes=10): ${header('torchvision', torchvisionRounds)}`);
  out.push(`training: softmax cross-entropy, SGD momentum ${OPTIMIZER.momentum}, batch norm in training mode, against PyTorch ${torch.torch} ` +
    `(torch.set_num_threads(1), mkldnn ${torch.mkldnn ? 'on' : 'off'}); predict: ${ONNX_FILE('<model>')} through importONNX and onnxruntime-web's wasm backend (numThreads 1)`);
  out.push(...table(rows));
  out.push('');
  out.push(`peak: wasm SIMD128 f32x4 mul+add chains, median of ${peaks.length}: ${fmt(peak, 1)} GFLOP/s; the packed 4x8 GEMM kernel alone ` +
    `(64x256x784) reaches ${fmt(kernels.gflops['fwd1 64x256x784 gemm_packed_4x8'], 1)} GFLOP/s (${pct(kernels.gflops['fwd1 64x256x784 gemm_packed_4x8'])})`);
  out.push(...notes);
  out.push(`where bnwasm's 1-thread training step goes: each convolution timed alone at batch ${TRAIN_BATCH} (build/bench/conv_layers.cjs, ` +
    'the functions the conv2d layer calls; ms per step, GFLOP/s):');
  out.push(...profiles);
  result.torchvision = { rounds: torchvisionRounds, batch: TRAIN_BATCH, optimizer: OPTIMIZER, onnx: ONNX_FILE('<model>'), ...detail };
}

// Each convolution of a network timed alone in wasm, one thread, forward and backward at batch
// TRAIN_BATCH (bench/wasm/conv_layers.cpp), with the shapes the core gives; summed by kind
// (stem, 3x3, 1x1, depthwise, by stride) and by output size, next to the measured training step
// (stepMs wall-clock, stepCpuMs of CPU: on a shared machine both are wall-clock and inflated alike).
async function convProfile(describeNetwork, config, stepMs, stepCpuMs) {
  const { layers, config: full } = await describeNetwork(config);
  const convs = layers.filter((l) => l.type === 'conv2d');
  const spec = convs.map((l) => {
    const o = full.layers[l.index];
    const [C, H, W] = l.inputShapes[0];
    const [F, OH, OW] = l.outputShape;
    const [, perGroup, KH, KW] = l.tensors[0].shape;
    return [C, H, W, F, KH, KW, o.stride[0], o.stride[1], l.pads[0], l.pads[1], OH, OW, C / perGroup].join(',');
  }).join(';');
  const { layers: times } = probe('conv_layers.cjs', [String(TRAIN_BATCH), spec]);
  const kinds = {};
  const sizes = {};
  let total = 0;
  convs.forEach((l, i) => {
    const o = full.layers[l.index];
    const [C] = l.inputShapes[0];
    const [, perGroup, KH, KW] = l.tensors[0].shape;
    const kind = l.index === 0 ? `stem ${KH}x${KW}` : `${perGroup === 1 && C > 1 ? 'depthwise ' : ''}${KH}x${KW}${o.stride[0] > 1 ? ` s${o.stride[0]}` : ''}`;
    const k = (kinds[kind] ??= { layers: 0, forwardMs: 0, backwardMs: 0, flop: 0 });
    const flop = 2 * l.macs * TRAIN_BATCH;
    k.layers++;
    k.forwardMs += times[i][0];
    k.backwardMs += times[i][1];
    k.flop += flop * (l.index === 0 ? 2 : 3);
    total += times[i][0] + times[i][1];
    const size = `${l.outputShape[1]}x${l.outputShape[2]}`;
    sizes[size] = (sizes[size] ?? 0) + times[i][0] + times[i][1];
  });
  const parts = Object.entries(kinds).sort((a, b) => b[1].forwardMs + b[1].backwardMs - a[1].forwardMs - a[1].backwardMs).map(([kind, k]) =>
    `${kind} (${k.layers}) ${fmt(k.forwardMs, 0)} + ${fmt(k.backwardMs, 0)} ms, ${fmt(k.flop / ((k.forwardMs + k.backwardMs) * 1e6), 1)} GFLOP/s`);
  return {
    kinds,
    line: `convolutions ${fmt(total, 0)} ms (the whole step: ${fmt(stepMs, 0)} ms wall-clock, ${fmt(stepCpuMs, 0)} ms of CPU); ` +
      `forward + backward by kind: ${parts.join('; ')}; by output size: ${Object.entries(sizes).map(([n, ms]) => `${n} ${fmt(ms, 0)} ms`).join(', ')}`,
  };
}

const resultsDir = join(root, 'bench/results');
mkdirSync(resultsDir, { recursive: true });
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const file = join(resultsDir, `bench-${stamp}.json`);
writeFileSync(
  file,
  JSON.stringify(
    {
      date: new Date().toISOString(),
      machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.versions.node },
      rounds,
      quick: args.quick,
      model: args.model,
      loadAverage: loads,
      ...result,
      peakGflops: peak,
      peaks,
      kernels,
      table: out,
    },
    null,
    2,
  ),
);
console.log(`\nwrote ${file.slice(root.length + 1)}`);
