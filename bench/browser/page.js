// The benchmark in a browser page, run by bench/browser/run.mjs through the browser test
// harness: training examples/s at batch 64 and 256, single-example predict, batch predict of
// 1000 images, on the same Fashion-MNIST rows as bench/run-engine.mjs in Node.
//   window.bench({engine, model, config, quick}) resolves to one JSON-able result; engine:
//   'bnwasm-page'  bnwasm's Network on the page's main thread (the per-engine table: one thread,
//                  a page never blocks on a pool);
//   'bnwasm', 'bnwasm-1t'  bnwasm as users train: createTrainer, the worker with its pool of
//                  every core (configure() left at its default) or configure({ threads: 1 });
//                  training is trainer.fit, batch predict trainer.evaluate (both in the worker),
//                  single predict the trainer's snapshot() on the main thread;
//   'tfjs-wasm', 'jax-js'  the peers (bench/engines/*.mjs, bundled by run.mjs), on this thread
//                  as their examples run them, each with its own pool where the page is isolated.
// Every engine's outputs on the 1000 test images are scored: accuracy (and the training loss
// before and after) go back with the rates, for run.mjs's check that every engine learned.
// Timers: browsers coarsen performance.now() (to 5-100 us cross-origin isolated, up to 1 ms
// otherwise), too coarse for one 20-us predict, so single-example predict is timed over groups
// of calls that last at least GROUP_MS: the median over the groups of the time per call.
import { configure, createNetwork, createTrainer } from '../../web/src/index.js';
import { loadFashionMnist } from '../../web/demo/datasets.js';

const INPUT = 784;
const CLASSES = 10;
const TRAIN_ROWS = 8192;
const BATCH_PREDICT_ROWS = 1000;
const GROUP_MS = 2;
const MAX_GROUP = 50;
/** Batch predict repeats at most this long (jax-js's CNN takes seconds per 1000 images). */
const BATCH_PREDICT_BUDGET_MS = 10_000;
// Warm-up before a training rate is timed (engineTrainRate, trainerTrainRate): as long as
// bench/timing.mjs's WARM_UP_SECONDS, for the same reason (the engine's optimizing wasm tier).
const WARM_UP_MS = 2000;

const median = (a) => {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;

/**
 * The training losses in order, for run.mjs's check that the loss falls: the mean of the first
 * and of the last k (up to 3, without overlap; none with fewer than 2 losses).
 */
function lossTrend(losses) {
  const k = Math.min(3, Math.floor(losses.length / 2));
  if (k === 0) return { steps: losses.length };
  return { lossFirst: mean(losses.slice(0, k)), lossLast: mean(losses.slice(-k)), steps: losses.length };
}

const data = loadFashionMnist('/web/demo/data/fashion-mnist.bin');

/** Share of the first `n` test images whose largest output is their label. */
function accuracy(outputs, labels, n) {
  let right = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < CLASSES; c++) if (outputs[i * CLASSES + c] > outputs[i * CLASSES + best]) best = c;
    right += best === labels[i];
  }
  return right / n;
}

/** Median time per call of `call(i)`, over groups of calls each lasting at least GROUP_MS. */
async function perCallUs(call, groups) {
  // Warm-up: 3 calls and at least WARM_UP_MS of them. A module the page has just compiled runs
  // on V8's baseline tier until its optimized code arrives; a module the page's worker already
  // ran (the same .wasm bytes) starts optimized, so without this the page whose trainer ran
  // another build measured the baseline tier.
  const w0 = performance.now();
  for (let i = 0; i < 3 || performance.now() - w0 < WARM_UP_MS; i++) await call(i);
  const t0 = performance.now();
  await call(3);
  const size = Math.max(1, Math.min(MAX_GROUP, Math.ceil(GROUP_MS / Math.max(performance.now() - t0, 1e-3))));
  const times = [];
  for (let g = 0; g < groups; g++) {
    const start = performance.now();
    for (let k = 0; k < size; k++) await call(g * size + k);
    times.push(((performance.now() - start) / size) * 1000);
  }
  return median(times);
}

/**
 * Rates of `run()`, each over `rows`: after runs for at least WARM_UP_MS (one at least; the
 * inference paths' optimized code, as perCallUs), up to `runs` runs within the budget.
 */
async function batchRate(run, rows, runs) {
  const w0 = performance.now();
  do await run();
  while (performance.now() - w0 < WARM_UP_MS);
  const rates = [];
  const t0 = performance.now();
  while (rates.length < runs && (rates.length === 0 || performance.now() - t0 < BATCH_PREDICT_BUDGET_MS)) {
    const start = performance.now();
    await run();
    rates.push(rows / ((performance.now() - start) / 1000));
  }
  return median(rates);
}

// ---- the engine interface of bench/engines/*.mjs: one mini-batch at a time -----------------------

async function engineTrainRate(engine, train, batch, { seconds, minSteps, losses }) {
  const count = Math.floor(TRAIN_ROWS / batch);
  const batches = engine.prepareBatches(train.x, train.y, batch, count);
  // Warm-up: compiles (jax-js's jit, TF.js's kernels, the engine's optimizing wasm tier, which
  // runs in the background) and steps: 5 and at least WARM_UP_MS of them, at most 3 s.
  const w0 = performance.now();
  const warming = (i) => i < 2 || ((i < 5 || performance.now() - w0 < WARM_UP_MS) && performance.now() - w0 < 3000);
  for (let i = 0; warming(i); i++) losses.push(await engine.trainBatch(batches[i % count]));
  let steps = 0;
  const t0 = performance.now();
  let t1 = t0;
  while (t1 - t0 < seconds * 1000 || steps < minSteps) {
    losses.push(await engine.trainBatch(batches[steps % count]));
    steps++;
    t1 = performance.now();
  }
  return (steps * batch) / ((t1 - t0) / 1000);
}

async function benchEngine(engine, { model, quick, train, test }) {
  const cnn = model === 'cnn';
  const seconds = quick ? 0.6 : 1.5;
  const losses = [];
  let trainError;
  const train64 = await engineTrainRate(engine, train, 64, { seconds, minSteps: cnn ? 2 : 3, losses }).catch((error) => {
    // TF.js 4.22's wasm backend cannot train a CNN (no Conv2DBackpropFilter, tensorflow/tfjs#8474).
    if (!cnn) throw error;
    trainError = error.message;
    return null;
  });
  const train256 = cnn ? null : await engineTrainRate(engine, train, 256, { seconds, minSteps: 3, losses });
  const row = (i) => test.x.subarray((i % BATCH_PREDICT_ROWS) * INPUT, ((i % BATCH_PREDICT_ROWS) + 1) * INPUT);
  const predictOneUs = await perCallUs((i) => engine.predictOne(row(i)), quick ? 10 : 20);
  const xs = test.x.subarray(0, BATCH_PREDICT_ROWS * INPUT);
  let outputs;
  const batchPredict = await batchRate(async () => (outputs = await engine.predictBatch(xs)), BATCH_PREDICT_ROWS, quick || cnn ? 3 : 9);
  return {
    train64,
    train256,
    predictOneUs,
    batchPredict,
    accuracy: accuracy(outputs, test.y, BATCH_PREDICT_ROWS),
    ...(losses.length > 0 && lossTrend(losses)),
    ...(trainError && { trainError }),
  };
}

// ---- bnwasm's Network on the page's main thread (the per-engine table) ---------------------------

async function bnwasmPage({ config, model, quick, train, test }) {
  const net = await createNetwork(config);
  const out = new Float32Array(CLASSES);
  const engine = {
    prepareBatches: (x, y, batch, count) =>
      Array.from({ length: count }, (_, b) => [x.subarray(b * batch * INPUT, (b + 1) * batch * INPUT), y.subarray(b * batch, (b + 1) * batch)]),
    trainBatch: ([x, y]) => net.trainBatch(x, y),
    predictOne: (x) => net.predict(x, out),
    predictBatch: (xs) => net.predictBatch(xs),
  };
  try {
    return { threads: 1, ...(await benchEngine(engine, { model, quick, train, test })) };
  } finally {
    net.dispose();
  }
}

// ---- bnwasm as users train: the trainer's worker, its pool ---------------------------------------

/**
 * Examples/s of trainer.fit over `rows` training rows at a time (the page's Fashion-MNIST is on a
 * SharedArrayBuffer when isolated: the worker reads it without a copy), for at least `seconds`.
 */
async function trainerTrainRate(trainer, train, batch, { seconds, losses, rows }) {
  const x = train.x.subarray(0, rows * INPUT);
  const y = train.y.subarray(0, rows);
  // Warm-up: fits of 5 mini-batches for at least WARM_UP_MS (as engineTrainRate's).
  const w0 = performance.now();
  do {
    const warmUp = await trainer.fit(train.x.subarray(0, 5 * batch * INPUT), train.y.subarray(0, 5 * batch), { batchSize: batch });
    losses.push(warmUp.loss[0]);
  } while (performance.now() - w0 < WARM_UP_MS);
  let examples = 0;
  const t0 = performance.now();
  let t1 = t0;
  while (t1 - t0 < seconds * 1000 || examples === 0) {
    const history = await trainer.fit(x, y, { batchSize: batch });
    losses.push(history.loss[0]);
    examples += rows;
    t1 = performance.now();
  }
  return examples / ((t1 - t0) / 1000);
}

async function bnwasmTrainer({ config, model, quick, threads, train, test }) {
  if (threads !== undefined) configure({ threads });
  const trainer = await createTrainer(config);
  const cnn = model === 'cnn';
  const seconds = quick ? 0.6 : 1.5;
  const losses = [];
  try {
    // 32 mini-batches per fit: the round trip to the worker is a few percent of a fit at most.
    const train64 = await trainerTrainRate(trainer, train, 64, { seconds, losses, rows: 64 * 32 });
    const train256 = cnn ? null : await trainerTrainRate(trainer, train, 256, { seconds, losses, rows: 256 * 32 });
    const xs = test.x.subarray(0, BATCH_PREDICT_ROWS * INPUT);
    // trainer.predictBatch: the outputs of 1,000 rows on the worker's threads, the job the peers' predict does.
    let outputs;
    const batchPredict = await batchRate(async () => (outputs = await trainer.predictBatch(xs)), BATCH_PREDICT_ROWS, quick || cnn ? 3 : 9);
    // What an app does with the trained network: a copy on the page, predict there.
    const net = await trainer.snapshot();
    try {
      const out = new Float32Array(CLASSES);
      const row = (i) => test.x.subarray((i % BATCH_PREDICT_ROWS) * INPUT, ((i % BATCH_PREDICT_ROWS) + 1) * INPUT);
      const predictOneUs = await perCallUs((i) => net.predict(row(i), out), quick ? 10 : 20);
      const batchPredictPage = await batchRate(() => net.predictBatch(xs), BATCH_PREDICT_ROWS, quick || cnn ? 3 : 5);
      return {
        threads: trainer.threads,
        train64,
        train256,
        predictOneUs,
        batchPredict,
        batchPredictPage,
        accuracy: accuracy(outputs, test.y, BATCH_PREDICT_ROWS),
        ...lossTrend(losses),
      };
    } finally {
      net.dispose();
    }
  } finally {
    trainer.terminate();
  }
}

// ---- the peers ------------------------------------------------------------------------------------

/** Counts the workers the page starts from now on (jax-js's pool is module workers from a blob). */
function countWorkers() {
  const Native = globalThis.Worker;
  let started = 0;
  globalThis.Worker = class extends Native {
    constructor(...args) {
      super(...args);
      started++;
    }
  };
  return () => started;
}

/**
 * TF.js 4.22's wasm backend caps its pool at half of navigator.hardwareConcurrency (it assumes two
 * hyperthreads per core), whatever setThreadsCount asks: one thread on a 2-core machine. So that its
 * pool has every core, like bnwasm's and jax-js's, its page reports twice the cores to it.
 */
function everyCoreForTfjs() {
  const cores = navigator.hardwareConcurrency;
  Object.defineProperty(navigator, 'hardwareConcurrency', { configurable: true, get: () => 2 * cores });
  return cores;
}

async function peer({ engine: name, model, quick, train, test }) {
  const workers = countWorkers();
  const { createEngine } = await import(`/build/bench/browser/${name === 'tfjs-wasm' ? 'tfjs' : 'jax'}.js`);
  const engine =
    name === 'tfjs-wasm'
      ? await createEngine('wasm', model, { wasmPaths: '/node_modules/@tensorflow/tfjs-backend-wasm/dist/', threads: everyCoreForTfjs() })
      : await createEngine(model);
  try {
    const result = await benchEngine(engine, { model, quick, train, test });
    // TF.js reports XNNPACK's pool; jax-js reports nothing: its pool is the workers it started.
    return { threads: name === 'tfjs-wasm' ? engine.threads : workers(), threadedBinary: engine.threadedBinary, workersStarted: workers(), ...result };
  } finally {
    engine.dispose();
  }
}

window.bench = async ({ engine = 'bnwasm-page', model, config, quick }) => {
  const cores = navigator.hardwareConcurrency;
  const { train, test } = await data;
  const options = { engine, model, config, quick, train, test };
  const run =
    engine === 'bnwasm-page' ? bnwasmPage(options)
    : engine === 'bnwasm' ? bnwasmTrainer(options)
    : engine === 'bnwasm-1t' ? bnwasmTrainer({ ...options, threads: 1 })
    : engine === 'tfjs-wasm' || engine === 'jax-js' ? peer(options)
    : Promise.reject(new Error(`unknown engine ${engine}`));
  return {
    ...(await run),
    crossOriginIsolated: globalThis.crossOriginIsolated === true,
    sharedArrayBuffer: typeof SharedArrayBuffer !== 'undefined',
    cores,
  };
};

/** One of bench/wasm's probes (built for the web by bench/build-wasm.sh): main()'s JSON line. */
async function probe(url, args) {
  const lines = [];
  const { default: create } = await import(url);
  // main() runs as the module instantiates, before the factory's promise settles.
  await create({ arguments: args, print: (line) => lines.push(line) });
  return JSON.parse(lines.at(-1));
}

window.probes = async () => ({
  peak: await probe('/build/bench/peak.web.mjs', []),
  kernels: await probe('/build/bench/kernels.web.mjs', ['64']),
});

data.then(
  () => {
    document.getElementById('result').textContent = 'ready: window.bench({engine, model, config, quick})';
    window.benchReady = true;
  },
  (error) => {
    document.getElementById('result').textContent = `could not load the data: ${error.message}`;
    throw error;
  },
);
