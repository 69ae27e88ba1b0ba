// Loads the WebAssembly module once per realm (page, worker or Node process). Where the wasm
// comes from is the platform's business (platform.browser.js, platform.node.js), unless
// configure() names it.
// Two single-thread builds share this glue (they export the same functions): bnwasm.wasm, the
// full one, and bnwasm-dense.wasm, without the convolution and pooling layers, the smaller
// download a network of dense, batch-norm, activation and merge layers runs on.
// bnwasm-dense.mjs is generated with it (scripts/build.sh): the layer types the dense build's
// registry answers that it has, and that build's URL.
import createBnwasmModule from '../dist/bnwasm.mjs';
import { denseLayerTypes } from '../dist/bnwasm-dense.mjs';
import { setThreadCount } from './core.js';
import { InputError, describe } from './errors.js';
import { platform, settings } from './platform.js';
import { decodeValue } from './value.js';

/** Per build ('full', 'dense'): the promise of its module, once asked for. */
const modules = new Map();
/** The threaded module's promise (null where threads do not run), once asked for. */
let threadedPromise = null;
const DENSE = new Set(denseLayerTypes);
/** The most threads configure() takes; the default (the cores) is held to it too. */
const MAX_THREADS = 256;

const isUrl = (value) => typeof value === 'string' || value instanceof URL;
const isBytes = (value) => value instanceof ArrayBuffer || value instanceof Uint8Array;

/**
 * Tells bnwasm where its files are, for hosts where the defaults cannot find them (a CDN, a
 * strict Content-Security-Policy, a custom asset pipeline). Call it before the first
 * createNetwork/loadNetwork/createTrainer; trainers started later pass the wasm settings on
 * to their worker.
 * @param {object} options
 * @param {string|URL} [options.wasmUrl] where to fetch bnwasm.wasm, the full build (relative URLs resolve
 *   against the page); every network then runs on it, and bnwasm-dense.wasm is never fetched
 * @param {ArrayBuffer|Uint8Array} [options.wasmBinary] the bytes of bnwasm.wasm (then nothing is fetched)
 * @param {string|URL} [options.workerUrl] the trainer's worker script: a module script that runs
 *   bnwasm's worker entry ('bnwasm/worker'), bundled or not
 * @param {number} [options.threads] threads for training and batch inference, the calling one
 *   included, 1 to 256; default the cores available (navigator.hardwareConcurrency, Node's
 *   os.availableParallelism()), at most 256; 1 loads the single-thread module. Threads run in
 *   Node and in createTrainer's worker on a cross-origin-isolated page; a page's main thread runs
 *   on one.
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
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= MAX_THREADS)) {
    fail(`threads must be an integer from 1 to ${MAX_THREADS}, got ${describe(threads)}`, typeof threads === 'number' ? 'BNWASM_INVALID_ARGUMENT' : 'BNWASM_WRONG_TYPE');
  }
  if (wasmUrl !== undefined && !isUrl(wasmUrl)) fail(`wasmUrl must be a string or URL, got ${describe(wasmUrl)}`, 'BNWASM_WRONG_TYPE');
  if (workerUrl !== undefined && !isUrl(workerUrl)) fail(`workerUrl must be a string or URL, got ${describe(workerUrl)}`, 'BNWASM_WRONG_TYPE');
  if (wasmBinary !== undefined && !isBytes(wasmBinary)) {
    fail(`wasmBinary must be an ArrayBuffer or Uint8Array, got ${describe(wasmBinary)}`, 'BNWASM_WRONG_TYPE');
  }
  if (wasmUrl !== undefined && wasmBinary !== undefined) fail('give wasmUrl or wasmBinary, not both');
  if ((modules.size > 0 || threadedPromise !== null) && (wasmUrl !== undefined || wasmBinary !== undefined || threads !== undefined)) {
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
  const { wasmUrl, wasmBinary } = settings;
  // Threads that could not start here (or in an earlier trainer's worker) will not start in the
  // next worker either: it loads the single-thread module at once, with no second warning.
  const threads = threadsFailedHere ? 1 : settings.threads;
  const out = threads === undefined ? {} : { threads };
  if (wasmBinary !== undefined) return { ...out, wasmBinary: new Uint8Array(wasmBinary).slice() };
  if (wasmUrl === undefined) return threads === undefined ? null : out;
  const base = typeof location !== 'undefined' ? location.href : undefined;
  return { ...out, wasmUrl: base === undefined ? String(wasmUrl) : new URL(wasmUrl, base).href };
}

/** Whether threads failed here: they could not start (in this realm or a trainer's worker), or the pool died. */
let threadsFailedHere = false;
/** What a failure does: warn, here; a trainer's worker hands it to its client instead (worker.js). */
let onThreadFailure = (reason) =>
  console.warn(`bnwasm: the threaded module could not start (${reason}); running on one thread`);

/**
 * Records that the threaded module could not start, the first time only: then this realm and
 * the trainers it starts stay on one thread, and the warning is printed once. A trainer's client
 * calls it with the reason its worker reported. @internal
 */
export function threadsFailed(reason) {
  if (threadsFailedHere) return;
  threadsFailedHere = true;
  onThreadFailure(reason);
}

/** Replaces what a thread failure does in this realm (a trainer's worker reports it). @internal */
export function setThreadFailureHandler(handler) {
  onThreadFailure = handler;
}

/**
 * The threaded module when more than one thread is wanted and this realm can run them (Node;
 * a browser worker on an isolated page), else null. A threaded module that cannot start (a
 * worker that fails to load or never answers) gives null with a warning, never a hang. It
 * runs every network, whatever its layers: the threaded build is the full one.
 */
function threadedModule() {
  threadedPromise ??= (async () => {
    const threads = settings.threads ?? Math.min(platform.cores(), MAX_THREADS);
    if (threads <= 1 || platform.instantiateThreaded === null || threadsFailedHere) return null;
    try {
      const mod = await platform.instantiateThreaded(threads, settings);
      if (mod !== null) {
        mod.bnwasmThreads = setThreadCount(mod, threads);
        mod.bnwasmBuild = 'threaded';
        mod.bnwasmOnPoolFailure = dropThreaded;
      }
      return mod;
    } catch (error) {
      threadsFailed(String(error?.message ?? error));
      return null;
    }
  })();
  return threadedPromise;
}

/**
 * A thread of the threaded module's pool died in the middle of a job (threads.js throws
 * BNWASM_THREAD_FAILED for it): networks made after it load a single-thread module.
 */
function dropThreaded() {
  threadsFailedHere = true;
  modules.clear();
  // Not null: a module was loaded here, so configure() still refuses to change it.
  threadedPromise = Promise.resolve(null);
}

/**
 * The module of a build ('full' or 'dense'): the threaded one where it runs, else that
 * single-thread build. configure()'s wasmUrl or wasmBinary is the full build's, and then every
 * network runs on it. The module records its thread count as `bnwasmThreads` and which build it
 * is as `bnwasmBuild` ('full', 'dense' or 'threaded').
 */
async function instantiate(build) {
  const threaded = await threadedModule();
  if (threaded !== null) return threaded;
  const own = settings.wasmUrl === undefined && settings.wasmBinary === undefined;
  const mod = await platform.instantiate(createBnwasmModule, settings, own ? build : 'full');
  mod.bnwasmThreads = 1;
  mod.bnwasmBuild = own ? build : 'full';
  return mod;
}

/**
 * The threads this realm's bnwasm uses for training and batch inference (loads a module if
 * none is loaded yet: the smallest).
 * @returns {Promise<number>}
 */
export async function threadCount() {
  return (await (modules.values().next().value ?? loadModule('dense'))).bnwasmThreads;
}

/** Every module this realm has loaded (one at least: the smallest if none). @internal */
export async function loadedModules() {
  if (modules.size === 0) loadModule('dense');
  return [...new Set(await Promise.all(modules.values()))];
}

/**
 * The module of a build, instantiated on first use: 'full' (every layer type) or 'dense'
 * (no convolution or pooling layers; see moduleFor).
 */
export function loadModule(build = 'full') {
  if (!modules.has(build)) {
    modules.set(
      build,
      instantiate(build).catch((error) => {
        modules.delete(build);
        if (modules.size === 0) threadedPromise = null;
        throw error;
      }),
    );
  }
  return modules.get(build);
}

/**
 * The module for a network config: the dense build's when every layer's type is one it has,
 * else the full one (which also reports a config that names an unknown type, or none).
 */
export function moduleFor(config) {
  const layers = config !== null && typeof config === 'object' ? config.layers : undefined;
  const dense = Array.isArray(layers) && layers.every((l) => l !== null && typeof l === 'object' && DENSE.has(l.type));
  return loadModule(dense ? 'dense' : 'full');
}

/** moduleFor a config's Value bytes. @internal */
export function moduleForEncoded(bytes) {
  let config = null;
  try {
    config = decodeValue(bytes);
  } catch {
    // damaged bytes: the full module reports them
  }
  return moduleFor(config);
}

/**
 * The module for model bytes (save()): the dense build's when the file's stored config (format
 * 3: "BNWM", u32 version, u32 length, u32 n, then the config's n Value bytes; see
 * cpp/src/serialize.cpp) has only layer types it has; the full one for anything else (older
 * formats, bytes it cannot read, which that module then reports).
 */
export function moduleForModel(bytes) {
  let config = null;
  try {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const magic = bytes[0] === 0x42 && bytes[1] === 0x4e && bytes[2] === 0x57 && bytes[3] === 0x4d; // BNWM
    if (magic && view.getUint32(4, true) === 3) {
      const n = view.getUint32(12, true);
      if (16 + n <= bytes.length) config = decodeValue(bytes.subarray(16, 16 + n));
    }
  } catch {
    // cut short or damaged: the full module reports it
  }
  return moduleFor(config);
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
