// Browser end-to-end test of ONNX interop in every browser engine (Chromium, Firefox ESR,
// WebKitGTK: tests/browsers/engines.mjs). tests/e2e/interop/ is a page that imports bnwasm (web/src and the
// bnwasm/interop entry) and onnxruntime-web (from node_modules, its wasm served locally):
//   - it trains two small batch-normalized networks, exports each with toONNX at opsets 13 to
//     17, folded and not, runs every file in onnxruntime-web and compares with predictBatch
//     (max |difference| <= 1e-5; page.js says why);
//   - it imports PyTorch-exported fixtures (tests/fixtures/onnx) with importONNX and compares
//     predictBatch, and onnxruntime-web on the same file, with PyTorch's float64 outputs.
// This test runs the page twice in each engine, cross-origin isolated (as scripts/serve.mjs
// serves the demo) and not (a plain static host: no SharedArrayBuffer, so onnxruntime-web gets
// one thread), and checks those numbers, that the page logged no errors, that every .wasm
// request (bnwasm's and onnxruntime-web's) answered 200 and that nothing left localhost.
// Screenshots of the page's tables: test-results/<engine>/onnx-e2e.png (isolated) and
// onnx-e2e-not-isolated.png.
//   node --test tests/e2e/interop.test.mjs          BNWASM_BROWSERS=webkit: one engine
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { serve } from '../../scripts/serve.mjs';
import { engineNames, launch } from '../browsers/engines.mjs';
import { Page } from '../browsers/page.mjs';
import { retryOnce } from '../browsers/retry.mjs';
import { watch } from '../browsers/proxy.mjs';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS = join(ROOT, 'test-results');
// The page's bounds (page.js justifies them); repeated here so a change there cannot loosen this test.
const EXPORT_TOLERANCE = 1e-5;
const EXPORT_ROWS = 3 * 5 * 2; // models (two dense, one CNN) x opsets 13..17 x fold
// Dense fixtures x opsets 13, 17 x constant folding, and the conv fixture's two exports of each.
const IMPORT_ROWS = 4 * 2 * 2 + 1 * 2 * 2 * 2;
const TRAIN_STEPS = 20;

/**
 * Serves the repository root (the page imports web/src, web/dist and node_modules) with or
 * without the cross-origin isolation headers, runs the page in a fresh tab of `browser` and
 * checks it.
 */
async function runPage(browser, { isolated, screenshot }) {
  const { server } = await serve({ port: 0, root: ROOT, isolated });
  const site = await watch(`http://127.0.0.1:${server.address().port}`);
  const page = await Page.open(browser);
  try {
    await page.goto(`${site.url}tests/e2e/interop/`);
    await page.waitFor(() => document.body.dataset.result !== undefined, [], { timeout: 120_000, interval: 250, what: 'the page\'s result (body[data-result])' });
    const result = JSON.parse(await page.evaluate(() => document.body.dataset.result));
    mkdirSync(join(RESULTS, browser.name), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true });
    const origin = site.url.slice(0, -1);
    // What the page loaded from anywhere but this server (the page's own resource timing list).
    const elsewhere = (await page.evaluate(() => window.__bnwasmHarness.resources())).filter((url) => !url.startsWith(`${origin}/`) && !/^(data|blob):/.test(url));
    const errors = [...(await page.errors()), ...site.log.filter((r) => r.status >= 400).map((r) => `HTTP ${r.status}: ${r.path}`)];
    const wasm = site.log.filter((r) => r.path.endsWith('.wasm')).map((r) => ({ path: r.path, status: r.status }));
    await check(page, result, { isolated, screenshot, errors, wasm, elsewhere });
  } catch (error) {
    error.message = `${browser.name}, ${page.url}: ${error.message}`;
    throw error;
  } finally {
    await page.close().catch(() => {});
    await site.close();
    server.close();
  }
}

async function check(page, result, { isolated, screenshot, errors, wasm, elsewhere }) {
  assert.equal(result.error, undefined, result.error);
  console.log(`${page.engine}: ${page.url}; onnxruntime-web ${result.env.ort}, numThreads ${result.env.numThreads}, cross-origin isolated ${result.env.crossOriginIsolated}`);
  for (const t of result.training) {
    console.log(`train ${t.model}: ${t.steps} steps, loss ${t.firstLoss.toFixed(4)} -> ${t.lastLoss.toFixed(4)}, max |running mean| ${t.runningMean.toFixed(3)}`);
  }
  for (const r of result.export) console.log(`export ${r.model} opset ${r.opset} fold ${r.fold}: ${r.bytes} bytes, max |ORT - bnwasm| ${r.diff.toExponential(2)}`);
  for (const r of result.import) {
    console.log(`import ${r.fixture}${r.batchNormKept ? ' (batch norm kept)' : ''} opset ${r.opset} folding ${r.constantFolding}: max |bnwasm - PyTorch| ${r.bnwasmDiff.toExponential(2)}, max |ORT - PyTorch| ${r.ortDiff.toExponential(2)}`);
  }
  const worst = (rows, key) => Math.max(...rows.map((r) => r[key]));
  console.log(
    `worst: |ORT - bnwasm| ${worst(result.export, 'diff').toExponential(2)} (export), ` +
      `|bnwasm - PyTorch| ${worst(result.import, 'bnwasmDiff').toExponential(2)}, |ORT - PyTorch| ${worst(result.import, 'ortDiff').toExponential(2)} (import)`,
  );
  console.log(`in the page: ${result.seconds.export.toFixed(1)} s training + export + ORT, ${result.seconds.import.toFixed(1)} s import`);
  console.log(`wasm: ${wasm.map((w) => `${w.path} ${w.status}`).join(', ')}`);
  console.log(`screenshot: ${screenshot}`);

  // The networks trained in the page: the exported running statistics are not the initial 0 and 1.
  assert.equal(result.training.length, 3);
  for (const t of result.training) {
    assert.equal(t.steps, TRAIN_STEPS, `${t.model} steps`);
    assert.ok(t.lastLoss < t.firstLoss, `${t.model}: loss ${t.firstLoss} -> ${t.lastLoss}`);
    assert.ok(t.runningMean > 0.1, `${t.model}: max |running mean| ${t.runningMean}`);
  }
  assert.equal(result.export.length, EXPORT_ROWS);
  for (const r of result.export) {
    const what = `${r.model} opset ${r.opset} fold ${r.fold}`;
    assert.deepEqual(r.dims, [50, r.model === 'regressor' ? 2 : 3], `${what}: output dims`);
    assert.ok(r.diff <= EXPORT_TOLERANCE, `${what}: max |onnxruntime-web - bnwasm| ${r.diff} > ${EXPORT_TOLERANCE}`);
    assert.equal(r.agree, true, what);
  }
  assert.deepEqual([...new Set(result.export.map((r) => r.opset))], [13, 14, 15, 16, 17]);
  assert.equal(result.import.length, IMPORT_ROWS);
  for (const r of result.import) {
    // Elementwise |x - reference| <= 2e-6 + 1e-5 |reference| for bnwasm and ORT (page.js).
    assert.equal(r.agree, true, `${r.fixture}${r.batchNormKept ? ' (batch norm kept)' : ''} opset ${r.opset} folding ${r.constantFolding}: bnwasm ${r.bnwasmDiff}, ORT ${r.ortDiff}`);
  }
  // The page shows every comparison.
  assert.equal(await page.count('#export tbody tr'), EXPORT_ROWS);
  assert.equal(await page.count('#import tbody tr'), IMPORT_ROWS);
  assert.equal(await page.count('td.no'), 0);

  // Both engines' wasm came from this server, each answered 200, and nothing left localhost.
  assert.ok(wasm.some((w) => w.path === '/web/dist/bnwasm.wasm'), 'bnwasm.wasm was not requested');
  assert.ok(wasm.some((w) => w.path.startsWith('/node_modules/onnxruntime-web/dist/ort-wasm')), "onnxruntime-web's wasm was not requested");
  assert.deepEqual(wasm.filter((w) => w.status !== 200), [], 'wasm requests that did not answer 200');
  assert.deepEqual(elsewhere, [], 'requests that left localhost');
  assert.deepEqual(errors, [], 'the page logged errors');
  assert.equal(result.env.crossOriginIsolated, isolated, 'crossOriginIsolated');
  assert.equal(result.env.numThreads, 1);
}

// A page run gets a second attempt (retryOnce): WebKitGTK's onnxruntime-web has once thrown from
// inside its wasm here, where Chromium and Firefox passed the same page.
const runPageTwice = (browser, options) =>
  retryOnce(`${browser.name}: ${options.isolated ? 'cross-origin isolated' : 'plain'} page`, () => runPage(browser, options));

for (const engine of engineNames()) {
  describe(engine, () => {
    let browser;
    before(async () => {
      browser = await launch(engine, { viewport: { width: 1100, height: 900 } });
    });
    after(() => browser?.close());

    // Served like `npm start` serves the demo (COOP/COEP: SharedArrayBuffer available where the engine has it).
    test(`${engine}: toONNX files run in onnxruntime-web with bnwasm's outputs and PyTorch's files import (cross-origin isolated page)`, () =>
      runPageTwice(browser, { isolated: true, screenshot: join(RESULTS, engine, 'onnx-e2e.png') }));

    // A plain static host without those headers: no SharedArrayBuffer, and neither engine needs it.
    test(`${engine}: the same on a page that is not cross-origin isolated`, () =>
      runPageTwice(browser, { isolated: false, screenshot: join(RESULTS, engine, 'onnx-e2e-not-isolated.png') }));
  });
}
