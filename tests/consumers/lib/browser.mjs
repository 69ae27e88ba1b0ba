// Drives a consumer page in headless Chromium (Debian's chromium through playwright-core) and
// reports what the page found, what the console said, and how the network answered.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const PAGE_BUDGET_MS = 120_000;

/**
 * Headless Chromium with the flags this machine needs (TOOLCHAIN.md) and a fresh profile; the
 * one launcher of the browser tests (consumers, the demo and ONNX e2e tests). `options` adds
 * launch options such as `viewport`. Returns {context, close()}.
 */
export async function launchBrowser(options = {}) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'bnwasm-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    ...options,
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    },
  };
}

/**
 * Opens `url`, waits for the page's checks (tests/consumers/app/main.js) and returns
 * {result, consoleErrors, responses: [{url, status, type}], workers: [url]}.
 */
export async function runPage(context, url) {
  const page = await context.newPage();
  const consoleErrors = [];
  const responses = [];
  const workers = [];
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(message.text());
  });
  page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));
  page.on('worker', (worker) => {
    workers.push(worker.url());
    worker.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(`worker: ${message.text()}`);
    });
  });
  page.on('response', (response) =>
    responses.push({ url: response.url(), status: response.status(), type: response.headers()['content-type'] ?? '' }),
  );
  page.on('requestfailed', (request) => responses.push({ url: request.url(), status: 0, type: request.failure()?.errorText ?? '' }));
  try {
    await page.goto(url);
    await page.waitForFunction(() => window.bnwasmConsumer?.done === true, null, { timeout: PAGE_BUDGET_MS });
    const result = await page.evaluate(() => window.bnwasmConsumer);
    return { result, consoleErrors, responses, workers };
  } catch (error) {
    return { result: { done: false, checks: [], error: `page: ${error.message.split('\n')[0]}` }, consoleErrors, responses, workers };
  } finally {
    await page.close();
  }
}

/** The problems in a runPage() outcome; an empty list means the consumer works. */
export function problems({ result, consoleErrors, responses, workers }) {
  const found = [];
  if (result.error) found.push(`page threw ${result.error}`);
  for (const c of result.checks) if (!c.ok) found.push(`check failed: ${c.name} (${c.detail})`);
  if (!result.error && result.checks.length < 8) found.push(`only ${result.checks.length} of 8 checks ran`);
  for (const e of consoleErrors) found.push(`console error: ${e}`);
  for (const r of responses) if (r.status === 0 || r.status >= 400) found.push(`request ${r.url} answered ${r.status} ${r.type}`);
  const wasm = responses.filter((r) => /\.wasm(\?|$)/.test(r.url));
  if (!wasm.some((r) => r.status === 200 && r.type.startsWith('application/wasm'))) {
    found.push(`no wasm request answered 200 application/wasm (${wasm.map((r) => `${r.url} ${r.status}`).join(', ') || 'none'})`);
  }
  if (workers.length === 0) found.push('no worker started');
  for (const w of workers) {
    const r = responses.find((response) => response.url === w);
    if (!r || r.status !== 200) found.push(`worker script ${w} answered ${r ? r.status : 'nothing'}`);
  }
  return found;
}
