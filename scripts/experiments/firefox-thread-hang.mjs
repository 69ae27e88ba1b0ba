#!/usr/bin/env node
// Firefox ESR and the trainer's threads: starts trainers one after another on a
// cross-origin-isolated page (each loads the last one's save() bytes, evaluates 10,000 rows,
// fits 2,048 and is terminated in the middle of a longer fit, as the demo's Reset does) and
// prints each start's time and thread count. This is how the hang README.md's Threads section
// describes was found: at start 117 and 119 of two runs (4 starts in 300 in a later one), the
// trainer's worker entered the Worker constructor of its thread and never left it. With
// trainer.js's limit (startLimits), such a start takes its 10 s, runs on 1 thread and the page
// warns once; any start that takes longer, a failure, or 45 s without progress ends the run with
// a non-zero exit.
//
//   node scripts/experiments/firefox-thread-hang.mjs [starts=300] [engine=firefox]
import { serve } from '../serve.mjs';
import { launch } from '../../tests/browsers/engines.mjs';

const starts = Number(process.argv[2] ?? 300);
const engine = process.argv[3] ?? 'firefox';
const { server, url } = await serve({ port: 0 });
const browser = await launch(engine, { viewport: { width: 800, height: 600 } });
const page = await browser.newPage();
await page.goto(url);
await page.evaluate((n) => {
  window.__log = [];
  window.__warnings = [];
  window.__phase = 'import';
  const warn = console.warn;
  console.warn = (...args) => {
    window.__warnings.push(args.join(' '));
    warn(...args);
  };
  (async () => {
    const { createTrainer, loadTrainer } = await import('/src/index.js');
    const config = {
      inputSize: 784,
      layers: [{ type: 'dense', units: 128, useBias: false }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dense', units: 10 }],
      loss: 'softmaxCrossEntropy',
      optimizer: { type: 'adam', learningRate: 0.001 },
    };
    // Shared, as the demo's data is on an isolated page.
    const xs = new Float32Array(new SharedArrayBuffer(10000 * 784 * 4));
    for (let i = 0; i < xs.length; i++) xs[i] = ((i * 2654435761) % 1000) / 1000;
    const ys = new Int32Array(10000).map((_, i) => (i * 7) % 10);
    let bytes = null;
    for (let i = 0; i < n; i++) {
      const record = { i };
      let t = performance.now();
      const lap = (name) => {
        const now = performance.now();
        record[name] = Math.round(now - t);
        t = now;
      };
      window.__phase = `${i} start`;
      const trainer = bytes ? await loadTrainer(bytes) : await createTrainer(config);
      lap('start');
      record.threads = trainer.threads;
      window.__phase = `${i} evaluate`;
      await trainer.evaluate(xs, ys);
      lap('evaluate');
      window.__phase = `${i} fit`;
      await trainer.fit(xs.subarray(0, 2048 * 784), ys.subarray(0, 2048), { batchSize: 64, epochs: 1 });
      lap('fit');
      bytes = await trainer.save();
      trainer.fit(xs, ys, { batchSize: 64, epochs: 5 }).catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, (i * 37) % 300));
      trainer.terminate();
      window.__log.push(record);
    }
    window.__phase = 'done';
  })().catch((error) => {
    window.__phase = `error: ${error.name}: ${error.message}`;
  });
}, starts);

let last = '';
let since = Date.now();
let printed = 0;
let failed = false;
const log = [];
for (;;) {
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const state = await page.evaluate(() => ({ phase: window.__phase, log: window.__log }));
  for (; printed < state.log.length; printed++) {
    const r = state.log[printed];
    log.push(r);
    console.log(`start ${r.i}: ${r.start} ms, ${r.threads} thread(s); evaluate ${r.evaluate} ms, fit ${r.fit} ms`);
  }
  if (state.phase !== last) [last, since] = [state.phase, Date.now()];
  if (state.phase === 'done') break;
  if (state.phase.startsWith('error')) {
    console.log(state.phase);
    failed = true;
    break;
  }
  if (Date.now() - since > 45_000) {
    console.log(`no progress for 45 s at "${state.phase}"`);
    failed = true;
    break;
  }
}
const warnings = await page.evaluate(() => window.__warnings);
const single = log.filter((r) => r.threads === 1);
const slow = log.filter((r) => r.start > 15_000);
console.log(
  `${engine}: ${log.length} of ${starts} starts; ${single.length} on one thread (starts ${single.map((r) => r.i).join(', ') || 'none'}), ` +
    `${slow.length} slower than 15 s; page warnings: ${warnings.length ? warnings.join(' | ') : 'none'}`,
);
await browser.close();
server.close();
process.exit(failed || slow.length > 0 ? 1 : 0);
