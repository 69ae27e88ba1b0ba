// Browsers and Web Workers: the wasm module comes over fetch, the trainer runs in a module
// Web Worker. Both files are named by URLs relative to import.meta.url, written as literals,
// the form bundlers (Vite, webpack, Parcel) find, copy and rewrite; a bundler that does not
// (esbuild, plain Rollup) leaves them relative to its output, where the README puts the files.

import { denseWasmUrl } from '../dist/bnwasm-dense.mjs';

// Vite 5-7's dev server pre-bundles dependencies into node_modules/.vite/deps/, where URLs
// relative to import.meta.url no longer point into this package (Vite 8 rebases them). In that
// layout the package is at node_modules/bnwasm/, two folders up from the bundle.
const VITE_DEPS = /\/node_modules\/\.vite\/deps(?:_temp_[\w-]+)?\/[^/]*$/;

/** In Vite's pre-bundled copy, the URL of this package's `path`; null everywhere else. @internal */
export function viteDepsUrl(path) {
  const here = new URL(import.meta.url);
  if (!VITE_DEPS.test(here.pathname)) return null;
  here.search = '';
  return new URL(['..', '..', 'bnwasm', path].join('/'), here);
}

/**
 * Instantiates the Emscripten module of a build ('full' or 'dense'). Without settings the glue
 * fetches bnwasm.wasm from beside itself, and the dense build's bnwasm-dense.wasm is at the
 * URL bnwasm-dense.mjs writes the same way (each relative to its own import.meta.url, which
 * bundlers rewrite).
 */
export function instantiate(createModule, { wasmUrl, wasmBinary }, build) {
  if (wasmBinary !== undefined) return createModule({ wasmBinary });
  const dense = build === 'dense';
  const url = wasmUrl ?? viteDepsUrl(dense ? 'web/dist/bnwasm-dense.wasm' : 'web/dist/bnwasm.wasm') ?? (dense ? denseWasmUrl() : null);
  return createModule(url ? { locateFile: () => String(url) } : {});
}

/** The cores the threads setting defaults to. */
export function cores() {
  return (typeof navigator !== 'undefined' && navigator.hardwareConcurrency) || 1;
}

/**
 * Whether this realm can share memory with threads: SharedArrayBuffer exists (the page is
 * cross-origin isolated: COOP and COEP headers) and a shared WebAssembly.Memory can be made.
 * Tested on the feature itself: WebKitGTK reports crossOriginIsolated without it.
 */
export function isolated() {
  if (typeof SharedArrayBuffer === 'undefined' || globalThis.crossOriginIsolated === false) return false;
  try {
    return new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true }).buffer instanceof SharedArrayBuffer;
  } catch {
    return false;
  }
}

/** Inside a worker: the port to the client. */
export function workerPort() {
  return {
    post: (message, transfer) => self.postMessage(message, transfer),
    listen: (handler) => self.addEventListener('message', (event) => handler(event.data)),
  };
}

/** Ends the worker thread at once if the platform can (Node can); false if it cannot. */
export function exitThread() {
  return false;
}
