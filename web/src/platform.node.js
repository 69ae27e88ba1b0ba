// Node.js (main thread and worker_threads): the wasm bytes are read from disk (the module is
// built for web and worker only: Emscripten 3.1.6's ES6 output breaks under Node ESM otherwise)
// and the trainer runs in a worker thread. Imported only by Node's entry points, first, so it is
// installed before any other bnwasm code runs.
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import createThreadedModule from '../dist/bnwasm-mt.mjs';
import { Worker, parentPort } from 'node:worker_threads';
import { setPlatform } from './platform.js';
import { instantiateThreaded, workerShim } from './threads.js';

// One pthread of the threaded module: a worker thread running Emscripten's worker script
// through pthread-worker.node.js. Kept referenced while it loads (the module's promise waits
// on it), then unreferenced, so idle threads never keep the process alive.
function spawnPthread(fail) {
  const worker = new Worker(new URL('./pthread-worker.node.js', import.meta.url));
  const shim = workerShim((message, transfer) => worker.postMessage(message, transfer), () => void worker.terminate());
  worker.on('message', (data) => {
    if (data?.cmd === 'loaded') worker.unref();
    shim.onmessage?.({ data });
  });
  worker.on('error', (error) => fail(`a thread's worker failed (${error?.message ?? error})`));
  return shim;
}

/** The bytes at a file path, file: URL or http(s) URL. */
async function wasmBytes(location) {
  const url = location instanceof URL ? location : /^[a-z][a-z0-9+.-]+:/i.test(location) ? new URL(location) : null;
  if (url === null || url.protocol === 'file:') return readFile(url ?? location);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`bnwasm: fetching ${url} answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

setPlatform({
  // build: 'full' (bnwasm.wasm) or 'dense' (bnwasm-dense.wasm); the glue is the same.
  async instantiate(createModule, { wasmUrl, wasmBinary }, build) {
    const own = build === 'dense' ? new URL('../dist/bnwasm-dense.wasm', import.meta.url) : new URL('../dist/bnwasm.wasm', import.meta.url);
    const bytes = wasmBinary ?? (await wasmBytes(wasmUrl ?? own));
    return createModule({ wasmBinary: bytes });
  },

  // Node always has shared memory and worker threads; configure()'s wasm is the single-thread
  // build's, and with it there are no threads.
  async instantiateThreaded(threads, { wasmUrl, wasmBinary }) {
    if (wasmUrl !== undefined || wasmBinary !== undefined) return null;
    const bytes = await readFile(new URL('../dist/bnwasm-mt.wasm', import.meta.url));
    return instantiateThreaded(createThreadedModule, threads, { wasmBinary: bytes }, spawnPthread);
  },

  cores: () => (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length) || 1,

  isolated: () => true,

  spawnWorker({ onMessage, onFailure, workerUrl }) {
    const worker = new Worker(workerUrl ?? new URL('./worker.node.js', import.meta.url));
    worker.on('message', onMessage);
    // An uncaught error ends a worker thread: 'error' comes first, then 'exit'; the first one
    // names the cause. Messages the worker posted before it died are delivered before 'exit'.
    worker.on('error', (error) => onFailure(`it threw ${error?.name ?? 'Error'}: ${error?.message ?? error}`, { cause: error }));
    worker.on('messageerror', (error) => onFailure(`a message could not be read: ${error?.message ?? error}`, { cause: error }));
    worker.on('exit', (exitCode) => onFailure(`it exited with code ${exitCode}`, { exitCode }));
    return {
      post: (message, transfer) => worker.postMessage(message, transfer),
      terminate: () => void worker.terminate(),
      ref: () => worker.ref(),
      unref: () => worker.unref(),
    };
  },

  workerPort() {
    return {
      post: (message, transfer) => parentPort.postMessage(message, transfer),
      listen: (handler) => parentPort.on('message', handler),
    };
  },

  // process.exit in a worker thread ends just that thread ('exit' on the client).
  exitThread(code) {
    process.exit(code);
  },
});
