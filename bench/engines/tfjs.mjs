// TensorFlow.js 4.22 (layers API) on the wasm (SIMD, XNNPACK) or cpu backend,
// the same model, written the way its documentation writes it. The same file runs in Node
// and, bundled, in a page (bench/browser/), where the wasm backend is threaded when the page
// is cross-origin isolated: it then loads tfjs-backend-wasm-threaded-simd.wasm and runs
// XNNPACK on a pool of `threads` (setThreadsCount; its default, the cores).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { getThreadsCount, setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { CLASSES, EPSILON, HIDDEN, INPUT, LEARNING_RATE, MOMENTUM } from '../model.mjs';

/** In Node, the package's dist folder as a path ending in '/' (a URL is not accepted). */
async function nodeWasmPaths() {
  const { createRequire } = await import('node:module');
  const { dirname } = await import('node:path');
  return dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/';
}

// model 'mlp' (the dense network above) or 'cnn': the CNN of bench/model.mjs in
// TF.js's default channels-last layout, [28, 28, 1]: for one channel the same
// 784 floats in the same order as bnwasm's [1, 28, 28].
// wasmPaths: where the .wasm files are (a page passes its URL prefix; Node finds the package's);
// threads: setThreadsCount before the backend starts (undefined: TF.js's default, the cores).
export async function createEngine(backend, modelName = 'mlp', { wasmPaths, threads } = {}) {
  // Production mode, as a deployed app would run: skips debug checks (and the
  // cpu backend's console advice to install tfjs-node).
  tf.enableProdMode();
  if (backend === 'wasm') {
    setWasmPaths(wasmPaths ?? (await nodeWasmPaths()));
    if (threads !== undefined) setThreadsCount(threads);
  }
  await tf.setBackend(backend);
  await tf.ready();
  const bn = () => tfl.layers.batchNormalization({ momentum: MOMENTUM, epsilon: EPSILON });
  const cnn = modelName === 'cnn';
  const shape = cnn ? [28, 28, 1] : [INPUT];
  const conv = (filters, first) =>
    tfl.layers.conv2d({ ...(first && { inputShape: shape }), filters, kernelSize: 3, padding: 'same', useBias: false });
  const model = tfl.sequential({
    layers: cnn ? [
      conv(16, true), bn(), tfl.layers.activation({ activation: 'relu' }), tfl.layers.maxPooling2d({ poolSize: 2 }),
      conv(32, false), bn(), tfl.layers.activation({ activation: 'relu' }), tfl.layers.maxPooling2d({ poolSize: 2 }),
      tfl.layers.flatten(),
      tfl.layers.dense({ units: 128, useBias: false }), bn(), tfl.layers.activation({ activation: 'relu' }),
      tfl.layers.dense({ units: CLASSES, activation: 'softmax' }),
    ] : [
      tfl.layers.dense({ inputShape: [INPUT], units: HIDDEN, useBias: false }),
      bn(),
      tfl.layers.activation({ activation: 'relu' }),
      tfl.layers.dense({ units: HIDDEN, useBias: false }),
      bn(),
      tfl.layers.activation({ activation: 'relu' }),
      tfl.layers.dense({ units: CLASSES, activation: 'softmax' }),
    ],
  });
  model.compile({ optimizer: tf.train.adam(LEARNING_RATE), loss: 'categoricalCrossentropy' });
  return {
    name: `tfjs-${backend}`,
    simd: backend === 'wasm' ? await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT') : undefined,
    // XNNPACK's pool as the backend reports it (1 where the threaded binary did not load).
    threads: backend === 'wasm' ? getThreadsCount() : 1,
    threadedBinary: backend === 'wasm' ? await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT') : false,
    // Batches are tensors made once, as a tf.data pipeline would hand them over.
    prepareBatches(x, y, batch, count) {
      const list = [];
      for (let b = 0; b < count; b++) {
        const labels = y.subarray(b * batch, (b + 1) * batch);
        list.push([
          tf.tensor(x.subarray(b * batch * INPUT, (b + 1) * batch * INPUT), [batch, ...shape]),
          tf.oneHot(tf.tensor1d(Int32Array.from(labels), 'int32'), CLASSES),
        ]);
      }
      return list;
    },
    async trainBatch([xb, yb]) {
      return model.trainOnBatch(xb, yb);
    },
    // Float32Array in, Float32Array out, as bnwasm's predict.
    predictOne(x) {
      return tf.tidy(() => model.predict(tf.tensor(x, [1, ...shape])).dataSync());
    },
    predictBatch(xs) {
      return tf.tidy(() => model.predict(tf.tensor(xs, [xs.length / INPUT, ...shape]), { batchSize: xs.length / INPUT }).dataSync());
    },
    dispose() {
      model.dispose();
    },
  };
}
