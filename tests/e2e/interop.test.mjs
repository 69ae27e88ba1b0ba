// Browser end-to-end test of the ONNX export: tests/e2e/interop/index.html trains a network
// with bnwasm in headless Chromium, exports it with toONNX and runs each file in
// onnxruntime-web's wasm backend next to bnwasm; the outputs must agree within 1e-5
// (the tolerance of tests/js/interop-onnx-export.test.js, which explains it).
//   node tests/e2e/interop.test.mjs
import assert from 'node:assert/strict';
import { createReadStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
// Only what the page needs is served.
const ALLOWED = ['tests/e2e/interop/', 'web/src/', 'web/dist/', 'node_modules/onnxruntime-web/dist/'];
const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm' };

let server;
let context;
let userDataDir;
const errors = [];

before(async () => {
  server = createServer((request, response) => {
    const path = normalize(decodeURIComponent(new URL(request.url, 'http://localhost').pathname)).replace(/^\/+/, '');
    const file = join(ROOT, path.endsWith('/') || path === '' ? `${path}index.html` : path);
    const ok = ALLOWED.some((prefix) => path.startsWith(prefix)) && !path.includes('..');
    let size = -1;
    try {
      size = ok ? statSync(file).size : -1;
    } catch {
      size = -1;
    }
    if (size < 0) {
      response.writeHead(404);
      return response.end();
    }
    response.writeHead(200, { 'Content-Type': MIME[extname(file)] ?? 'application/octet-stream', 'Content-Length': size });
    createReadStream(file).pipe(response);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  userDataDir = mkdtempSync(join(tmpdir(), 'bnwasm-e2e-interop-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await context?.close();
  server?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

test('toONNX runs in onnxruntime-web in Chromium with bnwasm\'s outputs', async () => {
  const page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  page.on('console', (m) => m.type() === 'error' && errors.push(`console.error: ${m.text()}`));
  page.on('response', (r) => r.status() >= 400 && errors.push(`HTTP ${r.status()}: ${r.url()}`));
  await page.goto(`http://127.0.0.1:${server.address().port}/tests/e2e/interop/`);
  await page.waitForFunction(() => document.body.dataset.result !== undefined, null, { timeout: 60_000 });
  const result = JSON.parse(await page.evaluate(() => document.body.dataset.result));
  console.log(await page.evaluate(() => document.getElementById('out').textContent));
  assert.equal(result.error, undefined, result.error);
  assert.equal(result.rows.length, 4);
  assert.ok(result.worst <= 1e-5, `worst |onnxruntime-web - bnwasm| ${result.worst}`);
  assert.deepEqual(errors, []);
});
