// Loads the WebAssembly module once per realm (page, worker or Node process). Where the wasm
// comes from is the platform's business (platform.browser.js, platform.node.js), unless
// configure() names it.
import createBnwasmModule from '../dist/bnwasm.mjs';
import { InputError, describe } from './errors.js';
import { platform, settings } from './platform.js';

let modulePromise = null;

const isUrl = (value) => typeof value === 'string' || value instanceof URL;
const isBytes = (value) => value instanceof ArrayBuffer || value instanceof Uint8Array;

/**
 * Tells bnwasm where its files are, for hosts where the defaults cannot find them (a CDN, a
 * strict Content-Security-Policy, a custom asset pipeline). Call it before the first
 * createNetwork/loadNetwork/createTrainer; trainers started later pass the wasm settings on
 * to their worker.
 * @param {object} options
 * @param {string|URL} [options.wasmUrl] where to fetch bnwasm.wasm (relative URLs resolve against the page)
 * @param {ArrayBuffer|Uint8Array} [options.wasmBinary] the bytes of bnwasm.wasm (then nothing is fetched)
 * @param {string|URL} [options.workerUrl] the trainer's worker script: a module script that runs
 *   bnwasm's worker entry ('bnwasm/worker'), bundled or not
 */
export function configure(options) {
  const fail = (what, code = 'BNWASM_INVALID_ARGUMENT') => {
    throw new InputError(`configure(): ${what}`, code);
  };
  if (options === null || typeof options !== 'object') fail(`options must be an object, got ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (!(key in settings)) fail(`unknown option '${key}' (expected one of ${Object.keys(settings).join(', ')})`);
  }
  const { wasmUrl, wasmBinary, workerUrl } = options;
  if (wasmUrl !== undefined && !isUrl(wasmUrl)) fail(`wasmUrl must be a string or URL, got ${describe(wasmUrl)}`, 'BNWASM_WRONG_TYPE');
  if (workerUrl !== undefined && !isUrl(workerUrl)) fail(`workerUrl must be a string or URL, got ${describe(workerUrl)}`, 'BNWASM_WRONG_TYPE');
  if (wasmBinary !== undefined && !isBytes(wasmBinary)) {
    fail(`wasmBinary must be an ArrayBuffer or Uint8Array, got ${describe(wasmBinary)}`, 'BNWASM_WRONG_TYPE');
  }
  if (wasmUrl !== undefined && wasmBinary !== undefined) fail('give wasmUrl or wasmBinary, not both');
  if (modulePromise !== null && (wasmUrl !== undefined || wasmBinary !== undefined)) {
    fail('the wasm module is already loaded; call configure() before the first createNetwork, loadNetwork or createTrainer');
  }
  configureModule(options);
}

/** Stores settings as given (configure() checked them; a worker gets its client's). @internal */
export function configureModule({ wasmUrl, wasmBinary, workerUrl }) {
  if (wasmUrl !== undefined || wasmBinary !== undefined) Object.assign(settings, { wasmUrl, wasmBinary });
  if (workerUrl !== undefined) settings.workerUrl = workerUrl;
}

/**
 * The wasm settings a new worker needs, in a form that means the same there: URLs made
 * absolute (a worker resolves relative URLs against its own script), bytes copied.
 * Null when configure() set none. @internal
 */
export function workerModuleSettings() {
  const { wasmUrl, wasmBinary } = settings;
  if (wasmBinary !== undefined) return { wasmBinary: new Uint8Array(wasmBinary).slice() };
  if (wasmUrl === undefined) return null;
  const base = typeof location !== 'undefined' ? location.href : undefined;
  return { wasmUrl: base === undefined ? String(wasmUrl) : new URL(wasmUrl, base).href };
}

function instantiate() {
  return platform.instantiate(createBnwasmModule, settings);
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
