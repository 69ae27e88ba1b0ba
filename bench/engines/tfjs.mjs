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

export async function createEngine(backend) {
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
  const model = tfl.sequential({
    layers: [
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
          tf.tensor2d(x.subarray(b * batch * INPUT, (b + 1) * batch * INPUT), [batch, INPUT]),
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
      return tf.tidy(() => model.predict(tf.tensor2d(x, [1, INPUT])).dataSync());
    },
    predictBatch(xs) {
      return tf.tidy(() => model.predict(tf.tensor2d(xs, [xs.length / INPUT, INPUT]), { batchSize: xs.length / INPUT }).dataSync());
    },
    dispose() {
      model.dispose();
    },
  };
}
