// The trainer's worker: one Network, driven by messages. The same file runs as a module
// Web Worker and, through worker.node.js, as a Node worker_threads Worker.
//
// Protocol (the client is trainer.js):
//   requests  {id, type: 'create', config}            -> result {config, inputSize, outputSize}
//             {id, type: 'load', bytes}                -> result {config, inputSize, outputSize}
//             {id, type: 'fit', x, y, options}         -> progress {progress}* and checkpoint {checkpoint}*
//                                                         (bytes transferred), then result (history)
//             {id, type: 'pause' | 'resume'}           -> result {step}  (pause: once the fit has stopped)
//             {id, type: 'snapshot'}                   -> result {bytes}  (save(); the buffer is transferred)
//             {id, type: 'predict', x}                 -> result {output} (transferred)
//             {id, type: 'evaluate', x, y}             -> result {loss, accuracy?}
//             {id, type: 'recomputeStatistics', x, options} -> progress {progress}*, then result
//             {type: 'abort', fit}                     (no reply: the fit resolves early)
//             {type: '__crash', how, atStep?}          (internal test hook, Trainer._crash: the worker dies)
//   replies   {id, type: 'result', result} | {id, type: 'error', error: {name, message, code, details}}
//             | {id, type: 'progress', progress} | {id, type: 'checkpoint', checkpoint}
import { createNetwork, loadNetwork } from './network.js';
import { BnwasmError, InputError, describe, serializeError } from './errors.js';
import { yieldToEventLoop } from './module.js';
import { exitThread, workerPort } from './worker-port.js';

/** Time between yields to the event loop while fitting: bounds how late pause/abort/predict are served. */
const YIELD_MS = 10;
/** Share of training time the per-step batch-norm samples may cost (see sampleBatchNorm). */
const SAMPLE_BUDGET = 0.05;
/** Most samples one progress message carries per batch-norm layer. */
const MAX_SAMPLES = 256;
/** Training rows the progress `accuracy` is measured on. */
const ACCURACY_ROWS = 256;
/** Window (ms) the progress `examplesPerSecond` is measured over. */
const RATE_WINDOW = 2000;

const port = workerPort();
let net = null;
let fitting = null; // the running fit: {id, aborted}
let recomputing = false; // a recomputeStatistics is running (it yields between chunks)
let crashAt = null; // test hook: {step, how}, die once the running fit reaches that step
let paused = false; // a pause request holds the running fit until resume (or its end)
let held = false; // the running fit is held between two mini-batches
let wake = null; // resolves the paused fit's wait
let pauseAcks = []; // ids of pause requests to answer once the fit has stopped

const reply = (id, result, transfer = []) => port.post({ id, type: 'result', result }, transfer);

port.listen(async (message) => {
  const { id, type } = message;
  try {
    switch (type) {
      case 'create':
      case 'load': {
        if (net) throw new BnwasmError(`${type}: this worker already holds a network`, 'BNWASM_INVALID_ARGUMENT');
        net = type === 'create' ? await createNetwork(message.config) : await loadNetwork(message.bytes);
        reply(id, { config: net.config, inputSize: net.inputSize, outputSize: net.outputSize });
        return;
      }
      case 'abort':
        if (fitting && fitting.id === message.fit) {
          fitting.aborted = true;
          wake?.();
        }
        return;
      case 'pause':
        network('pause');
        if (fitting && !held) {
          paused = true;
          pauseAcks.push(id);
        } else {
          reply(id, { step: net.steps });
        }
        return;
      case 'resume':
        paused = false;
        wake?.();
        reply(id, { step: network('resume').steps });
        return;
      case 'snapshot': {
        const bytes = network('snapshot').save();
        reply(id, { bytes }, [bytes.buffer]);
        return;
      }
      case 'predict': {
        const output = network('predict').predict(message.x);
        reply(id, { output }, [output.buffer]);
        return;
      }
      case 'evaluate':
        reply(id, network('evaluate').evaluate(message.x, message.y));
        return;
      case 'fit':
        reply(id, await fit(id, message.x, message.y, message.options));
        return;
      case 'recomputeStatistics':
        await recomputeStatistics(id, message.x, message.options);
        reply(id, undefined);
        return;
      case '__crash':
        if (message.atStep === undefined) await crash(message.how);
        crashAt = { step: message.atStep, how: message.how };
        return;
      default:
        throw new InputError(`bnwasm worker: unknown request type ${describe(type)}`, 'BNWASM_INVALID_ARGUMENT');
    }
  } catch (error) {
    port.post({ id, type: 'error', error: serializeError(error) });
  }
});

// Test hook (Trainer._crash): end this worker the way a fault would, with no reply. In Node
// exitThread ends just this thread ('exit' on the client); an uncaught error ('error', then
// 'exit') is the other way. Browsers give no event for a worker that closes itself, so they
// always get the uncaught error. Never resolves: nothing runs after it.
function crash(how) {
  if (how === 'exit') exitThread(70);
  // Thrown from a microtask, outside every request's try: uncaught before any other message runs.
  queueMicrotask(() => {
    throw new Error('bnwasm worker: crashed on request (Trainer._crash, a test hook)');
  });
  return new Promise(() => {});
}

function network(fn) {
  if (!net) throw new BnwasmError(`${fn}(): the worker has no network yet`, 'BNWASM_INVALID_ARGUMENT');
  return net;
}

// The per-epoch shuffle's generator (mulberry32). `state` (32 bits) is all of it: a
// checkpoint keeps the state an epoch started from, and restarting there redraws that epoch's order.
class Mulberry32 {
  constructor(seed) {
    this.state = seed >>> 0;
  }
  next() {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

function option(name, value, fallback, ok, expected, fn = 'fit') {
  if (value === undefined) return fallback;
  if (!ok(value)) throw new InputError(`${fn}(): ${name} must be ${expected}, got ${describe(value)}`, 'BNWASM_INVALID_ARGUMENT');
  return value;
}

const busy = (fn) =>
  new BnwasmError(
    fitting
      ? `${fn}(): this trainer is already fitting; await the running fit() or abort it first`
      : `${fn}(): this trainer is recomputing statistics; await recomputeStatistics() first`,
    'BNWASM_BUSY',
  );

async function recomputeStatistics(id, x, options = {}) {
  const net = network('recomputeStatistics');
  if (fitting || recomputing) throw busy('recomputeStatistics');
  const progressInterval = option(
    'progressInterval', options.progressInterval, 100,
    (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0, 'a number of ms >= 0', 'recomputeStatistics',
  );
  let lastProgress = -Infinity;
  const onProgress = (progress) => {
    const now = performance.now();
    if (now - lastProgress < progressInterval && progress.examplesDone < progress.examplesTotal) return;
    port.post({ id, type: 'progress', progress });
    lastProgress = now;
  };
  recomputing = true;
  try {
    await net.recomputeStatistics(x, { batchSize: options.batchSize, onProgress });
  } finally {
    recomputing = false;
  }
}

let fits = 0;

async function fit(id, x, y, options = {}) {
  const net = network('fit');
  if (fitting || recomputing) throw busy('fit');
  const { epochs = 1, batchSize = 32, validationData } = options; // checked by _checkFitData below
  const shuffle = option('shuffle', options.shuffle, true, (v) => typeof v === 'boolean', 'true or false');
  const nonNegative = (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  const progressInterval = option('progressInterval', options.progressInterval, 100, nonNegative, 'a number of ms >= 0');
  const validationInterval = option('validationInterval', options.validationInterval, 0, nonNegative, 'a number of ms >= 0');
  const checkpointEvery = option('checkpointEvery', options.checkpointEvery, 0, (v) => Number.isInteger(v) && v >= 1, 'a positive integer');
  const config = net.config;
  const bnLayers = config.layers.flatMap((l, i) => (l.type === 'batchNorm' ? [i] : []));
  const tracked = trackedUnits(options.trackUnits, config, bnLayers);

  const state = { id, aborted: options.aborted === true };
  fitting = state; // from here on, pause and abort apply to this fit
  try {
    // The same checks as the main-thread fit (same error classes, codes and messages).
    net._checkFitData('fit', x, y, { epochs, batchSize, validationData });
    const resumeFrom = options.resumeFrom ? checkResume(options.resumeFrom, net, x, epochs, batchSize, bnLayers.length > 0) : null;
    return await trainLoop(net, state, x, y, {
      epochs,
      batchSize,
      shuffle,
      validationData,
      progressInterval,
      validationInterval,
      checkpointEvery,
      resumeFrom,
      bnLayers,
      tracked,
      initialValidation: validationData
        ? { ...net.evaluate(validationData[0], validationData[1]), step: net.steps }
        : null,
    });
  } finally {
    fitting = null;
    paused = false;
    for (const ack of pauseAcks.splice(0)) reply(ack, { step: net.steps });
  }
}

// Mini-batches one epoch trains: a last batch of one example is skipped under batch norm.
const batchesPerEpoch = (n, batchSize, hasBatchNorm) => Math.ceil(n / batchSize) - (hasBatchNorm && n % batchSize === 1 ? 1 : 0);

// A checkpoint (its shape checked by the client) must come from this network's state and this
// fit's data and options, or resuming would silently train something else.
function checkResume(c, net, x, epochs, batchSize, hasBatchNorm) {
  const n = x.length / net.inputSize;
  const fail = (what) => {
    throw new InputError(`fit(): resumeFrom ${what}`, 'BNWASM_INVALID_ARGUMENT');
  };
  if (c.step !== net.steps) {
    fail(`was taken at step ${c.step}, this network is at step ${net.steps}; resume on loadTrainer(checkpoint.bytes)`);
  }
  if (c.batchSize !== batchSize) fail(`was taken with batchSize ${c.batchSize}, this fit has batchSize ${batchSize}; resume with the same options`);
  if (c.examples !== n) fail(`was taken on ${c.examples} examples, x has ${n}; resume with the same data`);
  if (c.epoch >= epochs) fail(`is in epoch ${c.epoch}, this fit has epochs ${epochs}; resume with the same options`);
  const batches = batchesPerEpoch(n, batchSize, hasBatchNorm);
  if (c.batch > batches) fail(`is at mini-batch ${c.batch} of an epoch, an epoch here has ${batches}`);
  return c;
}

function trackedUnits(spec, config, bnLayers) {
  // Width of each batch-norm layer: the units of the dense layer before it (or the input).
  const widths = new Map();
  let width = config.inputSize;
  config.layers.forEach((l, i) => {
    if (l.type === 'dense') width = l.units;
    if (l.type === 'batchNorm') widths.set(i, width);
  });
  const isIndexList = Array.isArray(spec) && spec.every((u) => Number.isInteger(u) && u >= 0);
  if (spec !== undefined && !(Number.isInteger(spec) && spec >= 0) && !isIndexList) {
    throw new InputError(`fit(): trackUnits must be a count or an array of unit indices, got ${describe(spec)}`, 'BNWASM_INVALID_ARGUMENT');
  }
  return bnLayers.map((layer) => {
    const w = widths.get(layer);
    const units = isIndexList ? spec : Array.from({ length: Math.min(spec ?? 4, w) }, (_, u) => u);
    for (const u of units) {
      if (u >= w) {
        throw new InputError(`fit(): trackUnits has unit ${u}, batch-norm layer ${layer} has ${w} units`, 'BNWASM_INVALID_ARGUMENT');
      }
    }
    return Int32Array.from(units);
  });
}

async function trainLoop(net, state, x, y, o) {
  const d = net.inputSize;
  const n = x.length / d;
  const yWidth = y.length / n;
  const classify = net.config.loss === 'softmaxCrossEntropy';
  const hasBatchNorm = o.bnLayers.length > 0;
  const batchesInEpoch = batchesPerEpoch(n, o.batchSize, hasBatchNorm);
  const random = new Mulberry32(net.config.seed ^ Math.imul(++fits, 0x9e3779b9));
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  const bx = new Float32Array(o.batchSize * d);
  const by = new y.constructor(o.batchSize * yWidth);
  const accuracyRows = Math.min(ACCURACY_ROWS, n);
  const ax = classify ? new Float32Array(accuracyRows * d) : null;
  const ay = classify ? new y.constructor(accuracyRows) : null;

  const history = { epoch: [], loss: [], valLoss: [], valAccuracy: [], steps: 0, aborted: false };
  const samples = o.bnLayers.map((layer, k) => newSamples(o.tracked[k].length));
  let pendingValidation = o.initialValidation;
  let examplesSeen = 0;
  let sinceProgress = { loss: 0, batches: 0 };
  let rateWindow = [[performance.now(), 0]]; // [time, examplesSeen] at recent progress messages
  let lastProgress = -Infinity;
  let lastValidation = performance.now();
  let lastYield = -Infinity; // serve requests sent right after this fit before its first batch
  let trainTime = 0;
  let sampleTime = 0;
  let epoch = 0;
  let position = 0; // rows of the current epoch already trained

  const validate = () => {
    const v = net.evaluate(o.validationData[0], o.validationData[1]);
    lastValidation = performance.now();
    return { ...v, step: net.steps };
  };

  // Per-step batch-norm samples copy a few floats per tracked unit; they are
  // taken while they stay under SAMPLE_BUDGET of the training time (in
  // practice every step), and always at progress time.
  const sampleBatchNorm = () => {
    const t0 = performance.now();
    o.bnLayers.forEach((layer, k) => {
      const s = net._batchStatistics(layer, o.tracked[k]);
      pushSample(samples[k], net.steps, s.mean, s.variance, s.runningMean, s.runningVariance);
    });
    sampleTime += performance.now() - t0;
  };

  const trainingAccuracy = () => {
    if (!classify || position === 0) return undefined;
    const rows = Math.min(accuracyRows, position);
    for (let r = 0; r < rows; r++) {
      const i = order[position - rows + r];
      ax.set(x.subarray(i * d, (i + 1) * d), r * d);
      ay[r] = y[i];
    }
    return net.evaluate(ax.subarray(0, rows * d), ay.subarray(0, rows)).accuracy;
  };

  const sendProgress = () => {
    sampleBatchNorm();
    // Throughput over the last RATE_WINDOW ms of training (validation included, pauses not).
    const now = performance.now();
    rateWindow.push([now, examplesSeen]);
    while (rateWindow.length > 2 && now - rateWindow[1][0] >= RATE_WINDOW) rateWindow.shift();
    const [since, examplesThen] = rateWindow[0];
    const progress = {
      epoch,
      batch: Math.ceil(position / o.batchSize),
      batchesPerEpoch: batchesInEpoch,
      step: net.steps,
      examplesSeen,
      loss: sinceProgress.batches > 0 ? sinceProgress.loss / sinceProgress.batches : NaN,
      accuracy: trainingAccuracy(),
      examplesPerSecond: now > since ? ((examplesSeen - examplesThen) * 1000) / (now - since) : 0,
      batchNorm: o.bnLayers.map((layer, k) => takeSamples(layer, o.tracked[k], samples[k])),
    };
    if (pendingValidation) progress.validation = pendingValidation;
    const transfer = [];
    for (const b of progress.batchNorm) {
      for (const key of ['batchMean', 'batchVariance', 'runningMean', 'runningVariance']) transfer.push(b[key].buffer);
      for (const key of Object.keys(b.history)) transfer.push(b.history[key].buffer);
    }
    port.post({ id: state.id, type: 'progress', progress }, transfer);
    pendingValidation = null;
    sinceProgress = { loss: 0, batches: 0 };
    lastProgress = performance.now();
  };

  // Between mini-batches: serve messages, hold while paused.
  const betweenBatches = async () => {
    if (crashAt && net.steps >= crashAt.step) await crash(crashAt.how);
    if (performance.now() - lastYield >= YIELD_MS) {
      await yieldToEventLoop();
      lastYield = performance.now();
    }
    if (paused && !state.aborted) {
      for (const ack of pauseAcks.splice(0)) reply(ack, { step: net.steps });
      const heldSince = performance.now();
      held = true;
      while (paused && !state.aborted) await new Promise((resolve) => (wake = resolve));
      held = false;
      wake = null;
      const pausedFor = performance.now() - heldSince;
      for (const entry of rateWindow) entry[0] += pausedFor;
      lastValidation += pausedFor;
      lastYield = performance.now();
    }
  };

  const resume = o.resumeFrom;
  for (epoch = resume ? resume.epoch : 0; epoch < o.epochs && !state.aborted; epoch++) {
    // Each epoch's order depends only on the generator's state at its start (a fresh shuffle
    // of 0..n-1), so a checkpoint's shuffleState redraws it.
    const resuming = resume !== null && epoch === resume.epoch;
    if (resuming) random.state = parseInt(resume.shuffleState, 16);
    const shuffleState = random.state.toString(16).padStart(8, '0');
    if (o.shuffle) {
      for (let i = 0; i < n; i++) order[i] = i;
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(random.next() * (i + 1));
        const t = order[i];
        order[i] = order[j];
        order[j] = t;
      }
    }
    let lossSum = 0;
    let seen = 0;
    let batch = resuming ? resume.batch : 0;
    for (position = Math.min(n, batch * o.batchSize); position < n; ) {
      await betweenBatches();
      if (state.aborted) break;
      const m = Math.min(o.batchSize, n - position);
      if (m === 1 && hasBatchNorm) break; // batch norm needs two rows for a variance
      for (let r = 0; r < m; r++) {
        const i = order[position + r];
        bx.set(x.subarray(i * d, (i + 1) * d), r * d);
        if (yWidth === 1) by[r] = y[i];
        else by.set(y.subarray(i * yWidth, (i + 1) * yWidth), r * yWidth);
      }
      const t0 = performance.now();
      const loss = net.trainBatch(bx.subarray(0, m * d), by.subarray(0, m * yWidth));
      const t1 = performance.now();
      trainTime += t1 - t0;
      position += m;
      batch += 1;
      examplesSeen += m;
      lossSum += loss * m;
      seen += m;
      sinceProgress.loss += loss;
      sinceProgress.batches += 1;
      if (o.validationData && o.validationInterval > 0 && t1 - lastValidation >= o.validationInterval) {
        pendingValidation = validate();
      }
      if (o.checkpointEvery > 0 && net.steps % o.checkpointEvery === 0) {
        const bytes = net.save();
        const checkpoint = { bytes, epoch, batch, step: net.steps, shuffleState, batchSize: o.batchSize, examples: n };
        port.post({ id: state.id, type: 'checkpoint', checkpoint }, [bytes.buffer]);
      }
      if (t1 - lastProgress >= o.progressInterval) sendProgress();
      else if (hasBatchNorm && sampleTime < SAMPLE_BUDGET * trainTime) sampleBatchNorm();
    }
    if (seen === 0 && resuming && !state.aborted) continue; // resumed at the end of an epoch
    if (seen === 0) break;
    history.epoch.push(epoch);
    history.loss.push(lossSum / seen);
    if (o.validationData) {
      pendingValidation = validate();
      history.valLoss.push(pendingValidation.loss);
      if (pendingValidation.accuracy !== undefined) history.valAccuracy.push(pendingValidation.accuracy);
    }
  }
  history.steps = net.steps;
  history.aborted = state.aborted;
  return history;
}

// Samples of one batch-norm layer since the last progress message, for its tracked units.
function newSamples() {
  return { step: [], batchMean: [], batchVariance: [], runningMean: [], runningVariance: [] };
}

// Values are already the tracked units' (Float32Array(units.length) each).
function pushSample(s, step, mean, variance, runningMean, runningVariance) {
  if (s.step.length === MAX_SAMPLES) {
    for (const key of Object.keys(s)) s[key].shift();
  }
  s.step.push(step);
  s.batchMean.push(mean);
  s.batchVariance.push(variance);
  s.runningMean.push(runningMean);
  s.runningVariance.push(runningVariance);
}

// The progress entry of one batch-norm layer: the latest sample, and all samples since the
// last message as flat arrays (history.batchMean[j * units.length + u]).
function takeSamples(layer, units, s) {
  const k = units.length;
  const count = s.step.length;
  const flat = (key) => {
    const out = new Float32Array(count * k);
    s[key].forEach((values, j) => out.set(values, j * k));
    return out;
  };
  const last = count - 1;
  const entry = {
    layer,
    units: units.slice(),
    batchMean: s.batchMean[last].slice(),
    batchVariance: s.batchVariance[last].slice(),
    runningMean: s.runningMean[last].slice(),
    runningVariance: s.runningVariance[last].slice(),
    history: {
      step: Int32Array.from(s.step),
      batchMean: flat('batchMean'),
      batchVariance: flat('batchVariance'),
      runningMean: flat('runningMean'),
      runningVariance: flat('runningVariance'),
    },
  };
  for (const key of Object.keys(s)) s[key].length = 0;
  return entry;
}
