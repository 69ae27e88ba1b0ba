// The trainer when things go wrong (issue 5), through the public API: a worker that is
// terminated or dies mid-fit, checkpoints from the worker, and resuming them exactly in a
// new trainer (loadTrainer), also after a crash. Trainer._crash is the one internal hook:
// it makes the worker really die (process.exit in the worker thread, or an uncaught error).
import {
  createNetwork,
  createTrainer,
  loadNetwork,
  loadTrainer,
  DisposedError,
  InputError,
  ModelFormatError,
  WorkerError,
} from 'bnwasm';
import { blobs, bytesEqual, smallConfig } from './helpers.js';

const { x, y } = blobs(100); // 4-D, 3 classes
const valid = blobs(60, 4, 11);
const BATCH = 16; // 100 rows: 6 full mini-batches and one of 4, 7 steps an epoch
const OPTIONS = { epochs: 3, batchSize: BATCH, validationData: [valid.x, valid.y] };
const x1 = x.subarray(0, 4);
// Long enough that it is still running whenever the test stops it (it never runs to the end).
const ENDLESS = { epochs: 1e6, batchSize: BATCH, progressInterval: 0 };

const trainers = [];
async function track(promise) {
  const t = await promise;
  trainers.push(t);
  return t;
}
afterAll(() => trainers.forEach((t) => t.terminate()));

/** Starts an endless fit; resolves once it has trained (its first progress message) with {fit}. */
async function runningFit(t, options = {}) {
  let started;
  const firstProgress = new Promise((resolve) => (started = resolve));
  const fit = t.fit(x, y, { ...ENDLESS, onProgress: started, ...options });
  await firstProgress;
  return { fit }; // (not the bare promise: an async function would wait for it)
}

/**
 * Every call that can be pending, made in one go (the worker gets them after anything sent
 * before), each already turned into the error it rejects with (see rejection).
 */
function everyCall(t, fit) {
  const calls = {
    fit,
    predict: t.predict(x1),
    snapshot: t.snapshot(),
    save: t.save(),
    evaluate: t.evaluate(x, y),
    pause: t.pause(),
    resume: t.resume(),
    recomputeStatistics: t.recomputeStatistics(x),
    fit2: t.fit(x, y), // a second fit: would be BNWASM_BUSY if the worker ever saw it
  };
  return Object.entries(calls).map(([name, promise]) => [name.replace(/\d$/, ''), rejection(promise)]);
}

/** Settles a promise into the error it rejected with (fails the test if it resolved). */
const rejection = (promise) => // (a handler at once: no unhandled rejections in between)
  promise.then(
    (value) => {
      throw new Error(`expected a rejection, got ${JSON.stringify(value)}`);
    },
    (error) => error,
  );

/** 'pending' unless the promise has already settled by the next macrotask. */
const settledAtOnce = (promise) =>
  Promise.race([promise.then(() => 'resolved', () => 'rejected'), new Promise((resolve) => setImmediate(() => resolve('pending')))]);

describe('worker faults', () => {
  for (const how of ['exit', 'throw']) {
    test(`a worker that dies mid-fit (${how}) rejects every pending call with WorkerError; the last snapshot stays usable`, async () => {
      const t = await track(createTrainer(smallConfig()));
      const { fit } = await runningFit(t);
      const snapshot = await t.snapshot();
      const before = snapshot.predict(x1);
      const steps = snapshot.steps;
      expect(steps).toBeGreaterThan(0);

      t._crash({ how });
      const calls = everyCall(t, fit); // sent after the crash request: never answered
      const cause = how === 'exit' ? 'it exited with code 70' : 'it threw Error: bnwasm worker: crashed on request';
      for (const [name, errorPromise] of calls) {
        const error = await errorPromise;
        expect(error).toBeInstanceOf(WorkerError);
        expect(error).toMatchObject({ name: 'WorkerError', code: 'BNWASM_WORKER_FAILED' });
        expect(error.message).toMatch(new RegExp(`^${name}\\(\\): the trainer's worker stopped unexpectedly \\(${cause}`));
        if (how === 'exit') expect(error.exitCode).toBe(70);
        else expect(error.cause.message).toMatch(/crashed on request/);
      }
      expect(t.terminated).toBe(true);

      // Later calls reject at once, with the same kind of error naming the call.
      for (const call of [() => t.predict(x1), () => t.fit(x, y), () => t.snapshot(), () => t.recomputeStatistics(x)]) {
        const promise = call();
        expect(await settledAtOnce(promise)).toBe('rejected');
        await expect(promise).rejects.toMatchObject({ name: 'WorkerError', code: 'BNWASM_WORKER_FAILED' });
      }
      await expect(t.evaluate(x, y)).rejects.toThrow(/^evaluate\(\): the trainer's worker stopped unexpectedly/);
      t.terminate(); // harmless, and it does not turn the failure into a DisposedError
      await expect(t.pause()).rejects.toBeInstanceOf(WorkerError);

      // The snapshot is a main-thread network: it does not depend on the dead worker.
      expect(snapshot.steps).toBe(steps);
      expect(Array.from(snapshot.predict(x1))).toEqual(Array.from(before));
      expect(snapshot.evaluate(x, y).accuracy).toBeGreaterThan(0);
      snapshot.dispose();
    });
  }

  test('terminate() mid-fit rejects every pending call with DisposedError; the last snapshot stays usable', async () => {
    const t = await track(createTrainer(smallConfig()));
    const { fit } = await runningFit(t);
    const snapshot = await t.snapshot();
    const before = snapshot.predict(x1);
    const calls = everyCall(t, fit); // sent, but the worker is stopped before it answers
    t.terminate();
    for (const [name, errorPromise] of calls) {
      const error = await errorPromise;
      expect(error).toBeInstanceOf(DisposedError);
      expect(error).toMatchObject({ code: 'BNWASM_DISPOSED', message: `${name}(): the trainer has been terminated (terminate() was called, the worker is gone)` });
    }
    const later = t.predict(x1);
    expect(await settledAtOnce(later)).toBe('rejected');
    await expect(later).rejects.toBeInstanceOf(DisposedError);
    expect(Array.from(snapshot.predict(x1))).toEqual(Array.from(before));
    snapshot.dispose();
  });
});

describe('checkpoints', () => {
  // The uninterrupted run every resumed one must reproduce bit for bit.
  let straight;
  beforeAll(async () => {
    const t = await track(createTrainer(smallConfig()));
    const checkpoints = [];
    const epochEnds = [];
    const history = await t.fit(x, y, { ...OPTIONS, checkpointEvery: 5, onCheckpoint: (c) => checkpoints.push(c) });
    // A second trainer, same config and options, checkpointing at every epoch end (7 steps).
    const t2 = await track(createTrainer(smallConfig()));
    await t2.fit(x, y, { ...OPTIONS, checkpointEvery: 7, onCheckpoint: (c) => epochEnds.push(c) });
    straight = { bytes: await t.save(), history, checkpoints, epochEnds, bytes2: await t2.save() };
    t.terminate();
    t2.terminate();
  });

  test('fit delivers save() bytes and the position in the data every checkpointEvery steps', async () => {
    const { checkpoints, epochEnds } = straight;
    expect(checkpoints.map((c) => [c.step, c.epoch, c.batch])).toEqual([[5, 0, 5], [10, 1, 3], [15, 2, 1], [20, 2, 6]]);
    expect(epochEnds.map((c) => [c.step, c.epoch, c.batch])).toEqual([[7, 0, 7], [14, 1, 7], [21, 2, 7]]);
    expect(bytesEqual(straight.bytes2, straight.bytes)).toBe(true); // checkpointing changes nothing
    for (const c of checkpoints) {
      expect(Object.prototype.toString.call(c.bytes)).toBe('[object Uint8Array]');
      expect(c).toMatchObject({ batchSize: BATCH, examples: 100, shuffleState: expect.stringMatching(/^[0-9a-f]{16}$/), shuffle: true });
      const net = await loadNetwork(c.bytes);
      expect(net.steps).toBe(c.step);
      net.dispose();
    }
    // Within an epoch the state the epoch's shuffle started from stays the same.
    expect(checkpoints[2].shuffleState).toBe(checkpoints[3].shuffleState);
    expect(checkpoints[1].shuffleState).not.toBe(checkpoints[2].shuffleState);
  });

  test('a fit resumed from any checkpoint (mid-epoch or at an epoch end) ends with the same bytes as the uninterrupted fit', async () => {
    for (const c of [...straight.checkpoints, ...straight.epochEnds]) {
      const t = await track(loadTrainer(c.bytes));
      const history = await t.fit(x, y, { ...OPTIONS, resumeFrom: c });
      const bytes = await t.save();
      expect({ step: c.step, same: bytesEqual(bytes, straight.bytes) }).toEqual({ step: c.step, same: true });
      expect(history.steps).toBe(21);
      // Every epoch the resumed fit trained in full scores exactly as in the uninterrupted one.
      for (const [k, epoch] of history.epoch.entries()) {
        if (epoch === c.epoch) continue; // trained only in part here
        expect(history.loss[k]).toBe(straight.history.loss[epoch]);
        expect(history.valLoss[k]).toBe(straight.history.valLoss[epoch]);
      }
      t.terminate();
    }
  });

  test("the checkpoint's shuffleState is what redraws the epoch's order", async () => {
    const c = straight.checkpoints[1]; // epoch 1, 3 mini-batches done
    const other = { ...c, shuffleState: c.shuffleState === '0000000000000001' ? '0000000000000002' : '0000000000000001' };
    const t = await track(loadTrainer(c.bytes));
    await t.fit(x, y, { ...OPTIONS, resumeFrom: other });
    expect(bytesEqual(await t.save(), straight.bytes)).toBe(false);
    t.terminate();
  });

  test('a fit that crashed resumes from its last checkpoint in a new trainer and ends exactly as if never interrupted', async () => {
    const t = await track(createTrainer(smallConfig()));
    t._crash({ how: 'exit', atStep: 17 }); // armed before the fit: the worker dies right after step 17
    const received = [];
    const crashed = await rejection(t.fit(x, y, { ...OPTIONS, checkpointEvery: 5, onCheckpoint: (c) => received.push(c) }));
    expect(crashed).toBeInstanceOf(WorkerError);
    expect(received.map((c) => c.step)).toEqual([5, 10, 15]); // posted before the crash, all delivered
    const last = received.at(-1);
    expect([last.epoch, last.batch]).toEqual([2, 1]); // mid-epoch

    const resumed = await track(loadTrainer(last.bytes));
    const later = [];
    await resumed.fit(x, y, { ...OPTIONS, checkpointEvery: 5, onCheckpoint: (c) => later.push(c), resumeFrom: last });
    expect(bytesEqual(await resumed.save(), straight.bytes)).toBe(true);
    // It goes on checkpointing where the crashed fit would have.
    expect(later.map((c) => [c.step, c.epoch, c.batch])).toEqual([[20, 2, 6]]);
    expect(bytesEqual(later[0].bytes, straight.checkpoints[3].bytes)).toBe(true);
    resumed.terminate();
  });

  test('resumeFrom must match the network, the data and the options it was taken with', async () => {
    const c = straight.checkpoints[1];
    const t = await track(loadTrainer(c.bytes));
    const code = 'BNWASM_INVALID_ARGUMENT';
    const cases = [
      [{ ...OPTIONS, batchSize: 20, resumeFrom: c }, /^fit\(\): resumeFrom was taken with batchSize 16, this fit has batchSize 20/],
      [{ ...OPTIONS, epochs: 1, resumeFrom: c }, /^fit\(\): resumeFrom is in epoch 1, this fit has epochs 1/],
      [{ ...OPTIONS, resumeFrom: straight.checkpoints[0] }, /^fit\(\): resumeFrom was taken at step 5, this network is at step 10/],
      [{ ...OPTIONS, resumeFrom: { ...c, shuffleState: 'zz' } }, /^fit\(\): resumeFrom.shuffleState must be 16 hex digits, got "zz"$/],
      [{ ...OPTIONS, resumeFrom: { step: 10 } }, /^fit\(\): resumeFrom must be a checkpoint from fit\(\)'s onCheckpoint/],
      [{ ...OPTIONS, resumeFrom: null }, /got null$/],
      [{ ...OPTIONS, checkpointEvery: 5 }, /^fit\(\): checkpointEvery must be a positive integer and come with an onCheckpoint function, got 5 and undefined$/],
      [{ ...OPTIONS, checkpointEvery: 0, onCheckpoint() {} }, /^fit\(\): checkpointEvery must be a positive integer .*, got 0 and /],
      [{ ...OPTIONS, onCheckpoint: 3 }, /^fit\(\): onCheckpoint must be a function, got 3$/],
    ];
    for (const [options, message] of cases) {
      const error = await rejection(t.fit(x, y, options));
      expect(error).toBeInstanceOf(InputError);
      expect(error).toMatchObject({ code, message: expect.stringMatching(message) });
    }
    const fewer = await rejection(t.fit(x.subarray(0, 96 * 4), y.subarray(0, 96), { ...OPTIONS, resumeFrom: c }));
    expect(fewer.message).toBe('fit(): resumeFrom was taken on 100 examples, x has 96; resume with the same data');

    // One checkpoint format: a main-thread Network.fit checkpoint resumes in a worker and ends
    // with exactly the bytes of the uninterrupted main-thread fit, and the other way round.
    const net = await createNetwork(smallConfig());
    const mainThread = [];
    await net.fit(x, y, { ...OPTIONS, checkpointEvery: 10, onCheckpoint: (k) => mainThread.push(k) });
    const inWorker = await track(loadTrainer(mainThread[0].bytes));
    await inWorker.fit(x, y, { ...OPTIONS, resumeFrom: mainThread[0] });
    expect(bytesEqual(await inWorker.save(), net.save())).toBe(true);
    expect(bytesEqual(net.save(), straight.bytes)).toBe(true); // same config and seed: same training
    inWorker.terminate();
    const onMainThread = await loadNetwork(c.bytes);
    await onMainThread.fit(x, y, { ...OPTIONS, resumeFrom: c });
    expect(bytesEqual(onMainThread.save(), straight.bytes)).toBe(true);
    onMainThread.dispose();
    net.dispose();

    // None of this trained: the trainer still resumes exactly.
    await t.fit(x, y, { ...OPTIONS, resumeFrom: c });
    expect(bytesEqual(await t.save(), straight.bytes)).toBe(true);
    t.terminate();
  });

  test('a throwing onCheckpoint stops the fit and rejects it with that error', async () => {
    const t = await track(createTrainer(smallConfig()));
    const oops = new Error('disk full');
    await expect(t.fit(x, y, { ...ENDLESS, checkpointEvery: 2, onCheckpoint: () => { throw oops; } })).rejects.toBe(oops);
    const net = await t.snapshot();
    expect(net.steps).toBeLessThan(ENDLESS.epochs * 7); // the fit was stopped, and stays stopped
    expect((await t.snapshot()).steps).toBe(net.steps);
    net.dispose();
    expect((await t.fit(x, y, { epochs: 1, batchSize: BATCH })).aborted).toBe(false); // and the trainer still works
    t.terminate();
  });
});

describe('loadTrainer', () => {
  test('starts a trainer from save() bytes (Uint8Array or ArrayBuffer); bad bytes are refused', async () => {
    const net = await createNetwork(smallConfig());
    await net.fit(x, y, { epochs: 2, batchSize: BATCH });
    const bytes = net.save();
    for (const input of [bytes, bytes.slice().buffer]) {
      const t = await track(loadTrainer(input));
      expect(t.config).toEqual(net.config);
      expect(Array.from(await t.predict(x1))).toEqual(Array.from(net.predict(x1)));
      expect(bytesEqual(await t.save(), bytes)).toBe(true);
      t.terminate();
    }
    expect(bytes.length).toBeGreaterThan(0); // copied, not moved
    const flipped = bytes.slice();
    flipped[flipped.length >> 1] ^= 0x10;
    await expect(loadTrainer(flipped)).rejects.toBeInstanceOf(ModelFormatError);
    await expect(loadTrainer(bytes.subarray(0, 10))).rejects.toMatchObject({ code: 'BNWASM_CORRUPT_MODEL' });
    await expect(loadTrainer([1, 2, 3])).rejects.toMatchObject({
      name: 'InputError',
      code: 'BNWASM_WRONG_TYPE',
      message: 'loadTrainer(): bytes must be a Uint8Array or ArrayBuffer, got Array(3)',
    });
    net.dispose();
  });
});
