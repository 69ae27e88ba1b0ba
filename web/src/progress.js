// Progress reports of Network.fit (options.onProgress): loss, throughput, training and
// validation accuracy, and each batch-norm layer's batch and running statistics for a few
// tracked units, sampled every step. The same reports reach a trainer's onProgress from its
// worker, which only forwards them.

/** Share of training time the per-step batch-norm samples may cost. */
const SAMPLE_BUDGET = 0.05;
/** Most samples one progress report carries per batch-norm layer. */
const MAX_SAMPLES = 256;
/** Training rows the progress `accuracy` is measured on (the most recently trained). */
const ACCURACY_ROWS = 256;
/** Window (ms) the progress `examplesPerSecond` is measured over. */
const RATE_WINDOW = 2000;

export class ProgressReporter {
  #core; // {steps(), batchStatistics(layer, units), evaluate(x, y)} of the network being fitted
  #o;
  #x;
  #y;
  #classify;
  #inputSize;
  #batchesPerEpoch;
  #samples;
  #pendingValidation = null;
  #examplesSeen = 0;
  #sinceReport = { loss: 0, batches: 0 };
  #rateWindow;
  #lastReport = -Infinity;
  #lastValidation;
  #trainTime = 0;
  #sampleTime = 0;

  /**
   * @param core the fitted network's internals the reports read
   * @param o fit's checked options: onProgress, progressInterval, validationInterval,
   *   validationData, batchSize, and tracked: [{layer, units: Int32Array}] per batch-norm layer
   * @param x, y the training data
   */
  constructor(core, o, x, y, { classify, inputSize, batchesPerEpoch }) {
    this.#core = core;
    this.#o = o;
    this.#x = x;
    this.#y = y;
    this.#classify = classify;
    this.#inputSize = inputSize;
    this.#batchesPerEpoch = batchesPerEpoch;
    this.#samples = o.tracked.map(() => ({ step: [], batchMean: [], batchVariance: [], runningMean: [], runningVariance: [] }));
    this.#rateWindow = [[performance.now(), 0]]; // [time, examplesSeen] at recent reports
    this.#lastValidation = performance.now();
    if (o.validationData) this.#pendingValidation = this.#validate();
  }

  /**
   * After each training step. `at` = {epoch, position (rows of the epoch trained), order
   * (the epoch's permutation or null), rows (this batch's), loss, trainMs}.
   */
  afterStep(at) {
    this.#examplesSeen += at.rows;
    this.#sinceReport.loss += at.loss;
    this.#sinceReport.batches += 1;
    this.#trainTime += at.trainMs;
    const now = performance.now();
    const o = this.#o;
    // A score waits until a report carries it; the next one is taken after that, so the score
    // before training is never replaced unsent when the first step is slow (a loaded machine).
    if (o.validationData && o.validationInterval > 0 && !this.#pendingValidation && now - this.#lastValidation >= o.validationInterval) {
      this.#pendingValidation = this.#validate();
    }
    if (now - this.#lastReport >= o.progressInterval) this.#report(at);
    else if (o.tracked.length > 0 && this.#sampleTime < SAMPLE_BUDGET * this.#trainTime) this.#sample();
  }

  /** The validation an epoch ended with, reported with the next progress report. */
  epochValidation() {
    this.#pendingValidation = this.#validate();
    return this.#pendingValidation;
  }

  /** Time the fit was held (paused) is not training time: it is left out of the rates. */
  held(ms) {
    for (const entry of this.#rateWindow) entry[0] += ms;
    this.#lastValidation += ms;
  }

  #validate() {
    const [vx, vy] = this.#o.validationData;
    const v = this.#core.evaluate(vx, vy);
    this.#lastValidation = performance.now();
    return { ...v, step: this.#core.steps() };
  }

  #sample() {
    const t0 = performance.now();
    const step = this.#core.steps();
    this.#o.tracked.forEach(({ layer, units }, k) => {
      const s = this.#core.batchStatistics(layer, units);
      const samples = this.#samples[k];
      if (samples.step.length === MAX_SAMPLES) for (const key of Object.keys(samples)) samples[key].shift();
      samples.step.push(step);
      samples.batchMean.push(s.mean);
      samples.batchVariance.push(s.variance);
      samples.runningMean.push(s.runningMean);
      samples.runningVariance.push(s.runningVariance);
    });
    this.#sampleTime += performance.now() - t0;
  }

  // Accuracy on the most recently trained rows of this epoch, in inference mode.
  #trainingAccuracy({ position, order }) {
    if (!this.#classify || position === 0) return undefined;
    const d = this.#inputSize;
    const rows = Math.min(ACCURACY_ROWS, position);
    const ax = new Float32Array(rows * d);
    const ay = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      const i = order ? order[position - rows + r] : position - rows + r;
      ax.set(this.#x.subarray(i * d, (i + 1) * d), r * d);
      ay[r] = this.#y[i];
    }
    return this.#core.evaluate(ax, ay).accuracy;
  }

  #report(at) {
    this.#sample();
    // Throughput over the last RATE_WINDOW ms of training (validation included, holds not).
    const now = performance.now();
    const window = this.#rateWindow;
    window.push([now, this.#examplesSeen]);
    while (window.length > 2 && now - window[1][0] >= RATE_WINDOW) window.shift();
    const [since, examplesThen] = window[0];
    const progress = {
      epoch: at.epoch,
      batch: Math.ceil(at.position / this.#o.batchSize),
      batchesPerEpoch: this.#batchesPerEpoch,
      step: this.#core.steps(),
      examplesSeen: this.#examplesSeen,
      loss: this.#sinceReport.batches > 0 ? this.#sinceReport.loss / this.#sinceReport.batches : NaN,
      accuracy: this.#trainingAccuracy(at),
      examplesPerSecond: now > since ? ((this.#examplesSeen - examplesThen) * 1000) / (now - since) : 0,
      batchNorm: this.#o.tracked.map(({ layer, units }, k) => takeSamples(layer, units, this.#samples[k])),
    };
    if (this.#pendingValidation) progress.validation = this.#pendingValidation;
    this.#pendingValidation = null;
    this.#sinceReport = { loss: 0, batches: 0 };
    this.#lastReport = performance.now();
    this.#o.onProgress(progress);
  }
}

// The progress entry of one batch-norm layer: the latest sample, and all samples since the
// last report as flat arrays (history.batchMean[j * units.length + u]).
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
