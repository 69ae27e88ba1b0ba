// Browser end-to-end test of the demo (web/demo/) in headless Chromium (Debian's chromium,
// driven by playwright-core; no browser download). Serves the page like `npm start`, trains
// Fashion-MNIST in the page's worker and checks what the issue asks for:
//   - the page loads with no console errors;
//   - training reaches >= 500 steps and >= 75% test accuracy within 60 s;
//   - the main thread keeps rendering: >= 30 animation frames a second (requestAnimationFrame);
//   - pause stops the step counter; clicking an example shows a prediction.
// Saves a screenshot of the page mid-training under test-results/ and prints the numbers.
//   node tests/e2e/demo.test.mjs
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { prepareDemoData } from '../../scripts/prepare-demo-data.mjs';
import { serve } from '../../scripts/serve.mjs';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));
const SCREENSHOT = join(RESULTS, 'demo-mid-training.png');
const CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

// The thresholds.
const MIN_STEPS = 500;
const MIN_ACCURACY = 75; // percent
const TRAINING_BUDGET_MS = 60_000;
const MIN_FPS = 30;
/** Frames are counted over at least this much training, even when the thresholds come sooner. */
const MIN_MEASURE_MS = 6000;

let server;
let context;
let page;
let url;
let userDataDir;
const consoleErrors = [];

before(async () => {
  prepareDemoData();
  ({ server, url } = await serve({ port: 0 }));
  userDataDir = mkdtempSync(join(tmpdir(), 'bnwasm-e2e-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1400, height: 1000 },
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
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (message) => {
    if (message.type() === 'error') consoleErrors.push(`console.error: ${message.text()}`);
  });
  page.on('pageerror', (error) => consoleErrors.push(`uncaught: ${error.message}`));
  page.on('response', (response) => {
    if (response.status() >= 400) consoleErrors.push(`HTTP ${response.status()}: ${response.url()}`);
  });
});

after(async () => {
  await context?.close();
  server?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

const number = async (testid) => Number.parseFloat(await page.textContent(`[data-testid="${testid}"]`));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test('the demo trains Fashion-MNIST in a worker while the page keeps rendering', async () => {
  await page.goto(url);
  await page.waitForSelector('[data-testid="start"]:not([disabled])', { timeout: 60_000 }); // data loaded
  assert.equal(await page.inputValue('[data-testid="dataset"]'), 'fashion-mnist');
  const options = await page.$$eval('[data-testid="dataset"] option', (list) => list.map((o) => o.value));
  assert.deepEqual(options.sort(), ['fashion-mnist', 'toy']);
  const isolated = await page.evaluate(() => globalThis.crossOriginIsolated);
  console.log(`page: ${url} (cross-origin isolated: ${isolated})`);

  // Count animation frames from the page itself.
  await page.evaluate(() => {
    window.__frameTimes = [];
    const tick = (time) => {
      window.__frameTimes.push(time);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });

  const t0 = await page.evaluate(() => performance.now());
  const started = Date.now();
  await page.click('[data-testid="start"]');
  let steps = 0;
  let accuracy = NaN;
  let screenshotAt = null;
  for (;;) {
    await sleep(250);
    steps = await number('step');
    accuracy = await number('test-accuracy');
    if (screenshotAt === null && steps >= MIN_STEPS / 2 && Date.now() - started > 3000) {
      mkdirSync(RESULTS, { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      screenshotAt = steps;
    }
    if (steps >= MIN_STEPS && accuracy >= MIN_ACCURACY && screenshotAt !== null && Date.now() - started >= MIN_MEASURE_MS) break;
    if (Date.now() - started > TRAINING_BUDGET_MS) break;
  }
  const t1 = await page.evaluate(() => performance.now());
  const seconds = (t1 - t0) / 1000;
  const frames = await page.evaluate(([from, to]) => window.__frameTimes.filter((t) => t >= from && t <= to), [t0, t1]);
  const fps = (frames.length - 1) / ((frames[frames.length - 1] - frames[0]) / 1000);
  let worstSecond = Infinity;
  for (let s = frames[0]; s + 1000 <= frames[frames.length - 1]; s += 250) {
    worstSecond = Math.min(worstSecond, frames.filter((t) => t >= s && t < s + 1000).length);
  }
  const stepsPerSecond = steps / seconds;
  console.log(
    `training: ${steps} steps, test accuracy ${accuracy.toFixed(2)}% after ${seconds.toFixed(1)} s ` +
      `(${stepsPerSecond.toFixed(0)} steps/s in the browser worker)`,
  );
  console.log(`main thread: ${fps.toFixed(1)} animation frames/s on average while training, worst 1-s window ${worstSecond} frames`);
  console.log(`screenshot (mid-training, step ${screenshotAt}): ${SCREENSHOT}`);
  assert.ok(steps >= MIN_STEPS, `${steps} steps in ${seconds.toFixed(1)} s, expected >= ${MIN_STEPS} within 60 s`);
  assert.ok(accuracy >= MIN_ACCURACY, `test accuracy ${accuracy}% after ${seconds.toFixed(1)} s, expected >= ${MIN_ACCURACY}% within 60 s`);
  assert.ok(seconds <= TRAINING_BUDGET_MS / 1000 + 1, `took ${seconds.toFixed(1)} s`);
  assert.ok(fps >= MIN_FPS, `${fps.toFixed(1)} animation frames/s during training, expected >= ${MIN_FPS}`);

  // The running-average picture has data: its canvas is not blank.
  const inked = await page.$eval('[data-testid="bn-chart"]', (canvas) => {
    const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let count = 0;
    for (let i = 3; i < pixels.length; i += 4) count += pixels[i] > 0;
    return count;
  });
  assert.ok(inked > 2000, `bn-chart has ${inked} drawn pixels`);

  // Pause stops the step counter.
  await page.click('[data-testid="pause"]');
  await page.waitForSelector('[data-testid="start"]:not([disabled])');
  await sleep(300); // let any progress message already in flight land
  const pausedAt = await number('step');
  await sleep(1500);
  const later = await number('step');
  console.log(`pause: step counter ${pausedAt} -> ${later} after 1.5 s`);
  assert.equal(later, pausedAt, 'the step counter moved while paused');

  // Clicking an example classifies it on the main thread and shows the class.
  const examples = await page.$$('[data-testid="example"]');
  assert.ok(examples.length >= 10, `${examples.length} gallery examples`);
  await examples[3].click();
  await page.waitForFunction(
    (names) => names.includes(document.querySelector('[data-testid="prediction"]').textContent),
    CLASS_NAMES,
    { timeout: 10_000 },
  );
  console.log(`prediction for example 3: ${await page.textContent('[data-testid="prediction"]')}`);

  assert.deepEqual(consoleErrors, [], 'the page logged errors');
});
