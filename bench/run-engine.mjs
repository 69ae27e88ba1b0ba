#!/usr/bin/env node
// One measurement round of one engine in a fresh process, printed as one JSON
// line. scripts/bench.mjs runs these rounds interleaved across engines.
//   node bench/run-engine.mjs <bnwasm|bnwasm-1t|tfjs-wasm|tfjs-cpu|jax-js> [--quick] [--model cnn]
// bnwasm runs on every core (its default), bnwasm-1t on one thread (configure({ threads: 1 })).
// --model cnn measures the CNN of bench/model.mjs (training at batch 64 only).
import { loadFashionMnist } from '../scripts/fashion-mnist.mjs';
import { INPUT } from './model.mjs';
import { cpuSeconds, median } from './report.mjs';
import { p50Us, warmUp } from './timing.mjs';

const engineName = process.argv[2];
const quick = process.argv.includes('--quick');
const modelName = process.argv.includes('--model') ? process.argv[process.argv.indexOf('--model') + 1] : 'mlp';
if (!['mlp', 'cnn'].includes(modelName)) throw new Error(`unknown --model '${modelName}' (expected mlp or cnn)`);
// Seconds of timed work per training measurement; the slow cpu backend gets
// fewer steps but the same wall time.
const TRAIN_SECONDS = quick ? 0.6 : 1.5;
const PREDICT_CALLS = quick ? 300 : 1000;
const BATCH_PREDICT_ROWS = 1000;

const { train, test } = loadFashionMnist({ trainLimit: 8192, testLimit: BATCH_PREDICT_ROWS });

async function load() {
  if (engineName === 'bnwasm') return (await import('./engines/bnwasm.mjs')).createEngine(modelName);
  if (engineName === 'bnwasm-1t') return (await import('./engines/bnwasm.mjs')).createEngine(modelName, 1);
  if (engineName === 'tfjs-wasm') return (await import('./engines/tfjs.mjs')).createEngine('wasm', modelName);
  if (engineName === 'tfjs-cpu') return (await import('./engines/tfjs.mjs')).createEngine('cpu', modelName);
  if (engineName === 'jax-js') return (await import('./engines/jax.mjs')).createEngine(modelName);
  throw new Error(`unknown engine '${engineName}' (expected bnwasm, bnwasm-1t, tfjs-wasm, tfjs-cpu or jax-js)`);
}


async function trainRate(engine, batch) {
  const count = Math.floor(train.n / batch);
  const batches = engine.prepareBatches(train.x, train.y, batch, count);
  await warmUp((i) => engine.trainBatch(batches[i % count]));
  let steps = 0;
  const c0 = cpuSeconds();
  const t0 = performance.now();
  let t1 = t0;
  // At least 3 steps, except for the CNN, where TF.js's cpu backend takes
  // over a minute per step on a busy machine.
  while (t1 - t0 < TRAIN_SECONDS * 1000 || steps < (modelName === 'cnn' ? 1 : 3)) {
    await engine.trainBatch(batches[steps % count]);
    steps++;
    t1 = performance.now();
  }
  const examples = steps * batch;
  return { wall: examples / ((t1 - t0) / 1000), cpu: examples / (cpuSeconds() - c0) };
}

// The engine's own rows (i % test.n), 100 untimed calls first.
const predictOneP50 = (engine) =>
  p50Us((x) => engine.predictOne(x), (i) => test.x.subarray((i % test.n) * INPUT, (i % test.n + 1) * INPUT), 100, PREDICT_CALLS);

// Awaited: jax-js's predictBatch resolves when its lazy work has run.
async function batchPredictRate(engine) {
  const xs = test.x.subarray(0, BATCH_PREDICT_ROWS * INPUT);
  await engine.predictBatch(xs);
  const rates = [];
  const cpu = [];
  for (let r = 0; r < (quick || modelName === 'cnn' ? 3 : 9); r++) {
    const c0 = cpuSeconds();
    const t0 = performance.now();
    await engine.predictBatch(xs);
    rates.push(BATCH_PREDICT_ROWS / ((performance.now() - t0) / 1000));
    cpu.push(BATCH_PREDICT_ROWS / (cpuSeconds() - c0));
  }
  return { wall: median(rates), cpu: median(cpu) };
}

const engine = await load();
const result = { engine: engine.name };
if (engine.simd !== undefined) result.simd = engine.simd;
if (engine.threads !== undefined) result.threads = engine.threads;
// TF.js 4.22's wasm backend cannot train a CNN: it has no Conv2DBackpropFilter
// kernel (tensorflow/tfjs#8474). The error is recorded and inference still measured.
let trainError;
const t64 = await trainRate(engine, 64).catch((e) => {
  if (modelName !== 'cnn') throw e;
  trainError = e.message;
  return { wall: NaN, cpu: NaN };
});
const t256 = modelName === 'cnn' ? { wall: NaN, cpu: NaN } : await trainRate(engine, 256);
result.predictOneUs = predictOneP50(engine);
const bp = await batchPredictRate(engine);
Object.assign(result, { train64: t64.wall, train256: t256.wall, batchPredict: bp.wall });
result.cpu = { train64: t64.cpu, train256: t256.cpu, batchPredict: bp.cpu };
if (engine.folded && modelName === 'mlp') {
  const folded = await engine.folded();
  result.foldedPredictOneUs = predictOneP50(folded);
  result.foldedBatchPredict = (await batchPredictRate(folded)).wall;
  folded.dispose();
}
if (trainError) result.trainError = trainError;
engine.dispose();
console.log(JSON.stringify(result));
