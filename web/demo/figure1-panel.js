// The "Paper: Ioffe & Szegedy Figure 1" preset: runs the paper's experiment
// (experiments/figure1.js, FIGURE1_DEMO_PRESET) live in its own worker and draws its
// picture as the measurements arrive: (a) test accuracy with and without batch norm,
// (b, c) percentiles of one last-hidden-layer unit's input to its sigmoid.
import { plot, prepare } from './charts.js';
import { FIGURE1_DEMO_PRESET as PRESET } from './experiments/figure1.js';
import { forWorker } from './datasets.js';

const $ = (id) => document.getElementById(id);
const COLORS = { batchNorm: '#2f6fde', plain: '#e0672b' };
// Percentiles in the order of PRESET.probe.percentiles (15th, 50th, 85th): the median solid.
const STYLES = [{ width: 1.3, dash: [5, 4] }, { width: 2.2 }, { width: 1.3, dash: [5, 4] }];

/**
 * Wires the preset's controls and charts (ids in index.html).
 * @param {{loadData: () => Promise<object>, onStart?: () => void}} options loadData resolves
 *   to Fashion-MNIST as datasets.js loads it; onStart runs before the preset trains
 *   (the page pauses its own training there, so the two runs do not share the cores)
 * @returns {{pause: () => Promise<void>}} pause: stops the preset's training at its next measurement
 */
export function setupFigure1({ loadData, onStart = () => {} }) {
  let run = null; // {worker, request, points, starting, paused, pausing, finished, started, pausedAt}
  let drawQueued = false;

  const byKey = Object.fromEntries(PRESET.networks.map((n) => [n.key, n]));
  const { unit, examples } = PRESET.probe;
  $('figure1Setup').textContent =
    `${PRESET.description} Learning rate ${byKey.plain.config.optimizer.learningRate}; ` +
    `${PRESET.steps.toLocaleString('en-US')} steps on the same mini-batches for both networks. ` +
    `Percentiles of unit ${unit} of the third hidden layer, over the first ${examples.toLocaleString('en-US')} test images.`;
  $('figure1Total').textContent = PRESET.steps.toLocaleString('en-US');

  function status(text, isError = false) {
    $('figure1Status').textContent = text;
    $('figure1Status').classList.toggle('error', isError);
  }

  function updateButtons() {
    const active = run && !run.finished;
    $('presetFigure1').disabled = Boolean(active);
    $('figure1Pause').disabled = !active || run.starting || run.pausing;
    $('figure1Pause').textContent = active && run.paused ? 'Resume' : 'Pause';
    $('figure1Reset').disabled = !run;
  }

  function invalidate() {
    if (drawQueued) return;
    drawQueued = true;
    requestAnimationFrame(() => {
      drawQueued = false;
      draw();
    });
  }

  /** A worker with one map of request id to promise (the library's worker protocol). */
  function spawn(r) {
    const worker = new Worker(new URL('./figure1-worker.js', import.meta.url), { type: 'module', name: 'bnwasm-figure1' });
    const pending = new Map();
    let nextId = 1;
    const failAll = (error) => {
      for (const { reject } of pending.values()) reject(error);
      pending.clear();
    };
    worker.onmessage = ({ data: m }) => {
      const entry = pending.get(m.id);
      if (!entry) return;
      if (m.type === 'progress') return entry.onProgress?.(m);
      pending.delete(m.id);
      if (m.type === 'result') entry.resolve(m);
      else failAll(Object.assign(new Error(m.error.message), { name: m.error.name }));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      failAll(new Error(`the Figure 1 worker failed: ${event.message || 'its script did not load'}`));
    };
    r.worker = worker;
    r.request = (type, fields = {}, onProgress = null, transfer = []) =>
      new Promise((resolve, reject) => {
        const id = nextId++;
        pending.set(id, { resolve, reject, onProgress });
        worker.postMessage({ id, type, ...fields }, transfer);
      });
  }

  function onMeasurement(r, m) {
    r.points.push(m);
    const last = (key) => `${(100 * m.accuracy[key]).toFixed(1)}`;
    $('figure1Step').textContent = m.step.toLocaleString('en-US');
    $('figure1BatchNorm').textContent = last('batchNorm');
    $('figure1Plain').textContent = last('plain');
    if (!r.paused && !r.pausing) status(`Training both networks… ${((performance.now() - r.started) / 1000).toFixed(0)} s`);
    invalidate();
  }

  function fail(r, error) {
    if (run !== r) return;
    r.finished = true;
    r.worker?.terminate();
    console.warn(error);
    status(`${error.name ?? 'Error'}: ${error.message}`, true);
    updateButtons();
  }

  async function start() {
    if (run && !run.finished) return;
    reset();
    onStart();
    const r = (run = { worker: null, request: null, points: [], starting: true, paused: false, pausing: false, finished: false, started: 0, pausedAt: 0 });
    updateButtons();
    $('figure1Card').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
    status('Loading Fashion-MNIST…');
    try {
      const data = await loadData();
      if (run !== r) return;
      spawn(r);
      r.starting = false;
      r.started = performance.now();
      updateButtons();
      status('Starting the worker…');
      // Labels are a view into the whole data file: send copies of just them. Pixels are
      // shared with the worker where memory can be shared, else copied a slice at a time and
      // moved (datasets.js forWorker).
      const split = async ({ x, y, n }) => ({ x: await forWorker(x), y: y.slice(), n });
      const train = await split(data.train);
      const test = await split(data.test);
      if (run !== r) return;
      const moved = [train, test].flatMap((d) => (d.x.buffer instanceof ArrayBuffer ? [d.x.buffer, d.y.buffer] : [d.y.buffer]));
      const { step } = await r.request('run', { preset: PRESET, data: { train, test } }, (m) => (run === r ? onMeasurement(r, m.measurement) : undefined), moved);
      if (run !== r) return;
      r.finished = true;
      r.worker.terminate();
      status(`Done: ${step.toLocaleString('en-US')} steps in ${((performance.now() - r.started) / 1000).toFixed(0)} s.`);
      updateButtons();
    } catch (error) {
      fail(r, error);
    }
  }

  async function pause() {
    if (!run || run.finished || run.starting || run.paused || run.pausing) return;
    const r = run;
    r.pausing = true;
    updateButtons();
    status('Pausing after the next measurement…');
    let step;
    try {
      ({ step } = await r.request('pause'));
    } catch {
      return; // the run failed: start() reports it
    }
    if (run !== r) return;
    r.pausing = false;
    r.paused = !r.finished;
    if (r.paused) {
      r.pausedAt = performance.now();
      status(`Paused at step ${step.toLocaleString('en-US')}.`);
    }
    updateButtons();
  }

  async function resume() {
    if (!run?.paused) return;
    const r = run;
    onStart();
    r.paused = false;
    r.started += performance.now() - r.pausedAt; // times count training only
    updateButtons();
    status('Training both networks…');
    await r.request('resume').catch(() => {}); // a failed run is reported by start()
  }

  function reset() {
    run?.worker?.terminate();
    run = null;
    $('figure1Step').textContent = '0';
    $('figure1BatchNorm').textContent = '–';
    $('figure1Plain').textContent = '–';
    status('Press “Paper: Ioffe & Szegedy Figure 1” (Presets, on the left) to train both networks here, live.');
    updateButtons();
    invalidate();
  }

  function draw() {
    const points = run?.points ?? [];
    const xRange = [0, PRESET.steps];

    const accuracy = ['batchNorm', 'plain'].map((key) => ({
      points: points.map((p) => [p.step, 100 * p.accuracy[key]]),
      color: COLORS[key],
      width: 2,
      label: byKey[key].label,
    }));
    // Points per series, for the end-to-end test.
    $('figure1Accuracy').dataset.points = accuracy.map((s) => s.points.length).join(',');
    $('figure1Percentiles').dataset.points = String(points.length);
    const a = prepare($('figure1Accuracy'));
    plot(a.ctx, { x: 0, y: 0, width: a.width - 8, height: a.height }, {
      title: '(a) test accuracy, %',
      xRange,
      yTicks: 8,
      yFormat: (v) => v.toFixed(0),
      series: accuracy,
    });

    // One y range for both panels, so the two spreads compare by eye.
    const values = points.flatMap((p) => [...p.percentiles.plain, ...p.percentiles.batchNorm]);
    let yRange;
    if (values.length) {
      const lo = Math.min(...values);
      const hi = Math.max(...values);
      const pad = Math.max(0.06 * (hi - lo), 0.25);
      yRange = [lo - pad, hi + pad];
    }
    const quantiles = PRESET.probe.percentiles.map((q) => `${q}th`).join(' / ');
    const b = prepare($('figure1Percentiles'));
    const half = b.width / 2;
    [
      ['plain', '(b)'],
      ['batchNorm', '(c)'],
    ].forEach(([key, letter], i) => {
      plot(b.ctx, { x: i * half, y: 0, width: half - 8, height: b.height }, {
        title: `${letter} ${byKey[key].label}: sigmoid input, ${quantiles} percentile`,
        xRange,
        yRange,
        yTicks: 6,
        series: PRESET.probe.percentiles.map((q, k) => ({
          points: points.map((p) => [p.step, p.percentiles[key][k]]),
          color: COLORS[key],
          ...STYLES[k],
        })),
      });
    });
  }

  $('presetFigure1').addEventListener('click', () => start());
  $('figure1Pause').addEventListener('click', () => (run?.paused ? resume() : pause()));
  $('figure1Reset').addEventListener('click', () => reset());
  window.addEventListener('resize', invalidate);
  reset();

  return { pause };
}
