// The worker client: createTrainer() and loadTrainer() spawn a worker (a module Web Worker in
// browsers, a worker_threads Worker in Node: platform.js) that owns a Network, and keep one map
// of request id to promise. The message protocol itself lives in worker.js.
import { DisposedError, InputError, WorkerError, describe, reviveError } from './errors.js';
import { threadsFailed, workerModuleSettings } from './module.js';
import { loadNetwork } from './network.js';
import { platform, settings } from './platform.js';
import { spawnWebWorker } from './spawn.browser.js';
import { encodeValue } from './value.js';

// ---- Data crossing to the worker --------------------------------------------------------

// Typed arrays go across once per call: shared when they live in a SharedArrayBuffer,
// moved when the caller asks for `transfer`, otherwise copied once (the copy is then
// moved, so a view into a larger buffer costs only its own bytes).
function ship(array, transfer, list) {
  // Not a typed array: the worker's Network reports the wrong type (a DataView is cloned).
  if (!ArrayBuffer.isView(array) || array instanceof DataView) return array;
  if (typeof SharedArrayBuffer !== 'undefined' && array.buffer instanceof SharedArrayBuffer) return array;
  // The copy is a new array of the same type, not array.slice(): Node's Buffer.slice is a view
  // of the same memory (often Node's shared pool), and moving that buffer detached the caller's.
  const moved = transfer ? array : new globalThis[array[Symbol.toStringTag]](array);
  if (!list.includes(moved.buffer)) list.push(moved.buffer);
  return moved;
}

// ---- Replies built in another realm ------------------------------------------------------

/**
 * Jest's node environment runs this client in a vm context of its own, while worker_threads
 * delivers messages built in Node's main context: their Float32Array is not this realm's, so
 * `instanceof Float32Array` and Jest's toEqual fail on what the trainer returns. Such a reply
 * is rebuilt here: objects and arrays anew, typed arrays as views of the same memory (no copy).
 */
function ownRealm(value) {
  if (value === null || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const Type = globalThis[value[Symbol.toStringTag]];
    return new Type(value.buffer, value.byteOffset, value.length);
  }
  if (Array.isArray(value)) return Array.from(value, ownRealm);
  const proto = Object.getPrototypeOf(value);
  if (proto !== null && Object.getPrototypeOf(proto) !== null) return value; // not a plain object
  const copy = {};
  for (const [key, item] of Object.entries(value)) copy[key] = ownRealm(item);
  return copy;
}

// ---- The client -------------------------------------------------------------------------

/**
 * How long the trainer's worker may stay inside the Worker constructor of one of its threads.
 * Firefox ESR sometimes never returns from it (a worker made inside a worker, soon after another
 * trainer's worker was terminated: at start 117 and 119 of the two runs of
 * scripts/experiments/firefox-thread-hang.mjs that found it, 4 starts in 300 in a later one);
 * the worker is then stuck for good, so the client replaces it with one on one thread. The
 * constructor returns in milliseconds otherwise. @internal (tests shorten it)
 */
export const startLimits = { threadSpawnMs: 10000 };

/** What the start request rejects with when a thread's Worker constructor hangs. */
const THREAD_HANG = Object.freeze({ threadHang: true });
let warnedHang = false;

// Options that stay on this side: the callbacks and the signal cannot cross to the worker
// (the worker's Network.fit gets stand-ins that post messages), `transfer` is about crossing.
// Every other option is checked once, by Network.fit in the worker.
function clientOptions(fn, options, names) {
  if (options === null || typeof options !== 'object') {
    throw new InputError(`${fn}(): options must be an object, got ${describe(options)}`, 'BNWASM_INVALID_ARGUMENT');
  }
  for (const key of names) {
    if (options[key] !== undefined && typeof options[key] !== 'function' && key.startsWith('on')) {
      throw new InputError(`${fn}(): ${key} must be a function, got ${describe(options[key])}`, 'BNWASM_INVALID_ARGUMENT');
    }
  }
}

/**
 * A Network that lives in a worker. Create it with createTrainer() or loadTrainer().
 * Every method returns a promise. After terminate() calls reject with DisposedError; after
 * the worker died on its own, with WorkerError.
 */
export class Trainer {
  #port;
  #nextId = 1;
  #pending = new Map(); // id -> {call, resolve, reject, onProgress, onCheckpoint}
  #dead = null; // (fn) => the Error a call to fn rejects with, once the worker is gone
  #config;
  #inputSize;
  #outputSize;
  #threads;
  #build;
  #hang = null; // while the worker is inside a thread's Worker constructor: the timer that gives up on it
  #stuck = null; // while the worker starts: rejects its start with THREAD_HANG

  /** @internal Use createTrainer() or loadTrainer(). */
  constructor() {}

  /**
   * @internal makeInit() gives the worker's first request and its transfer list:
   * {init: {type: 'create', config} or {type: 'load', bytes}, transfer}, anew for each worker.
   */
  async _start(makeInit) {
    let info;
    try {
      info = await this.#open(makeInit, workerModuleSettings());
    } catch (error) {
      if (error !== THREAD_HANG) throw error;
      if (!warnedHang) {
        warnedHang = true;
        console.warn(
          `bnwasm: the trainer's worker did not get past starting a thread's worker in ${startLimits.threadSpawnMs / 1000} s ` +
            "(a Firefox hang: the Worker constructor never returned); the trainer's worker was replaced by one on one thread",
        );
      }
      info = await this.#open(makeInit, { ...workerModuleSettings(), threads: 1 });
    }
    this.#config = info.config;
    this.#inputSize = info.inputSize;
    this.#outputSize = info.outputSize;
    this.#threads = info.threads;
    this.#build = info.build;
  }

  /** Spawns the worker, sends it the module settings and its first request; resolves to the reply. */
  #open(makeInit, moduleSettings) {
    const spawn = platform.spawnWorker ?? spawnWebWorker;
    this.#port = spawn({
      workerUrl: settings.workerUrl,
      onMessage: (message) => this.#receive(message),
      onFailure: (reason, details) =>
        this.#die(
          (fn) =>
            new WorkerError(
              `${fn}(): the trainer's worker stopped unexpectedly (${reason}); this trainer cannot be used any more, ` +
                'start another one (loadTrainer() takes the bytes of a checkpoint or of save())',
              details,
            ),
        ),
    });
    // Where the worker finds the wasm, when configure() said (the worker-port.js end takes it).
    if (moduleSettings) this.#send({ type: 'configure', settings: moduleSettings });
    const { init, transfer } = makeInit();
    return new Promise((resolve, reject) => {
      this.#stuck = reject;
      this.#request(init, transfer).then(resolve, reject);
    }).finally(() => {
      this.#stuck = null;
      clearTimeout(this.#hang);
    });
  }

  /** A thread's Worker constructor did not return: drop this worker and its start request. */
  #threadHang() {
    if (!this.#stuck) return;
    this.#pending.clear();
    this.#port.terminate();
    this.#stuck(THREAD_HANG);
  }

  /** The worker network's normalized config (a copy). */
  get config() {
    return structuredClone(this.#config);
  }
  get inputSize() {
    return this.#inputSize;
  }
  get outputSize() {
    return this.#outputSize;
  }
  /** @internal Which wasm build the worker's network runs on: 'dense', 'full' or 'threaded' (for tests). */
  get _build() {
    return this.#build;
  }
  /** The threads the worker trains on (1: the single-thread module; see configure()'s threads). */
  get threads() {
    return this.#threads;
  }
  /** True after terminate() or a worker failure. */
  get terminated() {
    return this.#dead !== null;
  }

  /**
   * Trains in the worker. The data crosses once per call (see `transfer`); the worker walks
   * the mini-batches itself. Resolves with the per-epoch history, like Network.fit.
   * @param {Float32Array} x (n * inputSize)
   * @param {Int32Array|Uint8Array|Float32Array} y
   * @param {object} [options]
   * @param {number} [options.epochs=1]
   * @param {number} [options.batchSize=32]
   * @param {boolean} [options.shuffle=true]
   * @param {[Float32Array, Int32Array|Uint8Array|Float32Array]} [options.validationData]
   * @param {AbortSignal} [options.signal] stops after the current mini-batch
   * @param {(p: object) => void} [options.onProgress] at most every progressInterval ms
   * @param {number} [options.progressInterval=100] ms
   * @param {number} [options.validationInterval=0] ms between validations during an epoch (0: at epoch ends only)
   * @param {number|number[]} [options.trackUnits=4] batch-norm units reported in progress (a count, or indices)
   * @param {boolean} [options.transfer=false] move the arrays' buffers to the worker instead of copying
   *   them once (the caller's arrays become empty); SharedArrayBuffer-backed arrays are always shared
   * @param {number} [options.checkpointEvery] call onCheckpoint every this many optimizer steps
   * @param {(c: object) => void} [options.onCheckpoint] receives {bytes, epoch, batch, step,
   *   shuffleState, batchSize, examples}: save() bytes (moved from the worker) and the position in the data
   * @param {object} [options.resumeFrom] a checkpoint: on loadTrainer(c.bytes), with the same data
   *   and options, the fit continues exactly as if never interrupted
   * @returns {Promise<{epoch: number[], loss: number[], valLoss: number[], valAccuracy: number[], steps: number, aborted: boolean}>}
   */
  async fit(x, y, options = {}) {
    this.#alive('fit');
    clientOptions('fit', options, ['onProgress', 'onCheckpoint']);
    const { signal, onProgress, onCheckpoint, transfer = false, validationData, resumeFrom, ...rest } = options;
    const list = [];
    const forwarded = { ...rest, onProgress: onProgress !== undefined, onCheckpoint: onCheckpoint !== undefined, aborted: signal?.aborted === true };
    if (validationData !== undefined) {
      forwarded.validationData = Array.isArray(validationData) ? validationData.map((array) => ship(array, transfer, list)) : validationData;
    }
    // The bytes stay here: the worker's network was loaded from them already.
    if (resumeFrom !== undefined) {
      const { bytes, ...position } = resumeFrom ?? {};
      forwarded.resumeFrom = resumeFrom === null ? null : position;
    }
    const message = { type: 'fit', x: ship(x, transfer, list), y: ship(y, transfer, list), options: forwarded };
    const id = this.#nextId;
    const abort = () => this.#send({ type: 'abort', fit: id });
    signal?.addEventListener('abort', abort, { once: true });
    const done = this.#request(message, list, { onProgress, onCheckpoint });
    try {
      return await done;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /**
   * Holds the running fit after its current mini-batch. Resolves once the worker has
   * stopped, with the step count it stopped at.
   * @returns {Promise<{step: number}>}
   */
  pause() {
    return this.#request({ type: 'pause' });
  }

  /** Lets a paused fit go on. @returns {Promise<{step: number}>} */
  resume() {
    return this.#request({ type: 'resume' });
  }

  /**
   * A main-thread Network with the worker network's current weights, gamma, beta, running
   * statistics and optimizer state (loadNetwork of its save() bytes). The caller owns it:
   * dispose() it when done. It stays usable after the trainer is terminated or its worker dies.
   * @returns {Promise<import('./network.js').Network>}
   */
  async snapshot() {
    const { bytes } = await this.#request({ type: 'snapshot' });
    return loadNetwork(bytes);
  }

  /** The worker network's save() bytes. @returns {Promise<Uint8Array>} */
  async save() {
    const { bytes } = await this.#request({ type: 'snapshot' }, [], {}, 'save');
    return bytes;
  }

  /**
   * Single-example inference inside the worker (running statistics, learned gamma and beta).
   * @param {Float32Array} x (inputSize)
   * @returns {Promise<Float32Array>} (outputSize)
   */
  async predict(x) {
    const { output } = await this.#request({ type: 'predict', x: ArrayBuffer.isView(x) ? x.slice() : x });
    return output;
  }

  /**
   * Batch inference inside the worker, on its threads (the page's main thread has one): row i
   * of the result is predict(row i). During a fit it runs between two mini-batches, as
   * evaluate does.
   * @param {Float32Array} xs (n * inputSize)
   * @param {object} [options]
   * @param {boolean} [options.transfer=false] move xs's buffer to the worker instead of copying it
   * @returns {Promise<Float32Array>} (n * outputSize)
   */
  async predictBatch(xs, { transfer = false } = {}) {
    const list = [];
    const { output } = await this.#request({ type: 'predictBatch', x: ship(xs, transfer, list) }, list);
    return output;
  }

  /**
   * Loss (and accuracy) in inference mode, inside the worker; row i is scored as predict(row i).
   * @returns {Promise<{loss: number, accuracy?: number}>}
   */
  evaluate(xs, ys, { transfer = false } = {}) {
    const list = [];
    return this.#request({ type: 'evaluate', x: ship(xs, transfer, list), y: ship(ys, transfer, list) }, list);
  }

  /**
   * Network.recomputeStatistics inside the worker: every batch norm's running mean and variance
   * become the exact statistics of its input over `x`, layer by layer. Not while a fit runs.
   * @param {Float32Array} x (n * inputSize)
   * @param {object} [options]
   * @param {number} [options.batchSize=1024] rows per pass into the core
   * @param {(p: {layer: number, examplesDone: number, examplesTotal: number}) => void} [options.onProgress]
   *   at most every progressInterval ms, and once at the end
   * @param {number} [options.progressInterval=100] ms
   * @param {boolean} [options.transfer=false] move x's buffer to the worker instead of copying it
   * @returns {Promise<void>}
   */
  async recomputeStatistics(x, options = {}) {
    this.#alive('recomputeStatistics');
    clientOptions('recomputeStatistics', options, ['onProgress']);
    const { onProgress, transfer = false, ...rest } = options;
    const list = [];
    const forwarded = { ...rest, onProgress: onProgress !== undefined };
    await this.#request({ type: 'recomputeStatistics', x: ship(x, transfer, list), options: forwarded }, list, { onProgress });
  }

  /** Stops the worker at once. Pending calls reject with DisposedError; so do later ones. */
  terminate() {
    if (this.#dead) return;
    this.#die((fn) => new DisposedError(`${fn}(): the trainer has been terminated (terminate() was called, the worker is gone)`));
  }

  /**
   * @internal Test hook: makes the worker die as a crash would, at once or right after the
   * running fit's step `atStep`. `how`: 'exit' (process.exit in a Node worker thread) or
   * 'throw' (an uncaught error; what browsers get for both).
   */
  _crash({ how = 'exit', atStep } = {}) {
    this.#send({ type: '__crash', how, atStep });
  }

  // ---- plumbing ---------------------------------------------------------------------------

  #alive(fn) {
    if (this.#dead) throw this.#dead(fn);
  }

  #send(message, transfer = []) {
    if (!this.#dead) this.#port.post(message, transfer);
  }

  /** Posts a request; `call` names the method in errors (save() asks for a 'snapshot'). */
  #request(message, transfer = [], callbacks = {}, call = message.type) {
    try {
      this.#alive(call);
    } catch (error) {
      return Promise.reject(error);
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { call, resolve, reject, ...callbacks });
      // A Node process may exit while the trainer idles; it may not while a call is pending.
      if (this.#pending.size === 1) this.#port.ref();
      try {
        this.#port.post({ ...message, id }, transfer);
      } catch (error) {
        // Not cloneable (a function in the options, say): nothing reached the worker.
        this.#settle(id);
        reject(new InputError(`${call}(): an argument cannot be sent to the worker: ${error.message}`, 'BNWASM_WRONG_TYPE'));
      }
    });
  }

  #settle(id) {
    const entry = this.#pending.get(id);
    this.#pending.delete(id);
    if (this.#pending.size === 0 && !this.#dead) this.#port.unref();
    return entry;
  }

  #receive(message) {
    if (!(message instanceof Object)) message = ownRealm(message);
    // threads.browser.js, around each thread's Worker constructor while the worker starts.
    if (message.type === 'threadSpawning') {
      clearTimeout(this.#hang);
      this.#hang = setTimeout(() => this.#threadHang(), startLimits.threadSpawnMs);
      return;
    }
    if (message.type === 'threadSpawned') return clearTimeout(this.#hang);
    // worker.js: its threads could not start (warned once a page; later trainers start on one).
    if (message.type === 'threadFailure') return threadsFailed(message.reason);
    const entry = this.#pending.get(message.id);
    if (!entry) return;
    if (message.type === 'progress' || message.type === 'checkpoint') {
      try {
        if (message.type === 'progress') entry.onProgress?.(message.progress);
        else entry.onCheckpoint?.(message.checkpoint);
      } catch (error) {
        // A throwing callback must not wedge the protocol; report it where the caller awaits.
        this.#send({ type: 'abort', fit: message.id });
        entry.callbackError ??= error;
      }
      return;
    }
    this.#settle(message.id);
    if (message.type === 'error') entry.reject(reviveError(message.error));
    else if (entry.callbackError) entry.reject(entry.callbackError);
    else entry.resolve(message.result);
  }

  /** The worker is gone: `errorFor(fn)` is what the pending calls and every later call reject with. */
  #die(errorFor) {
    if (this.#dead) return;
    this.#dead = errorFor;
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    // Also after a failure: a Web Worker that threw may still run, and its state is unknown.
    this.#port?.terminate();
    for (const { call, reject } of pending) reject(errorFor(call));
  }
}

/**
 * A trainer whose worker's first request is {type, [key]: bytes}: each worker it starts (a second
 * one after a thread hang) gets its own copy of `own`, transferred, so `own` stays whole.
 */
async function startTrainer(type, key, own) {
  const trainer = new Trainer();
  try {
    await trainer._start(() => {
      const copy = own.slice();
      return { init: { type, [key]: copy }, transfer: [copy.buffer] };
    });
  } catch (error) {
    trainer.terminate();
    throw error;
  }
  return trainer;
}

/**
 * Spawns a worker, loads the wasm module there and builds the network. The config is the
 * one createNetwork() takes; the core checks it in the worker (a bad one rejects with the
 * ConfigError createNetwork gives, and the worker ends).
 * @param {object} config
 * @returns {Promise<Trainer>}
 */
export async function createTrainer(config) {
  // Encoded here: anything in a config reaches the core, which names what is wrong with it
  // (a function, say, would not survive postMessage).
  const encoded = encodeValue(config);
  return startTrainer('create', 'config', encoded);
}

/**
 * A trainer whose network is loaded from save() bytes (Network.save(), trainer.save(), or a
 * checkpoint's bytes) in a new worker; loadNetwork() in a worker. Rejects damaged bytes with
 * ModelFormatError.
 * @param {Uint8Array|ArrayBuffer} bytes (copied; the caller keeps them)
 * @returns {Promise<Trainer>}
 */
export async function loadTrainer(bytes) {
  // By tag rather than instanceof: checkpoint bytes may come from another realm.
  const tag = Object.prototype.toString.call(bytes);
  if (tag === '[object ArrayBuffer]') bytes = new Uint8Array(bytes);
  else if (tag !== '[object Uint8Array]') {
    throw new InputError(`loadTrainer(): bytes must be a Uint8Array or ArrayBuffer, got ${describe(bytes)}`, 'BNWASM_WRONG_TYPE');
  }
  // Copied now: the caller may change its bytes while the worker starts.
  return startTrainer('load', 'bytes', bytes.slice());
}
