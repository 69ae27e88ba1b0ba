// Threads in a browser worker (the trainer's): the threaded module when the page is
// cross-origin isolated, its pool's threads in module Web Workers running pthread-worker.js. A
// page's main thread never loads it: a page must never wait on a thread (Atomics.wait is not
// allowed there), so predict and predictBatch on the main thread run on one thread. Imported
// by worker.js only, so the threaded glue is in the trainer's worker bundle, not the page's.
import createThreadedModule from '../dist/bnwasm-mt.mjs';
import { platform, setPlatform } from './platform.js';
import { viteDepsUrl } from './platform.browser.js';
import { instantiateThreaded, workerShim } from './threads.js';

function spawn(fail) {
  const url = viteDepsUrl('web/src/pthread-worker.js');
  // Bundlers recognise only this literal form; it must stay as written.
  const worker = url
    ? new Worker(url, { type: 'module', name: 'bnwasm-thread' })
    : new Worker(new URL('./pthread-worker.js', import.meta.url), { type: 'module', name: 'bnwasm-thread' });
  const shim = workerShim((message, transfer) => worker.postMessage(message, transfer), () => worker.terminate());
  worker.onmessage = (event) => shim.onmessage?.(event);
  worker.onerror = (event) => {
    event.preventDefault?.();
    fail(`a thread's worker failed (${event.message || 'its script could not load'})`);
  };
  return shim;
}

if (platform.instantiateThreaded === null && typeof WorkerGlobalScope !== 'undefined') {
  setPlatform({
    async instantiateThreaded(threads, { wasmUrl, wasmBinary }) {
      // configure()'s wasm is the single-thread build's: with it, no threads.
      if (wasmUrl !== undefined || wasmBinary !== undefined || !platform.isolated()) return null;
      const wasm = viteDepsUrl('web/dist/bnwasm-mt.wasm');
      return instantiateThreaded(createThreadedModule, threads, wasm ? { locateFile: () => String(wasm) } : {}, spawn);
    },
  });
}
