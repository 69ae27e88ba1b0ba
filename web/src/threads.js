// Starting the threaded module (bnwasm-mt.mjs, Emscripten pthreads) with workers the platform
// spawns. Emscripten 3.1.6's own loader waits forever for a worker that failed to load and
// throws its error from an event handler; here a worker's error or a start that takes too long
// rejects instead, and the caller falls back to the single-thread module.
import { BnwasmError } from './errors.js';

/** How long the thread workers may take to load before bnwasm gives up on them. */
const START_TIMEOUT_MS = 30000;

/**
 * Instantiates a threaded module with `threads - 1` pool workers besides the calling thread.
 * spawn(fail) returns one worker in the shape the glue expects ({postMessage, terminate,
 * onmessage, onerror}) and calls fail(reason) if that worker cannot run. @internal
 */
export function instantiateThreaded(createModule, threads, moduleArgs, spawn) {
  return new Promise((resolve, reject) => {
    const workers = [];
    let settled = false;
    let loaded = false;
    const fail = (reason) => {
      if (loaded) {
        // A thread that died after the start (a trap in a task; the call waiting for it throws
        // BNWASM_THREAD_FAILED): its own error, which the platform's handler took off the console.
        console.error(`bnwasm: ${reason}`);
        return;
      }
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      for (const worker of workers) worker.terminate();
      reject(new Error(reason));
    };
    const timer = setTimeout(() => fail(`its ${threads - 1} thread workers did not start within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
    let started;
    try {
      // The glue spawns its pool's workers before it returns (PThread.init at its top level), so
      // a Worker constructor that throws (no nested workers in this browser, a CSP's worker-src,
      // no thread left for Node) throws here: fail() then stops the timer and the workers
      // already spawned, which would otherwise hold a Node process for the timer's 30 s.
      started = createModule({
        ...moduleArgs,
        pthreadPoolSize: threads - 1,
        pthreadWorker() {
          const worker = spawn(fail);
          workers.push(worker);
          return worker;
        },
      });
    } catch (error) {
      fail(error?.message ?? String(error));
      return;
    }
    started.then(
      (mod) => {
        if (settled) return;
        settled = loaded = true;
        clearTimeout(timer);
        mod.bnwasmPoolFailed = () => poolFailed(mod);
        resolve(viewsFollowGrowth(mod));
      },
      (error) => fail(error?.message ?? String(error)),
    );
  });
}

/**
 * A thread of the pool died in the middle of a job (a bug: a trap in a task; its own error is on
 * the console). The core calls this (parallel.h, set_parallel_failed) from the call that waited
 * for it and from every later call that splits work on this module, instead of waiting for ever.
 * Here, not in module.js: only where threads run (a trainer's worker, Node) is it ever needed.
 */
function poolFailed(mod) {
  // Once: the networks made before it still call here, and must not drop the modules loaded since.
  const drop = mod.bnwasmOnPoolFailure;
  mod.bnwasmOnPoolFailure = undefined;
  drop?.();
  throw new BnwasmError(
    'bnwasm: a thread of the pool stopped in the middle of a job (its error is on the console); the networks made ' +
      'before this cannot be used any more (dispose them), and networks made from now on run on one thread',
    'BNWASM_THREAD_FAILED',
  );
}

/** The glue's view of a worker: it assigns onmessage and onerror and posts to it. @internal */
export function workerShim(post, terminate) {
  return { onmessage: null, onerror: null, postMessage: post, terminate };
}

const VIEWS = { HEAP8: Int8Array, HEAPU8: Uint8Array, HEAP16: Int16Array, HEAPU16: Uint16Array, HEAP32: Int32Array, HEAPU32: Uint32Array, HEAPF32: Float32Array, HEAPF64: Float64Array };

/**
 * Makes the module's heap views (mod.HEAPF32 and the rest) follow its memory whichever thread
 * grew it. The glue renews them when this thread grows the memory, and its own reads check
 * (GROWABLE_HEAP_*), but a pool thread that grows it renews only its own: this thread's views
 * would stay at the old length, and a buffer allocated past it would read as missing. The core
 * sizes its buffers before a job so its tasks never allocate (cpp/include/bnwasm/parallel.h);
 * this is the JavaScript side of the same rule, for whatever breaks it. @internal
 */
export function viewsFollowGrowth(mod) {
  const memory = mod.wasmMemory;
  let buffer = null;
  const views = {};
  const renew = () => {
    buffer = memory.buffer;
    for (const [name, View] of Object.entries(VIEWS)) views[name] = new View(buffer);
  };
  for (const name of Object.keys(VIEWS)) {
    Object.defineProperty(mod, name, {
      get() {
        if (memory.buffer !== buffer) renew();
        return views[name];
      },
      set() {}, // the glue's renewal after its own growth: the getter follows memory.buffer already
      configurable: true,
      enumerable: true,
    });
  }
  return mod;
}
