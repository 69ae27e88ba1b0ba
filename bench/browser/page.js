// bnwasm's benchmark in a browser page: the measurements of bench/run-engine.mjs (training
// examples/s at batch 64 and 256, single-example predict, batch predict of 1000 images) on the
// same Fashion-MNIST rows, run by bench/browser/run.mjs in each engine through the browser
// test harness. window.bench({model, config, quick}) resolves to one JSON-able result.
// Timers: browsers coarsen performance.now() (to 5-100 us cross-origin isolated, up to 1 ms
// otherwise), too coarse for one 20-us predict, so single-example predict is timed over groups
// of PREDICT_GROUP calls: the median over the groups of the time per call.
import { createNetwork } from '../../web/src/index.js';
import { loadFashionMnist } from '../../web/demo/datasets.js';

const INPUT = 784;
const TRAIN_ROWS = 8192;
const BATCH_PREDICT_ROWS = 1000;
const PREDICT_GROUP = 50;

const median = (a) => {
  const s = [...a].sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const data = loadFashionMnist('/web/demo/data/fashion-mnist.bin');

async function trainRate(net, train, batch, { seconds, minSteps }) {
  const count = Math.floor(TRAIN_ROWS / batch);
  const batches = Array.from({ length: count }, (_, b) => [
    train.x.subarray(b * batch * INPUT, (b + 1) * batch * INPUT),
    train.y.subarray(b * batch, (b + 1) * batch),
  ]);
  for (let i = 0; i < 5; i++) net.trainBatch(...batches[i % count]);
  let steps = 0;
  const t0 = performance.now();
  let t1 = t0;
  while (t1 - t0 < seconds * 1000 || steps < minSteps) {
    net.trainBatch(...batches[steps % count]);
    steps++;
    t1 = performance.now();
  }
  return (steps * batch) / ((t1 - t0) / 1000);
}

function predictOneUs(net, test, groups) {
  const out = new Float32Array(10);
  const row = (i) => test.x.subarray((i % BATCH_PREDICT_ROWS) * INPUT, ((i % BATCH_PREDICT_ROWS) + 1) * INPUT);
  for (let i = 0; i < 100; i++) net.predict(row(i), out);
  const perCall = [];
  for (let g = 0; g < groups; g++) {
    const t0 = performance.now();
    for (let k = 0; k < PREDICT_GROUP; k++) net.predict(row(g * PREDICT_GROUP + k), out);
    perCall.push(((performance.now() - t0) / PREDICT_GROUP) * 1000);
  }
  return median(perCall);
}

function batchPredictRate(net, test, runs) {
  const xs = test.x.subarray(0, BATCH_PREDICT_ROWS * INPUT);
  net.predictBatch(xs);
  const rates = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    net.predictBatch(xs);
    rates.push(BATCH_PREDICT_ROWS / ((performance.now() - t0) / 1000));
  }
  return median(rates);
}

window.bench = async ({ model, config, quick }) => {
  const { train, test } = await data;
  const net = await createNetwork(config);
  const seconds = quick ? 0.6 : 1.5;
  const cnn = model === 'cnn';
  try {
    return {
      train64: await trainRate(net, train, 64, { seconds, minSteps: cnn ? 1 : 3 }),
      train256: cnn ? null : await trainRate(net, train, 256, { seconds, minSteps: 3 }),
      predictOneUs: predictOneUs(net, test, quick ? 10 : 20),
      batchPredict: batchPredictRate(net, test, quick || cnn ? 3 : 9),
      crossOriginIsolated: globalThis.crossOriginIsolated === true,
    };
  } finally {
    net.dispose();
  }
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
    document.getElementById('result').textContent = 'ready: window.bench({model, config, quick})';
    window.benchReady = true;
  },
  (error) => {
    document.getElementById('result').textContent = `could not load the data: ${error.message}`;
    throw error;
  },
);
