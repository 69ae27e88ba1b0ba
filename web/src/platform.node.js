// Node.js (main thread and worker_threads): the wasm bytes are read from disk (the module is
// built for web and worker only: Emscripten 3.1.6's ES6 output breaks under Node ESM otherwise)
// and the trainer runs in a worker thread. Imported only by Node's entry points, first, so it is
// installed before any other bnwasm code runs.
import { readFile } from 'node:fs/promises';
import { Worker, parentPort } from 'node:worker_threads';
import { setPlatform } from './platform.js';

/** The bytes at a file path, file: URL or http(s) URL. */
async function wasmBytes(location) {
  const url = location instanceof URL ? location : /^[a-z][a-z0-9+.-]+:/i.test(location) ? new URL(location) : null;
  if (url === null || url.protocol === 'file:') return readFile(url ?? location);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`bnwasm: fetching ${url} answered ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

setPlatform({
  async instantiate(createModule, { wasmUrl, wasmBinary }) {
    const bytes = wasmBinary ?? (await wasmBytes(wasmUrl ?? new URL('../dist/bnwasm.wasm', import.meta.url)));
    return createModule({ wasmBinary: bytes });
  },

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
