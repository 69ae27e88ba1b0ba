// Threads in a browser worker (the trainer's): the threaded module when the page is
// cross-origin isolated. Each thread of its pool is another instance of this same worker
// script, named THREAD: it serves the pool (pthread.js) instead of the trainer's protocol. So a
// bundler has no worker of a worker to find (Parcel, for one, cannot load such a nested
// worker), and whatever URL the trainer's worker has (bundled, configure({ workerUrl })), its
// threads have it too. A page's main thread never loads this: a page must never wait on a
// thread (Atomics.wait is not allowed there), so predict and predictBatch on the main thread run
// on one thread. Imported by worker.js only, so the threaded glue is in the worker's bundle.
import createThreadedModule from '../dist/bnwasm-mt.mjs';
import { platform, setPlatform } from './platform.js';
import { viteDepsUrl } from './platform.browser.js';
import { servePthread } from './pthread.js';
import { instantiateThreaded, workerShim } from './threads.js';

const THREAD = 'bnwasm-thread';

function spawn(fail) {
  // Firefox ESR sometimes never returns from this constructor; the client (trainer.js) hears
  // the two messages around it and replaces a worker stuck between them.
  const client = platform.workerPort();
  client.post({ type: 'threadSpawning' });
  let worker;
  try {
    worker = new Worker(self.location.href, { type: 'module', name: THREAD });
  } finally {
    // A constructor that threw returned too: the client's hang timer is for one that never returns.
    client.post({ type: 'threadSpawned' });
  }
  const shim = workerShim((message, transfer) => worker.postMessage(message, transfer), () => worker.terminate());
  worker.onmessage = (event) => shim.onmessage?.(event);
  worker.onerror = (event) => {
    event.preventDefault?.();
    fail(`a thread's worker failed (${event.message || 'its script could not load'})`);
  };
  return shim;
}

if (typeof WorkerGlobalScope !== 'undefined' && self.name === THREAD) {
  // A thread of the pool: the trainer's protocol (worker.js) gets a port that never hears.
  setPlatform({ workerPort: () => ({ post() {}, listen() {} }) });
  servePthread();
} else if (platform.instantiateThreaded === null && typeof WorkerGlobalScope !== 'undefined') {
  setPlatform({
    async instantiateThreaded(threads, { wasmUrl, wasmBinary }) {
      // configure()'s wasm is the single-thread build's: with it, no threads.
      if (wasmUrl !== undefined || wasmBinary !== undefined || !platform.isolated()) return null;
      const wasm = viteDepsUrl('web/dist/bnwasm-mt.wasm');
      return instantiateThreaded(createThreadedModule, threads, wasm ? { locateFile: () => String(wasm) } : {}, spawn);
    },
  });
}
