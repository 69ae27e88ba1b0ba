// Loads the WebAssembly module once per realm (page, worker or Node process).
import createBnwasmModule from '../dist/bnwasm.mjs';

let modulePromise = null;

/** True in Node.js (main thread or worker_threads), false in browsers and Web Workers. */
export const isNode = typeof process !== 'undefined' && process.versions != null && process.versions.node != null;

async function instantiate() {
  const wasmUrl = new URL('../dist/bnwasm.wasm', import.meta.url);
  if (isNode) {
    // The module is built for web and worker only (Emscripten 3.1.6's ES6 output
    // breaks under Node ESM otherwise), so Node hands it the bytes itself.
    const { readFile } = await import(/* webpackIgnore: true */ 'node:fs/promises');
    return createBnwasmModule({ wasmBinary: await readFile(wasmUrl) });
  }
  return createBnwasmModule({ locateFile: () => wasmUrl.href });
}

/** The shared module instance; instantiated on first use. */
export function loadModule() {
  if (modulePromise === null) {
    modulePromise = instantiate().catch((error) => {
      modulePromise = null;
      throw error;
    });
  }
  return modulePromise;
}

/**
 * A promise that resolves after pending events have run (a macrotask, without
 * setTimeout's 4 ms clamp): long loops await it so pages, progress bars and
 * worker messages stay live. One MessageChannel serves every call in browsers.
 */
export const yieldToEventLoop = (() => {
  if (typeof setImmediate === 'function') return () => new Promise((resolve) => setImmediate(resolve));
  const channel = new MessageChannel();
  let queue = [];
  channel.port1.onmessage = () => {
    const resolvers = queue;
    queue = [];
    for (const resolve of resolvers) resolve();
  };
  return () =>
    new Promise((resolve) => {
      queue.push(resolve);
      channel.port2.postMessage(null);
    });
})();
