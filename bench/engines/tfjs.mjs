// TensorFlow.js 4.22 (layers API) on the wasm (SIMD, XNNPACK) or cpu backend,
// the same model, written the way its documentation writes it.
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { CLASSES, EPSILON, HIDDEN, INPUT, LEARNING_RATE, MOMENTUM } from '../model.mjs';

const require = createRequire(import.meta.url);

// model 'mlp' (the dense network above) or 'cnn': the CNN of bench/model.mjs in
// TF.js's default channels-last layout, [28, 28, 1]: for one channel the same
// 784 floats in the same order as bnwasm's [1, 28, 28].
export async function createEngine(backend, modelName = 'mlp') {
  // Production mode, as a deployed app would run: skips debug checks (and the
  // cpu backend's console advice to install tfjs-node).
  tf.enableProdMode();
  if (backend === 'wasm') {
    // In Node, a file path string ending in '/' (a URL is not accepted).
    setWasmPaths(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm')) + '/');
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
