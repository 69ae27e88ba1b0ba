// `npm run bench -- --browser`: bnwasm's benchmark in each browser engine (Chromium, Firefox
// ESR, WebKitGTK: tests/browsers/engines.mjs), next to the same measurements in Node, for the
// dense network and the CNN of bench/model.mjs. Each round runs every engine once, in an order
// that rotates from round to round, each model in a fresh page (bench/browser/page.js), served
// cross-origin isolated like `npm start` (finer timers); Node runs bench/run-engine.mjs in a
// fresh process. The table shows medians over the rounds; JSON in bench/results/.
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareDemoData } from '../../scripts/prepare-demo-data.mjs';
import { serve } from '../../scripts/serve.mjs';
import { engineNames, launch } from '../../tests/browsers/engines.mjs';
import { Page } from '../../tests/browsers/page.mjs';
import { watch } from '../../tests/browsers/proxy.mjs';
import { CNN_CONFIG, MLP_CONFIG } from '../model.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const log = (line) => process.stderr.write(`${line}\n`);
const median = (a) => {
  const s = a.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');

/** The networks of the Node bench (bench/model.mjs), the same in every engine. */
const CONFIGS = { mlp: MLP_CONFIG, cnn: CNN_CONFIG };

/** One model in a fresh page of `browser`. */
async function inBrowser(browser, site, model, quick) {
  const page = await Page.open(browser);
  try {
    await page.goto(`${site.url}bench/browser/`);
    await page.waitFor(() => window.benchReady === true, [], { timeout: 60_000, what: 'the bench page to load Fashion-MNIST' });
    const result = await page.evaluate((options) => window.bench(options), { model, config: CONFIGS[model], quick });
    const errors = await page.errors();
    if (errors.length > 0) throw new Error(`${browser.name}: the bench page logged errors: ${errors.join(' | ')}`);
    return result;
  } finally {
    await page.close();
  }
}

/** The peak and kernel probes (bench/wasm) in a fresh page of `browser`. */
async function probesInBrowser(browser, site) {
  const page = await Page.open(browser);
  try {
    await page.goto(`${site.url}bench/browser/`);
    await page.waitFor(() => window.benchReady === true, [], { timeout: 60_000, what: 'the bench page' });
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

/** One model in a fresh Node process (bench/run-engine.mjs). */
function inNode(model, quick) {
  const child = spawnSync(process.execPath, ['bench/run-engine.mjs', 'bnwasm', '--model', model, ...(quick ? ['--quick'] : [])], {
    cwd: ROOT,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (child.status !== 0) throw new Error(`bench/run-engine.mjs bnwasm --model ${model} exited with ${child.status}`);
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
  const header = ['wasm kernels (GFLOP/s)', ...columns.map(([name]) => name)];
  const rows = runners.map((runner) => [
    `${runner === 'node' ? 'Node (V8)' : runner} ${versions[runner]}`,
    ...columns.map(([, pick]) => fmt(median(probes[runner].map(pick)), 1)),
  ]);
  const table = [header, ...rows];
  const widths = header.map((_, c) => Math.max(...table.map((row) => row[c].length)));
  const line = (row) => `| ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)];
}

export async function browserBench({ rounds, quick, models = ['mlp', 'cnn'] }) {
  prepareDemoData();
  const { server } = await serve({ port: 0, root: ROOT, isolated: true });
  const site = await watch(`http://127.0.0.1:${server.address().port}`);
  const names = engineNames();
  const browsers = {};
  const loads = [loadavg()[0]];
  try {
    for (const name of names) {
      log(`bench: starting ${name}`);
      browsers[name] = await launch(name, { viewport: { width: 1000, height: 700 } });
    }
    const runners = ['node', ...names];
    const samples = Object.fromEntries(runners.map((r) => [r, Object.fromEntries(models.map((m) => [m, []]))]));
    const probes = Object.fromEntries(runners.map((r) => [r, []]));
    for (let r = 0; r < rounds; r++) {
      const order = runners.map((_, i) => runners[(i + r) % runners.length]);
      for (const runner of order) {
        for (const model of models) {
          log(`bench: round ${r + 1}/${rounds}: ${runner}, ${model}`);
          samples[runner][model].push(runner === 'node' ? inNode(model, quick) : await inBrowser(browsers[runner], site, model, quick));
        }
        log(`bench: round ${r + 1}/${rounds}: ${runner}, peak and kernel probes`);
        probes[runner].push(runner === 'node' ? probesInNode() : await probesInBrowser(browsers[runner], site));
      }
      loads.push(loadavg()[0]);
    }
    const versions = { node: process.versions.node, ...Object.fromEntries(names.map((n) => [n, browsers[n].version])) };
    const med = (runner, model, key) => median(samples[runner][model].map((s) => s[key]));
    const header = [
      'engine',
      'dense: train 64 (ex/s)',
      'train 256 (ex/s)',
      'predict p50 (us)',
      'batch predict (ex/s)',
      'CNN: train 64 (ex/s)',
      'predict p50 (us)',
      'batch predict (ex/s)',
    ];
    const rows = runners.map((runner) => [
      `${runner === 'node' ? 'Node (V8)' : runner} ${versions[runner]}`,
      fmt(med(runner, 'mlp', 'train64')),
      fmt(med(runner, 'mlp', 'train256')),
      fmt(med(runner, 'mlp', 'predictOneUs'), 1),
      fmt(med(runner, 'mlp', 'batchPredict')),
      fmt(med(runner, 'cnn', 'train64')),
      fmt(med(runner, 'cnn', 'predictOneUs'), 1),
      fmt(med(runner, 'cnn', 'batchPredict')),
    ]);
    const table = [header, ...rows];
    const widths = header.map((_, c) => Math.max(...table.map((row) => row[c].length)));
    const line = (row) => `| ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(' | ')} |`;
    const out = [
      `bnwasm in each browser engine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, medians of ${rounds} interleaved rounds` +
        `${quick ? ' (--quick)' : ''}; 1-minute load average ${loads.map((l) => l.toFixed(1)).join(', ')}` +
        (Math.max(...loads) > cpus().length ? ' (above the core count: other work shared the machine)' : ''),
      line(header),
      `|${widths.map((w, c) => (c === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
      ...rows.map(line),
      '',
      'Pages served cross-origin isolated; single-example predict in a browser is the median over groups of 50 calls of the time per call',
      '(browsers coarsen performance.now()), in Node the median of single calls.',
      '',
      ...kernelTable(runners, versions, probes),
    ];
    console.log(out.join('\n'));
    const dir = join(ROOT, 'bench/results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `browser-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), machine: { cpu: cpus()[0]?.model, cores: cpus().length }, rounds, quick, versions, loadAverage: loads, samples, probes, table: out }, null, 2));
    console.log(`\nwrote ${file.slice(ROOT.length)}`);
  } finally {
    for (const browser of Object.values(browsers)) await browser.close().catch(() => {});
    await site.close();
    server.close();
  }
}
