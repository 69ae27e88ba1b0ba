// The demo page: trains in a worker (createTrainer), draws on the main thread, and
// classifies single examples on the main thread with snapshots of the worker's network.
import { createTrainer } from '../src/index.js';
import { drawImage, drawRegions, plot, prepare } from './charts.js';
import { loadFashionMnist, makeSpirals } from './datasets.js';
import { setupFigure1 } from './figure1-panel.js';

const $ = (id) => document.getElementById(id);

// Per-dataset defaults, applied when the dataset changes.
const DEFAULTS = {
  'fashion-mnist': { hidden: '128, 128', learningRate: 0.001, batchSize: 64, epochs: 100, validationInterval: 1000, snapshotEvery: 1500 },
  toy: { hidden: '32, 32', learningRate: 0.01, batchSize: 32, epochs: 5000, validationInterval: 0, snapshotEvery: 250 },
};
const TRACKED_UNITS = 8;
const MAX_BN_SAMPLES = 400; // points kept per batch-norm layer for the running-average picture
const GALLERY_SIZE = 24;
const REGION_GRID = 72;
const REGION_EXTENT = [-1.3, 1.3];

const datasets = new Map(); // name -> promise of the dataset
let data = null; // the current dataset
let run = null; // the current training run (null before Start and after Reset)
let selectedExample = -1;
let dirty = true;

// ---- status and controls ------------------------------------------------------------------

function status(text, isError = false) {
  $('status').textContent = text;
  $('status').classList.toggle('error', isError);
}

function fail(error) {
  console.warn(error);
  status(`${error.name ?? 'Error'}: ${error.message}`, true);
}

function controlValue(id) {
  const value = Number($(id).value);
  if (!Number.isFinite(value)) throw new RangeError(`${id} must be a number, got "${$(id).value}"`);
  return value;
}

function configFromControls() {
  const hidden = $('hidden')
    .value.split(/[\s,]+/)
    .filter(Boolean)
    .map((s) => {
      const units = Number(s);
      if (!Number.isInteger(units) || units < 1 || units > 4096) throw new RangeError(`hidden layer size "${s}" must be an integer in [1, 4096]`);
      return units;
    });
  const batchNorm = $('batchNorm').checked;
  const layers = [];
  for (const units of hidden) {
    // With batch norm the dense bias is redundant: beta takes its place.
    layers.push({ type: 'dense', units, useBias: !batchNorm });
    if (batchNorm) layers.push({ type: 'batchNorm', momentum: controlValue('momentum'), epsilon: controlValue('epsilon') });
    layers.push({ type: $('activation').value });
  }
  layers.push({ type: 'dense', units: data.classNames.length });
  return {
    inputSize: data.inputSize,
    layers,
    loss: 'softmaxCrossEntropy',
    optimizer: { type: 'adam', learningRate: controlValue('learningRate') },
    seed: 1,
  };
}

function updateButtons() {
  const running = run && !run.finished;
  $('start').disabled = !data || (running && !run.paused) || run?.starting;
  $('start').textContent = running && run.paused ? 'Resume' : 'Start';
  $('pause').disabled = !running || run.paused || run.starting;
}

// ---- datasets -----------------------------------------------------------------------------

function loadDataset(name) {
  if (!datasets.has(name)) {
    datasets.set(name, name === 'toy' ? Promise.resolve(makeSpirals()) : loadFashionMnist());
  }
  return datasets.get(name);
}

async function selectDataset(name) {
  reset();
  data = null;
  updateButtons();
  const d = DEFAULTS[name];
  $('hidden').value = d.hidden;
  $('learningRate').value = d.learningRate;
  $('batchSize').value = d.batchSize;
  status(name === 'toy' ? 'Generating spirals…' : 'Loading Fashion-MNIST…');
  try {
    const loaded = await loadDataset(name);
    if ($('dataset').value !== name) return;
    data = loaded;
    status(
      `${name === 'toy' ? 'Two spirals' : 'Fashion-MNIST'}: ${data.train.n.toLocaleString()} training and ` +
        `${data.test.n.toLocaleString()} test examples${globalThis.crossOriginIsolated ? ', shared with the worker' : ''}. Press Start.`,
    );
  } catch (error) {
    fail(error);
  }
  $('toyPanel').hidden = name !== 'toy';
  $('galleryCard').hidden = name === 'toy';
  buildGallery();
  updateButtons();
  dirty = true;
}

// ---- training -----------------------------------------------------------------------------

function newRun(config) {
  return {
    config,
    trainer: null,
    controller: new AbortController(),
    starting: true,
    paused: false,
    finished: false,
    step: 0,
    loss: [],
    trainAccuracy: [],
    testAccuracy: [],
    bnLayers: config.layers.flatMap((l, i) => (l.type === 'batchNorm' ? [i] : [])),
    bn: new Map(), // layer -> {units, samples: [{step, mean, variance, runningMean, runningVariance}]}
    snapshot: null,
    snapshotBusy: false,
    snapshotTimer: 0,
    regions: null,
  };
}

async function start() {
  figure1.pause(); // one run trains at a time: two would split the cores
  if (run && !run.finished && run.paused) {
    run.paused = false;
    updateButtons();
    await run.trainer.resume();
    status('Training…');
    return;
  }
  if (!data) return;
  if (run) reset();
  let config;
  try {
    config = configFromControls();
  } catch (error) {
    fail(error);
    return;
  }
  const r = (run = newRun(config));
  updateButtons();
  fillBnSelectors();
  status('Starting the worker…');
  try {
    r.trainer = await createTrainer(config);
  } catch (error) {
    if (run === r) {
      run = null;
      fillBnSelectors();
      updateButtons();
      fail(error);
    }
    return;
  }
  if (run !== r) {
    r.trainer.terminate();
    return;
  }
  r.starting = false;
  updateButtons();
  status('Training…');
  const d = DEFAULTS[data.name];
  const batchSize = controlValue('batchSize');
  r.batchSize = batchSize;
  r.trainer
    .fit(data.train.x, data.train.y, {
      epochs: d.epochs,
      batchSize,
      validationData: [data.test.x, data.test.y],
      validationInterval: d.validationInterval,
      progressInterval: 100,
      trackUnits: TRACKED_UNITS,
      signal: r.controller.signal,
      onProgress: (p) => run === r && onProgress(r, p),
    })
    .then((history) => {
      if (run !== r) return;
      r.finished = true;
      status(history.aborted ? 'Stopped.' : `Done: ${history.steps.toLocaleString()} steps.`);
      refreshSnapshot(r);
      updateButtons();
    })
    .catch((error) => {
      if (run !== r) return;
      r.finished = true;
      updateButtons();
      fail(error);
    });
  r.snapshotTimer = setInterval(() => refreshSnapshot(r), d.snapshotEvery);
}

async function pause() {
  if (!run || run.paused || run.finished || !run.trainer) return;
  const r = run;
  r.paused = true;
  updateButtons();
  const { step } = await r.trainer.pause();
  if (run !== r) return;
  r.step = step;
  $('step').textContent = String(step);
  status(`Paused at step ${step.toLocaleString()}.`);
  refreshSnapshot(r);
}

function reset() {
  if (run) {
    clearInterval(run.snapshotTimer);
    run.controller.abort();
    run.trainer?.terminate();
    run.snapshot?.dispose();
    run = null;
  }
  $('step').textContent = '0';
  $('epoch').textContent = '–';
  $('rate').textContent = '–';
  $('testAccuracy').textContent = '–';
  $('runningAccuracy').textContent = '–';
  $('ownAccuracy').textContent = '–';
  $('prediction').textContent = '–';
  $('truth').textContent = '';
  $('bars').replaceChildren();
  fillBnSelectors();
  updateButtons();
  dirty = true;
}

function onProgress(r, p) {
  r.step = p.step;
  $('step').textContent = String(p.step);
  $('epoch').textContent = `${p.epoch + 1} (${Math.round((100 * p.batch) / p.batchesPerEpoch)}%)`;
  $('rate').textContent = Math.round(p.examplesPerSecond).toLocaleString();
  if (Number.isFinite(p.loss)) r.loss.push([p.step, p.loss]);
  if (p.accuracy !== undefined) r.trainAccuracy.push([p.step, 100 * p.accuracy]);
  if (p.validation) {
    const percent = 100 * p.validation.accuracy;
    r.testAccuracy.push([p.validation.step, percent]);
    $('testAccuracy').textContent = percent.toFixed(2);
    $('runningAccuracy').textContent = `${percent.toFixed(2)} %`;
  }
  for (const b of p.batchNorm) {
    let entry = r.bn.get(b.layer);
    if (!entry) r.bn.set(b.layer, (entry = { units: Array.from(b.units), samples: [] }));
    const k = b.units.length;
    const h = b.history;
    for (let j = 0; j < h.step.length; j++) {
      const at = (key) => h[key].subarray(j * k, (j + 1) * k);
      entry.samples.push({
        step: h.step[j],
        mean: at('batchMean'),
        variance: at('batchVariance'),
        runningMean: at('runningMean'),
        runningVariance: at('runningVariance'),
      });
    }
    if (entry.samples.length > MAX_BN_SAMPLES) entry.samples.splice(0, entry.samples.length - MAX_BN_SAMPLES);
  }
  if (r.bnLayers.length && $('bnUnit').options.length === 0) fillBnSelectors();
  dirty = true;
}

// ---- snapshots: test time on the main thread ------------------------------------------------

async function refreshSnapshot(r) {
  if (r.snapshotBusy || !r.trainer || r.trainer.terminated) return null;
  r.snapshotBusy = true;
  try {
    const net = await r.trainer.snapshot();
    if (run !== r) {
      net.dispose();
      return null;
    }
    r.snapshot?.dispose();
    r.snapshot = net;
    ownStatisticsAccuracy(r, net);
    if (data.name === 'toy') computeRegions(r, net);
    dirty = true;
    return net;
  } catch (error) {
    if (run === r && !r.trainer.terminated) fail(error);
    return null;
  } finally {
    r.snapshotBusy = false;
  }
}

// Normalizing a single example with its own statistics: with a batch of one, mu is the
// example's own value and sigma^2 is 0, so every batch-norm layer outputs exactly beta whatever
// the input. The network then answers the same for every example; that answer is the network
// with gamma = 0 (the output is gamma * 0 + beta) on any input.
function ownStatisticsAccuracy(r, net) {
  if (r.bnLayers.length === 0) {
    $('ownAccuracy').textContent = 'no batch-norm layers';
    return;
  }
  const gammas = net.getWeights().filter((t) => t.name === 'gamma');
  net.setWeights(gammas.map((t) => ({ layer: t.layer, name: 'gamma', values: new Float32Array(t.values.length) })));
  const probabilities = net.predict(new Float32Array(net.inputSize));
  net.setWeights(gammas);
  let answer = 0;
  for (let c = 1; c < probabilities.length; c++) if (probabilities[c] > probabilities[answer]) answer = c;
  let correct = 0;
  for (let i = 0; i < data.test.n; i++) correct += data.test.y[i] === answer;
  $('ownAccuracy').textContent = `${((100 * correct) / data.test.n).toFixed(2)} % (always “${data.classNames[answer]}”)`;
}

function computeRegions(r, net) {
  const [lo, hi] = REGION_EXTENT;
  const grid = new Float32Array(REGION_GRID * REGION_GRID * 2);
  for (let row = 0; row < REGION_GRID; row++) {
    for (let col = 0; col < REGION_GRID; col++) {
      const i = row * REGION_GRID + col;
      grid[2 * i] = lo + ((col + 0.5) / REGION_GRID) * (hi - lo);
      grid[2 * i + 1] = hi - ((row + 0.5) / REGION_GRID) * (hi - lo);
    }
  }
  r.regions = net.predictBatch(grid);
}

// ---- gallery --------------------------------------------------------------------------------

function buildGallery() {
  const gallery = $('gallery');
  gallery.replaceChildren();
  selectedExample = -1;
  if (!data || data.name !== 'fashion-mnist') return;
  for (let g = 0; g < GALLERY_SIZE; g++) {
    const index = (g * 409 + 17) % data.test.n; // a fixed spread over the test set
    const canvas = document.createElement('canvas');
    canvas.dataset.testid = 'example';
    canvas.title = `test image ${index}`;
    drawImage(canvas, data.test.pixels.subarray(index * 784, (index + 1) * 784));
    canvas.addEventListener('click', () => {
      for (const c of gallery.children) c.classList.remove('selected');
      canvas.classList.add('selected');
      classify(index).catch(fail);
    });
    gallery.append(canvas);
  }
}

async function classify(index) {
  selectedExample = index;
  const r = run;
  const net = r?.trainer && !r.trainer.terminated ? (await refreshSnapshot(r)) ?? r.snapshot : r?.snapshot;
  if (selectedExample !== index) return;
  if (!net) {
    $('prediction').textContent = 'press Start first';
    return;
  }
  const probabilities = net.predict(data.test.x.subarray(index * 784, (index + 1) * 784));
  let best = 0;
  for (let c = 1; c < probabilities.length; c++) if (probabilities[c] > probabilities[best]) best = c;
  $('prediction').textContent = data.classNames[best];
  $('truth').textContent = `(true class: ${data.classNames[data.test.y[index]]}; network after ${net.steps.toLocaleString()} steps)`;
  const bars = [];
  probabilities.forEach((p, c) => {
    const name = document.createElement('span');
    name.textContent = data.classNames[c];
    const bar = document.createElement('div');
    bar.className = c === best ? 'bar best' : 'bar';
    bar.style.width = `${(100 * p).toFixed(1)}%`;
    const value = document.createElement('span');
    value.className = 'p';
    value.textContent = `${(100 * p).toFixed(1)}%`;
    bars.push(name, bar, value);
  });
  $('bars').replaceChildren(...bars);
}

// ---- the running-average picture and the other charts ----------------------------------------

function fillBnSelectors() {
  const layerSelect = $('bnLayer');
  const unitSelect = $('bnUnit');
  const previous = [layerSelect.value, unitSelect.value];
  layerSelect.replaceChildren();
  unitSelect.replaceChildren();
  if (!run) return;
  let width = run.config.inputSize;
  run.config.layers.forEach((l, i) => {
    if (l.type === 'dense') width = l.units;
    if (l.type === 'batchNorm') layerSelect.append(new Option(`${i} (batch norm of ${width} units)`, String(i)));
  });
  const units = Math.min(TRACKED_UNITS, ...run.config.layers.filter((l) => l.type === 'dense').slice(0, -1).map((l) => l.units));
  for (let u = 0; u < units; u++) unitSelect.append(new Option(String(u), String(u)));
  if ([...layerSelect.options].some((o) => o.value === previous[0])) layerSelect.value = previous[0];
  if ([...unitSelect.options].some((o) => o.value === previous[1])) unitSelect.value = previous[1];
}

function drawCharts() {
  const loss = prepare($('lossChart'));
  plot(loss.ctx, { x: 0, y: 0, width: loss.width, height: loss.height }, {
    title: 'cross-entropy, mean over the mini-batches since the last update',
    series: [{ points: run?.loss ?? [], color: '#2f6fde', kind: 'line', label: 'training loss' }],
  });
  const accuracy = prepare($('accuracyChart'));
  plot(accuracy.ctx, { x: 0, y: 0, width: accuracy.width, height: accuracy.height }, {
    title: '%',
    yFormat: (v) => v.toFixed(0),
    series: [
      { points: run?.trainAccuracy ?? [], color: '#b8c4d9', kind: 'line', width: 1, label: 'latest training examples' },
      { points: run?.testAccuracy ?? [], color: '#e0672b', kind: 'line', width: 2, label: 'test (running averages)' },
    ],
  });
  drawBnChart();
  if (data?.name === 'toy') {
    const points = [];
    for (let i = 0; i < data.train.n; i++) points.push({ x: data.train.x[2 * i], y: data.train.x[2 * i + 1], label: data.train.y[i] });
    drawRegions($('regions'), run?.regions ?? null, REGION_GRID, 2, points, REGION_EXTENT);
  }
}

function drawBnChart() {
  const { ctx, width, height } = prepare($('bnChart'));
  const layer = Number($('bnLayer').value);
  const unit = Number($('bnUnit').value);
  const entry = run?.bn.get(layer);
  const samples = entry?.samples ?? [];
  const u = entry ? entry.units.indexOf(unit) : -1;
  // The running variance takes the unbiased batch variance: show the dots on that scale.
  const unbiased = run && run.batchSize > 1 ? run.batchSize / (run.batchSize - 1) : 1;
  const pick = (key, scale = 1) => (u < 0 ? [] : samples.map((s) => [s.step, s[key][u] * scale]));
  const half = height / 2;
  const note = run && run.bnLayers.length === 0 ? ' (this network has no batch norm)' : '';
  plot(ctx, { x: 0, y: 0, width, height: half }, {
    title: `μ of unit ${Number.isNaN(unit) ? '–' : unit}${note}`,
    series: [
      { points: pick('mean'), color: '#2f6fde', kind: 'dots', radius: 2, label: 'mini-batch μ' },
      { points: pick('runningMean'), color: '#e0672b', kind: 'line', width: 2, label: 'running mean' },
    ],
  });
  plot(ctx, { x: 0, y: half, width, height: half }, {
    title: 'σ²',
    series: [
      { points: pick('variance', unbiased), color: '#2f6fde', kind: 'dots', radius: 2, label: 'mini-batch σ²' },
      { points: pick('runningVariance'), color: '#e0672b', kind: 'line', width: 2, label: 'running variance' },
    ],
  });
}

// Draws at most once per animation frame, and only after something changed.
function frame() {
  if (dirty) {
    dirty = false;
    drawCharts();
  }
  requestAnimationFrame(frame);
}

// ---- wiring -------------------------------------------------------------------------------

$('start').addEventListener('click', () => start().catch(fail));
$('pause').addEventListener('click', () => pause().catch(fail));
$('reset').addEventListener('click', () => {
  reset();
  if (data) status('Reset. Press Start to train a new network with the settings on the left.');
});
$('dataset').addEventListener('change', () => selectDataset($('dataset').value));
for (const id of ['bnLayer', 'bnUnit']) $(id).addEventListener('change', () => (dirty = true));
for (const id of ['hidden', 'activation', 'batchNorm', 'momentum', 'epsilon', 'learningRate', 'batchSize']) {
  $(id).addEventListener('change', () => {
    if (run) $('hint').textContent = 'Settings apply to the next network: press Reset, then Start.';
  });
}
$('reset').addEventListener('click', () => ($('hint').textContent = ''));
window.addEventListener('resize', () => (dirty = true));

// The paper's Figure 1 preset runs in a worker of its own; starting it pauses this page's training.
const figure1 = setupFigure1({
  loadData: () => loadDataset('fashion-mnist'),
  onStart: () => {
    if (run && !run.finished && !run.paused && !run.starting) pause().catch(fail);
  },
});

requestAnimationFrame(frame);
selectDataset($('dataset').value);
