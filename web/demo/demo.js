// The demo page: trains in a worker (createTrainer), draws on the main thread, and
// classifies single examples on the main thread with snapshots of the worker's network.
// A model file opened in the page (loadNetwork; ONNX and safetensors through bnwasm/interop,
// imported only then) is scored and fine-tuned the same way (loadTrainer).
import { createTrainer, describeNetwork, loadNetwork, loadTrainer } from '../src/index.js';
import { drawFeatureMaps, drawFilters, drawImage, drawRegions, plot, prepare } from './charts.js';
import { SHARED_MEMORY, forWorker, loadFashionMnist, makeSpirals } from './datasets.js';
import { setupFigure1 } from './figure1-panel.js';
import { describeLayers, firstConv, toShape } from './layers.js';

const $ = (id) => document.getElementById(id);

// Per-dataset defaults, applied when the dataset changes.
const DEFAULTS = {
  'fashion-mnist': { hidden: '128, 128', learningRate: 0.001, batchSize: 64, epochs: 100, validationInterval: 1000, snapshotEvery: 1500 },
  toy: { hidden: '32, 32', learningRate: 0.01, batchSize: 32, epochs: 5000, validationInterval: 0, snapshotEvery: 250 },
};
// A CNN's score on the 10,000 test images takes the worker about a second (every image through
// both conv layers): every 5 s leaves most of the worker's time to training.
const CNN_VALIDATION_INTERVAL = 5000;
// The small ResNet takes about twice as long to score (8 s against 4 s for the CNN in Node on a
// loaded machine): every 10 s keeps the same share of the worker's time for training.
const RESNET_VALIDATION_INTERVAL = 10000;
// The ResNet's own learning rate (scripts/fashion-mnist.mjs): with 8-16 channels and global
// pooling it learns slowly at the page's 0.001 (34% after 100 steps in the e2e test's first run).
const RESNET_LEARNING_RATE = 0.01;
const TRACKED_UNITS = 16; // units (channels, after a conv layer) per batch-norm layer in the picture
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

const batchNormLayer = () => ({ type: 'batchNorm', momentum: controlValue('momentum'), epsilon: controlValue('epsilon') });

// The CNN of issue 10: conv 16 3x3 'same', BN, ReLU, max pool 2; conv 32 the same; dense 128,
// BN, ReLU; dense 10. Without batch norm the conv and dense layers keep their bias.
function cnnLayers(batchNorm, activation) {
  const layers = [];
  for (const filters of [16, 32]) {
    layers.push({ type: 'conv2d', filters, kernelSize: 3, padding: 'same', useBias: !batchNorm });
    if (batchNorm) layers.push(batchNormLayer());
    layers.push({ type: activation }, { type: 'maxPool2d', poolSize: 2 });
  }
  layers.push({ type: 'dense', units: 128, useBias: !batchNorm });
  if (batchNorm) layers.push(batchNormLayer());
  layers.push({ type: activation });
  return layers;
}

// The small residual network of issue 16 (scripts/fashion-mnist.mjs's fashionMnistResNetConfig,
// PyTorch's SmallResNet): a conv stem (8 filters); a block whose input is added to its output; a
// block that halves the image, with a strided 1x1 conv on its skip (16 filters); global average
// pooling. Layers named after the PyTorch modules. Without batch norm the adds read the convs.
function resnetLayers(batchNorm, activation) {
  const layers = [];
  // A conv and its batch norm; returns the name of the branch's last layer (what an add reads).
  const convBn = (conv, bn, filters, kernelSize, stride, inputs) => {
    layers.push({ type: 'conv2d', name: conv, filters, kernelSize, stride, padding: kernelSize === 3 ? 1 : 0, useBias: !batchNorm, ...(inputs && { inputs }) });
    if (!batchNorm) return conv;
    layers.push({ ...batchNormLayer(), name: bn });
    return bn;
  };
  convBn('conv1', 'bn1', 8, 3, 1);
  layers.push({ type: activation, name: 'relu' });
  convBn('layer1.0.conv1', 'layer1.0.bn1', 8, 3, 1);
  layers.push({ type: activation });
  const residual1 = convBn('layer1.0.conv2', 'layer1.0.bn2', 8, 3, 1);
  layers.push({ type: 'add', inputs: [residual1, 'relu'] }, { type: activation, name: 'layer1_0_relu_1' });
  const skip = convBn('layer2.0.downsample.0', 'layer2.0.downsample.1', 16, 1, 2);
  convBn('layer2.0.conv1', 'layer2.0.bn1', 16, 3, 2, ['layer1_0_relu_1']);
  layers.push({ type: activation });
  const residual2 = convBn('layer2.0.conv2', 'layer2.0.bn2', 16, 3, 1);
  layers.push({ type: 'add', inputs: [residual2, skip] }, { type: activation }, { type: 'globalAvgPool' });
  return layers;
}

// The conv networks (CNN, ResNet) have a fixed shape and exist for Fashion-MNIST only.
const convChosen = () => $('network').value !== 'dense' && data?.name === 'fashion-mnist';

function configFromControls() {
  const optimizer = { type: 'adam', learningRate: controlValue('learningRate') };
  if (convChosen()) {
    const resnet = $('network').value === 'resnet';
    const body = (resnet ? resnetLayers : cnnLayers)($('batchNorm').checked, $('activation').value);
    const layers = [...body, { type: 'dense', units: data.classNames.length, ...(resnet && { name: 'fc' }) }];
    return { inputShape: [1, 28, 28], layers, loss: 'softmaxCrossEntropy', optimizer, seed: 1 };
  }
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
    if (batchNorm) layers.push(batchNormLayer());
    layers.push({ type: $('activation').value });
  }
  layers.push({ type: 'dense', units: data.classNames.length });
  return { inputSize: data.inputSize, layers, loss: 'softmaxCrossEntropy', optimizer, seed: 1 };
}

function updateButtons() {
  const fitting = run?.fitting && !run.finished;
  $('start').disabled = !data || run?.starting || (fitting && !run.paused);
  $('start').textContent = fitting && run.paused ? 'Resume' : run?.opened && !run.fitting ? 'Fine-tune' : 'Start';
  $('pause').disabled = !fitting || run.paused;
}

const defaultLearningRate = (dataset) => (dataset === 'fashion-mnist' && $('network').value === 'resnet' ? RESNET_LEARNING_RATE : DEFAULTS[dataset].learningRate);

// The CNN and the ResNet have a fixed shape (the hidden sizes do not apply) and exist for Fashion-MNIST only.
function updateNetworkControls() {
  const fashion = $('dataset').value === 'fashion-mnist';
  $('network').disabled = !fashion;
  const network = fashion ? $('network').value : 'dense';
  $('hidden').disabled = network !== 'dense';
  $('hiddenLabel').classList.toggle('disabled', network !== 'dense');
  $('batchNormText').textContent = {
    dense: 'Batch norm after each hidden dense layer',
    cnn: 'Batch norm after each conv and hidden dense layer',
    resnet: 'Batch norm after each conv layer',
  }[network];
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
  $('learningRate').value = defaultLearningRate(name);
  $('batchSize').value = d.batchSize;
  updateNetworkControls();
  status(name === 'toy' ? 'Generating spirals…' : 'Loading Fashion-MNIST…');
  try {
    const loaded = await loadDataset(name);
    if ($('dataset').value !== name) return;
    data = loaded;
    status(
      `${name === 'toy' ? 'Two spirals' : 'Fashion-MNIST'}: ${data.train.n.toLocaleString()} training and ` +
        `${data.test.n.toLocaleString()} test examples${SHARED_MEMORY ? ', shared with the worker' : ''}. Press Start.`,
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

/**
 * A run: a network in a worker, built from the controls or opened from a file (`opened`).
 * `config` is normalized and `layers` the core's description of them (describeNetwork).
 */
function newRun(config, layers, opened = null) {
  return {
    config,
    opened, // {name, format} of an opened model file
    layers,
    trainer: null,
    controller: new AbortController(),
    starting: true,
    fitting: false,
    paused: false,
    finished: false,
    step: 0,
    loss: [],
    trainAccuracy: [],
    testAccuracy: [],
    bnLayers: layers.flatMap((l, i) => (l.tensors.some((t) => t.name === 'runningMean') ? [i] : [])),
    bn: new Map(), // layer -> {units, samples: [{step, mean, variance, runningMean, runningVariance}]}
    batchNormMode: undefined, // fit's batchNorm option: 'batch' or 'frozen' when fine-tuning an opened model
    openedRunning: null, // layer -> {mean, variance}: an opened model's running averages before it trains
    snapshot: null,
    snapshotBusy: false,
    snapshotTimer: 0,
    regions: null,
  };
}

async function start() {
  figure1.pause(); // one run trains at a time: two would split the cores
  if (run?.fitting && !run.finished && run.paused) {
    run.paused = false;
    updateButtons();
    await run.trainer.resume();
    status(run.opened ? `Fine-tuning ${run.opened.name}…` : 'Training…');
    return;
  }
  if (!data) return;
  if (run?.opened && !run.fitting && !run.starting) {
    fit(run);
    return;
  }
  if (run) reset();
  let config;
  let layers;
  try {
    // The core checks the settings and says what each layer makes of its input.
    ({ config, layers } = await describeNetwork(configFromControls()));
  } catch (error) {
    fail(error);
    return;
  }
  const r = (run = newRun(config, layers));
  updateButtons();
  fillBnSelectors();
  showLayers(r);
  status('Starting the worker…');
  try {
    r.trainer = await createTrainer(config);
    $('threads').textContent = String(r.trainer.threads);
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
  fit(r);
}

/** The arrays a fit hands the worker (datasets.js forWorker: shared, or copies to move). */
async function workerArrays() {
  const { train, test } = data;
  return { x: await forWorker(train.x), y: train.y.slice(), testX: await forWorker(test.x), testY: test.y.slice(), transfer: !SHARED_MEMORY };
}

/** Trains the run's network in its worker (a new one, or an opened model: fine-tuning). */
async function fit(r) {
  const d = DEFAULTS[data.name];
  let batchSize;
  try {
    batchSize = controlValue('batchSize');
  } catch (error) {
    r.starting = false;
    fail(error);
    return;
  }
  r.starting = true;
  updateButtons();
  const arrays = await workerArrays();
  if (run !== r) return;
  r.starting = false;
  r.fitting = true;
  updateButtons();
  r.batchSize = batchSize;
  if (r.opened) r.batchNormMode = $('fineTuneBatchNorm').value;
  status(r.opened ? `Fine-tuning ${r.opened.name} (batch norm '${r.batchNormMode}')…` : 'Training…');
  const conv = r.config.layers.some((l) => l.type === 'conv2d');
  const residual = r.config.layers.some((l) => l.type === 'add');
  r.trainer
    .fit(arrays.x, arrays.y, {
      epochs: d.epochs,
      batchSize,
      ...(r.batchNormMode && { batchNorm: r.batchNormMode }),
      validationData: [arrays.testX, arrays.testY],
      transfer: arrays.transfer,
      validationInterval: residual ? RESNET_VALIDATION_INTERVAL : conv ? CNN_VALIDATION_INTERVAL : d.validationInterval,
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
  if (!run?.fitting || run.paused || run.finished) return;
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
  delete $('testAccuracy').dataset.step;
  $('runningAccuracy').textContent = '–';
  $('ownAccuracy').textContent = '–';
  $('prediction').textContent = '–';
  $('truth').textContent = '';
  $('bars').replaceChildren();
  for (const canvas of $('gallery').children) canvas.classList.remove('right', 'wrong');
  $('firstConv').hidden = true;
  fillBnSelectors();
  showLayers(null);
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
    showTestAccuracy(percent, p.validation.step);
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

function showTestAccuracy(percent, step) {
  $('testAccuracy').textContent = percent.toFixed(2);
  $('testAccuracy').dataset.step = String(step); // the step the score belongs to
  $('runningAccuracy').textContent = `${percent.toFixed(2)} %`;
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
    showSnapshot(r, net).catch(fail);
    return net;
  } catch (error) {
    if (run === r && !r.trainer.terminated) fail(error);
    return null;
  } finally {
    r.snapshotBusy = false;
  }
}

const nextTask = () => new Promise((resolve) => setTimeout(resolve, 0));

// What the page shows of a main-thread network: the gallery's answers or the decision regions,
// the test-time comparison, the first conv layer. One part per task, so the page draws between
// them (in WebKit each part of a CNN takes a few hundred ms); a newer snapshot ends the rest.
async function showSnapshot(r, net) {
  const current = () => run === r && r.snapshot === net;
  if (data.name === 'toy') computeRegions(r, net);
  else markGallery(net);
  dirty = true;
  await nextTask();
  if (!current()) return;
  ownStatisticsAccuracy(r, net);
  if (data.name === 'toy') return;
  await nextTask();
  if (current()) showFirstConv(r, net);
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
    canvas.dataset.index = String(index);
    drawImage(canvas, data.test.pixels.subarray(index * 784, (index + 1) * 784));
    canvas.addEventListener('click', () => selectExample(canvas));
    gallery.append(canvas);
  }
}

const galleryPosition = (index) => [...$('gallery').children].findIndex((c) => Number(c.dataset.index) === index);

function selectExample(canvas) {
  for (const c of $('gallery').children) c.classList.remove('selected');
  canvas.classList.add('selected');
  classify(Number(canvas.dataset.index)).catch(fail);
}

const argmax = (values) => values.reduce((best, v, c) => (v > values[best] ? c : best), 0);
const testImage = (index) => data.test.x.subarray(index * 784, (index + 1) * 784);

/** Each gallery image's answer, one predict() each: a green mark when right, red when wrong. */
function markGallery(net) {
  const out = new Float32Array(net.outputSize);
  for (const canvas of $('gallery').children) {
    const index = Number(canvas.dataset.index);
    const answer = argmax(net.predict(testImage(index), out));
    canvas.classList.toggle('right', answer === data.test.y[index]);
    canvas.classList.toggle('wrong', answer !== data.test.y[index]);
    canvas.title = `test image ${index}: ${data.classNames[data.test.y[index]]}, predicted ${data.classNames[answer]}`;
  }
}

async function classify(index) {
  selectedExample = index;
  const r = run;
  const net = r?.trainer && !r.trainer.terminated && r.fitting ? (await refreshSnapshot(r)) ?? r.snapshot : r?.snapshot;
  if (selectedExample !== index) return;
  if (!net) {
    $('prediction').textContent = 'press Start first';
    return;
  }
  const probabilities = net.predict(testImage(index));
  const best = argmax(probabilities);
  showFirstConv(r, net);
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

// The first conv layer's filters (its weights) and their feature maps for the selected test
// image (or the gallery's first), as the layer after the conv (batch norm, activation) passes
// them on: what the network looks for, and where it finds it.
function showFirstConv(r, net) {
  const conv = firstConv(r.config, r.layers);
  $('firstConv').hidden = conv === null;
  if (conv === null) return;
  const weight = net.getWeights().find((t) => t.layer === conv.conv && t.name === 'weight');
  const [filters, inChannels, kh, kw] = weight.shape;
  drawFilters($('convFilters'), weight.values, weight.shape);
  $('filtersCaption').textContent =
    `Layer ${conv.conv}: its ${filters} learned ${kh}×${kw} filters` + (inChannels > 1 ? ' (first input channel)' : '') +
    ' — orange weights add the pixel under them, blue ones subtract it.';
  const index = selectedExample >= 0 ? selectedExample : Number($('gallery').firstElementChild.dataset.index);
  const { c, h, w } = conv.shape;
  drawFeatureMaps($('featureMaps'), net.activations(testImage(index), conv.maps), { c, h, w });
  const through = r.config.layers.slice(conv.conv + 1, conv.maps + 1).map((l) => (l.type === 'batchNorm' ? 'batch norm' : l.type));
  $('mapsCaption').textContent =
    `Their ${c} feature maps (${h}×${w}) for test image ${index}${through.length ? `, after ${through.join(' and ')}` : ''}` +
    ' (with the running averages): white where a filter responds most.';
}

// ---- the network's layers ---------------------------------------------------------------------

function showLayers(r) {
  const list = $('modelLayers');
  list.replaceChildren();
  $('modelEmpty').hidden = r !== null;
  if (r === null) {
    $('modelSource').textContent = '';
    return;
  }
  const { input, lines } = describeLayers(r.config, r.layers);
  $('modelSource').textContent = r.opened
    ? `${r.opened.name} (${r.opened.format}); input ${input}`
    : `built from the settings; input ${input}`;
  for (const { type, text, shape } of lines) {
    const item = document.createElement('li');
    item.className = type;
    const what = document.createElement('span');
    what.textContent = text;
    const out = document.createElement('span');
    out.className = 'shape';
    out.textContent = `→ ${shape}`;
    item.append(what, ' ', out);
    list.append(item);
  }
}

// ---- opening a model file -----------------------------------------------------------------------

/**
 * The save() bytes of the selected file(s): a bnwasm model as it is; an ONNX file or a
 * safetensors file with its config.json converted by bnwasm/interop, which is loaded only
 * now (the page's first load stays small).
 */
async function modelBytes(files) {
  const configs = files.filter((f) => /\.json$/i.test(f.name));
  const models = files.filter((f) => !/\.json$/i.test(f.name));
  if (models.length !== 1 || configs.length > 1) {
    throw new Error(
      `select one model file (.bnwasm, .onnx, or .safetensors with its config.json), got ${files.map((f) => f.name).join(', ')}`,
    );
  }
  const [file] = models;
  const bytes = new Uint8Array(await file.arrayBuffer());
  // By name: anything not .onnx or .safetensors goes to loadNetwork, which says what is wrong with it.
  const onnx = /\.onnx$/i.test(file.name);
  const safetensors = /\.safetensors$/i.test(file.name);
  if (!onnx && !safetensors) return { bytes, format: 'bnwasm' };
  if (safetensors && configs.length === 0) {
    throw new Error(`${file.name}: a .safetensors file holds tensors only; select it together with its config.json (scripts/pytorch/train_ddp.py writes both)`);
  }
  const interop = await import('../src/interop/index.js');
  // A classifier here: ONNX carries no loss or optimizer, so the page supplies them.
  const net = onnx
    ? await interop.importONNX(bytes, { loss: 'softmaxCrossEntropy', optimizer: { type: 'adam', learningRate: controlValue('learningRate') } })
    : await interop.loadSafetensors(bytes, JSON.parse(await configs[0].text()));
  try {
    return { bytes: net.save(), format: onnx ? 'ONNX' : 'safetensors' };
  } finally {
    net.dispose();
  }
}

// A dataset the model's input and output sizes fit: the current one, else the other.
function datasetFor(net) {
  const fits = (inputSize, classes) => net.inputSize === inputSize && net.outputSize === classes;
  if (data && fits(data.inputSize, data.classNames.length)) return data.name;
  if (fits(784, 10)) return 'fashion-mnist';
  if (fits(2, 2)) return 'toy';
  return null;
}

/**
 * Opens the selected model: checks and loads it on the main thread first (a bad file changes
 * nothing on the page), then replaces the current run with it, scores it on the test set in a
 * worker, and leaves it ready for fine-tuning there.
 */
async function openModel(files) {
  if (files.length === 0) return;
  const name = files.map((f) => f.name).join(' + ');
  status(`Opening ${name}…`);
  let net = null;
  try {
    const { bytes, format } = await modelBytes(files);
    net = await loadNetwork(bytes);
    const target = datasetFor(net);
    if (target === null) {
      reset();
      showLayers({ config: net.config, layers: net.layers, opened: { name, format } });
      status(
        `Opened ${name}: ${net.inputSize} inputs and ${net.outputSize} outputs fit neither dataset here ` +
          '(Fashion-MNIST: 784 → 10, two spirals: 2 → 2); its layers are listed, there is nothing to run it on.',
      );
      return;
    }
    if (target !== data?.name) {
      $('dataset').value = target;
      await selectDataset(target);
      if (!data) return; // selectDataset said why
    } else reset();
    const r = (run = newRun(net.config, net.layers, { name, format }));
    r.snapshot = net;
    r.openedRunning = new Map();
    for (const t of net.getWeights()) {
      if (t.name !== 'runningMean' && t.name !== 'runningVariance') continue;
      if (!r.openedRunning.has(t.layer)) r.openedRunning.set(t.layer, {});
      r.openedRunning.get(t.layer)[t.name === 'runningMean' ? 'mean' : 'variance'] = t.values;
    }
    net = null; // the run owns it now
    fillBnSelectors();
    showLayers(r);
    showSnapshot(r, r.snapshot).catch(fail);
    if (data.name === 'fashion-mnist') selectExample($('gallery').children[Math.max(0, galleryPosition(selectedExample))]);
    updateButtons();
    status(`Opened ${name}; scoring the test set in a worker…`);
    r.trainer = await loadTrainer(bytes);
    if (run !== r) return r.trainer.terminate();
    $('threads').textContent = String(r.trainer.threads);
    const { accuracy } = await r.trainer.evaluate(data.test.x, data.test.y);
    if (run !== r) return;
    const steps = r.snapshot.steps;
    $('step').textContent = String(steps);
    r.testAccuracy.push([steps, 100 * accuracy]);
    showTestAccuracy(100 * accuracy, steps);
    dirty = true; // the accuracy chart shows the score
    r.starting = false;
    updateButtons();
    const trained = steps > 0 ? `, ${steps.toLocaleString()} optimizer steps in bnwasm` : '';
    status(
      `Opened ${name} (${format}${trained}): ${(100 * accuracy).toFixed(2)}% of the ` +
        `${data.test.n.toLocaleString()} test examples classified one at a time. Fine-tune trains it further here.`,
    );
  } catch (error) {
    if (run?.opened?.name === name && run.starting) reset();
    status(`Could not open ${name}: ${error.name ?? 'Error'}: ${error.message}`, true);
  } finally {
    net?.dispose();
    $('openModel').value = ''; // the same file can be chosen again
  }
}

// ---- the running-average picture and the other charts ----------------------------------------

// The shape a batch-norm layer normalizes: its units, or channels of h x w after a conv layer.
const bnInput = (r, layer) => toShape(r.layers[layer].inputShapes[0]);

function fillBnSelectors() {
  const layerSelect = $('bnLayer');
  const previous = layerSelect.value;
  layerSelect.replaceChildren();
  if (run) {
    for (const i of run.bnLayers) {
      const { c, spatial } = bnInput(run, i);
      layerSelect.append(new Option(`${i} (batch norm of ${c} ${spatial ? 'channels' : 'units'})`, String(i)));
    }
    if ([...layerSelect.options].some((o) => o.value === previous)) layerSelect.value = previous;
  }
  fillUnitSelector();
}

// The tracked units of the chosen layer; "Channel" after a conv layer (one μ and σ² per channel).
function fillUnitSelector() {
  const unitSelect = $('bnUnit');
  const previous = unitSelect.value;
  unitSelect.replaceChildren();
  const layer = Number($('bnLayer').value);
  const shape = run && $('bnLayer').value !== '' ? bnInput(run, layer) : null;
  $('bnUnitLabel').textContent = shape?.spatial ? 'Channel' : 'Unit';
  if (!shape) return;
  for (let u = 0; u < Math.min(TRACKED_UNITS, shape.c); u++) unitSelect.append(new Option(String(u), String(u)));
  if ([...unitSelect.options].some((o) => o.value === previous)) unitSelect.value = previous;
}

function drawCharts() {
  const loss = prepare($('lossChart'));
  plot(loss.ctx, { x: 0, y: 0, width: loss.width, height: loss.height }, {
    title: 'cross-entropy, mean over the mini-batches since the last update',
    series: [{ points: run?.loss ?? [], color: '#2f6fde', kind: 'line', label: 'training loss' }],
  });
  const accuracy = prepare($('accuracyChart'));
  // An opened model has one score before it trains: show it against 0-100% from step 0.
  const lone = run && run.trainAccuracy.length === 0 && run.testAccuracy.length === 1;
  plot(accuracy.ctx, { x: 0, y: 0, width: accuracy.width, height: accuracy.height }, {
    title: '%',
    yFormat: (v) => v.toFixed(0),
    ...(lone && { xRange: [0, 1.05 * Math.max(1, run.testAccuracy[0][0])], yRange: [0, 100] }),
    series: [
      { points: run?.trainAccuracy ?? [], color: '#b8c4d9', kind: 'line', width: 1, label: 'latest training examples' },
      { points: run?.testAccuracy ?? [], color: '#e0672b', kind: 'line', width: 2, label: 'test (running averages)' },
      { points: run?.testAccuracy ?? [], color: '#e0672b', kind: 'dots', radius: 2.5 }, // a lone score shows too
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
  // The running variance takes the unbiased batch variance (by default): show the dots on that
  // scale. After a conv layer a channel's variance is over m = batch x height x width values.
  const shape = run && entry ? bnInput(run, layer) : null;
  const m = shape ? run.batchSize * shape.h * shape.w : 1;
  const unbiased = m > 1 && run.config.layers[layer].runningVariance !== 'biased' ? m / (m - 1) : 1;
  const pick = (key, scale = 1) => (u < 0 ? [] : samples.map((s) => [s.step, s[key][u] * scale]));
  $('bnChart').dataset.points = String(u < 0 ? 0 : samples.length); // for the e2e test
  // Under 'frozen' no mini-batch statistics are taken (the layer normalizes with the line): no dots.
  const frozen = run?.batchNormMode === 'frozen';
  const batchDots = (key, scale) => (frozen ? [] : pick(key, scale));
  const half = height / 2;
  const note =
    run && run.bnLayers.length === 0
      ? ' (this network has no batch norm)'
      : run?.opened && !run.fitting
        ? ' (press Fine-tune to watch it train)'
        : frozen
          ? " ('frozen': normalized with the running mean)"
          : '';
  plot(ctx, { x: 0, y: 0, width, height: half }, {
    title: `μ of ${shape?.spatial ? 'channel' : 'unit'} ${Number.isNaN(unit) ? '–' : unit}${note}`,
    series: [
      { points: batchDots('mean'), color: '#2f6fde', kind: 'dots', radius: 2, label: 'mini-batch μ' },
      { points: pick('runningMean'), color: '#e0672b', kind: 'line', width: 2, label: 'running mean' },
    ],
  });
  plot(ctx, { x: 0, y: half, width, height: half }, {
    title: 'σ²',
    series: [
      { points: batchDots('variance', unbiased), color: '#2f6fde', kind: 'dots', radius: 2, label: 'mini-batch σ²' },
      { points: pick('runningVariance'), color: '#e0672b', kind: 'line', width: 2, label: 'running variance' },
    ],
  });
  $('bnRunning').textContent = u < 0 || samples.length === 0 ? '' : runningText(run, layer, unit, u, samples);
}

// Where the running averages of one unit started and where they are now: for an opened model,
// its own values when it was opened (fine-tuning with 'frozen' keeps them), else the first sample.
function runningText(r, layer, unit, u, samples) {
  const f = (v) => v.toPrecision(6);
  const last = samples[samples.length - 1];
  const opened = r.openedRunning?.get(layer);
  const [from, mean, variance] = opened
    ? ['when opened', opened.mean[unit], opened.variance[unit]]
    : [`at step ${samples[0].step}`, samples[0].runningMean[u], samples[0].runningVariance[u]];
  const kept = opened && mean === last.runningMean[u] && variance === last.runningVariance[u];
  return (
    `Running mean ${f(mean)} ${from} → ${f(last.runningMean[u])} at step ${last.step}; running variance ${f(variance)} → ` +
    `${f(last.runningVariance[u])}` + (kept ? ': unchanged.' : '.') + (r.batchNormMode ? ` Fine-tuned with batch norm '${r.batchNormMode}'.` : '')
  );
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
$('network').addEventListener('change', () => {
  $('learningRate').value = defaultLearningRate($('dataset').value);
  updateNetworkControls();
});
$('openModel').addEventListener('change', () => openModel([...$('openModel').files]));
$('bnLayer').addEventListener('change', () => {
  fillUnitSelector();
  dirty = true;
});
$('bnUnit').addEventListener('change', () => (dirty = true));
for (const id of ['network', 'hidden', 'activation', 'batchNorm', 'momentum', 'epsilon', 'learningRate', 'batchSize']) {
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
