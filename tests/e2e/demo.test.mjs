// Browser end-to-end test of the demo (web/demo/) in headless Chromium (Debian's chromium,
// driven by playwright-core; no browser download). Serves the page like `npm start`, trains
// Fashion-MNIST in the page's worker and checks what the issue asks for:
//   - the page loads with no console errors;
//   - training reaches >= 500 steps and >= 75% test accuracy within 60 s;
//   - the main thread keeps rendering: no gap of a second between animation frames (the frame
//     rate itself is printed, not asserted: it depends on the machine's load);
//   - pause stops the step counter; clicking an example shows a prediction;
//   - the "Paper: Ioffe & Szegedy Figure 1" preset trains both of its networks in a worker (the
//     page keeps rendering) and draws accuracy and percentile curves for both; pause and reset work.
// Saves screenshots of the page mid-training and of the Figure 1 panel under test-results/ and
// prints the numbers.
//   node tests/e2e/demo.test.mjs
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prepareDemoData } from '../../scripts/prepare-demo-data.mjs';
import { serve } from '../../scripts/serve.mjs';
import { launchBrowser } from '../consumers/lib/browser.mjs';

const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));
const SCREENSHOT = join(RESULTS, 'demo-mid-training.png');
const FIGURE1_SCREENSHOT = join(RESULTS, 'demo-figure1.png');
const CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

// The thresholds.
const MIN_STEPS = 500;
const MIN_ACCURACY = 75; // percent
const TRAINING_BUDGET_MS = 60_000;
// Training runs in a worker, so the page's main thread is never blocked: the longest pause
// between two animation frames stays far below a second (a main-thread training loop would stop
// frames for as long as it trains). The frame rate is printed, not asserted: on a machine loaded
// by other work it drops below 30 without anything being wrong (speed is npm run bench's job).
const MAX_FRAME_GAP_MS = 1000;
const longestGap = (frames) => frames.slice(1).reduce((gap, t, i) => Math.max(gap, t - frames[i]), 0);
/** Frames are counted over at least this much training, even when the thresholds come sooner. */
const MIN_MEASURE_MS = 6000;
/** The Figure 1 preset: measurements each accuracy series must have, and the time to get them. */
const FIGURE1_MIN_POINTS = 3;
const FIGURE1_BUDGET_MS = 60_000;
/** The Figure 1 screenshot waits for this many steps (at most FIGURE1_BUDGET_MS), so it has curves to show. */
const FIGURE1_SCREENSHOT_STEP = 1500;

let server;
let context;
let page;
let url;
let closeBrowser;
const consoleErrors = [];

before(async () => {
  prepareDemoData();
  ({ server, url } = await serve({ port: 0 }));
  ({ context, close: closeBrowser } = await launchBrowser({ viewport: { width: 1400, height: 1000 } }));
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
  await closeBrowser?.();
  server?.close();
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
  console.log(`main thread: ${fps.toFixed(1)} animation frames/s on average while training, worst 1-s window ${worstSecond} frames, longest gap ${longestGap(frames).toFixed(0)} ms`);
  console.log(`screenshot (mid-training, step ${screenshotAt}): ${SCREENSHOT}`);
  assert.ok(steps >= MIN_STEPS, `${steps} steps in ${seconds.toFixed(1)} s, expected >= ${MIN_STEPS} within 60 s`);
  assert.ok(accuracy >= MIN_ACCURACY, `test accuracy ${accuracy}% after ${seconds.toFixed(1)} s, expected >= ${MIN_ACCURACY}% within 60 s`);
  assert.ok(seconds <= TRAINING_BUDGET_MS / 1000 + 1, `took ${seconds.toFixed(1)} s`);
  assert.ok(frames.length > 10, `${frames.length} animation frames during ${seconds.toFixed(1)} s of training`);
  assert.ok(longestGap(frames) < MAX_FRAME_GAP_MS, `the main thread stopped rendering for ${longestGap(frames).toFixed(0)} ms during training`);

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

/** Pixels of a canvas within a small distance of an RGB colour (its lines, anti-aliasing aside). */
const pixelsOfColor = (testid, rgb) =>
  page.$eval(
    `[data-testid="${testid}"]`,
    (canvas, [r, g, b]) => {
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let count = 0;
      for (let i = 0; i < pixels.length; i += 4) {
        const d = Math.abs(pixels[i] - r) + Math.abs(pixels[i + 1] - g) + Math.abs(pixels[i + 2] - b);
        count += pixels[i + 3] > 200 && d < 60;
      }
      return count;
    },
    rgb,
  );
const figure1Step = async () => Number((await page.textContent('[data-testid="figure1-step"]')).replaceAll(',', ''));
const seriesPoints = async (testid) => (await page.getAttribute(`[data-testid="${testid}"]`, 'data-points')).split(',').map(Number);

test("the Figure 1 preset trains the paper's two networks live and draws both curves", async () => {
  const started = Date.now();
  const t0 = await page.evaluate(() => performance.now()); // frames: the first test's counter still runs
  await page.click('[data-testid="preset-figure1"]');
  await page.waitForFunction(
    (min) => {
      const counts = (document.querySelector('[data-testid="figure1-accuracy"]').dataset.points ?? '').split(',').map(Number);
      return counts.length === 2 && counts.every((n) => n >= min);
    },
    FIGURE1_MIN_POINTS,
    { timeout: FIGURE1_BUDGET_MS, polling: 250 },
  );
  const firstPoints = await seriesPoints('figure1-accuracy');
  console.log(`figure1: accuracy series have ${firstPoints.join(' and ')} points after ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.ok(firstPoints.every((n) => n >= FIGURE1_MIN_POINTS), `accuracy points ${firstPoints}`);
  assert.ok((await seriesPoints('figure1-percentiles'))[0] >= FIGURE1_MIN_POINTS, 'the percentile chart has no measurements');
  // Both percentile panels have their lines: orange is the network without batch norm (b),
  // blue the one with it (c); no other ink on that canvas has these colours, so a panel
  // without data has none. (Three measurements span only the first 50 of 8,000 steps: short lines.)
  const orange = await pixelsOfColor('figure1-percentiles', [224, 103, 43]);
  const blue = await pixelsOfColor('figure1-percentiles', [47, 111, 222]);
  console.log(`figure1: percentile chart has ${orange} orange and ${blue} blue line pixels`);
  assert.ok(orange > 20 && blue > 20, `percentile lines: ${orange} orange, ${blue} blue pixels`);

  // A picture worth looking at: wait for the curves to develop a little, then save the panel.
  while ((await figure1Step()) < FIGURE1_SCREENSHOT_STEP && Date.now() - started < FIGURE1_BUDGET_MS) await sleep(250);
  // The experiment trains in a worker: the main thread kept rendering meanwhile.
  const t1 = await page.evaluate(() => performance.now());
  const frames = await page.evaluate(([from, to]) => window.__frameTimes.filter((t) => t >= from && t <= to), [t0, t1]);
  const fps = (frames.length - 1) / ((frames[frames.length - 1] - frames[0]) / 1000);
  console.log(`figure1: main thread ${fps.toFixed(1)} animation frames/s while the preset trained, longest gap ${longestGap(frames).toFixed(0)} ms`);
  assert.ok(frames.length > 10, `${frames.length} animation frames while the preset trained`);
  assert.ok(longestGap(frames) < MAX_FRAME_GAP_MS, `the main thread stopped rendering for ${longestGap(frames).toFixed(0)} ms while the preset trained`);
  mkdirSync(RESULTS, { recursive: true });
  await page.$eval('#figure1Card', (card) => card.scrollIntoView({ block: 'center' }));
  await page.locator('#figure1Card').screenshot({ path: FIGURE1_SCREENSHOT });
  const text = async (id) => page.textContent(`#${id}`);
  console.log(
    `figure1: step ${await text('figure1Step')} after ${((Date.now() - started) / 1000).toFixed(1)} s, test accuracy ` +
      `${await text('figure1BatchNorm')}% with batch norm, ${await text('figure1Plain')}% without; screenshot: ${FIGURE1_SCREENSHOT}`,
  );

  // Pause stops training (at the next measurement); Reset clears the run.
  await page.click('[data-testid="figure1-pause"]');
  await page.waitForFunction(() => document.querySelector('[data-testid="figure1-pause"]').textContent === 'Resume', null, { timeout: 10_000 });
  const pausedAt = await figure1Step();
  const pausedPoints = await seriesPoints('figure1-accuracy');
  await sleep(1500);
  const later = await figure1Step();
  console.log(`figure1 pause: step counter ${pausedAt} -> ${later} after 1.5 s`);
  assert.equal(later, pausedAt, 'the Figure 1 step counter moved while paused');
  assert.deepEqual(await seriesPoints('figure1-accuracy'), pausedPoints, 'measurements arrived while paused');
  await page.click('[data-testid="figure1-reset"]');
  assert.equal(await page.textContent('[data-testid="figure1-step"]'), '0');
  await page.waitForFunction(() => document.querySelector('[data-testid="figure1-accuracy"]').dataset.points === '0,0');
  assert.equal(await page.isEnabled('[data-testid="preset-figure1"]'), true, 'the preset cannot be started again after Reset');

  assert.deepEqual(consoleErrors, [], 'the page logged errors');
});
