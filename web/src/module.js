// Loads the WebAssembly module once per realm (page, worker or Node process). Where the wasm
// comes from is the platform's business (platform.browser.js, platform.node.js), unless
// configure() names it.
import createBnwasmModule from '../dist/bnwasm.mjs';
import { setThreadCount } from './core.js';
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
 * @param {number} [options.threads] threads for training and batch inference, the calling one
 *   included; default the cores available (navigator.hardwareConcurrency, Node's
 *   os.availableParallelism()); 1 loads the single-thread module. Threads run in Node and in
 *   createTrainer's worker on a cross-origin-isolated page; a page's main thread runs on one.
 */
export function configure(options) {
  const fail = (what, code = 'BNWASM_INVALID_ARGUMENT') => {
    throw new InputError(`configure(): ${what}`, code);
  };
  if (options === null || typeof options !== 'object') fail(`options must be an object, got ${describe(options)}`);
  for (const key of Object.keys(options)) {
    if (!(key in settings)) fail(`unknown option '${key}' (expected one of ${Object.keys(settings).join(', ')})`);
  }
  const { wasmUrl, wasmBinary, workerUrl, threads } = options;
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= 256)) {
    fail(`threads must be an integer from 1 to 256, got ${describe(threads)}`, typeof threads === 'number' ? 'BNWASM_INVALID_ARGUMENT' : 'BNWASM_WRONG_TYPE');
  }
  if (wasmUrl !== undefined && !isUrl(wasmUrl)) fail(`wasmUrl must be a string or URL, got ${describe(wasmUrl)}`, 'BNWASM_WRONG_TYPE');
  if (workerUrl !== undefined && !isUrl(workerUrl)) fail(`workerUrl must be a string or URL, got ${describe(workerUrl)}`, 'BNWASM_WRONG_TYPE');
  if (wasmBinary !== undefined && !isBytes(wasmBinary)) {
    fail(`wasmBinary must be an ArrayBuffer or Uint8Array, got ${describe(wasmBinary)}`, 'BNWASM_WRONG_TYPE');
  }
  if (wasmUrl !== undefined && wasmBinary !== undefined) fail('give wasmUrl or wasmBinary, not both');
  if (modulePromise !== null && (wasmUrl !== undefined || wasmBinary !== undefined || threads !== undefined)) {
    fail('the wasm module is already loaded; call configure() before the first createNetwork, loadNetwork or createTrainer');
  }
  if (threads > 1 && !platform.isolated()) warnNotIsolated(threads);
  configureModule(options);
}

/** Once per realm: threads were asked for where they cannot run. */
let warned = false;
function warnNotIsolated(threads) {
  if (warned) return;
  warned = true;
  console.warn(
    `bnwasm: configure({ threads: ${threads} }) asked for threads, but this page is not cross-origin isolated ` +
      '(no SharedArrayBuffer), so bnwasm runs on one thread. Serve the page with the headers ' +
      '"Cross-Origin-Opener-Policy: same-origin" and "Cross-Origin-Embedder-Policy: require-corp" to use threads.',
  );
}

/** Stores settings as given (configure() checked them; a worker gets its client's). @internal */
export function configureModule({ wasmUrl, wasmBinary, workerUrl, threads }) {
  if (wasmUrl !== undefined || wasmBinary !== undefined) Object.assign(settings, { wasmUrl, wasmBinary });
  if (workerUrl !== undefined) settings.workerUrl = workerUrl;
  if (threads !== undefined) settings.threads = threads;
}

/**
 * The wasm settings a new worker needs, in a form that means the same there: URLs made
 * absolute (a worker resolves relative URLs against its own script), bytes copied.
 * Null when configure() set none. @internal
 */
export function workerModuleSettings() {
  const { wasmUrl, wasmBinary, threads } = settings;
  const out = threads === undefined ? {} : { threads };
  if (wasmBinary !== undefined) return { ...out, wasmBinary: new Uint8Array(wasmBinary).slice() };
  if (wasmUrl === undefined) return threads === undefined ? null : out;
  const base = typeof location !== 'undefined' ? location.href : undefined;
  return { ...out, wasmUrl: base === undefined ? String(wasmUrl) : new URL(wasmUrl, base).href };
}

/**
 * The threaded module when more than one thread is wanted and this realm can run them (Node;
 * a browser worker on an isolated page), else the single-thread one. A threaded module that
 * cannot start (a worker that fails to load or never answers) falls back to the single-thread
 * one with a warning, never a hang. The module records its count as `bnwasmThreads`.
 */
async function instantiate() {
  const threads = settings.threads ?? platform.cores();
  if (threads > 1 && platform.instantiateThreaded !== null) {
    try {
      const mod = await platform.instantiateThreaded(threads, settings);
      if (mod !== null) {
        mod.bnwasmThreads = setThreadCount(mod, threads);
        return mod;
      }
    } catch (error) {
      console.warn(`bnwasm: the threaded module could not start (${error?.message ?? error}); running on one thread`);
    }
  }
  const mod = await platform.instantiate(createBnwasmModule, settings);
  mod.bnwasmThreads = 1;
  return mod;
}

/**
 * The threads this realm's bnwasm uses for training and batch inference (loads the module).
 * @returns {Promise<number>}
 */
export async function threadCount() {
  return (await loadModule()).bnwasmThreads;
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
