#!/usr/bin/env node
// One measurement round of one engine on one torchvision model, in a fresh process, printed as
// one JSON line; bench/torchvision.mjs runs these rounds interleaved across engines.
//   node bench/run-torchvision.mjs <bnwasm|bnwasm-1t|ort> <resnet18|mobilenet_v2> <fixture dir> [--quick]
// bnwasm (every core) and bnwasm-1t (configure({ threads: 1 })): training images/s at batch
// TRAIN_BATCH from the config and state make_torchvision_fixtures.py wrote (M.json,
// M-initial.safetensors), and single-image predict p50 of the exported ONNX file
// (M-opset17-folded.onnx, read by importONNX). ort: onnxruntime-web's wasm backend on one
// thread, single-image predict p50 of the same file.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cpuSeconds, median } from './report.mjs';
import { ONNX_FILE, OPTIMIZER, TRAIN_BATCH, randomImages } from './torchvision.mjs';

const [engine, model, dir] = process.argv.slice(2);
const quick = process.argv.includes('--quick');
if (!['bnwasm', 'bnwasm-1t', 'ort'].includes(engine)) throw new Error(`unknown engine '${engine}' (expected bnwasm, bnwasm-1t or ort)`);
const TRAIN_SECONDS = quick ? 1 : 3;
const PREDICT_CALLS = quick ? 50 : 200;
const SIZE = 3 * 32 * 32;
const images = randomImages(16, 2);


/** The median time of one call of predictOne(image) in microseconds, after a warm-up. */
async function predictP50(predictOne) {
  for (let i = 0; i < 20; i++) await predictOne(images.subarray((i % 16) * SIZE, (i % 16 + 1) * SIZE));
  const times = new Float64Array(PREDICT_CALLS);
  for (let i = 0; i < PREDICT_CALLS; i++) {
    const x = images.subarray((i % 16) * SIZE, (i % 16 + 1) * SIZE);
    const t0 = performance.now();
    await predictOne(x);
    times[i] = performance.now() - t0;
  }
  return median(times) * 1000;
}

const onnx = readFileSync(join(dir, ONNX_FILE(model)));
const result = { engine, model };
if (engine === 'ort') {
  const ort = await import('onnxruntime-web');
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create(onnx, { executionProviders: ['wasm'], graphOptimizationLevel: 'all' });
  const [input] = session.inputNames;
  result.threads = 1;
  result.predictOneUs = await predictP50((x) => session.run({ [input]: new ort.Tensor('float32', x, [1, 3, 32, 32]) }));
  await session.release();
} else {
  const entry = process.env.BNWASM_ENTRY ? pathToFileURL(process.env.BNWASM_ENTRY).href : '../web/src/index.node.js';
  const { configure, threadCount } = await import(entry);
  if (engine === 'bnwasm-1t') configure({ threads: 1 });
  const { importONNX, loadSafetensors } = await import(entry.replace(/index\.node\.js$/, 'interop/index.node.js'));
  result.threads = await threadCount();
  const fixture = JSON.parse(readFileSync(join(dir, `${model}.json`), 'utf8'));
  const net = await loadSafetensors(readFileSync(join(dir, `${model}-initial.safetensors`)), { ...fixture.config, optimizer: OPTIMIZER });
  const x = randomImages(2 * TRAIN_BATCH, 1);
  const y = Int32Array.from({ length: 2 * TRAIN_BATCH }, (_, i) => (i * 7) % 10);
  const batch = (s) => [x.subarray((s % 2) * TRAIN_BATCH * SIZE, (s % 2 + 1) * TRAIN_BATCH * SIZE), y.subarray((s % 2) * TRAIN_BATCH, (s % 2 + 1) * TRAIN_BATCH)];
  net.trainBatch(...batch(0)); // warm-up: the first step grows memory and tiers up the code
  let steps = 0;
  const c0 = cpuSeconds();
  const t0 = performance.now();
  while (steps < 2 || performance.now() - t0 < TRAIN_SECONDS * 1000) net.trainBatch(...batch(++steps));
  const wall = (performance.now() - t0) / 1000;
  result.trainImagesPerSecond = (steps * TRAIN_BATCH) / wall;
  result.cpuImagesPerSecond = (steps * TRAIN_BATCH) / (cpuSeconds() - c0);
  result.trainSteps = steps;
  net.dispose();
  const imported = await importONNX(onnx);
  const out = new Float32Array(10);
  result.predictOneUs = await predictP50((image) => imported.predict(image, out));
  imported.dispose();
}
console.log(JSON.stringify(result));
