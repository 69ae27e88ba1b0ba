// Threads in a browser worker (the trainer's): the threaded module when the page is
// cross-origin isolated, its pthreads in classic Web Workers running bnwasm-mt.worker.js. A
// page's main thread never loads it: a page must never wait on a thread (Atomics.wait is not
// allowed there), so predict and predictBatch on the main thread run on one thread.
import { platform, setPlatform } from './platform.js';
import { viteDepsUrl } from './platform.browser.js';
import { instantiateThreaded, workerShim } from './threads.js';

function spawn(fail) {
  const url = viteDepsUrl('web/dist/bnwasm-mt.worker.js') ?? new URL('../dist/bnwasm-mt.worker.js', import.meta.url);
  const worker = new Worker(url);
  const shim = workerShim((message, transfer) => worker.postMessage(message, transfer), () => worker.terminate());
  worker.onmessage = (event) => shim.onmessage?.(event);
  worker.onerror = (event) => {
    event.preventDefault?.();
    fail(`a thread's worker failed (${event.message || `could not load ${url}`})`);
  };
  return shim;
}

if (platform.instantiateThreaded === null && typeof WorkerGlobalScope !== 'undefined') {
  setPlatform({
    async instantiateThreaded(threads, { wasmUrl, wasmBinary }) {
      // configure()'s wasm is the single-thread build's: with it, no threads.
      if (wasmUrl !== undefined || wasmBinary !== undefined || !platform.isolated()) return null;
      const { default: createModule } = await import('../dist/bnwasm-mt.mjs');
      const wasm = viteDepsUrl('web/dist/bnwasm-mt.wasm');
      return instantiateThreaded(createModule, threads, wasm ? { locateFile: () => String(wasm) } : {}, spawn);
    },
  });
}
