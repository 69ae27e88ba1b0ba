// Where bnwasm runs: how the wasm module is instantiated, how the trainer's worker is spawned,
// and how a worker talks to its client. Browsers (and every bundler's default) get
// platform.browser.js; Node's entry points (index.node.js and worker.node.js, chosen by the
// "node" export condition) install platform.node.js before anything runs, so Node-only code never
// reaches a browser bundle and no bundler parses a runtime branch.
//
// Why injection rather than a `#platform` subpath import: a module Web Worker has no import
// map, so the module graph the worker loads in a bundler-free page may use relative imports only.
import * as browser from './platform.browser.js';

/**
 * The current platform: {instantiate, instantiateThreaded, cores, isolated, spawnWorker,
 * workerPort, exitThread}. instantiateThreaded(threads, settings) resolves to the threaded
 * module, or null where threads cannot run; null itself where this realm never runs them.
 */
export const platform = { instantiateThreaded: null, ...browser };

/** Replaces the browser functions (Node's entry points call it once, first). @internal */
export function setPlatform(functions) {
  Object.assign(platform, functions);
}

/** Settings from configure(); each field undefined unless set. @internal */
export const settings = { wasmUrl: undefined, wasmBinary: undefined, workerUrl: undefined, threads: undefined };
