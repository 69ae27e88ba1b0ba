// The worker API (createTrainer) in Node worker_threads, through the public API only:
// progress events, abort, pause/resume, snapshots, errors from the worker, terminate,
// recomputeStatistics. (Faults, checkpoints and loadTrainer: trainer-faults.test.js.)
import { createNetwork, createTrainer, loadNetwork, ConfigError, DisposedError, InputError } from 'bnwasm';
import { gaussian, rng } from './helpers.js';

// Small synthetic data: 3 classes of Gaussian blobs in 8 dimensions.
const D = 8;
const CLASSES = 3;
function blobs(n, seed) {
  const normal = gaussian(rng(seed));
  const x = new Float32Array(n * D);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % CLASSES;
    for (let j = 0; j < D; j++) x[i * D + j] = normal() + (j % CLASSES === y[i] ? 2 : 0) + 3;
  }
  return { x, y };
}

const CONFIG = {
  inputSize: D,
  layers: [
    { type: 'dense', units: 32, useBias: false },
    { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 },
    { type: 'relu' },
    { type: 'dense', units: 16, useBias: false },
    { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 },
    { type: 'relu' },
    { type: 'dense', units: CLASSES },
  ],
  optimizer: { type: 'adam', learningRate: 1e-2 },
  seed: 7,
};
const BATCH = 32;
const train = blobs(4096, 1); // 128 full mini-batches per epoch
const testSet = blobs(512, 2);

const trainers = [];
async function trainer(config = CONFIG) {
  const t = await createTrainer(config);
  trainers.push(t);
  return t;
}
afterAll(() => trainers.forEach((t) => t.terminate()));

// Resolves on the first progress event of a fit (and keeps counting afterwards).
function progressRecorder() {
  const events = [];
  let first;
  const firstEvent = new Promise((resolve) => (first = resolve));
  return {
    events,
    firstEvent,
    onProgress(p) {
      events.push({ ...p, receivedAt: performance.now() });
      first(p);
    },
  };
}

test('fit reports progress with batch-norm statistics, throttled to progressInterval', async () => {
  const t = await trainer();
  const rec = progressRecorder();
  const progressInterval = 10;
  const epochs = 40; // ~5000 small steps: long enough for several messages on a fast machine
  const started = performance.now();
  const history = await t.fit(train.x, train.y, {
    epochs,
    batchSize: BATCH,
    validationData: [testSet.x, testSet.y],
    validationInterval: 20,
    progressInterval,
    trackUnits: 3,
    onProgress: rec.onProgress,
  });
  const elapsed = performance.now() - started;

  expect(history.steps).toBe(epochs * 128);
  expect(history.aborted).toBe(false);
  expect(history.epoch).toEqual(Array.from({ length: epochs }, (_, i) => i));
  expect(history.valAccuracy).toHaveLength(epochs);
  expect(history.valAccuracy[epochs - 1]).toBeGreaterThan(0.9);

  const { events } = rec;
  expect(events.length).toBeGreaterThanOrEqual(3);
  // At most one message per interval (plus the first one, sent at once).
  expect(events.length).toBeLessThanOrEqual(Math.floor(elapsed / progressInterval) + 1);
  for (let i = 1; i < events.length; i++) expect(events[i].step).toBeGreaterThan(events[i - 1].step);
  expect(events.some((p) => p.validation !== undefined)).toBe(true);
  expect(events[0].validation).toMatchObject({ step: 0 }); // scored before training

  const last = events[events.length - 1];
  expect(last.examplesSeen).toBe(last.step * BATCH);
  expect(last.batchesPerEpoch).toBe(128);
  expect(last.loss).toBeGreaterThan(0);
  expect(last.accuracy).toBeGreaterThanOrEqual(0);
  expect(last.accuracy).toBeLessThanOrEqual(1);
  expect(last.examplesPerSecond).toBeGreaterThan(0);
  expect(last.batchNorm.map((b) => b.layer)).toEqual([1, 4]);
  for (const b of last.batchNorm) {
    expect(b.units.constructor.name).toBe('Int32Array');
    expect(Array.from(b.units)).toEqual([0, 1, 2]);
    for (const key of ['batchMean', 'batchVariance', 'runningMean', 'runningVariance']) {
      expect(b[key].constructor.name).toBe('Float32Array'); // (from the worker: another realm than Jest's)
      expect(b[key]).toHaveLength(3);
    }
    expect(b.history.step[b.history.step.length - 1]).toBe(last.step);
    expect(b.history.batchMean).toHaveLength(b.history.step.length * 3);
  }

});

test("progress samples are each mini-batch's statistics and the running averages after it", async () => {
  const t = await trainer();
  // progressInterval 0: a message after every mini-batch, so every step is sampled.
  const rec = progressRecorder();
  await t.fit(train.x, train.y, { epochs: 1, batchSize: BATCH, progressInterval: 0, trackUnits: [0, 5, 15], onProgress: rec.onProgress });
  expect(rec.events.map((p) => p.step)).toEqual(Array.from({ length: 128 }, (_, i) => i + 1));
  // Per layer, every sample in order: step, then the 3 units' statistics.
  let checked = 0;
  let worst = 0;
  for (let b = 0; b < 2; b++) {
    const samples = [];
    for (const e of rec.events) {
      const h = e.batchNorm[b].history;
      expect(Array.from(e.batchNorm[b].units)).toEqual([0, 5, 15]);
      expect(Array.from(h.batchMean.subarray(-3))).toEqual(Array.from(e.batchNorm[b].batchMean));
      for (let j = 0; j < h.step.length; j++) {
        const at = (key) => h[key].subarray(j * 3, j * 3 + 3);
        samples.push({ step: h.step[j], mean: at('batchMean'), variance: at('batchVariance'), rm: at('runningMean'), rv: at('runningVariance') });
      }
    }
    // Before step 1 the running statistics are mean 0, variance 1.
    let previous = { step: 0, rm: [0, 0, 0], rv: [1, 1, 1] };
    for (const s of samples) {
      if (s.step === previous.step) continue; // sampled twice in one step
      expect(s.step).toBe(previous.step + 1);
      for (let u = 0; u < 3; u++) {
        expect(s.variance[u]).toBeGreaterThan(0);
        // running = 0.9 * running + 0.1 * batch; the running variance takes the unbiased
        // batch variance, B / (B - 1) times the biased one used to normalize.
        const mean = 0.9 * previous.rm[u] + 0.1 * s.mean[u];
        const variance = 0.9 * previous.rv[u] + 0.1 * s.variance[u] * (BATCH / (BATCH - 1));
        // float32 arithmetic on values of order 1-100: 1e-5 relative is ~100 ulp.
        worst = Math.max(worst, Math.abs(s.rm[u] - mean) / (1 + Math.abs(mean)), Math.abs(s.rv[u] - variance) / (1 + Math.abs(variance)));
        checked++;
      }
      previous = s;
    }
    expect(previous.step).toBe(128);
  }
  expect(checked).toBe(2 * 128 * 3);
  expect(worst).toBeLessThan(1e-5);
});

test('an AbortSignal stops the fit after the current mini-batch and resolves with the history so far', async () => {
  const t = await trainer();
  const controller = new AbortController();
  const rec = progressRecorder();
  const done = t.fit(train.x, train.y, { epochs: 200, batchSize: BATCH, progressInterval: 10, signal: controller.signal, onProgress: rec.onProgress });
  await rec.firstEvent;
  controller.abort();
  const history = await done;
  expect(history.aborted).toBe(true);
  expect(history.steps).toBeLessThan(200 * 128);
  const net = await t.snapshot();
  expect(net.steps).toBe(history.steps); // nothing trains after the fit resolved
  net.dispose();

  // An already-aborted signal trains nothing.
  const again = await t.fit(train.x, train.y, { epochs: 1, signal: AbortSignal.abort() });
  expect(again.aborted).toBe(true);
  expect(again.steps).toBe(history.steps);
});

test('pause holds the fit (no steps, no progress) and resume lets it finish', async () => {
  const t = await trainer();
  const rec = progressRecorder();
  const done = t.fit(train.x, train.y, { epochs: 20, batchSize: BATCH, progressInterval: 10, onProgress: rec.onProgress });
  await rec.firstEvent;
  const { step } = await t.pause();
  expect(step).toBeGreaterThan(0);
  const eventsAtPause = rec.events.length;
  await new Promise((resolve) => setTimeout(resolve, 300));
  const net = await t.snapshot();
  expect(net.steps).toBe(step);
  net.dispose();
  expect(rec.events.length).toBe(eventsAtPause);
  expect(rec.events.every((p) => p.step <= step)).toBe(true);
  expect((await t.pause()).step).toBe(step); // pausing twice is harmless
  const predicted = await t.predict(testSet.x.subarray(0, D)); // the worker serves calls while paused
  expect(predicted).toHaveLength(CLASSES);

  const resumed = await t.resume();
  expect(resumed.step).toBe(step);
  const history = await done;
  expect(history.steps).toBe(20 * 128);
  expect(history.aborted).toBe(false);
  expect(rec.events.length).toBeGreaterThan(eventsAtPause);
});

test('a snapshot predicts exactly what the worker predicts', async () => {
  const t = await trainer();
  await t.fit(train.x, train.y, { epochs: 2, batchSize: BATCH });
  const net = await t.snapshot();
  expect(net.steps).toBe(2 * 128);
  expect(net.config).toEqual(t.config);
  for (let i = 0; i < 20; i++) {
    const x1 = testSet.x.subarray(i * D, (i + 1) * D);
    const inWorker = await t.predict(x1);
    expect(inWorker.constructor.name).toBe('Float32Array');
    expect(Array.from(net.predict(x1))).toEqual(Array.from(inWorker)); // bit for bit: same wasm, same weights
  }
  const workerEval = await t.evaluate(testSet.x, testSet.y);
  expect(net.evaluate(testSet.x, testSet.y)).toEqual(workerEval);
  expect(workerEval.accuracy).toBeGreaterThan(0.9);
  // predictBatch in the worker (on its threads): the snapshot's rows bit for bit, and each row is predict(row).
  const rows = await t.predictBatch(testSet.x);
  expect(rows.constructor.name).toBe('Float32Array');
  expect(rows.length).toBe((testSet.x.length / D) * CLASSES);
  expect(Array.from(rows)).toEqual(Array.from(net.predictBatch(testSet.x)));
  expect(Array.from(rows.subarray(5 * CLASSES, 6 * CLASSES))).toEqual(Array.from(net.predict(testSet.x.subarray(5 * D, 6 * D))));
  const moved = testSet.x.slice(0, 10 * D);
  expect(Array.from(await t.predictBatch(moved, { transfer: true }))).toEqual(Array.from(rows.subarray(0, 10 * CLASSES)));
  expect(moved.length).toBe(0); // moved to the worker
  await expect(t.predictBatch(testSet.x.subarray(0, D + 1))).rejects.toMatchObject({
    name: 'InputError',
    code: 'BNWASM_WRONG_LENGTH',
    message: expect.stringMatching(/^predictBatch\(\): xs has 9 values/),
  });
  expect(Array.from(await t.predictBatch(testSet.x.subarray(0, D)))).toEqual(Array.from(rows.subarray(0, CLASSES))); // still usable
  net.dispose();

  // Snapshots during a fit work too (the first progress message comes after the first step).
  const controller = new AbortController();
  const rec = progressRecorder();
  const done = t.fit(train.x, train.y, { epochs: 500, batchSize: BATCH, signal: controller.signal, onProgress: rec.onProgress });
  await rec.firstEvent;
  const mid = await t.snapshot();
  controller.abort();
  const history = await done;
  expect(history.aborted).toBe(true);
  expect(mid.steps).toBeGreaterThan(2 * 128);
  expect(mid.steps).toBeLessThanOrEqual(history.steps);
  mid.dispose();
});

test('errors from the worker are the same Error classes, codes and messages as the main-thread API', async () => {
  const t = await trainer();
  const local = await createNetwork(CONFIG);
  const badLabels = Int32Array.from(train.y);
  badLabels[5] = 7;
  const nan = Float32Array.from(train.x);
  nan[42] = NaN;
  const cases = [
    [train.x, new Int32Array(3), {}],
    [train.x, badLabels, {}],
    [nan, train.y, {}],
    [train.x, train.y, { batchSize: 1 }],
    [train.x.subarray(0, 13), train.y, {}],
    [Array.from(train.x), train.y, {}],
    [train.x, train.y, { epochs: 0 }],
  ];
  for (const [x, y, options] of cases) {
    const expected = await local.fit(x, y, options).then(
      () => null,
      (error) => error,
    );
    expect(expected).toBeInstanceOf(InputError);
    const actual = await t.fit(x, y, options).then(
      () => null,
      (error) => error,
    );
    expect(actual).toBeInstanceOf(InputError);
    expect(actual).toBeInstanceOf(Error);
    expect({ name: actual.name, code: actual.code, message: actual.message, index: actual.index, value: actual.value }).toEqual({
      name: expected.name,
      code: expected.code,
      message: expected.message,
      index: expected.index,
      value: expected.value,
    });
  }
  const short = new Float32Array(D - 1);
  expect(() => local.predict(short)).toThrow(InputError);
  await expect(t.predict(short)).rejects.toMatchObject({ name: 'InputError', code: 'BNWASM_WRONG_LENGTH', message: expect.stringContaining('predict(): x has 7 values') });
  await expect(t.fit(train.x, train.y, { batchSize: 32, bogus: 1 })).rejects.toThrow(/unknown option 'bogus'/);
  await expect(createTrainer({ ...CONFIG, inputSize: 0 })).rejects.toBeInstanceOf(ConfigError);
  await expect(createTrainer({ ...CONFIG, inputSize: 0 })).rejects.toThrow(/^createTrainer\(\): config: inputSize must be/);
  // The trainer still works after errors.
  const history = await t.fit(train.x, train.y, { epochs: 1, batchSize: BATCH });
  expect(history.steps).toBe(128);
  local.dispose();
});

test('one fit at a time; transfer moves the data instead of copying it', async () => {
  const t = await trainer();
  const x = train.x.slice();
  const y = train.y.slice();
  const first = t.fit(x, y, { epochs: 3, batchSize: BATCH, transfer: true });
  expect(x.length).toBe(0); // moved to the worker
  await expect(t.fit(train.x, train.y)).rejects.toMatchObject({ code: 'BNWASM_BUSY' });
  expect((await first).steps).toBe(3 * 128);
  // Without transfer the caller keeps its arrays.
  await t.fit(train.x, train.y, { epochs: 1, batchSize: BATCH });
  expect(train.x.length).toBe(4096 * D);
});

test("arrays that are views into a larger buffer (Node's Buffer) stay the caller's: only their own values cross", async () => {
  // Buffer.slice is a view of the same memory (for small Buffers, Node's shared pool): copying
  // with slice() and moving the copy detached the caller's buffer. Labels as a Buffer here.
  const t = await trainer();
  const big = Buffer.alloc(3 * 4096);
  const y = big.subarray(4096, 2 * 4096);
  y.set(train.y);
  const before = (await t.evaluate(train.x, train.y)).loss;
  expect((await t.evaluate(train.x, y)).loss).toBe(before);
  await t.fit(train.x, y, { epochs: 1, batchSize: BATCH });
  expect(y.length).toBe(4096); // not detached
  expect([...y.subarray(0, 8)]).toEqual([...train.y.subarray(0, 8)]);
  expect(big.length).toBe(3 * 4096);
});

test('terminate() mid-fit rejects every pending promise, and later calls, with DisposedError', async () => {
  const t = await trainer();
  const rec = progressRecorder();
  const fit = t.fit(train.x, train.y, { epochs: 500, batchSize: BATCH, progressInterval: 10, onProgress: rec.onProgress });
  await rec.firstEvent;
  const snapshot = t.snapshot();
  t.terminate();
  await expect(fit).rejects.toBeInstanceOf(DisposedError);
  await expect(fit).rejects.toMatchObject({ code: 'BNWASM_DISPOSED', message: expect.stringContaining('terminate() was called') });
  await expect(snapshot).rejects.toBeInstanceOf(DisposedError);
  await expect(t.predict(testSet.x.subarray(0, D))).rejects.toBeInstanceOf(DisposedError);
  await expect(t.fit(train.x, train.y)).rejects.toThrow(/fit\(\): the trainer has been terminated/);
  expect(t.terminated).toBe(true);
  t.terminate(); // twice is fine
});

test('recomputeStatistics in the worker sets exactly the statistics the main thread computes, with progress', async () => {
  const t = await trainer();
  await t.fit(train.x, train.y, { epochs: 1, batchSize: BATCH });
  const bytes = await t.save();
  const local = await loadNetwork(bytes);
  const data = testSet.x; // 512 rows
  await local.recomputeStatistics(data, { batchSize: 100 });

  const events = [];
  await t.recomputeStatistics(data, { batchSize: 100, progressInterval: 0, onProgress: (p) => events.push(p) });
  // Two batch-norm layers, each over 6 chunks of at most 100 rows, one message per chunk.
  expect(events.map((p) => [p.layer, p.examplesDone])).toEqual(
    [1, 4].flatMap((layer, k) => [100, 200, 300, 400, 500, 512].map((done) => [layer, k * 512 + done])),
  );
  expect(events.every((p) => p.examplesTotal === 2 * 512)).toBe(true);

  const net = await t.snapshot();
  const running = (n) => n.getWeights().filter((w) => w.name === 'runningMean' || w.name === 'runningVariance');
  const untouched = await loadNetwork(bytes);
  const before = running(untouched);
  untouched.dispose();
  const expected = running(local);
  const actual = running(net);
  expect(actual.map((w) => `${w.layer}/${w.name}`)).toEqual(['1/runningMean', '1/runningVariance', '4/runningMean', '4/runningVariance']);
  for (const [k, w] of actual.entries()) {
    expect(Array.from(w.values)).toEqual(Array.from(expected[k].values)); // bit for bit
    expect(Array.from(w.values)).not.toEqual(Array.from(before[k].values)); // and they did change
  }
  expect(Array.from(net.save())).toEqual(Array.from(local.save())); // nothing else differs
  net.dispose();
  local.dispose();

  // Throttled by default: fewer messages, but always the last one.
  const throttled = [];
  await t.recomputeStatistics(data, { batchSize: 100, onProgress: (p) => throttled.push(p) });
  expect(throttled.at(-1)).toEqual({ layer: 4, examplesDone: 1024, examplesTotal: 1024 });

  // The main thread's errors; and not while a fit runs.
  await expect(t.recomputeStatistics(data, { batchSize: 0 })).rejects.toMatchObject({
    name: 'InputError',
    message: 'recomputeStatistics(): batchSize must be a positive integer, got 0',
  });
  await expect(t.recomputeStatistics(data, { bogus: 1 })).rejects.toThrow(/^recomputeStatistics\(\): unknown option 'bogus'/);
  const controller = new AbortController();
  let started;
  const firstProgress = new Promise((resolve) => (started = resolve));
  const fit = t.fit(train.x, train.y, { epochs: 1000, batchSize: BATCH, signal: controller.signal, onProgress: started });
  await firstProgress;
  await expect(t.recomputeStatistics(data)).rejects.toMatchObject({ code: 'BNWASM_BUSY', message: expect.stringMatching(/^recomputeStatistics\(\): already fitting; await the running fit\(\) or abort it first$/) });
  controller.abort();
  expect((await fit).aborted).toBe(true);
});
