// Browser end-to-end test of the demo (web/demo/) in every browser engine: Chromium, Firefox ESR
// and WebKitGTK (tests/browsers/engines.mjs: Debian's browsers, no browser download), one after
// the other, each test once per engine and named by it. Serves the page like `npm start`,
// trains Fashion-MNIST in the page's worker and checks what the issue asks for:
//   - the page loads with no console errors;
//   - the worker trains on every core where the page has SharedArrayBuffer (served isolated, as
//     npm start does), on one thread where the engine has none (WebKitGTK);
//   - training reaches >= 500 steps and >= 75% test accuracy within 60 s;
//   - the main thread keeps rendering: no gap of a second between animation frames (the frame
//     rate itself is printed, not asserted: it depends on the machine's load);
//   - pause stops the step counter; clicking an example shows a prediction;
//   - the "Paper: Ioffe & Szegedy Figure 1" preset trains both of its networks in a worker (the
//     page keeps rendering) and draws accuracy and percentile curves for both; pause and reset work;
//   - the "CNN" network choice trains issue 10's CNN for a few hundred steps: the running-average
//     picture has per-channel data (16 channels for batch-norm layer 1), the test accuracy is far
//     above chance, the gallery predicts, the first conv layer's filters and feature maps are drawn;
//   - the "Small ResNet" network choice trains issue 16's residual network: the page lists the
//     layers of scripts/fashion-mnist.mjs's fashionMnistResNetConfig as the core describes them, the
//     test accuracy is far above chance, the running-average picture has its 6 batch-norm layers;
//   - "Open a model…" opens a bnwasm model and its ONNX and safetensors (+ config.json) exports
//     made here with the Node API: the page's single-example test accuracy and gallery answer
//     equal Node's; a damaged file is refused with the library's ModelFormatError and the page
//     stays usable; fine-tuning with batch norm 'frozen' keeps the model's running averages (the
//     page shows Node's values after 50 steps), with 'batch' they move.
// Saves screenshots of the page mid-training, of the Figure 1 panel, of the CNN, of the ResNet and
// of an opened model under test-results/<engine>/ and prints the numbers.
//   node --test tests/e2e/demo.test.mjs          BNWASM_BROWSERS=firefox: one engine
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { fashionMnistResNetConfig, loadFashionMnist } from '../../scripts/fashion-mnist.mjs';
import { prepareDemoData } from '../../scripts/prepare-demo-data.mjs';
import { serve } from '../../scripts/serve.mjs';
import { engineNames, launch } from '../browsers/engines.mjs';
import { Page } from '../browsers/page.mjs';
import { retryOnce } from '../browsers/retry.mjs';
import { watch } from '../browsers/proxy.mjs';

const RESULTS = fileURLToPath(new URL('../../test-results/', import.meta.url));
const CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

// The thresholds.
const MIN_STEPS = 500;
const MIN_ACCURACY = 75; // percent
const TRAINING_BUDGET_MS = 60_000;
// Training runs in a worker, so the page keeps drawing while it trains: a training loop on the
// main thread draws no frame for as long as it runs (the 500 steps took 6-19 s in these runs).
// That property is what is asserted: no stretch of MAX_FRAME_GAP_MS without a frame. The longest
// gap and the frame rate are printed, not held to a tighter bound: they are timings, and on this
// shared machine at load 11-25 other processes alone stalled the page for up to 1.9 s (WebKit's
// software-painted MiniBrowser; Chromium 1.3 s) while the worker trained. Speed is npm run bench's.
const MAX_FRAME_GAP_MS = 3000;
const longestGap = (frames) => frames.slice(1).reduce((gap, t, i) => Math.max(gap, t - frames[i]), 0);
/** Frames are counted over at least this much training, even when the thresholds come sooner. */
const MIN_MEASURE_MS = 6000;
/** The Figure 1 preset: measurements each accuracy series must have, and the time to get them. */
const FIGURE1_MIN_POINTS = 3;
const FIGURE1_BUDGET_MS = 60_000;
/** The Figure 1 screenshot waits for this many steps (at most FIGURE1_BUDGET_MS), so it has curves to show. */
const FIGURE1_SCREENSHOT_STEP = 1500;
/**
 * The CNN: a test-set score taken at >= CNN_MIN_STEPS steps (about 13,000 training images; the
 * CNN trains at some 2,400 images/s here, one epoch takes ~25 s) must reach CNN_MIN_ACCURACY.
 * Chance is 10%; the page's own runs scored 84-87% after 110-400 steps, and PyTorch's CNN 89%
 * after one epoch, so 70% fails only when the CNN does not learn (or the score is wrong).
 */
const CNN_MIN_STEPS = 200;
const CNN_MIN_ACCURACY = 70;
const CNN_BUDGET_MS = 120_000;
/**
 * The ResNet (1.4 times the CNN's multiply-adds per image, at 8-16 channels; it learns more slowly):
 * one of the test-set scores taken at >= RESNET_MIN_STEPS steps (6,400 training images) within
 * RESNET_BUDGET_MS must reach RESNET_MIN_ACCURACY. Chance is 10%; training is seeded, and the page
 * scored 50.5-64.4% at steps 108-149 with the ResNet's learning rate 0.01 (33.8% at step 104 with
 * the page's 0.001), but single scores swing (34.3% at step 181 in Chromium under load), so 40% in
 * none of them fails only when the network does not learn (or the score is wrong).
 */
const RESNET_MIN_STEPS = 100;
const RESNET_MIN_ACCURACY = 40;
const RESNET_BUDGET_MS = 150_000;
/** Of the 24 gallery images the CNN, so scored, classifies at least this many right (expected ~20). */
const CNN_MIN_GALLERY_RIGHT = 12;
/** The page's gallery: test image g*409+17 at position g (web/demo/demo.js). */
const FIRST_GALLERY_IMAGE = 17;
/** Width a select's drop-down arrow takes from its text (Chromium, Firefox and WebKit draw 16-20 px). */
const DROP_DOWN_ARROW_PX = 24;

let server;
let site;
let model; // makeModel(): made once, opened in every engine

before(async () => {
  prepareDemoData();
  ({ server } = await serve({ port: 0 }));
  // Every page through the harness's proxy: its log is the request list in every engine.
  site = await watch(`http://127.0.0.1:${server.address().port}`);
});

after(async () => {
  await site?.close();
  server?.close();
});

for (const engine of engineNames()) describe(engine, () => demoTests(engine));

/** The demo's tests in one engine: its own browser, one page, every failure named by the engine. */
function demoTests(engine) {
  const url = () => `${site.url}demo/`;
  const SCREENSHOT = join(RESULTS, engine, 'demo-mid-training.png');
  const FIGURE1_SCREENSHOT = join(RESULTS, engine, 'demo-figure1.png');
  const CNN_SCREENSHOT = join(RESULTS, engine, 'demo-cnn.png');
  const RESNET_SCREENSHOT = join(RESULTS, engine, 'demo-resnet.png');
  const OPENED_SCREENSHOT = join(RESULTS, engine, 'demo-opened-model.png');
  let browser;
  let page;
  /** Where the request log of the current count of errors starts. */
  let logMark = 0;

  before(async () => {
    browser = await launch(engine, { viewport: { width: 1400, height: 1000 } });
    page = await Page.open(browser);
  });

  after(async () => {
    await page?.close().catch(() => {});
    await browser?.close();
  });

  /** Errors since the last clearErrors(): the page's, the driver's, and requests answered >= 400. */
  async function pageErrors() {
    const failed = site.log.slice(logMark).filter((r) => r.status >= 400).map((r) => `HTTP ${r.status}: ${r.path}`);
    return [...(await page.errors()), ...failed];
  }

  async function clearErrors() {
    await page.clearErrors();
    logMark = site.log.length;
  }

  /** A test of this engine: its name and every failure name the engine (and the page). */
  // A test that starts on a fresh page ({ retry: true }) gets a second attempt (retryOnce).
  const engineTest = (name, fn, { retry = false } = {}) =>
    test(`${engine}: ${name}`, async () => {
      const attempt = async () => {
        try {
          await fn();
        } catch (error) {
          // Page's own errors already say where they happened.
          if (!error.message.startsWith(`${engine}, `)) error.message = `${engine}, ${page?.url}: ${error.message}`;
          throw error;
        }
      };
      await (retry ? retryOnce(`${engine}: ${name}`, attempt) : attempt());
    });

  const number = async (testid) => Number.parseFloat(await page.text(`[data-testid="${testid}"]`));
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  engineTest('the demo trains Fashion-MNIST in a worker while the page keeps rendering', async () => {
    await loadPage();
    assert.equal(await page.value('[data-testid="dataset"]'), 'fashion-mnist');
    const options = await page.all('[data-testid="dataset"] option', (list) => list.map((o) => o.value));
    assert.deepEqual(options.sort(), ['fashion-mnist', 'toy']);
    // Each choice's text fits its select (it was cut off: "Fashion-MNIST (60,0"), measured in
    // the select's own font, with room for the drop-down arrow.
    for (const testid of ['dataset', 'network', 'finetune-batchnorm']) {
      const { widest, room } = await page.evaluateOn(`[data-testid="${testid}"]`, (select, arrow) => {
        const style = getComputedStyle(select);
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
        const widest = Math.max(...[...select.options].map((o) => ctx.measureText(o.textContent).width));
        return { widest, room: select.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight) - arrow };
      }, [DROP_DOWN_ARROW_PX]);
      assert.ok(widest <= room, `the ${testid} select shows ${room.toFixed(0)} px of text, its longest option needs ${widest.toFixed(0)} px`);
    }
    const env = await page.env();
    console.log(`${engine}: ${url()} (crossOriginIsolated ${env.crossOriginIsolated}, SharedArrayBuffer ${env.sharedArrayBuffer ? 'yes' : 'no'})`);

    await countFrames();

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
        mkdirSync(join(RESULTS, engine), { recursive: true });
        await page.screenshot({ path: SCREENSHOT, fullPage: true });
        screenshotAt = steps;
      }
      if (steps >= MIN_STEPS && accuracy >= MIN_ACCURACY && screenshotAt !== null && Date.now() - started >= MIN_MEASURE_MS) break;
      if (Date.now() - started > TRAINING_BUDGET_MS) break;
    }
    const t1 = await page.evaluate(() => performance.now());
    const seconds = (t1 - t0) / 1000;
    const frames = await page.evaluate((from, to) => window.__frameTimes.filter((t) => t >= from && t <= to), t0, t1);
    const fps = (frames.length - 1) / ((frames[frames.length - 1] - frames[0]) / 1000);
    let worstSecond = Infinity;
    for (let s = frames[0]; s + 1000 <= frames[frames.length - 1]; s += 250) {
      worstSecond = Math.min(worstSecond, frames.filter((t) => t >= s && t < s + 1000).length);
    }
    const stepsPerSecond = steps / seconds;
    // The page is served with COOP/COEP (serve(), as npm start does), so every engine reports it
    // isolated; the trainer then runs on every core where the engine also has SharedArrayBuffer,
    // and on one thread where it has not (WebKitGTK, unless JSC_useSharedArrayBuffer=1).
    const threads = Number(await page.text('[data-testid="threads"]'));
    const cores = await page.evaluate(() => navigator.hardwareConcurrency);
    const expectedThreads = env.sharedArrayBuffer ? cores : 1;
    console.log(`threads: the demo shows ${threads} (${cores} cores; expected ${expectedThreads})`);
    assert.equal(env.crossOriginIsolated, true, 'the demo is served with COOP/COEP, yet the page is not cross-origin isolated');
    assert.equal(threads, expectedThreads, `the demo trains on ${threads} threads, expected ${expectedThreads} (SharedArrayBuffer ${env.sharedArrayBuffer ? 'yes' : 'no'}, ${cores} cores)`);
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
    const inked = await page.evaluateOn('[data-testid="bn-chart"]', (canvas) => {
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let count = 0;
      for (let i = 3; i < pixels.length; i += 4) count += pixels[i] > 0;
      return count;
    }, []);
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
    const examples = await page.count('[data-testid="example"]');
    assert.ok(examples >= 10, `${examples} gallery examples`);
    await page.click('[data-testid="example"]', 3);
    await page.waitFor(
      (names) => names.includes(document.querySelector('[data-testid="prediction"]').textContent),
      [CLASS_NAMES],
      { timeout: 10_000 },
    );
    console.log(`prediction for example 3: ${await page.text('[data-testid="prediction"]')}`);

    assert.deepEqual(await pageErrors(), [], 'the page logged errors');
  }, { retry: true });

  /** Pixels of a canvas within a small distance of an RGB colour (its lines, anti-aliasing aside). */
  const pixelsOfColor = (testid, rgb) =>
    page.evaluateOn(
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
      [rgb],
    );
  const figure1Step = async () => Number((await page.text('[data-testid="figure1-step"]')).replaceAll(',', ''));
  const seriesPoints = async (testid) => (await page.attribute(`[data-testid="${testid}"]`, 'data-points')).split(',').map(Number);

  engineTest("the Figure 1 preset trains the paper's two networks live and draws both curves", async () => {
    const started = Date.now();
    const t0 = await page.evaluate(() => performance.now()); // frames: the first test's counter still runs
    await page.click('[data-testid="preset-figure1"]');
    await page.waitFor(
      (min) => {
        const counts = (document.querySelector('[data-testid="figure1-accuracy"]').dataset.points ?? '').split(',').map(Number);
        return counts.length === 2 && counts.every((n) => n >= min);
      },
      [FIGURE1_MIN_POINTS],
      { timeout: FIGURE1_BUDGET_MS, interval: 250 },
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
    const frames = await page.evaluate((from, to) => window.__frameTimes.filter((t) => t >= from && t <= to), t0, t1);
    const fps = (frames.length - 1) / ((frames[frames.length - 1] - frames[0]) / 1000);
    console.log(`figure1: main thread ${fps.toFixed(1)} animation frames/s while the preset trained, longest gap ${longestGap(frames).toFixed(0)} ms`);
    assert.ok(frames.length > 10, `${frames.length} animation frames while the preset trained`);
    assert.ok(longestGap(frames) < MAX_FRAME_GAP_MS, `the main thread stopped rendering for ${longestGap(frames).toFixed(0)} ms while the preset trained`);
    mkdirSync(join(RESULTS, engine), { recursive: true });
    await page.evaluateOn('#figure1Card', (card) => card.scrollIntoView({ block: 'center' }), []);
    await page.screenshot({ path: FIGURE1_SCREENSHOT, selector: '#figure1Card' });
    const text = async (id) => page.text(`#${id}`);
    console.log(
      `figure1: step ${await text('figure1Step')} after ${((Date.now() - started) / 1000).toFixed(1)} s, test accuracy ` +
        `${await text('figure1BatchNorm')}% with batch norm, ${await text('figure1Plain')}% without; screenshot: ${FIGURE1_SCREENSHOT}`,
    );

    // Pause stops training (at the next measurement); Reset clears the run.
    await page.click('[data-testid="figure1-pause"]');
    await page.waitFor(() => document.querySelector('[data-testid="figure1-pause"]').textContent === 'Resume', [], { timeout: 10_000 });
    const pausedAt = await figure1Step();
    // The last measurement came just before the pause's reply; the charts (and their
    // data-points) draw it at the next animation frame. Read the series after that frame.
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
    const pausedPoints = await seriesPoints('figure1-accuracy');
    await sleep(1500);
    const later = await figure1Step();
    console.log(`figure1 pause: step counter ${pausedAt} -> ${later} after 1.5 s`);
    assert.equal(later, pausedAt, 'the Figure 1 step counter moved while paused');
    assert.deepEqual(await seriesPoints('figure1-accuracy'), pausedPoints, 'measurements arrived while paused');
    await page.click('[data-testid="figure1-reset"]');
    assert.equal(await page.text('[data-testid="figure1-step"]'), '0');
    await page.waitFor(() => document.querySelector('[data-testid="figure1-accuracy"]').dataset.points === '0,0');
    assert.equal(await page.isDisabled('[data-testid="preset-figure1"]'), false, 'the preset cannot be started again after Reset');

    assert.deepEqual(await pageErrors(), [], 'the page logged errors');
  });

  /** Animation frames counted from now on by the page itself (window.__frameTimes). */
  async function countFrames() {
    await page.evaluate(() => {
      window.__frameTimes = [];
      const tick = (time) => {
        window.__frameTimes.push(time);
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
    });
  }

  async function loadPage() {
    await page.goto(url());
    try {
      await page.waitForSelector('[data-testid="start"]:not([disabled])', { timeout: 60_000 }); // data loaded
    } catch (error) {
      error.message += `; the page's status line: ${await page.text('#status').catch(() => '?')}`;
      throw error;
    }
  }

  const stepOf = async (testid) => Number(await page.attribute(`[data-testid="${testid}"]`, 'data-step'));
  const optionTexts = (testid) => page.all(`[data-testid="${testid}"] option`, (list) => list.map((o) => o.textContent));
  const bnPoints = async () => Number(await page.attribute('[data-testid="bn-chart"]', 'data-points'));

  /** Pixels of a canvas that are not (almost) black: ink on the feature maps. */
  const brightPixels = (testid) =>
    page.evaluateOn(`[data-testid="${testid}"]`, (canvas) => {
      const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
      let count = 0;
      for (let i = 0; i < pixels.length; i += 4) count += pixels[i + 3] > 200 && pixels[i] + pixels[i + 1] + pixels[i + 2] > 90;
      return count;
    }, []);

  engineTest('the CNN network choice trains the issue 10 CNN: per-channel running averages, gallery, first conv layer', async () => {
    await clearErrors(); // (the earlier tests asserted none)
    await loadPage(); // a fresh page: nothing left of the earlier runs
    assert.deepEqual(await page.all('[data-testid="network"] option', (list) => list.map((o) => o.value)), ['dense', 'cnn', 'resnet']);
    await page.select('[data-testid="network"]', 'cnn');
    assert.equal(await page.isDisabled('#hidden'), true, 'the hidden sizes apply to the dense network only');
    await countFrames();
    const t0 = await page.evaluate(() => performance.now());
    const started = Date.now();
    await page.click('[data-testid="start"]');
    // The layers the page lists are the CNN's, with their output shapes.
    await page.waitFor(() => document.querySelectorAll('[data-testid="model-layers"] li').length > 0);
    const layers = await page.all('[data-testid="model-layers"] li', (list) => list.map((li) => li.textContent));
    console.log(`cnn layers: ${layers.join(' | ')}`);
    assert.equal(layers.length, 12);
    assert.match(layers[0], /^conv2d 16 filters 3×3, padding 'same', no bias → 16×28×28$/);
    assert.match(layers[7], /max pool 2×2 → 32×7×7$/);
    assert.match(layers[11], /^dense 10 → 10$/);

    // Train until the test set has been scored at CNN_MIN_STEPS or later.
    while ((await stepOf('test-accuracy')) < CNN_MIN_STEPS && Date.now() - started < CNN_BUDGET_MS) await sleep(250);
    const scoredAt = await stepOf('test-accuracy');
    const accuracy = await number('test-accuracy');
    const t1 = await page.evaluate(() => performance.now());
    const frames = await page.evaluate((from, to) => window.__frameTimes.filter((t) => t >= from && t <= to), t0, t1);
    const fps = (frames.length - 1) / ((frames[frames.length - 1] - frames[0]) / 1000);
    console.log(
      `cnn: test accuracy ${accuracy.toFixed(2)}% scored at step ${scoredAt} (${((Date.now() - started) / 1000).toFixed(1)} s, ` +
        `${await page.text('#rate')} examples/s); main thread ${fps.toFixed(1)} frames/s, longest gap ${longestGap(frames).toFixed(0)} ms`,
    );
    assert.ok(scoredAt >= CNN_MIN_STEPS, `no test score at step >= ${CNN_MIN_STEPS} within ${CNN_BUDGET_MS / 1000} s (last at ${scoredAt})`);
    assert.ok(accuracy >= CNN_MIN_ACCURACY, `CNN test accuracy ${accuracy}% at step ${scoredAt}, expected >= ${CNN_MIN_ACCURACY}%`);
    assert.ok(frames.length > 10, `${frames.length} animation frames while the CNN trained`);
    assert.ok(longestGap(frames) < MAX_FRAME_GAP_MS, `the main thread stopped rendering for ${longestGap(frames).toFixed(0)} ms while the CNN trained`);

    // The running-average picture, per channel: layer 1 normalizes 16 channels, every one has samples.
    const bnLayers = await optionTexts('bn-layer');
    assert.deepEqual(bnLayers, ['1 (batch norm of 16 channels)', '5 (batch norm of 32 channels)', '9 (batch norm of 128 units)']);
    assert.equal(await page.value('[data-testid="bn-layer"]'), '1');
    assert.equal(await page.text('#bnUnitLabel'), 'Channel');
    assert.deepEqual(await optionTexts('bn-unit'), Array.from({ length: 16 }, (_, c) => String(c)));
    const perChannel = [];
    for (const channel of ['0', '7', '15']) {
      await page.select('[data-testid="bn-unit"]', channel);
      await page.waitFor(() => document.querySelector('[data-testid="bn-chart"]').dataset.points !== '0', [], { timeout: 5000 });
      perChannel.push(`${channel}: ${await bnPoints()}`);
    }
    const blue = await pixelsOfColor('bn-chart', [47, 111, 222]);
    console.log(`cnn: running-average picture, samples of layer 1 channels ${perChannel.join(', ')}; ${blue} blue dot pixels`);
    await page.select('[data-testid="bn-layer"]', '9');
    assert.equal(await page.text('#bnUnitLabel'), 'Unit', 'after a dense layer the picture is per unit');
    await page.select('[data-testid="bn-layer"]', '1');

    // Pause, then the gallery: every image classified one at a time with the running averages.
    await page.click('[data-testid="pause"]');
    await page.waitForSelector('[data-testid="start"]:not([disabled])');
    const examples = await page.count('[data-testid="example"]');
    await page.click('[data-testid="example"]', 5);
    await page.waitFor((names) => names.includes(document.querySelector('[data-testid="prediction"]').textContent), [CLASS_NAMES], { timeout: 10_000 });
    // Both counts in one evaluation: the worker's last snapshot after the pause can re-mark the
    // gallery between two queries, and an image that turns from wrong to right in between is
    // counted in neither (Firefox, CI: 23 of 24).
    const [right, wrong] = await page.evaluate(() =>
      ['right', 'wrong'].map((mark) => document.querySelectorAll(`[data-testid="example"].${mark}`).length),
    );
    console.log(`cnn: gallery ${right} right, ${wrong} wrong; example 5 predicted ${await page.text('[data-testid="prediction"]')}`);
    assert.equal(right + wrong, examples, 'every gallery image has an answer');
    assert.ok(right >= CNN_MIN_GALLERY_RIGHT, `${right} of ${examples} gallery images right`);

    // The first conv layer: 16 filters of 3x3 and their 16 feature maps of 28x28 for the selected image.
    assert.equal(await page.isVisible('[data-testid="conv-filters"]'), true);
    assert.match(await page.text('#filtersCaption'), /its 16 learned 3×3 filters/);
    assert.match(await page.text('#mapsCaption'), /^Their 16 feature maps \(28×28\) for test image 2062, after batch norm and relu/);
    const bright = await brightPixels('feature-maps');
    console.log(`cnn: feature maps have ${bright} bright pixels`);
    assert.ok(bright > 1000, `feature maps: ${bright} bright pixels`);

    mkdirSync(join(RESULTS, engine), { recursive: true });
    await page.screenshot({ path: CNN_SCREENSHOT, fullPage: true });
    console.log(`cnn screenshot: ${CNN_SCREENSHOT}`);
    assert.deepEqual(await pageErrors(), [], 'the page logged errors');
  }, { retry: true });

  engineTest("the Small ResNet network choice trains issue 16's residual network: its layers, test accuracy, per-channel running averages", async () => {
    await clearErrors();
    await loadPage();
    await page.select('[data-testid="network"]', 'resnet');
    assert.equal(await page.isDisabled('#hidden'), true, 'the hidden sizes apply to the dense network only');
    assert.equal(await page.value('#learningRate'), '0.01', "the ResNet's own learning rate");
    const started = Date.now();
    await page.click('[data-testid="start"]');
    await page.waitFor(() => document.querySelectorAll('[data-testid="model-layers"] li').length > 0);
    // The page's network is fashionMnistResNetConfig's: the same lines from the core's description.
    const { describeNetwork } = await import('../../web/src/index.node.js');
    const { describeLayers } = await import('../../web/demo/layers.js');
    const reference = await describeNetwork(fashionMnistResNetConfig());
    const expected = describeLayers(reference.config, reference.layers).lines.map((l) => `${l.text} → ${l.shape}`);
    const layers = await page.all('[data-testid="model-layers"] li', (list) => list.map((li) => li.textContent));
    console.log(`resnet layers: ${layers.join(' | ')}`);
    assert.deepEqual(layers, expected);
    assert.match(layers[8], /^add of layer 7 and layer 2 → 8×28×28$/);

    // Each score is a snapshot of a network still learning at a learning rate of 0.01, tested with
    // running averages that follow its last ~10 batches: scores taken a few dozen steps apart at
    // steps 100-180 ranged from 34% to 64%. So every score from step RESNET_MIN_STEPS on is read, and
    // one of them must reach RESNET_MIN_ACCURACY within the budget; all are printed.
    const scores = [];
    let best = -1;
    while (best < RESNET_MIN_ACCURACY && Date.now() - started < RESNET_BUDGET_MS) {
      const [step, accuracy] = await page.evaluate(() => {
        const e = document.querySelector('[data-testid="test-accuracy"]');
        return [Number(e.dataset.step), Number.parseFloat(e.textContent)];
      });
      if (step >= RESNET_MIN_STEPS && step !== scores.at(-1)?.step) {
        scores.push({ step, accuracy });
        best = Math.max(best, accuracy);
      }
      if (best < RESNET_MIN_ACCURACY) await sleep(250);
    }
    const list = scores.map((s) => `${s.accuracy.toFixed(2)}% at step ${s.step}`).join(', ');
    console.log(
      `resnet: test scores from step ${RESNET_MIN_STEPS}: ${list || 'none'} (${((Date.now() - started) / 1000).toFixed(1)} s, ` +
        `step ${await page.text('#step')}, ${await page.text('#rate')} examples/s; status: ${await page.text('#status')})`,
    );
    assert.ok(scores.length > 0, `no test score at step >= ${RESNET_MIN_STEPS} within ${RESNET_BUDGET_MS / 1000} s`);
    assert.ok(best >= RESNET_MIN_ACCURACY, `ResNet test scores ${list}, none >= ${RESNET_MIN_ACCURACY}% within ${RESNET_BUDGET_MS / 1000} s`);

    // Six batch-norm layers, per channel; the skip branch's (layer 11) has samples too.
    const bnLayers = reference.config.layers.flatMap((l, i) => (l.type === 'batchNorm' ? [`${i} (batch norm of ${reference.layers[i].outputShape[0]} channels)`] : []));
    assert.equal(bnLayers.length, 6);
    assert.deepEqual(await optionTexts('bn-layer'), bnLayers);
    await page.select('[data-testid="bn-layer"]', '11');
    await page.select('[data-testid="bn-unit"]', '15');
    await page.waitFor(() => document.querySelector('[data-testid="bn-chart"]').dataset.points !== '0', [], { timeout: 5000 });
    const running = await page.text('[data-testid="bn-running"]');
    console.log(`resnet: running-average picture of layer 11 channel 15 has ${await bnPoints()} samples; ${running}`);
    assert.match(running, /^Running mean \S+ at step \d+ → \S+ at step \d+; running variance /);

    await page.click('[data-testid="pause"]');
    await page.waitForSelector('[data-testid="start"]:not([disabled])');
    const examples = await page.count('[data-testid="example"]');
    await page.click('[data-testid="example"]', 5);
    await page.waitFor((names) => names.includes(document.querySelector('[data-testid="prediction"]').textContent), [CLASS_NAMES], { timeout: 10_000 });
    const answered = await page.count('[data-testid="example"].right, [data-testid="example"].wrong');
    assert.equal(answered, examples, 'every gallery image has an answer');
    assert.match(await page.text('#filtersCaption'), /^Layer 0: its 8 learned 3×3 filters/);
    // Its feature maps as the next conv sees them: after batch norm and ReLU, not after the next conv.
    assert.match(await page.text('#mapsCaption'), /^Their 8 feature maps \(28×28\) for test image 2062, after batch norm and relu \(with the running averages\)/);
    mkdirSync(join(RESULTS, engine), { recursive: true });
    await page.screenshot({ path: RESNET_SCREENSHOT, fullPage: true });
    console.log(`resnet screenshot: ${RESNET_SCREENSHOT}`);
    assert.deepEqual(await pageErrors(), [], 'the page logged errors');
  }, { retry: true });

  /**
   * A model made with the Node API: 784-64-BN-ReLU-10 trained one epoch on 6,000 training images,
   * its save() bytes, its ONNX export, its safetensors export with its config, a damaged copy (one byte flipped: the checksum no longer
   * matches), and what Node says about it: single-example test accuracy and the first gallery answer.
   */
  async function makeModel() {
    const { createNetwork } = await import('../../web/src/index.node.js');
    const { importONNX, loadSafetensors } = await import('../../web/src/interop/index.node.js');
    const { train, test } = loadFashionMnist({ trainLimit: 6000 });
    const net = await createNetwork({
      inputSize: 784,
      layers: [{ type: 'dense', units: 64, useBias: false }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dense', units: 10 }],
      loss: 'softmaxCrossEntropy',
      optimizer: { type: 'adam', learningRate: 1e-3 },
      seed: 5,
    });
    await net.fit(train.x, train.y, { epochs: 1, batchSize: 64 });
    const bytes = net.save();
    const onnx = net.toONNX();
    const safetensors = net.toSafetensors();
    const config = JSON.stringify(net.config);
    const damaged = bytes.slice();
    damaged[damaged.length >> 1] ^= 0x10;
    const first = net.predict(test.x.subarray(FIRST_GALLERY_IMAGE * 784, (FIRST_GALLERY_IMAGE + 1) * 784));
    const running = (name) => net.getWeights().find((t) => t.layer === 1 && t.name === name).values[0];
    const expected = {
      steps: net.steps,
      accuracy: net.evaluate(test.x, test.y).accuracy,
      firstAnswer: CLASS_NAMES[first.indexOf(Math.max(...first))],
      // Unit 0 of the batch-norm layer (layer 1), which the page's running-average picture shows first.
      runningMean: running('runningMean'),
      runningVariance: running('runningVariance'),
    };
    net.dispose();
    const fromOnnx = await importONNX(onnx, { loss: 'softmaxCrossEntropy' });
    expected.onnxAccuracy = fromOnnx.evaluate(test.x, test.y).accuracy;
    fromOnnx.dispose();
    const fromSafetensors = await loadSafetensors(safetensors, JSON.parse(config));
    expected.safetensorsAccuracy = fromSafetensors.evaluate(test.x, test.y).accuracy;
    fromSafetensors.dispose();
    mkdirSync(RESULTS, { recursive: true });
    const files = {
      model: join(RESULTS, 'demo-model.bnwasm'),
      onnx: join(RESULTS, 'demo-model.onnx'),
      safetensors: join(RESULTS, 'demo-model.safetensors'),
      config: join(RESULTS, 'demo-model-config.json'),
      damaged: join(RESULTS, 'demo-damaged.bnwasm'),
      truncatedOnnx: join(RESULTS, 'demo-truncated.onnx'),
    };
    writeFileSync(files.model, bytes);
    writeFileSync(files.onnx, onnx);
    writeFileSync(files.safetensors, safetensors);
    writeFileSync(files.config, config);
    writeFileSync(files.damaged, damaged);
    writeFileSync(files.truncatedOnnx, onnx.subarray(0, onnx.length >> 1));
    return { files, expected };
  }

  const statusText = () => page.text('[data-testid="status"]');
  async function openFiles(paths) {
    await page.setFiles('[data-testid="open-model"]', paths);
    await page.waitFor(() => !/^Opening|scoring/.test(document.querySelector('[data-testid="status"]').textContent), [], { timeout: 60_000 });
    return statusText();
  }

  engineTest('Open a model…: a bnwasm model and its ONNX and safetensors exports score as in Node; a damaged file is refused', async () => {
    model ??= makeModel();
    const { files, expected } = await model;
    const percent = (v) => (100 * v).toFixed(2);
    console.log(
      `model made in Node: ${expected.steps} steps, single-example test accuracy ${percent(expected.accuracy)}% (ONNX import ` +
        `${percent(expected.onnxAccuracy)}%, safetensors ${percent(expected.safetensorsAccuracy)}%), image ${FIRST_GALLERY_IMAGE}: ${expected.firstAnswer}`,
    );
    await clearErrors();
    await loadPage();
    const interopFrom = site.log.length;
    const interopRequests = () => site.log.slice(interopFrom).filter((r) => r.path.includes('/src/interop/'));
    await page.select('[data-testid="dataset"]', 'toy'); // opening a 784 -> 10 model switches back to Fashion-MNIST

    const opened = await openFiles([files.model]);
    console.log(`open demo-model.bnwasm: ${opened}`);
    assert.match(opened, /^Opened demo-model\.bnwasm \(bnwasm, \d+ optimizer steps in bnwasm\)/);
    assert.equal(await page.value('[data-testid="dataset"]'), 'fashion-mnist');
    assert.equal(await page.text('[data-testid="test-accuracy"]'), percent(expected.accuracy), "the page's test accuracy differs from Node's");
    assert.equal(await stepOf('test-accuracy'), expected.steps);
    const layers = await page.all('[data-testid="model-layers"] li', (list) => list.map((li) => li.textContent));
    assert.deepEqual(layers, ['dense 64, no bias → 64', 'batch norm (64 units), momentum 0.9 → 64', 'relu → 64', 'dense 10 → 10']);
    assert.match(await page.text('[data-testid="model-source"]'), /^demo-model\.bnwasm \(bnwasm\); input 784$/);
    // The gallery: its first image selected and classified with the model's running averages.
    await page.waitFor((names) => names.includes(document.querySelector('[data-testid="prediction"]').textContent), [CLASS_NAMES], { timeout: 10_000 });
    assert.equal(await page.text('[data-testid="prediction"]'), expected.firstAnswer);
    assert.equal(await page.count('[data-testid="example"].right, [data-testid="example"].wrong'), 24);
    assert.equal(await page.text('[data-testid="start"]'), 'Fine-tune');
    mkdirSync(join(RESULTS, engine), { recursive: true });
    await page.screenshot({ path: OPENED_SCREENSHOT, fullPage: true });
    console.log(`opened-model screenshot: ${OPENED_SCREENSHOT}`);

    // A damaged file: the library's ModelFormatError in the page; the opened model stays.
    const refused = await openFiles([files.damaged]);
    console.log(`open demo-damaged.bnwasm: ${refused}`);
    assert.match(refused, /^Could not open demo-damaged\.bnwasm: ModelFormatError: loadNetwork\(\): /);
    assert.equal(await page.attribute('[data-testid="status"]', 'class'), 'error');
    assert.equal(await page.text('[data-testid="test-accuracy"]'), percent(expected.accuracy));

    // The ONNX export, through bnwasm/interop: the page imports it only now.
    assert.deepEqual(interopRequests(), [], 'the page loaded bnwasm/interop before it opened an ONNX or safetensors file');
    const fromOnnx = await openFiles([files.onnx]);
    console.log(`open demo-model.onnx: ${fromOnnx} (${interopRequests().length} interop modules loaded)`);
    assert.match(fromOnnx, /^Opened demo-model\.onnx \(ONNX\): /);
    assert.ok(interopRequests().length > 0, 'the ONNX file was opened without bnwasm/interop');
    assert.equal(await page.text('[data-testid="test-accuracy"]'), percent(expected.onnxAccuracy));
    assert.equal(await page.text('[data-testid="prediction"]'), expected.firstAnswer);

    // A safetensors file holds tensors only: alone it is refused, with its config.json it opens.
    const alone = await openFiles([files.safetensors]);
    console.log(`open demo-model.safetensors alone: ${alone}`);
    assert.match(alone, /^Could not open demo-model\.safetensors: Error: demo-model\.safetensors: a \.safetensors file holds tensors only; select it together with its config\.json/);
    const paired = await openFiles([files.safetensors, files.config]);
    console.log(`open demo-model.safetensors + demo-model-config.json: ${paired}`);
    assert.match(paired, /^Opened demo-model\.safetensors \+ demo-model-config\.json \(safetensors\): /);
    assert.equal(await page.text('[data-testid="test-accuracy"]'), percent(expected.safetensorsAccuracy));
    assert.equal(await page.text('[data-testid="prediction"]'), expected.firstAnswer);

    // A truncated ONNX file: bnwasm/interop's ModelFormatError; the opened model stays.
    const truncated = await openFiles([files.truncatedOnnx]);
    console.log(`open demo-truncated.onnx: ${truncated}`);
    assert.match(truncated, /^Could not open demo-truncated\.onnx: ModelFormatError: importONNX\(\): /);
    assert.equal(await page.text('[data-testid="test-accuracy"]'), percent(expected.safetensorsAccuracy));

    // Still usable: fine-tuning the opened model trains in the worker. With batch norm 'frozen' its
    // running averages stay the model's own (Node's values) while it trains; with 'batch' they move.
    const f = (v) => v.toPrecision(6);
    const fineTune = async (mode) => {
      await page.select('[data-testid="finetune-batchnorm"]', mode);
      await page.click('[data-testid="start"]');
      await page.waitFor(() => /^Fine-tuning /.test(document.querySelector('[data-testid="status"]').textContent));
      const fineTuning = await statusText();
      await page.waitFor((from) => Number(document.querySelector('[data-testid="step"]').textContent) >= from + 50, [expected.steps], { timeout: 30_000 });
      await page.click('[data-testid="pause"]');
      await page.waitForSelector('[data-testid="start"]:not([disabled])');
      await sleep(300); // the last progress report
      const shown = await page.text('[data-testid="bn-running"]');
      console.log(`fine-tuning with '${mode}': ${fineTuning} ${await statusText()} ${shown}`);
      assert.match(fineTuning, new RegExp(`\\(batch norm '${mode}'\\)`));
      return shown;
    };
    assert.equal(await page.value('[data-testid="finetune-batchnorm"]'), 'batch');
    assert.match(await openFiles([files.model]), /^Opened demo-model\.bnwasm/);
    const kept = await fineTune('frozen');
    const [mean, variance] = [f(expected.runningMean), f(expected.runningVariance)];
    const at = /at step (\d+)/.exec(kept)?.[1];
    // (The last sample may trail the step counter: samples are taken within a time budget.)
    assert.ok(Number(at) > expected.steps, `the running averages were last sampled at step ${at}, before fine-tuning`);
    assert.equal(kept, `Running mean ${mean} when opened → ${mean} at step ${at}; running variance ${variance} → ${variance}: unchanged. Fine-tuned with batch norm 'frozen'.`);

    assert.match(await openFiles([files.model]), /^Opened demo-model\.bnwasm/);
    const moved = await fineTune('batch');
    const now = /→ (\S+) at step \d+; running variance \S+ → (\S+)\. Fine-tuned with batch norm 'batch'\.$/.exec(moved);
    assert.ok(now, `the page says: ${moved}`);
    assert.ok(moved.startsWith(`Running mean ${mean} when opened → `), moved);
    assert.notEqual(now[1], mean, 'fine-tuning with batch statistics left the running mean as it was');
    assert.notEqual(now[2], variance, 'fine-tuning with batch statistics left the running variance as it was');
    assert.deepEqual(await pageErrors(), [], 'the page logged errors');
  }, { retry: true });
}
