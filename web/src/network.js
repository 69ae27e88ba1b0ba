// The Network facade: validation, defaults, typed arrays in and out, and
// ownership of the core's network (a user never frees it: dispose() does).
import { create, heapAllocated, lastError, load } from './core.js';
import { coreError } from './core-errors.js';
import { BnwasmError, DisposedError, InputError, describe } from './errors.js';
import { exporter } from './exporters.js';
import { loadedModules, moduleFor, moduleForEncoded, moduleForModel, yieldToEventLoop } from './module.js';
import { ProgressReporter } from './progress.js';
import { decodeValue, encodeValue } from './value.js';

/** Time between yields to the event loop while fitting: bounds how late other events are served. */
const YIELD_MS = 10;

// fit's options with their defaults; the others default to undefined.
export const FIT_DEFAULTS = { epochs: 1, batchSize: 32, shuffle: true, progressInterval: 100, validationInterval: 0, trackUnits: 4 };
// How fit's batchNorm option trains every batch-norm layer (the core's BatchNormMode).
const BATCH_NORM_MODES = { batch: 1, frozen: 2 };
const FIT_OPTIONS = [
  ...Object.keys(FIT_DEFAULTS),
  'batchNorm',
  'validationData', 'signal', 'onBatchEnd', 'onEpochEnd', 'onProgress', 'checkpointEvery', 'onCheckpoint', 'resumeFrom',
];

// Mini-batches one epoch trains: a last batch smaller than the core takes (one example
// under batch norm) is skipped.
const batchesPerEpoch = (n, batchSize, minBatch) => Math.ceil(n / batchSize) - (n % batchSize !== 0 && n % batchSize < minBatch ? 1 : 0);

/**
 * Rows per call into the core for predictBatch/evaluate/activations: bounds the
 * staging memory. The core keeps every layer's output for the rows of a call, so
 * a network with large layers (a CNN's feature maps) gets fewer rows per call:
 * about 16 MiB of activations, at most 512 rows.
 */
function chunkRows(handle, layers) {
  let floatsPerRow = 0;
  for (let i = 0; i < layers; i++) floatsPerRow += handle.layerWidth(i);
  return Math.max(1, Math.min(512, Math.floor(2 ** 22 / floatsPerRow)));
}

let liveNetworks = 0;

// Frees the core network of a Network the user forgot to dispose.
const registry = new FinalizationRegistry((handle) => {
  if (!handle.isDeleted()) {
    handle.delete();
    liveNetworks--;
  }
});

function isIntegerArray(y) {
  return (
    y instanceof Int32Array ||
    y instanceof Uint8Array ||
    y instanceof Uint16Array ||
    y instanceof Int16Array ||
    y instanceof Int8Array ||
    y instanceof Uint32Array
  );
}

/** @internal A predict-only Network with every batch norm after a dense or conv2d layer folded into it (the core's folding). */
export let foldedCopy;
/** @internal Which wasm build runs a Network: 'dense', 'full' or 'threaded' (for tests). */
export let buildOf;
/** @internal A batch-norm layer's num_batches_tracked (-1 for another layer), and its setter. */
export let batchesTracked;
export let setBatchesTracked;

export class Network {
  #mod;
  #h;
  #config;
  #inputSize;
  #outputSize;
  #chunkRows;
  #disposed = false;
  #busy = null; // 'fit' or 'recomputeStatistics' while one runs (both yield between chunks)
  #predictIn = null; // Float32Array view of the 1-row input staging buffer
  #predictOut = null;

  /** @internal Use createNetwork() or loadNetwork(). */
  constructor(mod, handle) {
    this.#mod = mod;
    this.#h = handle;
    this.#config = decodeValue(handle.config());
    this.#inputSize = handle.inputSize();
    this.#outputSize = handle.outputSize();
    this.#chunkRows = chunkRows(handle, this.#config.layers.length);
    registry.register(this, handle, this);
    liveNetworks++;
  }

  /** The normalized config, every default filled in (a copy). */
  get config() {
    return structuredClone(this.#config);
  }
  #layers = null;
  /**
   * Per layer, as the core built it: index, type, name, inputs (layer indices, -1 the
   * network's input), inputShapes, outputShape ([C, H, W] or [features]), tensors (name,
   * shape, trainable, and their PyTorch and TF.js names) and macs (multiply-adds per
   * example). A copy.
   */
  get layers() {
    this.#live('layers');
    this.#layers ??= decodeValue(this.#h.layers());
    return structuredClone(this.#layers);
  }
  get inputSize() {
    return this.#inputSize;
  }
  get outputSize() {
    return this.#outputSize;
  }
  /** Optimizer steps taken so far. */
  get steps() {
    this.#live('steps');
    return this.#h.steps();
  }
  get disposed() {
    return this.#disposed;
  }

  /**
   * One optimizer step on one mini-batch.
   * @param {Float32Array} x (m * inputSize) row-major, m >= 2 when the network has batch norm
   * @param {Int32Array|Uint8Array|Float32Array} y m labels, or m * outputSize targets
   * @returns {number} the mini-batch loss before the update
   */
  trainBatch(x, y) {
    this.#live('trainBatch');
    const m = this.#rows('trainBatch', 'x', x);
    this.#checkY('trainBatch', y, m);
    this.#stageX(x, m);
    this.#stageY(y, m);
    this.#check('trainBatch', this.#h.train(m));
    return this.#h.trainLoss();
  }

  /**
   * Trains over the whole data set for some epochs, one mini-batch at a time, yielding to the
   * event loop every few ms so pages, progress bars and worker messages stay live. This is the
   * one training loop: a trainer's worker runs it too. A final mini-batch of a single example
   * is skipped when the network has batch norm.
   * @param {Float32Array} x (n * inputSize)
   * @param {Int32Array|Uint8Array|Float32Array} y
   * @param {object} [options]
   * @param {number} [options.epochs=1]
   * @param {number} [options.batchSize=32]
   * @param {boolean} [options.shuffle=true] reshuffle every epoch (the network's seeded generator)
   * @param {[Float32Array, Int32Array|Uint8Array|Float32Array]} [options.validationData]
   * @param {AbortSignal} [options.signal] stops after the current mini-batch
   * @param {(step: number, logs: {epoch: number, batch: number, loss: number}) => void|Promise<void>} [options.onBatchEnd]
   *   return a promise to hold training until it settles (its time is left out of progress rates)
   * @param {(epoch: number, logs: {loss: number, valLoss?: number, valAccuracy?: number}) => void} [options.onEpochEnd]
   * @param {(progress: object) => void} [options.onProgress] at most every progressInterval ms
   * @param {number} [options.progressInterval=100] ms
   * @param {number} [options.validationInterval=0] ms between validations within an epoch (0: at epoch ends only)
   * @param {number|number[]} [options.trackUnits=4] batch-norm units reported in progress (a count, or indices)
   * @param {number} [options.checkpointEvery] call onCheckpoint every this many steps
   * @param {(checkpoint: object) => void} [options.onCheckpoint] receives save() bytes and the
   *   position in the data; pass the checkpoint as `resumeFrom` to a network (or trainer) loaded
   *   from its bytes, with the same data and options, and training continues exactly.
   * @param {object} [options.resumeFrom]
   * @returns {Promise<{epoch: number[], loss: number[], valLoss: number[], valAccuracy: number[], steps: number, aborted: boolean}>}
   */
  async fit(x, y, options = {}) {
    this.#live('fit');
    const o = this.#fitOptions(options);
    if (this.#busy) throw this.#busyError('fit');
    const n = this.#rows('fit', 'x', x);
    this.#checkY('fit', y, n);
    if (o.validationData !== undefined) {
      const [vx, vy] = o.validationData;
      this.#checkY('fit', vy, this.#rows('fit', 'validationData[0]', vx), 'validationData[1]');
    }
    this.#checkValues('fit', x, y, n);
    const resume = o.resumeFrom === undefined ? null : this.#checkResume(o.resumeFrom, n, o);
    this.#busy = 'fit';
    const mode = this.#h.batchNorm();
    this.#h.setBatchNorm(BATCH_NORM_MODES[o.batchNorm] ?? mode);
    try {
      return await this.#train(x, y, n, o, resume);
    } finally {
      this.#h?.setBatchNorm(mode);
      this.#busy = null;
    }
  }

  // fit's options: names, types and defaults (the values of x and y are the core's to check).
  #fitOptions(options) {
    const fail = (message, code = 'BNWASM_INVALID_ARGUMENT') => {
      throw new InputError(`fit(): ${message}`, code);
    };
    if (options === null || typeof options !== 'object') fail(`options must be an object, got ${describe(options)}`);
    for (const key of Object.keys(options)) {
      if (!FIT_OPTIONS.includes(key)) fail(`unknown option '${key}' (expected one of ${FIT_OPTIONS.join(', ')})`);
    }
    const o = { ...options };
    for (const [key, value] of Object.entries(FIT_DEFAULTS)) o[key] ??= value;
    if (!Number.isInteger(o.epochs) || o.epochs < 1) fail(`epochs must be a positive integer, got ${describe(o.epochs)}`);
    if (!Number.isInteger(o.batchSize) || o.batchSize < 1) fail(`batchSize must be a positive integer, got ${describe(o.batchSize)}`);
    if (o.batchNorm !== undefined && !(o.batchNorm in BATCH_NORM_MODES)) {
      fail(`batchNorm must be 'batch' or 'frozen' (or left out: each layer's mode), got ${describe(o.batchNorm)}`);
    }
    // Under batchNorm: 'frozen' a mini-batch of one example trains (the core says what it takes).
    const mode = this.#h.batchNorm();
    this.#h.setBatchNorm(BATCH_NORM_MODES[o.batchNorm] ?? mode);
    try {
      this.#check('fit', this.#h.checkTrainingBatch(o.batchSize));
    } finally {
      this.#h.setBatchNorm(mode);
    }
    if (typeof o.shuffle !== 'boolean') fail(`shuffle must be true or false, got ${describe(o.shuffle)}`);
    for (const key of ['progressInterval', 'validationInterval']) {
      if (typeof o[key] !== 'number' || !(o[key] >= 0)) fail(`${key} must be a number of ms >= 0, got ${describe(o[key])}`);
    }
    for (const key of ['onBatchEnd', 'onEpochEnd', 'onProgress', 'onCheckpoint']) {
      if (o[key] !== undefined && typeof o[key] !== 'function') fail(`${key} must be a function, got ${describe(o[key])}`);
    }
    if (o.signal !== undefined && typeof o.signal?.aborted !== 'boolean') fail(`signal must be an AbortSignal, got ${describe(o.signal)}`);
    if (o.checkpointEvery !== undefined && (!Number.isInteger(o.checkpointEvery) || o.checkpointEvery < 1 || o.onCheckpoint === undefined)) {
      fail(`checkpointEvery must be a positive integer and come with an onCheckpoint function, got ${describe(o.checkpointEvery)} and ${describe(o.onCheckpoint)}`);
    }
    if (o.validationData !== undefined && (!Array.isArray(o.validationData) || o.validationData.length !== 2)) {
      fail(`validationData must be [x, y], got ${describe(o.validationData)}`);
    }
    o.tracked = this.#trackedUnits(o.trackUnits);
    return o;
  }

  // The batch-norm units progress reports follow: [{layer, units}] for every batch-norm layer.
  #trackedUnits(spec) {
    const isIndexList = Array.isArray(spec) && spec.every((u) => Number.isInteger(u) && u >= 0);
    if (!(Number.isInteger(spec) && spec >= 0) && !isIndexList) {
      throw new InputError(`fit(): trackUnits must be a count or an array of unit indices, got ${describe(spec)}`, 'BNWASM_INVALID_ARGUMENT');
    }
    return this.#batchNormLayers().map((layer) => {
      const width = this.#h.channels(layer); // after a conv layer, the units are its channels
      const units = isIndexList ? spec : Array.from({ length: Math.min(spec, width) }, (_, u) => u);
      const outside = units.find((u) => u >= width);
      if (outside !== undefined) {
        throw new InputError(`fit(): trackUnits has unit ${outside}, batch-norm layer ${layer} has ${width} units`, 'BNWASM_INVALID_ARGUMENT');
      }
      return { layer, units: Int32Array.from(units) };
    });
  }

  // A checkpoint resumes only on the network state, data and options it was taken with:
  // anything else would silently train something other than the interrupted fit.
  #checkResume(c, n, o) {
    const fail = (what) => {
      throw new InputError(`fit(): resumeFrom ${what}`, 'BNWASM_INVALID_ARGUMENT');
    };
    const isCount = (v) => Number.isInteger(v) && v >= 0;
    if (
      c === null || typeof c !== 'object' || !isCount(c.epoch) || !isCount(c.batch) || !isCount(c.step) ||
      !isCount(c.batchSize) || !isCount(c.examples) || typeof c.shuffle !== 'boolean' || typeof c.shuffleState !== 'string'
    ) {
      fail(`must be a checkpoint from fit()'s onCheckpoint ({bytes, epoch, batch, step, shuffleState, batchSize, examples, shuffle}), got ${describe(c)}`);
    }
    if (!/^[0-9a-f]{16}$/.test(c.shuffleState)) {
      throw new InputError(`fit(): resumeFrom.shuffleState must be 16 hex digits, got ${describe(c.shuffleState)}`, 'BNWASM_INVALID_ARGUMENT');
    }
    const steps = this.#h.steps();
    if (c.step !== steps) fail(`was taken at step ${c.step}, this network is at step ${steps}; resume on a network loaded from checkpoint.bytes`);
    if (c.batchSize !== o.batchSize) fail(`was taken with batchSize ${c.batchSize}, this fit has batchSize ${o.batchSize}; resume with the same options`);
    if (c.examples !== n) fail(`was taken on ${c.examples} examples, x has ${n}; resume with the same data`);
    if (c.shuffle !== o.shuffle) fail(`was taken with shuffle ${c.shuffle}, this fit has shuffle ${o.shuffle}; resume with the same options`);
    if (c.epoch >= o.epochs) fail(`is in epoch ${c.epoch}, this fit has epochs ${o.epochs}; resume with the same options`);
    const batches = batchesPerEpoch(n, o.batchSize, this.#minBatch());
    if (c.batch > batches) fail(`is at mini-batch ${c.batch} of an epoch, an epoch here has ${batches}`);
    return c;
  }

  // The values of x and y, checked by the core chunk by chunk before the first step, so a
  // bad value anywhere in the data refuses the fit before it changes anything.
  #checkValues(fn, x, y, n) {
    const d = this.#inputSize;
    const width = this.#config.loss === 'softmaxCrossEntropy' ? 1 : this.#outputSize;
    for (let start = 0; start < n; start += this.#chunkRows) {
      const m = Math.min(this.#chunkRows, n - start);
      this.#stageX(x.subarray(start * d, (start + m) * d), m);
      this.#stageY(y.subarray(start * width, (start + m) * width), m);
      this.#check(fn, this.#h.check(m), { offsets: [0, start * d, start * width] });
    }
  }

  async #train(x, y, n, o, resume) {
    const h = this.#h;
    const d = this.#inputSize;
    const classify = this.#config.loss === 'softmaxCrossEntropy';
    const width = classify ? 1 : this.#outputSize;
    const batches = batchesPerEpoch(n, o.batchSize, this.#minBatch());
    const aborted = () => o.signal?.aborted === true;
    const progress = o.onProgress
      ? new ProgressReporter(
          {
            steps: () => h.steps(),
            batchStatistics: (layer, units) => this.#batchStatistics(layer, units),
            evaluate: (vx, vy) => this.evaluate(vx, vy),
          },
          o, x, y, { classify, inputSize: d, batchesPerEpoch: batches },
        )
      : null;
    const history = { epoch: [], loss: [], valLoss: [], valAccuracy: [], steps: 0, aborted: false };
    let lastYield = -Infinity; // serve events queued before the first mini-batch
    for (let epoch = resume ? resume.epoch : 0; epoch < o.epochs && !aborted(); epoch++) {
      // An epoch's order depends only on the generator's state at its start, which a
      // checkpoint keeps: restoring it redraws the same order.
      const resuming = resume !== null && epoch === resume.epoch;
      if (resuming) h.setRngState(resume.shuffleState);
      const shuffleState = h.rngState();
      let order = null;
      if (o.shuffle) {
        h.shuffle(n);
        const p = h.indices(n) >>> 2;
        order = this.#mod.HEAPU32.slice(p, p + n);
      }
      let lossSum = 0;
      let seen = 0;
      for (let batch = resuming ? resume.batch : 0; batch < batches; batch++) {
        if (performance.now() - lastYield >= YIELD_MS) {
          await yieldToEventLoop();
          this.#live('fit');
          lastYield = performance.now();
        }
        if (aborted()) break;
        const start = batch * o.batchSize;
        const m = Math.min(o.batchSize, n - start);
        this.#predictIn = null; // staging more rows may move the buffers
        const xp = h.input(m) >>> 2;
        const yp = (classify ? h.labels(m) : h.targets(m)) >>> 2;
        const heapX = this.#mod.HEAPF32;
        const heapY = classify ? this.#mod.HEAP32 : this.#mod.HEAPF32;
        for (let r = 0; r < m; r++) {
          const i = order ? order[start + r] : start + r;
          heapX.set(x.subarray(i * d, (i + 1) * d), xp + r * d);
          if (classify) heapY[yp + r] = y[i];
          else heapY.set(y.subarray(i * width, (i + 1) * width), yp + r * width);
        }
        const t0 = performance.now();
        this.#check('fit', h.train(m));
        const loss = h.trainLoss();
        lossSum += loss * m;
        seen += m;
        const step = h.steps();
        progress?.afterStep({ epoch, position: start + m, order, rows: m, loss, trainMs: performance.now() - t0 });
        if (o.checkpointEvery !== undefined && step % o.checkpointEvery === 0) {
          const c = { bytes: this.save(), epoch, batch: batch + 1, step, shuffleState, batchSize: o.batchSize, examples: n, shuffle: o.shuffle };
          o.onCheckpoint(c);
        }
        const hold = o.onBatchEnd?.(step, { epoch, batch, loss });
        if (typeof hold?.then === 'function') {
          const heldSince = performance.now();
          await hold;
          this.#live('fit');
          progress?.held(performance.now() - heldSince);
        }
      }
      if (seen === 0 && resuming && !aborted()) continue; // resumed at the end of an epoch
      if (seen === 0) break;
      const logs = { loss: lossSum / seen };
      if (o.validationData) {
        const v = progress ? progress.epochValidation() : this.evaluate(o.validationData[0], o.validationData[1]);
        logs.valLoss = v.loss;
        if (v.accuracy !== undefined) logs.valAccuracy = v.accuracy;
      }
      history.epoch.push(epoch);
      history.loss.push(logs.loss);
      if (logs.valLoss !== undefined) history.valLoss.push(logs.valLoss);
      if (logs.valAccuracy !== undefined) history.valAccuracy.push(logs.valAccuracy);
      o.onEpochEnd?.(epoch, logs);
    }
    history.steps = h.steps();
    history.aborted = aborted();
    return history;
  }

  /**
   * Inference on ONE example with the running statistics and the learned gamma
   * and beta. Allocates nothing in wasm after the first call; pass `out` to allocate nothing in JS either.
   * @param {Float32Array} x (inputSize)
   * @param {Float32Array} [out] (outputSize) receives the result
   * @returns {Float32Array} probabilities for softmaxCrossEntropy, raw outputs otherwise
   */
  predict(x, out) {
    this.#live('predict');
    if (!(x instanceof Float32Array)) {
      throw new InputError(`predict(): x must be a Float32Array, got ${describe(x)}`, 'BNWASM_WRONG_TYPE');
    }
    if (x.length !== this.#inputSize) {
      throw new InputError(
        `predict(): x has ${x.length} values, the network expects ${this.#inputSize} (one example)`,
        'BNWASM_WRONG_LENGTH',
      );
    }
    if (out !== undefined && !(out instanceof Float32Array && out.length === this.#outputSize)) {
      throw new InputError(`predict(): out must be a Float32Array(${this.#outputSize}), got ${describe(out)}`, 'BNWASM_WRONG_TYPE');
    }
    if (this.#predictIn === null || this.#predictIn.buffer !== this.#mod.HEAPF32.buffer) this.#predictViews();
    this.#predictIn.set(x);
    this.#check('predict', this.#h.predictOne());
    // The first inference may grow memory (a conv's Winograd weights, made once per weight
    // version), which detaches the views taken before it.
    if (this.#predictOut.buffer !== this.#mod.HEAPF32.buffer) this.#predictViews();
    const result = out ?? new Float32Array(this.#outputSize);
    result.set(this.#predictOut);
    return result;
  }

  #predictViews() {
    const ip = this.#h.input(1) >>> 2;
    const op = this.#h.output(1) >>> 2;
    this.#predictIn = this.#mod.HEAPF32.subarray(ip, ip + this.#inputSize);
    this.#predictOut = this.#mod.HEAPF32.subarray(op, op + this.#outputSize);
  }

  /**
   * Inference on many examples; row i equals predict(row i) exactly.
   * @param {Float32Array} xs (n * inputSize)
   * @returns {Float32Array} (n * outputSize)
   */
  predictBatch(xs) {
    this.#live('predictBatch');
    const n = this.#rows('predictBatch', 'xs', xs, 0);
    const out = new Float32Array(n * this.#outputSize);
    for (let start = 0; start < n; start += this.#chunkRows) {
      const m = Math.min(this.#chunkRows, n - start);
      this.#stageX(xs.subarray(start * this.#inputSize, (start + m) * this.#inputSize), m);
      this.#check('predictBatch', this.#h.predictBatch(m), { x: 'xs', offsets: [0, start * this.#inputSize, 0] });
      const op = this.#h.output(m) >>> 2;
      out.set(this.#mod.HEAPF32.subarray(op, op + m * this.#outputSize), start * this.#outputSize);
    }
    return out;
  }

  /**
   * Loss (and accuracy for classification) in inference mode.
   * @returns {{loss: number, accuracy?: number}}
   */
  evaluate(xs, ys) {
    this.#live('evaluate');
    const n = this.#rows('evaluate', 'xs', xs);
    this.#checkY('evaluate', ys, n, 'ys');
    const classify = this.#config.loss === 'softmaxCrossEntropy';
    const width = classify ? 1 : this.#outputSize;
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < n; start += this.#chunkRows) {
      const m = Math.min(this.#chunkRows, n - start);
      this.#stageX(xs.subarray(start * this.#inputSize, (start + m) * this.#inputSize), m);
      this.#stageY(ys.subarray(start * width, (start + m) * width), m);
      const names = { x: 'xs', y: 'ys', offsets: [0, start * this.#inputSize, start * width] };
      this.#check('evaluate', this.#h.evaluate(m), names);
      lossSum += this.#h.evalLossSum();
      correct += this.#h.evalCorrect();
    }
    return classify ? { loss: lossSum / n, accuracy: correct / n } : { loss: lossSum / n };
  }

  /**
   * Every tensor, copied out: dense 'weight' [units, inputs] and 'bias' [units];
   * conv2d 'weight' [filters, inChannels, kh, kw] and 'bias' [filters];
   * batchNorm 'gamma', 'beta', 'runningMean', 'runningVariance' [features or channels].
   * @returns {{layer: number, name: string, shape: number[], values: Float32Array}[]}
   */
  getWeights() {
    this.#live('getWeights');
    const list = [];
    for (const { layer, name, shape, data, size } of this.#h.tensors()) {
      const p = data >>> 2;
      list.push({ layer, name, shape: [...shape], values: this.#mod.HEAPF32.slice(p, p + size) });
    }
    return list;
  }

  /**
   * Sets any subset of the tensors getWeights() lists. Validates all entries
   * before writing any, so a bad list changes nothing.
   * @param {{layer: number, name: string, shape?: number[], values: ArrayLike<number>}[]} list
   */
  setWeights(list) {
    this.#live('setWeights');
    if (!Array.isArray(list)) {
      throw new InputError(`setWeights(): expected an array of {layer, name, values}, got ${describe(list)}`, 'BNWASM_WRONG_TYPE');
    }
    const index = this.#tensorIndex();
    const writes = list.map((entry, k) => {
      const where = `setWeights(): list[${k}]`;
      if (entry === null || typeof entry !== 'object') {
        throw new InputError(`${where} must be {layer, name, values}, got ${describe(entry)}`, 'BNWASM_WRONG_TYPE');
      }
      const i = index.get(`${entry.layer}/${entry.name}`);
      if (i === undefined) {
        const names = [...index.keys()].map((key) => key.replace('/', ':')).join(', ');
        throw new InputError(
          `${where}: the network has no tensor '${entry.name}' in layer ${describe(entry.layer)} (it has ${names})`,
          'BNWASM_INVALID_ARGUMENT',
        );
      }
      const { shape, size } = this.#h.tensors()[i];
      if (entry.shape !== undefined && (!Array.isArray(entry.shape) || entry.shape.join() !== shape.join())) {
        throw new InputError(
          `${where} (layer ${entry.layer} ${entry.name}): shape must be [${shape}], got ${describe(entry.shape)} [${entry.shape}]`,
          'BNWASM_WRONG_LENGTH',
        );
      }
      const values = entry.values;
      if (!(ArrayBuffer.isView(values) || Array.isArray(values)) || values.length !== size) {
        throw new InputError(
          `${where} (layer ${entry.layer} ${entry.name}): values must hold ${size} numbers, got ${describe(values)}`,
          'BNWASM_WRONG_LENGTH',
        );
      }
      for (let j = 0; j < size; j++) {
        const v = values[j];
        if (typeof v !== 'number' || !Number.isFinite(v) || (entry.name === 'runningVariance' && v < 0)) {
          throw new InputError(
            `${where} (layer ${entry.layer} ${entry.name}): values[${j}] is ${describe(v)}, expected a finite number` +
              (entry.name === 'runningVariance' ? ' >= 0' : ''),
            'BNWASM_NON_FINITE',
            { index: j, value: v },
          );
        }
      }
      return [i, values];
    });
    for (const [i, values] of writes) {
      const p = this.#h.tensors()[i].data >>> 2; // before HEAPF32: the call may grow the memory
      this.#mod.HEAPF32.set(values, p);
    }
    this.#h.weightsChanged();
  }

  /**
   * Everything needed to resume: config, parameters, running statistics,
   * optimizer state, step count and the shuffling generator's state.
   * @returns {Uint8Array}
   */
  save() {
    this.#live('save');
    return this.#h.save();
  }

  /** Frees the wasm memory of this network. Later calls throw DisposedError. */
  dispose() {
    if (this.#disposed) return;
    this.#disposed = true;
    registry.unregister(this);
    this.#h.delete();
    liveNetworks--;
    this.#h = null;
    this.#predictIn = this.#predictOut = null;
  }

  /**
   * Population statistics: runs `x` (for example the whole training set) through
   * the network and sets every batch-norm layer's running mean and variance to
   * the exact mean and variance of that layer's input over all examples, layer
   * by layer, with the earlier layers already normalizing by their new
   * statistics. float64 accumulation; the variance is N-1 or N as the layer's
   * runningVariance option says.
   * @param {Float32Array} x (n * inputSize)
   * @param {object} [options]
   * @param {number} [options.batchSize=1024] rows per pass into the core
   * @param {(p: {layer: number, examplesDone: number, examplesTotal: number}) => void} [options.onProgress]
   *   at most every progressInterval ms, and once at the end
   * @param {number} [options.progressInterval=100] ms
   */
  async recomputeStatistics(x, options = {}) {
    this.#live('recomputeStatistics');
    const fail = (message) => {
      throw new InputError(`recomputeStatistics(): ${message}`, 'BNWASM_INVALID_ARGUMENT');
    };
    if (options === null || typeof options !== 'object') fail(`options must be an object, got ${describe(options)}`);
    const allowed = ['batchSize', 'onProgress', 'progressInterval'];
    for (const key of Object.keys(options)) {
      if (!allowed.includes(key)) fail(`unknown option '${key}' (expected one of ${allowed.join(', ')})`);
    }
    const { batchSize = 1024, onProgress, progressInterval = 100 } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) fail(`batchSize must be a positive integer, got ${describe(batchSize)}`);
    if (onProgress !== undefined && typeof onProgress !== 'function') fail(`onProgress must be a function, got ${describe(onProgress)}`);
    if (typeof progressInterval !== 'number' || !(progressInterval >= 0)) {
      fail(`progressInterval must be a number of ms >= 0, got ${describe(progressInterval)}`);
    }
    if (this.#busy) throw this.#busyError('recomputeStatistics');
    const n = this.#rows('recomputeStatistics', 'x', x);
    const layers = this.#batchNormLayers();
    this.#check('recomputeStatistics', this.#h.populationCheck(n));
    const total = n * layers.length;
    let lastYield = performance.now();
    let lastProgress = -Infinity;
    this.#busy = 'recomputeStatistics';
    try {
      for (const [k, layer] of layers.entries()) {
        this.#check('recomputeStatistics', this.#h.populationBegin(layer));
        for (let start = 0; start < n; start += batchSize) {
          const m = Math.min(batchSize, n - start);
          this.#stageX(x.subarray(start * this.#inputSize, (start + m) * this.#inputSize), m);
          this.#check('recomputeStatistics', this.#h.populationAdd(m), { offsets: [0, start * this.#inputSize, 0] });
          const examplesDone = k * n + start + m;
          if (onProgress && (performance.now() - lastProgress >= progressInterval || examplesDone === total)) {
            onProgress({ layer, examplesDone, examplesTotal: total });
            lastProgress = performance.now();
          }
          if (performance.now() - lastYield >= YIELD_MS) {
            await yieldToEventLoop();
            this.#live('recomputeStatistics');
            lastYield = performance.now();
          }
        }
        this.#check('recomputeStatistics', this.#h.populationEnd());
      }
    } finally {
      this.#busy = null;
    }
  }

  /**
   * The outputs of one layer (inference mode) for many examples: what the
   * layer after it sees. For example the inputs of a sigmoid over training.
   * @param {Float32Array} xs (n * inputSize)
   * @param {number|string} layer index into config.layers, or a layer's name
   * @returns {Float32Array} (n * width of that layer)
   */
  activations(xs, layer) {
    this.#live('activations');
    const n = this.#rows('activations', 'xs', xs);
    if (typeof layer === 'string') {
      const named = this.#config.layers.findIndex((l) => l.name === layer);
      if (named < 0) throw new InputError(`activations(): no layer is named ${describe(layer)}`, 'BNWASM_INVALID_ARGUMENT');
      layer = named;
    }
    // The range is the core's to check (forwardTo); an index must first be an integer.
    if (!Number.isInteger(layer)) {
      throw new InputError(`activations(): layer must be a layer's index (an integer) or name, got ${describe(layer)}`, 'BNWASM_INVALID_ARGUMENT');
    }
    const width = this.#h.layerWidth(layer);
    const out = new Float32Array(n * width);
    for (let start = 0; start < n; start += this.#chunkRows) {
      const m = Math.min(this.#chunkRows, n - start);
      this.#stageX(xs.subarray(start * this.#inputSize, (start + m) * this.#inputSize), m);
      this.#check('activations', this.#h.forwardTo(m, layer), { x: 'xs', offsets: [0, start * this.#inputSize, 0] });
      const p = this.#h.layerOutput(layer) >>> 2;
      out.set(this.#mod.HEAPF32.subarray(p, p + m * width), start * width);
    }
    return out;
  }

  /**
   * A new network made of this one up to a layer and new layers after it: how a pretrained
   * network is fine-tuned on other classes. The layers kept (the one named by `after`, those
   * up to it that the new layers name in their inputs, and every layer these depend on) keep
   * their weights, running statistics and batch counts; with
   * `freeze` they are not trainable (their weights stay, gradients still flow through them).
   * The new layers start from their initialization. This network is unchanged.
   * @param {object} options
   * @param {number|string} options.after the last layer kept: its index or name
   * @param {object[]} options.layers the new layers, as in createNetwork; the first reads `after`
   * @param {boolean} [options.freeze=false]
   * @param {string} [options.loss] default: this network's
   * @param {object} [options.optimizer] default: this network's (its state starts afresh)
   * @param {number} [options.seed] default: this network's; draws the new layers' weights
   * @returns {Promise<Network>}
   */
  async replaceHead(options) {
    this.#live('replaceHead');
    const fail = (message, code = 'BNWASM_INVALID_ARGUMENT') => {
      throw new InputError(`replaceHead(): ${message}`, code);
    };
    if (options === null || typeof options !== 'object') fail(`options must be an object, got ${describe(options)}`, 'BNWASM_WRONG_TYPE');
    const allowed = ['after', 'layers', 'freeze', 'loss', 'optimizer', 'seed'];
    for (const key of Object.keys(options)) if (!allowed.includes(key)) fail(`unknown option '${key}' (expected one of ${allowed.join(', ')})`);
    const { after, layers: head, freeze = false } = options;
    const count = this.#config.layers.length;
    const last = typeof after === 'string' ? this.#config.layers.findIndex((l) => l.name === after) : after;
    if (!Number.isInteger(last) || last < 0 || last >= count) {
      fail(`after must name a layer, by index in [0, ${count}) or by name, got ${describe(after)}`);
    }
    if (!Array.isArray(head)) fail(`layers must be an array of layer configs, got ${describe(head)}`, 'BNWASM_WRONG_TYPE');
    if (typeof freeze !== 'boolean') fail(`freeze must be true or false, got ${describe(freeze)}`, 'BNWASM_WRONG_TYPE');
    // The layers `after` depends on, and those the new layers name in their inputs (a skip
    // branch), with everything they depend on, in order; each reads its inputs by name, so
    // dropping the others changes what no layer reads.
    const info = this.layers;
    const kept = new Set([last]);
    for (const l of head) {
      for (const name of Array.isArray(l?.inputs) ? l.inputs : []) {
        const i = this.#config.layers.findIndex((c) => c.name === name);
        if (i >= 0 && i <= last) kept.add(i);
      }
    }
    for (let i = last; i >= 0; i--) if (kept.has(i)) for (const p of info[i].inputs) if (p >= 0) kept.add(p);
    const order = [...kept].sort((a, b) => a - b);
    const names = this.#config.layers.map((l, i) => l.name ?? `layer${i}`);
    const body = order.map((i, k) => {
      const layer = { ...this.#config.layers[i] };
      const inputs = info[i].inputs.map((p) => (p < 0 ? 'input' : names[p]));
      const previous = k === 0 ? 'input' : names[order[k - 1]];
      if (inputs.length === 1 && inputs[0] === previous) delete layer.inputs;
      else layer.inputs = inputs;
      if (info.some((l, j) => kept.has(j) && j !== i && l.inputs.includes(i)) || layer.name !== undefined || i === last) layer.name = names[i];
      if (freeze && 'trainable' in layer) layer.trainable = false;
      return layer;
    });
    const { loss = this.#config.loss, optimizer = this.#config.optimizer, seed = this.#config.seed } = options;
    const { inputSize, inputShape } = this.#config;
    const net = await openNetwork('replaceHead', { ...(inputShape ? { inputShape } : { inputSize }), layers: [...body, ...head], loss, optimizer, seed });
    try {
      const index = new Map(order.map((i, k) => [i, k]));
      net.setWeights(this.getWeights().filter((t) => index.has(t.layer)).map((t) => ({ ...t, layer: index.get(t.layer) })));
      for (const [i, k] of index) if (this.#h.batchesTracked(i) >= 0) setBatchesTracked(net, k, this.#h.batchesTracked(i));
    } catch (e) {
      net.dispose();
      throw e;
    }
    return net;
  }

  /**
   * A predict-only network in which every batch norm that follows a dense
   * or conv2d layer is folded into it by the core: W' = W * gamma / sqrt(var + eps),
   * b' = (b - mean) * gamma / sqrt(var + eps) + beta (computed in float64).
   * Its outputs match this network's inference to float32 rounding.
   * @returns {Promise<InferenceNetwork>}
   */
  async toInference() {
    this.#live('toInference');
    return new InferenceNetwork(foldedCopy(this));
  }

  /**
   * The inference graph as ONNX ModelProto bytes. Needs `import 'bnwasm/interop'`
   * (docs/interop.md).
   * @param {{opset?: number, fold?: boolean}} [options] opset = 15, fold = false
   * @returns {Uint8Array}
   */
  toONNX(options) {
    return exporter('toONNX')(this, options);
  }

  /** PyTorch state_dict tensors in the safetensors format. Needs `import 'bnwasm/interop'`. */
  toSafetensors() {
    return exporter('toSafetensors')(this);
  }

  /** A tfjs-layers model: `{ modelJson, weightData }`. Needs `import 'bnwasm/interop'`. */
  toTfjsLayers() {
    return exporter('toTfjsLayers')(this);
  }

  // What the interop converters (part of this package) may do that users may not: see the
  // functions assigned here, below the class.
  static {
    buildOf = (net) => net.#mod.bnwasmBuild;
    foldedCopy = (net) => {
      net.#live('toInference');
      const handle = net.#h.folded();
      return new Network(net.#mod, handle);
    };
    batchesTracked = (net, layer) => {
      net.#live('batchesTracked');
      return net.#h.batchesTracked(layer);
    };
    setBatchesTracked = (net, layer, n) => {
      net.#live('setBatchesTracked');
      net.#check('setBatchesTracked', net.#h.setBatchesTracked(layer, n));
    };
  }

  // A batch-norm layer's last training batch mean and biased variance and its running
  // statistics, for the given units only. Copies just those floats, so progress reports
  // can take it after every step.
  #batchStatistics(layer, units) {
    const mp = this.#h.batchMean(layer) >>> 2;
    const vp = this.#h.batchVar(layer) >>> 2;
    const rm = this.#tensorPointer(layer, 'runningMean');
    const rv = this.#tensorPointer(layer, 'runningVariance');
    const heap = this.#mod.HEAPF32;
    const pick = (base) => Float32Array.from(units, (u) => heap[base + u]);
    return { mean: pick(mp), variance: pick(vp), runningMean: pick(rm), runningVariance: pick(rv) };
  }

  #batchNormLayers() {
    return this.#config.layers.flatMap((l, i) => (this.#h.channels(i) > 0 ? [i] : []));
  }

  // The smallest training mini-batch the core takes now (2 under batch statistics, else 1).
  #minBatch() {
    return this.#h.minTrainingBatch();
  }

  #busyError(fn) {
    return new BnwasmError(
      this.#busy === 'fit'
        ? `${fn}(): already fitting; await the running fit() or abort it first`
        : `${fn}(): recomputing statistics; await recomputeStatistics() first`,
      'BNWASM_BUSY',
    );
  }

  #tensors = null;
  // 'layer/name' -> index of the core's tensor list (fixed for a network's life).
  #tensorIndex() {
    if (this.#tensors === null) {
      this.#tensors = new Map();
      this.#h.tensors().forEach(({ layer, name }, i) => this.#tensors.set(`${layer}/${name}`, i));
    }
    return this.#tensors;
  }
  // Float index into HEAPF32 of a tensor (tensors never move: the arenas are sized once).
  #tensorPointer(layer, name) {
    return this.#h.tensors()[this.#tensorIndex().get(`${layer}/${name}`)].data >>> 2;
  }

  // ---- helpers -----------------------------------------------------------------------

  #live(fn) {
    if (this.#disposed) throw new DisposedError(`${fn}(): the network has been disposed`);
  }

  #rows(fn, name, x, min = 1) {
    if (!(x instanceof Float32Array)) {
      throw new InputError(`${fn}(): ${name} must be a Float32Array, got ${describe(x)}`, 'BNWASM_WRONG_TYPE');
    }
    const d = this.#inputSize;
    if (x.length % d !== 0 || x.length < min * d) {
      throw new InputError(
        `${fn}(): ${name} has ${x.length} values, expected a positive multiple of inputSize ${d}` +
          ` (${Math.floor(x.length / d)} rows and ${x.length % d} values left over)`,
        'BNWASM_WRONG_LENGTH',
      );
    }
    return x.length / d;
  }

  #checkY(fn, y, m, name = 'y') {
    if (this.#config.loss === 'softmaxCrossEntropy') {
      if (!isIntegerArray(y)) {
        throw new InputError(
          `${fn}(): ${name} must hold class labels as an Int32Array or Uint8Array, got ${describe(y)}`,
          'BNWASM_WRONG_TYPE',
        );
      }
      if (y.length !== m) {
        throw new InputError(`${fn}(): ${name} has ${y.length} labels, x has ${m} examples`, 'BNWASM_WRONG_LENGTH');
      }
    } else {
      if (!(y instanceof Float32Array)) {
        throw new InputError(`${fn}(): ${name} must hold targets as a Float32Array, got ${describe(y)}`, 'BNWASM_WRONG_TYPE');
      }
      if (y.length !== m * this.#outputSize) {
        throw new InputError(
          `${fn}(): ${name} has ${y.length} values, expected ${m * this.#outputSize} (${m} examples x ${this.#outputSize} outputs)`,
          'BNWASM_WRONG_LENGTH',
        );
      }
    }
  }

  #stageX(x, m) {
    this.#predictIn = null; // staging more rows may move the buffers
    const p = this.#h.input(m) >>> 2;
    this.#mod.HEAPF32.set(x, p);
  }

  #stageY(y, m) {
    if (this.#config.loss === 'softmaxCrossEntropy') {
      const p = this.#h.labels(m) >>> 2;
      this.#mod.HEAP32.set(y, p); // converts Uint8Array etc. element by element
    } else {
      const p = this.#h.targets(m) >>> 2;
      this.#mod.HEAPF32.set(y, p);
    }
  }

  // Throws the Error for a failed core call (see coreError).
  #check(fn, status, names) {
    if (status !== 0) throw coreError(fn, this.#h.error(), names);
  }
}

/**
 * A predict-only network (see Network.toInference): the inference methods of
 * Network, nothing that trains.
 */
export class InferenceNetwork {
  #net;
  constructor(net) {
    this.#net = net;
  }
  get config() {
    return this.#net.config;
  }
  get layers() {
    return this.#net.layers;
  }
  get inputSize() {
    return this.#net.inputSize;
  }
  get outputSize() {
    return this.#net.outputSize;
  }
  get disposed() {
    return this.#net.disposed;
  }
  predict(x, out) {
    return this.#net.predict(x, out);
  }
  predictBatch(xs) {
    return this.#net.predictBatch(xs);
  }
  evaluate(xs, ys) {
    return this.#net.evaluate(xs, ys);
  }
  getWeights() {
    return this.#net.getWeights();
  }
  save() {
    return this.#net.save();
  }
  dispose() {
    this.#net.dispose();
  }
}

/**
 * Builds a network from a config. See the README for the options and their defaults.
 * @param {object} config
 * @returns {Promise<Network>}
 */
export function createNetwork(config) {
  return openNetwork('createNetwork', config);
}

/**
 * createNetwork for `fn` (createTrainer's worker builds its network with it, so errors name
 * the call the user made). `encoded`: the config's Value bytes, when they were made
 * already (a trainer encodes on the page: a config that cannot be cloned still reaches
 * the core, which names what is wrong with it). @internal
 */
export async function openNetwork(fn, config, encoded) {
  const mod = await (config === undefined && encoded !== undefined ? moduleForEncoded(encoded) : moduleFor(config));
  const handle = create(mod, encoded ?? encodeValue(config));
  if (handle === null) throw coreError(fn, lastError(mod));
  return new Network(mod, handle);
}

/**
 * Memory diagnostics, for leak checks: the wasm memory's size, the bytes
 * allocated inside it, and the networks not yet disposed or collected. Summed over
 * the modules this realm has loaded (the full and the dense build, when it made
 * networks of both kinds).
 * @returns {Promise<{wasmMemoryBytes: number, allocatedBytes: number, liveNetworks: number}>}
 */
export async function memoryUsage() {
  let wasmMemoryBytes = 0;
  let allocatedBytes = 0;
  for (const mod of await loadedModules()) {
    wasmMemoryBytes += mod.HEAPU8.buffer.byteLength;
    allocatedBytes += heapAllocated(mod);
  }
  return { wasmMemoryBytes, allocatedBytes, liveNetworks };
}

/**
 * Restores a network from the bytes of save(). Rejects damaged, truncated or
 * foreign bytes with ModelFormatError.
 * @param {Uint8Array|ArrayBuffer} bytes
 * @returns {Promise<Network>}
 */
export async function loadNetwork(bytes) {
  if (bytes instanceof ArrayBuffer) bytes = new Uint8Array(bytes);
  if (!(bytes instanceof Uint8Array)) {
    throw new InputError(`loadNetwork(): bytes must be a Uint8Array or ArrayBuffer, got ${describe(bytes)}`, 'BNWASM_WRONG_TYPE');
  }
  const mod = await moduleForModel(bytes);
  const handle = load(mod, bytes);
  if (handle === null) throw coreError('loadNetwork', lastError(mod));
  return new Network(mod, handle);
}
