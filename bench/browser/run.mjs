// `npm run bench -- --browser`: issue 18's browser benchmark. In headless Chromium, on a page
// served cross-origin isolated (COOP/COEP, as `npm start` serves the demo), side by side in one
// run: bnwasm on one thread and on every core (its trainer: a worker with the threaded module's
// pool), TF.js 4.22's wasm backend with its threads (setThreadsCount; the threaded SIMD binary) and
// jax-js 0.1.25's wasm backend with its worker pool, on the dense network and the CNN of
// bench/model.mjs (bench/browser/page.js measures). Each round runs every engine once, in an order
// that rotates from round to round, each model in a fresh page; the tables show medians over the
// rounds, bnwasm's ratios to each peer and to its own one-thread rate with issue 18's goals, and
// what each engine reported (threads, the binaries it fetched) and learned (loss, test accuracy).
// The run fails when an engine did not learn or did not run on the threads the page allows. JSON in
// bench/results/.
// `npm run bench -- --browser --per-engine`, or `--browser` with BNWASM_BROWSERS set (engineBench):
// bnwasm's main-thread Network in each browser engine (Chromium, Firefox ESR, WebKitGTK, or those
// of BNWASM_BROWSERS), next to Node, with the wasm kernels' probes.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareDemoData } from '../../scripts/prepare-demo-data.mjs';
import { serve } from '../../scripts/serve.mjs';
import { engineNames, launch } from '../../tests/browsers/engines.mjs';
import { Page } from '../../tests/browsers/page.mjs';
import { watch } from '../../tests/browsers/proxy.mjs';
import { CNN_CONFIG, MLP_CONFIG } from '../model.mjs';
import { fmt, loadNote, median, table, threadsTable } from '../report.mjs';
import { canPin, concurrentCoreRates, medianPerCore, pinnedCoreRates } from '../timing.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const log = (line) => process.stderr.write(`${line}\n`);
const version = (pkg) => JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version;

/** The networks of the Node bench (bench/model.mjs), the same in every engine. */
const CONFIGS = { mlp: MLP_CONFIG, cnn: CNN_CONFIG };
/** How long one engine may take on one model in a page (jax-js's CNN: minutes under load). */
const PAGE_BUDGET_MS = 900_000;
/** The learning check: after the bench's training, test accuracy at least this (chance is 0.1). */
const MIN_ACCURACY = 0.3;

const ENGINE_LABELS = { 'bnwasm-1t': 'bnwasm', bnwasm: 'bnwasm', 'tfjs-wasm': 'TF.js wasm', 'jax-js': 'jax-js wasm' };

/**
 * The peers as ES modules a page can import: bench/engines/tfjs.mjs and jax.mjs bundled by esbuild
 * into build/bench/browser/. They reach bench/model.mjs, which reaches scripts/fashion-mnist.mjs
 * for the CNN's config; that file's Node imports (reading the IDX files) are never called in a
 * page, so they resolve to stubs that throw, and the lazy import of bnwasm's Node entry stays
 * an import the page never runs.
 */
async function bundlePeers() {
  const { build } = await import('esbuild');
  const nodeStubs = {
    name: 'node-stubs',
    setup(b) {
      b.onResolve({ filter: /^node:/ }, (a) => ({ path: a.path, namespace: 'node-stub' }));
      // bench/model.mjs's modelFlops() imports bnwasm's Node entry lazily; only the Node bench calls it.
      b.onResolve({ filter: /index\.node\.js$/ }, (a) => ({ path: a.path, external: true }));
      b.onLoad({ filter: /.*/, namespace: 'node-stub' }, (a) => ({
        loader: 'js',
        contents: `const stub = () => { throw new Error('${a.path} is not available in a page'); };
          export const readFileSync = stub, existsSync = stub, gunzipSync = stub, createRequire = stub, dirname = stub;`,
      }));
    },
  };
  const outdir = join(ROOT, 'build/bench/browser');
  await build({
    entryPoints: { tfjs: join(ROOT, 'bench/engines/tfjs.mjs'), jax: join(ROOT, 'bench/engines/jax.mjs') },
    outdir,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    logLevel: 'warning',
    plugins: [nodeStubs],
    // scripts/fashion-mnist.mjs reads it at load; a page has no `process`.
    define: { 'process.env.FASHION_MNIST_DIR': 'undefined' },
    // The Emscripten glue of TF.js's wasm backend names Node modules in branches a page never takes.
    external: ['fs', 'path', 'os', 'worker_threads', 'crypto', 'perf_hooks', 'util'],
  });
}

/** Opens `path` of the site in a fresh page of `browser`, once the bench page has its data. */
async function openBenchPage(browser, site) {
  const page = await Page.open(browser);
  await page.goto(`${site.url}bench/browser/`);
  await page.waitFor(() => window.benchReady === true, [], { timeout: 120_000, what: 'the bench page to load Fashion-MNIST' });
  return page;
}

/**
 * One engine on one model in a fresh page. The page runs it on its own and is polled, so a slow
 * engine (jax-js's CNN) is bounded by PAGE_BUDGET_MS, not by one driver call's timeout.
 */
async function inBrowser(browser, site, options) {
  const page = await openBenchPage(browser, site);
  try {
    await page.evaluate((o) => {
      window.benchState = { done: false };
      window.bench(o).then(
        (result) => (window.benchState = { done: true, result }),
        (error) => (window.benchState = { done: true, error: `${error?.name}: ${error?.message}` }),
      );
    }, { ...options, config: CONFIGS[options.model] });
    await page.waitFor(() => window.benchState.done, [], { timeout: PAGE_BUDGET_MS, interval: 500, what: `${options.engine} on the ${options.model}` });
    const state = await page.evaluate(() => window.benchState);
    if (state.error) throw new Error(`${browser.name}: ${options.engine}, ${options.model}: ${state.error}`);
    const errors = await page.errors();
    if (errors.length > 0) throw new Error(`${browser.name}: ${options.engine}, ${options.model}: the bench page logged errors: ${errors.join(' | ')}`);
    return state.result;
  } finally {
    await page.close();
  }
}

/** Starts the site (isolated) behind the harness's proxy and the engines; runs fn; closes all. */
async function withBrowsers(names, fn) {
  prepareDemoData();
  const { server } = await serve({ port: 0, root: ROOT, isolated: true });
  const site = await watch(`http://127.0.0.1:${server.address().port}`);
  const browsers = {};
  try {
    for (const name of names) {
      log(`bench: starting ${name}`);
      browsers[name] = await launch(name, { viewport: { width: 1000, height: 700 } });
    }
    return await fn(browsers, site);
  } finally {
    for (const browser of Object.values(browsers)) await browser.close().catch(() => {});
    await site.close();
    server.close();
  }
}

function writeResults(prefix, value) {
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${prefix}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), machine: { cpu: cpus()[0]?.model, cores: cpus().length }, ...value }, null, 2));
  console.log(`\nwrote ${file.slice(ROOT.length)}`);
}

// ---- issue 18's browser benchmark: bnwasm against its peers ------------------------------------

/** Which request of the page's log shows the binary each engine loaded. */
const BINARIES = {
  bnwasm: /\/web\/dist\/bnwasm(-mt|-dense)?\.wasm$/,
  'bnwasm-1t': /\/web\/dist\/bnwasm(-mt|-dense)?\.wasm$/,
  'tfjs-wasm': /tfjs-backend-wasm(-threaded)?(-simd)?\.wasm$/,
};

export async function browserBench({ rounds, quick, models = ['mlp', 'cnn'], engines, browsers: names = ['chromium'] }) {
  const known = Object.keys(ENGINE_LABELS);
  const unknown = engines.filter((e) => !known.includes(e));
  if (unknown.length > 0) throw new RangeError(`--engines: ${unknown.join(', ')} cannot run in a page (expected some of ${known.join(', ')})`);
  log('bench: bundling TF.js and jax-js for the page (esbuild)');
  await bundlePeers();
  await withBrowsers(names, async (browsers, site) => {
    const loads = [loadavg()[0]];
    const samples = {};
    const binaries = {};
    for (const name of names) {
      samples[name] = Object.fromEntries(engines.map((e) => [e, Object.fromEntries(models.map((m) => [m, []]))]));
      binaries[name] = Object.fromEntries(engines.map((e) => [e, new Set()]));
      for (let r = 0; r < rounds; r++) {
        const order = engines.map((_, i) => engines[(i + r) % engines.length]);
        for (const engine of order) {
          for (const model of models) {
            log(`bench: ${name}, round ${r + 1}/${rounds}: ${engine}, ${model}`);
            const mark = site.log.length;
            samples[name][engine][model].push(await inBrowser(browsers[name], site, { engine, model, quick }));
            for (const request of site.log.slice(mark)) {
              if (BINARIES[engine]?.test(request.path)) binaries[name][engine].add(`${request.path.split('/').pop()} ${request.status}`);
            }
          }
        }
        loads.push(loadavg()[0]);
      }
    }
    const versions = {
      bnwasm: JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version,
      'tfjs-wasm': version('@tensorflow/tfjs-backend-wasm'),
      'jax-js': version('@jax-js/jax'),
      ...Object.fromEntries(names.map((n) => [n, browsers[n].version])),
    };
    const out = [];
    const failures = [];
    for (const name of names) out.push(...peersReport(name, versions, samples[name], binaries[name], { rounds, quick, loads, models, failures }));
    console.log(out.join('\n'));
    writeResults('browser-peers', { rounds, quick, versions, loadAverage: loads, samples, binaries: mapSets(binaries), table: out, failures });
    if (failures.length > 0) throw new Error(`the browser bench's checks failed:\n  ${failures.join('\n  ')}`);
  });
}

const mapSets = (byBrowser) =>
  Object.fromEntries(Object.entries(byBrowser).map(([b, byEngine]) => [b, Object.fromEntries(Object.entries(byEngine).map(([e, set]) => [e, [...set]]))]));

/** The tables of one browser engine; adds to `failures` what the checks found. */
function peersReport(browser, versions, samples, binaries, { rounds, quick, loads, models, failures }) {
  const engines = Object.keys(samples);
  const med = (engine, model, key) => median(samples[engine][model].map((s) => s[key]));
  const first = (engine, model) => samples[engine][model][0] ?? {};
  const anyModel = models[0];
  const isolated = first(engines[0], anyModel).crossOriginIsolated;
  const shared = first(engines[0], anyModel).sharedArrayBuffer;
  const cores = first(engines[0], anyModel).cores;
  const threadsOf = (engine) => first(engine, anyModel).threads;
  const heading = (engine) => `${engine === 'bnwasm-1t' ? 'bnwasm' : ENGINE_LABELS[engine]} ${threadsOf(engine)} thread${threadsOf(engine) === 1 ? '' : 's'}`;
  const out = [
    `Browser benchmark, ${browser} ${versions[browser]} (headless), page cross-origin isolated ${isolated}, SharedArrayBuffer ${shared ? 'yes' : 'no'}, ` +
      `navigator.hardwareConcurrency ${cores}; ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; medians of ${rounds} interleaved rounds${quick ? ' (--quick)' : ''}; ` +
      loadNote(loads, cpus().length),
    `bnwasm ${versions.bnwasm} trains in its trainer's worker (createTrainer; threads: configure() default, every core; 1 thread: configure({ threads: 1 })), ` +
      'batch predict is trainer.predictBatch in that worker, single predict the trainer\'s snapshot() on the page\'s main thread (always one thread: a page never waits on a pool); ' +
      `TF.js ${versions['tfjs-wasm']} wasm backend (layers API) and jax-js ${versions['jax-js']} wasm (jit, valueAndGrad, batch norm and Adam written in bench/engines/jax.mjs) on the page's main thread with their own pools ` +
      '(TF.js caps its pool at half the cores it is told of, so its page tells it twice the cores: bench/browser/page.js).',
    '',
  ];
  const peers = [['tfjs-wasm', 3, 'TF.js'], ['jax-js', 2, 'jax-js']].filter(([e]) => engines.includes(e));
  const all = engines.includes('bnwasm') ? 'bnwasm' : null;
  const jobs = {
    mlp: ['dense 784-256-BN-256-BN-10, Adam', [['training, batch 64 (examples/s)', 'train64', 0], ['training, batch 256 (examples/s)', 'train256', 0],
      ['single predict p50 (us)', 'predictOneUs', 1], ['batch predict, 1000 (examples/s)', 'batchPredict', 0], ['test accuracy after the bench', 'accuracy', 3]]],
    cnn: ['CNN (bench/model.mjs CNN_CONFIG)', [['training, batch 64 (examples/s)', 'train64', 0], ['single predict p50 (us)', 'predictOneUs', 1],
      ['batch predict, 1000 (examples/s)', 'batchPredict', 0], ['test accuracy after the bench', 'accuracy', 3]]],
  };
  for (const model of models) {
    const [title, metrics] = jobs[model];
    const rows = [[title, ...engines.map(heading), ...peers.map(([, goal, label]) => `bnwasm / ${label} (goal >= ${goal}x)`)]];
    for (const [label, key, d] of metrics) {
      const cells = engines.map((e) => {
        const value = med(e, model, key);
        if (key === 'train64' && !Number.isFinite(value) && first(e, model).trainError) return 'cannot train';
        return fmt(value, d);
      });
      const ratios = peers.map(([peer, goal]) => {
        if (!all || key === 'accuracy') return '';
        const b = med(all, model, key);
        const p = med(peer, model, key);
        if (!Number.isFinite(p)) return '';
        if (key === 'predictOneUs') return `${fmt(p / b, 2)}x faster`;
        const ratio = b / p;
        return `${fmt(ratio, 2)}x ${ratio >= goal ? 'met' : 'NOT met'}`;
      });
      rows.push([label, ...cells, ...ratios]);
    }
    out.push(...table(rows), '');
    const error = engines.map((e) => first(e, model).trainError && `${ENGINE_LABELS[e]} training: ${first(e, model).trainError}`).filter(Boolean);
    if (error.length > 0) out.push(...error.map((e) => `${e} (tensorflow/tfjs#8474)`), '');
  }
  // bnwasm on every core against one, from the same rounds (bench/report.mjs, as the Node bench).
  if (engines.includes('bnwasm') && engines.includes('bnwasm-1t')) {
    for (const model of models) {
      const { lines } = threadsTable(model, samples.bnwasm[model], samples['bnwasm-1t'][model], {
        note: `${browser}; single predict on the page's main thread in both`,
        where: "configure({ threads: 1 }), both in the trainer's worker",
        // One thread pinned to each CPU in Node, 3 runs, right after the page rounds; then every
        // CPU at once, one process each, 3 runs.
        cores: canPin() ? medianPerCore([0, 1, 2].map(() => pinnedCoreRates(model))) : undefined,
        together: canPin() ? medianPerCore([0, 1, 2].map(() => concurrentCoreRates(model))) : undefined,
      });
      out.push(...lines.slice(1), '');
    }
    const page = (engine) => med(engine, 'mlp', 'batchPredictPage');
    if (models.includes('mlp')) {
      out.push(`bnwasm's predictBatch on the page's main thread (one thread, the snapshot): ${fmt(page('bnwasm'))} examples/s (1-thread page ${fmt(page('bnwasm-1t'))}); in the worker on every core: ${fmt(med('bnwasm', 'mlp', 'batchPredict'))}`, '');
    }
  }
  // What each engine reported, and the checks: every engine learned; every engine ran on the
  // threads the page allows (every core with SharedArrayBuffer, else one).
  const expected = isolated && shared ? cores : 1;
  const checks = [['engine', 'model', 'threads (reported)', 'binaries fetched', 'losses (steps; bnwasm: fits)', 'loss first -> last', 'accuracy', 'check']];
  for (const engine of engines) {
    for (const model of models) {
      for (const [r, s] of samples[engine][model].entries()) {
        const wanted = engine === 'bnwasm-1t' ? 1 : expected;
        const problems = [];
        if (s.threads !== wanted) problems.push(`${s.threads} threads, expected ${wanted}`);
        if (engine === 'tfjs-wasm' && expected > 1 && ![...binaries[engine]].some((b) => b.startsWith('tfjs-backend-wasm-threaded-simd.wasm 200'))) {
          problems.push('the threaded SIMD binary was not fetched');
        }
        if (!s.trainError) {
          if (!(s.accuracy >= MIN_ACCURACY)) problems.push(`accuracy ${fmt(s.accuracy, 3)} < ${MIN_ACCURACY}`);
          if (!(s.steps >= 2)) problems.push(`${s.steps ?? 0} training losses: too few to see the loss fall`);
          else if (!(s.lossLast < s.lossFirst)) problems.push(`the loss did not fall (${fmt(s.lossFirst, 3)} -> ${fmt(s.lossLast, 3)})`);
        }
        failures.push(...problems.map((p) => `${browser}, ${engine}, ${model}, round ${r + 1}: ${p}`));
        if (r > 0 && problems.length === 0) continue; // one line per engine and model unless a round failed
        checks.push([
          `${engine}${r > 0 ? ` (round ${r + 1})` : ''}`,
          model,
          `${s.threads}${engine === 'jax-js' ? ` (${s.workersStarted} pool workers started)` : ''}${engine === 'tfjs-wasm' ? ' (getThreadsCount)' : ''}${engine.startsWith('bnwasm') ? ' (trainer.threads)' : ''}`,
          [...(binaries[engine] ?? [])].join(', ') || (engine === 'jax-js' ? 'kernels compiled in the page' : ''),
          String(s.steps ?? ''),
          s.trainError ? 'cannot train' : `${fmt(s.lossFirst, 3)} -> ${fmt(s.lossLast, 3)}`,
          fmt(s.accuracy, 3),
          problems.length === 0 ? 'ok' : problems.join('; '),
        ]);
      }
    }
  }
  out.push(
    `What each engine reported and learned (checks: threads ${expected === 1 ? '1 (no SharedArrayBuffer)' : `= ${expected}, every core`} for all but bnwasm's 1-thread row; ` +
      `loss falls and test accuracy >= ${MIN_ACCURACY} where the engine trains; chance is 0.1):`,
    ...table(checks),
    '',
  );
  return out;
}

// ---- bnwasm's main-thread Network in each browser engine ------------------------------------------

/** The peak and kernel probes (bench/wasm) in a fresh page of `browser`. */
async function probesInBrowser(browser, site) {
  const page = await openBenchPage(browser, site);
  try {
    return await page.evaluate(() => window.probes());
  } finally {
    await page.close();
  }
}

/** The same probes in Node. */
function probesInNode() {
  const probe = (file, argv = []) =>
    JSON.parse(spawnSync(process.execPath, [join('build/bench', file), ...argv], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).stdout.trim());
  return { peak: probe('peak.cjs'), kernels: probe('kernels.cjs', ['64']) };
}

/** One model in a fresh Node process (bench/run-engine.mjs), on one thread like the page's main thread. */
function inNode(model, quick) {
  const child = spawnSync(process.execPath, ['bench/run-engine.mjs', 'bnwasm-1t', '--model', model, ...(quick ? ['--quick'] : [])], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (child.status !== 0) throw new Error(`bench/run-engine.mjs bnwasm-1t --model ${model} exited with ${child.status}`);
  return JSON.parse(child.stdout.trim().split('\n').pop());
}

/** The wasm SIMD128 peak and the kernels that carry each measurement, per engine (GFLOP/s). */
function kernelTable(runners, versions, probes) {
  const columns = [
    ['f32x4 peak', (p) => p.peak.peakGflops],
    ['dense fwd 64x256x784', (p) => p.kernels.gflops['fwd1 64x256x784 gemm_packed_4x8']],
    ['dW 256x784x64', (p) => p.kernels.gflops['dW1 256x784x64 gemm_tn_packed_4x8']],
    ['predict row 1x256x784', (p) => p.kernels.gflops['predict1 1x256x784 gemm_packed_1x32']],
    ['conv2 direct', (p) => p.kernels.gflops['conv2 32x196x144 conv_direct_4x8']],
    ['conv2 Winograd', (p) => p.kernels.gflops['conv2 32x196x144 winograd23_4x8 multiply-adds']],
    ['conv2 dweight', (p) => p.kernels.gflops['conv2 32x196x144 dweight gemm_packed']],
  ];
  return table([
    ['wasm kernels (GFLOP/s)', ...columns.map(([name]) => name)],
    ...runners.map((runner) => [`${runner === 'node' ? 'Node (V8)' : runner} ${versions[runner]}`, ...columns.map(([, pick]) => fmt(median(probes[runner].map(pick)), 1))]),
  ]);
}

export async function engineBench({ rounds, quick, models = ['mlp', 'cnn'] }) {
  const names = engineNames();
  await withBrowsers(names, async (browsers, site) => {
    const loads = [loadavg()[0]];
    const runners = ['node', ...names];
    const samples = Object.fromEntries(runners.map((r) => [r, Object.fromEntries(models.map((m) => [m, []]))]));
    const probes = Object.fromEntries(runners.map((r) => [r, []]));
    for (let r = 0; r < rounds; r++) {
      const order = runners.map((_, i) => runners[(i + r) % runners.length]);
      for (const runner of order) {
        for (const model of models) {
          log(`bench: round ${r + 1}/${rounds}: ${runner}, ${model}`);
          samples[runner][model].push(runner === 'node' ? inNode(model, quick) : await inBrowser(browsers[runner], site, { engine: 'bnwasm-page', model, quick }));
        }
        log(`bench: round ${r + 1}/${rounds}: ${runner}, peak and kernel probes`);
        probes[runner].push(runner === 'node' ? probesInNode() : await probesInBrowser(browsers[runner], site));
      }
      loads.push(loadavg()[0]);
    }
    const versions = { node: process.versions.node, ...Object.fromEntries(names.map((n) => [n, browsers[n].version])) };
    const med = (runner, model, key) => median((samples[runner][model] ?? []).map((s) => s[key]));
    const rows = [
      ['engine', 'dense: train 64 (ex/s)', 'train 256 (ex/s)', 'predict p50 (us)', 'batch predict (ex/s)', 'CNN: train 64 (ex/s)', 'predict p50 (us)', 'batch predict (ex/s)'],
      ...runners.map((runner) => [
        `${runner === 'node' ? 'Node (V8)' : runner} ${versions[runner]}`,
        fmt(med(runner, 'mlp', 'train64')),
        fmt(med(runner, 'mlp', 'train256')),
        fmt(med(runner, 'mlp', 'predictOneUs'), 1),
        fmt(med(runner, 'mlp', 'batchPredict')),
        fmt(med(runner, 'cnn', 'train64')),
        fmt(med(runner, 'cnn', 'predictOneUs'), 1),
        fmt(med(runner, 'cnn', 'batchPredict')),
      ]),
    ];
    const out = [
      `bnwasm on one thread in each browser engine (a Network on the page's main thread) and in Node (configure({ threads: 1 })): ` +
        `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, medians of ${rounds} interleaved rounds${quick ? ' (--quick)' : ''}; ${loadNote(loads, cpus().length)}`,
      ...table(rows),
      '',
      'Pages served cross-origin isolated; single-example predict is the median over groups of calls (each group at least 2 ms: browsers',
      'coarsen performance.now()) of the time per call in a browser, the median of single calls in Node.',
      '',
      ...kernelTable(runners, versions, probes),
    ];
    console.log(out.join('\n'));
    writeResults('browser', { rounds, quick, versions, loadAverage: loads, samples, probes, table: out });
  });
}
