// The Network facade: validation, defaults, typed arrays in and out, and
// ownership of the Embind object (a user never calls .delete()).
import { fromSpec, normalizeConfig, outputSize, toSpec } from './config.js';
import { BnwasmError, DisposedError, DivergenceError, InputError, ModelFormatError, describe } from './errors.js';
import { exporter } from './exporters.js';
import { foldDenseBatchNorm } from './fold.js';
import { loadModule, yieldToEventLoop } from './module.js';

// Core status codes (cpp/include/bnwasm/network.h, enum Status).
const STATUS_CODES = {
  1: 'BNWASM_INVALID_CONFIG',
  2: 'BNWASM_NON_FINITE',
  3: 'BNWASM_LABEL_OUT_OF_RANGE',
  4: 'BNWASM_BATCH_TOO_SMALL',
  5: 'BNWASM_DIVERGED',
  6: 'BNWASM_CORRUPT_MODEL',
  7: 'BNWASM_INVALID_ARGUMENT',
};

/** Rows per call into the core for predictBatch/evaluate: bounds the staging memory. */
const CHUNK_ROWS = 512;

let liveNetworks = 0;

// Frees the Embind object of a Network the user forgot to dispose.
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

export class Network {
  #mod;
  #h;
  #config;
  #inputSize;
  #outputSize;
  #hasBatchNorm;
  #disposed = false;
  #predictIn = null; // Float32Array view of the 1-row input staging buffer
  #predictOut = null;

  /** @internal Use createNetwork() or loadNetwork(). */
  constructor(mod, handle, config) {
    this.#mod = mod;
    this.#h = handle;
    this.#config = config;
    this.#inputSize = config.inputSize;
    this.#outputSize = outputSize(config);
    this.#hasBatchNorm = config.layers.some((l) => l.type === 'batchNorm');
    registry.register(this, handle, this);
    liveNetworks++;
  }

  /** The normalized config, every default filled in (a copy). */
  get config() {
    return structuredClone(this.#config);
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
    return this.#h.loss();
  }

  /**
   * Trains over the whole data set for some epochs, one mini-batch at a time,
   * yielding to the event loop between batches so pages and progress bars stay live.
   * A final mini-batch of a single example is skipped when the network has batch norm.
   * @param {Float32Array} x (n * inputSize)
   * @param {Int32Array|Uint8Array|Float32Array} y
   * @param {object} [options]
   * @param {number} [options.epochs=1]
   * @param {number} [options.batchSize=32]
   * @param {boolean} [options.shuffle=true] reshuffle every epoch (the network's seeded generator)
   * @param {[Float32Array, Int32Array|Uint8Array|Float32Array]} [options.validationData]
   * @param {(step: number, logs: {epoch: number, batch: number, loss: number}) => void} [options.onBatchEnd]
   * @param {(epoch: number, logs: {loss: number, valLoss?: number, valAccuracy?: number}) => void} [options.onEpochEnd]
   * @param {AbortSignal} [options.signal] stops after the current mini-batch
   * @param {number} [options.checkpointEvery] call onCheckpoint every this many steps
   * @param {(checkpoint: Checkpoint) => void} [options.onCheckpoint] receives save() bytes and
   *   the position in the data; pass the checkpoint as `resumeFrom` to a network loaded from
   *   its bytes, with the same data and options, and training continues exactly.
   * @param {Checkpoint} [options.resumeFrom]
   */
  async fit(x, y, options = {}) {
    this.#live('fit');
    const allowed = [
      'epochs', 'batchSize', 'shuffle', 'validationData', 'onBatchEnd', 'onEpochEnd', 'signal',
      'checkpointEvery', 'onCheckpoint', 'resumeFrom',
    ];
    for (const key of Object.keys(options)) {
      if (!allowed.includes(key)) {
        throw new InputError(`fit(): unknown option '${key}' (expected one of ${allowed.join(', ')})`, 'BNWASM_INVALID_ARGUMENT');
      }
    }
    const { epochs = 1, batchSize = 32, shuffle = true, validationData, onBatchEnd, onEpochEnd, signal } = options;
    const { checkpointEvery, onCheckpoint, resumeFrom } = options;
    if (checkpointEvery !== undefined && (!Number.isInteger(checkpointEvery) || checkpointEvery < 1 || typeof onCheckpoint !== 'function')) {
      throw new InputError(
        `fit(): checkpointEvery must be a positive integer and come with an onCheckpoint function, got ${describe(checkpointEvery)} and ${describe(onCheckpoint)}`,
        'BNWASM_INVALID_ARGUMENT',
      );
    }
    if (
      resumeFrom !== undefined &&
      (resumeFrom === null || !Number.isInteger(resumeFrom.epoch) || !Number.isInteger(resumeFrom.batch) ||
        !/^[0-9a-f]{16}$/.test(resumeFrom.shuffleState) || resumeFrom.step !== this.#h.steps())
    ) {
      throw new InputError(
        `fit(): resumeFrom must be a checkpoint from onCheckpoint, for a network loaded from its bytes (steps ${this.#h.steps()}, checkpoint step ${resumeFrom?.step})`,
        'BNWASM_INVALID_ARGUMENT',
      );
    }
    const n = this._checkFitData('fit', x, y, { epochs, batchSize, validationData });
    const history = { epoch: [], loss: [], valLoss: [], valAccuracy: [] };
    const classify = this.#config.loss === 'softmaxCrossEntropy';
    const targetWidth = classify ? 1 : this.#outputSize;
    let lastYield = Date.now();
    for (let epoch = resumeFrom ? resumeFrom.epoch : 0; epoch < epochs; epoch++) {
      let order = null;
      const resuming = resumeFrom !== undefined && epoch === resumeFrom.epoch;
      // The state this epoch's permutation comes from, for checkpoints.
      if (resuming) this.#h.setRngState(resumeFrom.shuffleState);
      const shuffleState = this.#h.rngState();
      if (shuffle) {
        this.#h.shuffle(n);
        const p = this.#h.indices(n) >>> 2;
        order = this.#mod.HEAPU32.slice(p, p + n);
      }
      let lossSum = 0;
      let seen = 0;
      const firstBatch = resuming ? resumeFrom.batch : 0;
      for (let start = firstBatch * batchSize, batch = firstBatch; start < n; start += batchSize, batch++) {
        if (signal?.aborted) break;
        const m = Math.min(batchSize, n - start);
        if (m === 1 && this.#hasBatchNorm) break;
        this.#predictIn = null;
        const xp = this.#h.input(m) >>> 2;
        const yp = (classify ? this.#h.labels(m) : this.#h.targets(m)) >>> 2;
        const heapX = this.#mod.HEAPF32;
        const heapY = classify ? this.#mod.HEAP32 : this.#mod.HEAPF32;
        const d = this.#inputSize;
        for (let r = 0; r < m; r++) {
          const i = order ? order[start + r] : start + r;
          heapX.set(x.subarray(i * d, (i + 1) * d), xp + r * d);
          if (classify) heapY[yp + r] = y[i];
          else heapY.set(y.subarray(i * targetWidth, (i + 1) * targetWidth), yp + r * targetWidth);
        }
        this.#check('fit', this.#h.train(m));
        const loss = this.#h.loss();
        lossSum += loss * m;
        seen += m;
        const step = this.#h.steps();
        onBatchEnd?.(step, { epoch, batch, loss });
        if (checkpointEvery !== undefined && step % checkpointEvery === 0) {
          onCheckpoint({ bytes: this.save(), epoch, batch: batch + 1, step, shuffleState });
        }
        if (Date.now() - lastYield > 20) {
          await yieldToEventLoop();
          this.#live('fit');
          lastYield = Date.now();
        }
      }
      const logs = { loss: seen > 0 ? lossSum / seen : NaN };
      if (validationData) {
        const v = this.evaluate(validationData[0], validationData[1]);
        logs.valLoss = v.loss;
        if (v.accuracy !== undefined) logs.valAccuracy = v.accuracy;
      }
      history.epoch.push(epoch);
      history.loss.push(logs.loss);
      if (logs.valLoss !== undefined) history.valLoss.push(logs.valLoss);
      if (logs.valAccuracy !== undefined) history.valAccuracy.push(logs.valAccuracy);
      onEpochEnd?.(epoch, logs);
      if (signal?.aborted) break;
    }
    return history;
  }

  /**
   * @internal The checks fit() makes of its data and sizes before training a
   * step: epochs, batchSize, x, y (types, lengths, finite values, labels in
   * range) and validationData. The worker makes the same checks through it, so
   * both throw the same errors. Returns the number of examples.
   */
  _checkFitData(fn, x, y, { epochs, batchSize, validationData }) {
    this.#live(fn);
    if (!Number.isInteger(epochs) || epochs < 1) {
      throw new InputError(`${fn}(): epochs must be a positive integer, got ${describe(epochs)}`, 'BNWASM_INVALID_ARGUMENT');
    }
    if (!Number.isInteger(batchSize) || batchSize < 1 || (this.#hasBatchNorm && batchSize < 2)) {
      throw new InputError(
        `${fn}(): batchSize must be an integer >= ${this.#hasBatchNorm ? 2 : 1}` +
          `${this.#hasBatchNorm ? ' (batch norm needs two examples to estimate a variance)' : ''}, got ${describe(batchSize)}`,
        this.#hasBatchNorm && batchSize === 1 ? 'BNWASM_BATCH_TOO_SMALL' : 'BNWASM_INVALID_ARGUMENT',
      );
    }
    const n = this.#rows(fn, 'x', x);
    this.#checkY(fn, y, n);
    this.#checkFinite(fn, 'x', x);
    this.#checkLabelsRange(fn, y);
    if (validationData !== undefined) {
      if (!Array.isArray(validationData) || validationData.length !== 2) {
        throw new InputError(`${fn}(): validationData must be [x, y], got ${describe(validationData)}`, 'BNWASM_INVALID_ARGUMENT');
      }
      const nv = this.#rows(fn, 'validationData[0]', validationData[0]);
      this.#checkY(fn, validationData[1], nv, 'validationData[1]');
    }
    return n;
  }

  /**
   * Inference on ONE example with the running statistics and the learned gamma
   * and beta. Allocates nothing in wasm; pass `out` to allocate nothing in JS either.
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
    if (this.#predictIn === null || this.#predictIn.buffer !== this.#mod.HEAPF32.buffer) {
      const ip = this.#h.input(1) >>> 2;
      const op = this.#h.output(1) >>> 2;
      this.#predictIn = this.#mod.HEAPF32.subarray(ip, ip + this.#inputSize);
      this.#predictOut = this.#mod.HEAPF32.subarray(op, op + this.#outputSize);
    }
    this.#predictIn.set(x);
    this.#check('predict', this.#h.predictOne());
    const result = out ?? new Float32Array(this.#outputSize);
    result.set(this.#predictOut);
    return result;
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
    for (let start = 0; start < n; start += CHUNK_ROWS) {
      const m = Math.min(CHUNK_ROWS, n - start);
      this.#stageX(xs.subarray(start * this.#inputSize, (start + m) * this.#inputSize), m);
      const status = this.#h.predictBatch(m);
      this.#check('predictBatch', status, start * this.#inputSize, 'xs');
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
    for (let start = 0; start < n; start += CHUNK_ROWS) {
      const m = Math.min(CHUNK_ROWS, n - start);
      this.#stageX(xs.subarray(start * this.#inputSize, (start + m) * this.#inputSize), m);
      this.#stageY(ys.subarray(start * width, (start + m) * width), m);
      const status = this.#h.evaluate(m);
      if (status !== 0) {
        const field = this.#h.errorMessage().startsWith('y[') ? 'ys' : 'xs';
        this.#check('evaluate', status, start * (field === 'ys' ? width : this.#inputSize), field);
      }
      lossSum += this.#h.loss();
      correct += this.#h.correct();
    }
    return classify ? { loss: lossSum / n, accuracy: correct / n } : { loss: lossSum / n };
  }

  /**
   * Every tensor, copied out: dense 'weight' [units, inputs] and 'bias' [units];
   * batchNorm 'gamma', 'beta', 'runningMean', 'runningVariance' [features].
   * @returns {{layer: number, name: string, shape: number[], values: Float32Array}[]}
   */
  getWeights() {
    this.#live('getWeights');
    const list = [];
    for (let i = 0; i < this.#h.tensorCount(); i++) {
      const p = this.#h.tensorData(i) >>> 2;
      const size = this.#h.tensorSize(i);
      list.push({
        layer: this.#h.tensorLayer(i),
        name: this.#h.tensorName(i),
        shape: this.#h.tensorShape(i),
        values: this.#mod.HEAPF32.slice(p, p + size),
      });
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
      const shape = this.#h.tensorShape(i);
      if (entry.shape !== undefined && (!Array.isArray(entry.shape) || entry.shape.join() !== shape.join())) {
        throw new InputError(
          `${where} (layer ${entry.layer} ${entry.name}): shape must be [${shape}], got ${describe(entry.shape)} [${entry.shape}]`,
          'BNWASM_WRONG_LENGTH',
        );
      }
      const size = this.#h.tensorSize(i);
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
      this.#mod.HEAPF32.set(values, this.#h.tensorData(i) >>> 2);
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
    const n = this.#h.save();
    const p = this.#h.saved();
    const bytes = this.#mod.HEAPU8.slice(p, p + n);
    this.#h.releaseSaved();
    return bytes;
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
   */
  async recomputeStatistics(x, options = {}) {
    this.#live('recomputeStatistics');
    const { batchSize = 1024, onProgress } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new InputError(`recomputeStatistics(): batchSize must be a positive integer, got ${describe(batchSize)}`, 'BNWASM_INVALID_ARGUMENT');
    }
    const n = this.#rows('recomputeStatistics', 'x', x);
    this.#checkFinite('recomputeStatistics', 'x', x);
    const layers = this.#config.layers.flatMap((l, i) => (l.type === 'batchNorm' ? [i] : []));
    if (n < 2 && layers.some((i) => this.#config.layers[i].runningVariance === 'unbiased')) {
      throw new InputError('recomputeStatistics(): x has 1 example; an unbiased variance needs at least 2', 'BNWASM_BATCH_TOO_SMALL');
    }
    const total = n * layers.length;
    let lastYield = Date.now();
    for (const [k, layer] of layers.entries()) {
      this.#check('recomputeStatistics', this.#h.populationBegin(layer));
      for (let start = 0; start < n; start += batchSize) {
        const m = Math.min(batchSize, n - start);
        this.#stageX(x.subarray(start * this.#inputSize, (start + m) * this.#inputSize), m);
        this.#check('recomputeStatistics', this.#h.populationAdd(m), start * this.#inputSize);
        onProgress?.({ layer, examplesDone: k * n + start + m, examplesTotal: total });
        if (Date.now() - lastYield > 20) {
          await yieldToEventLoop();
          this.#live('recomputeStatistics');
          lastYield = Date.now();
        }
      }
      this.#check('recomputeStatistics', this.#h.populationEnd());
    }
  }

  /**
   * The outputs of one layer (inference mode) for many examples: what the
   * layer after it sees. For example the inputs of a sigmoid over training.
   * @param {Float32Array} xs (n * inputSize)
   * @param {number} layer index into config.layers
   * @returns {Float32Array} (n * width of that layer)
   */
  activations(xs, layer) {
    this.#live('activations');
    const n = this.#rows('activations', 'xs', xs);
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.#config.layers.length) {
      throw new InputError(
        `activations(): layer must be an integer in [0, ${this.#config.layers.length}), got ${describe(layer)}`,
        'BNWASM_INVALID_ARGUMENT',
      );
    }
    const width = this.#h.layerWidth(layer);
    const out = new Float32Array(n * width);
    for (let start = 0; start < n; start += CHUNK_ROWS) {
      const m = Math.min(CHUNK_ROWS, n - start);
      this.#stageX(xs.subarray(start * this.#inputSize, (start + m) * this.#inputSize), m);
      this.#check('activations', this.#h.forwardTo(m, layer), start * this.#inputSize, 'xs');
      const p = this.#h.layerOutput(layer) >>> 2;
      out.set(this.#mod.HEAPF32.subarray(p, p + m * width), start * width);
    }
    return out;
  }

  /**
   * A predict-only network in which every batch norm that follows a dense
   * layer is folded into it: W' = W * gamma / sqrt(var + eps),
   * b' = (b - mean) * gamma / sqrt(var + eps) + beta (computed in float64).
   * Its outputs match this network's inference to float32 rounding.
   * @returns {Promise<InferenceNetwork>}
   */
  async toInference() {
    this.#live('toInference');
    const tensors = new Map(this.getWeights().map((t) => [`${t.layer}/${t.name}`, t]));
    const layers = [];
    const weights = [];
    const src = this.#config.layers;
    for (let i = 0; i < src.length; i++) {
      const l = src[i];
      const at = layers.length;
      if (l.type === 'dense' && src[i + 1]?.type === 'batchNorm') {
        const bn = src[i + 1];
        const folded = foldDenseBatchNorm(tensors.get(`${i}/weight`).values, tensors.get(`${i}/bias`)?.values, {
          gamma: tensors.get(`${i + 1}/gamma`).values,
          beta: tensors.get(`${i + 1}/beta`).values,
          runningMean: tensors.get(`${i + 1}/runningMean`).values,
          runningVariance: tensors.get(`${i + 1}/runningVariance`).values,
        }, bn.epsilon);
        layers.push({ type: 'dense', units: l.units, useBias: true });
        weights.push({ layer: at, name: 'weight', values: folded.weight }, { layer: at, name: 'bias', values: folded.bias });
        i++; // the batch norm is folded
      } else {
        layers.push(l);
        for (const name of ['weight', 'bias', 'gamma', 'beta', 'runningMean', 'runningVariance']) {
          const t = tensors.get(`${i}/${name}`);
          if (t) weights.push({ layer: at, name, values: t.values });
        }
      }
    }
    const net = await createNetwork({ ...this.#config, layers, optimizer: { type: 'sgd' } });
    net.setWeights(weights);
    return new InferenceNetwork(net);
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

  /**
   * @internal Batches folded into a batch-norm layer's running statistics
   * (PyTorch's num_batches_tracked), and its setter, for the interop converters.
   */
  _batchesTracked(layer) {
    this.#live('batchesTracked');
    return this.#h.batchesTracked(layer);
  }
  _setBatchesTracked(layer, n) {
    this.#live('setBatchesTracked');
    this.#check('setBatchesTracked', this.#h.setBatchesTracked(layer, n));
  }

  /**
   * @internal For the worker's progress reports: a batch-norm layer's last
   * training batch mean and biased variance and its running statistics, for the
   * given units only (all when omitted). Copies just those floats, so it is
   * cheap enough to call after every step. null for a layer that is not batch norm.
   * @param {number} layer
   * @param {ArrayLike<number>} [units]
   */
  _batchStatistics(layer, units) {
    this.#live('batchStatistics');
    const mp = this.#h.batchMean(layer) >>> 2;
    if (mp === 0) return null;
    const vp = this.#h.batchVar(layer) >>> 2;
    const rm = this.#tensorPointer(layer, 'runningMean');
    const rv = this.#tensorPointer(layer, 'runningVariance');
    const heap = this.#mod.HEAPF32;
    const width = this.#h.layerWidth(layer);
    const pick = (base) =>
      units === undefined ? heap.slice(base, base + width) : Float32Array.from(units, (u) => heap[base + u]);
    return { mean: pick(mp), variance: pick(vp), runningMean: pick(rm), runningVariance: pick(rv) };
  }

  #tensors = null;
  // 'layer/name' -> index of the core's tensor list (fixed for a network's life).
  #tensorIndex() {
    if (this.#tensors === null) {
      this.#tensors = new Map();
      for (let i = 0; i < this.#h.tensorCount(); i++) {
        this.#tensors.set(`${this.#h.tensorLayer(i)}/${this.#h.tensorName(i)}`, i);
      }
    }
    return this.#tensors;
  }
  // Float index into HEAPF32 of a tensor (tensors never move: the arenas are sized once).
  #tensorPointer(layer, name) {
    return this.#h.tensorData(this.#tensorIndex().get(`${layer}/${name}`)) >>> 2;
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

  #checkFinite(fn, name, x) {
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i])) {
        throw new InputError(`${fn}(): ${name}[${i}] is ${x[i]}, expected a finite number`, 'BNWASM_NON_FINITE', {
          index: i,
          value: x[i],
        });
      }
    }
  }

  #checkLabelsRange(fn, y) {
    if (this.#config.loss !== 'softmaxCrossEntropy') {
      this.#checkFinite(fn, 'y', y);
      return;
    }
    for (let i = 0; i < y.length; i++) {
      if (y[i] < 0 || y[i] >= this.#outputSize) {
        throw new InputError(
          `${fn}(): y[${i}] is ${y[i]}, labels must be integers in [0, ${this.#outputSize})`,
          'BNWASM_LABEL_OUT_OF_RANGE',
          { index: i, value: y[i] },
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

  // Turns a core status into the matching Error subclass, naming the call.
  #check(fn, status, offset = 0, field = null) {
    if (status === 0) return;
    let message = this.#h.errorMessage();
    const index = this.#h.errorIndex();
    const value = this.#h.errorValue();
    const code = STATUS_CODES[status] ?? 'BNWASM_INTERNAL';
    const details = index >= 0 ? { index: index + offset, value } : {};
    if (index >= 0) message = message.replace(/^(x|y)\[\d+\]/, (_, name) => `${field ?? name}[${index + offset}]`);
    if (status === 5) throw new DivergenceError(`${fn}(): ${message}`, details);
    if (status === 6) throw new ModelFormatError(`${fn}(): ${message}`);
    throw new InputError(`${fn}(): ${message}`, code, details);
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
export async function createNetwork(config) {
  const normalized = normalizeConfig(config, 'createNetwork');
  const mod = await loadModule();
  const handle = mod.create(toSpec(normalized));
  if (handle === null) throw new BnwasmError(`createNetwork(): ${mod.lastError()}`, 'BNWASM_INVALID_CONFIG');
  return new Network(mod, handle, normalized);
}

/**
 * Memory diagnostics, for leak checks: the wasm memory's size, the bytes
 * allocated inside it, and the networks not yet disposed or collected.
 * @returns {Promise<{wasmMemoryBytes: number, allocatedBytes: number, liveNetworks: number}>}
 */
export async function memoryUsage() {
  const mod = await loadModule();
  return { wasmMemoryBytes: mod.HEAPU8.buffer.byteLength, allocatedBytes: mod.heapAllocated(), liveNetworks };
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
  const mod = await loadModule();
  const p = mod.staging(bytes.length);
  mod.HEAPU8.set(bytes, p);
  const handle = mod.load(bytes.length);
  if (handle === null) throw new ModelFormatError(`loadNetwork(): ${mod.lastError()}`);
  const config = fromSpec(handle.spec());
  return new Network(mod, handle, config);
}
