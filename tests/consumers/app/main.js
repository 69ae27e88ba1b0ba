// The consumer page: what a web app does with bnwasm, checked in the page itself. Every
// bundler test builds this file unchanged (as src/main.js) and reads window.bnwasmConsumer.
// The checks compare against facts that do not depend on bnwasm's own numbers: two clusters
// that a line separates are learned to 100% (>= 95% asked), softmax outputs sum to 1, a saved
// and reloaded network predicts bit for bit the same, the worker's network equals its snapshot,
// a dense network fetches one wasm file and a convolutional one a second.
import { createNetwork, createTrainer, loadNetwork, BnwasmError, InputError } from 'bnwasm';

const checks = [];
const check = (name, ok, detail) => checks.push({ name, ok: Boolean(ok), detail: String(detail) });

// 200 examples in 2-D: class 0 around (-1, 0), class 1 around (1, 0), noise below 0.3.
const n = 200;
const x = new Float32Array(n * 2);
const y = new Int32Array(n);
for (let i = 0; i < n; i++) {
  y[i] = i % 2;
  x[2 * i] = (y[i] ? 1 : -1) + 0.3 * Math.sin(i * 12.9898);
  x[2 * i + 1] = 0.3 * Math.cos(i * 78.233);
}
const config = {
  inputSize: 2,
  layers: [{ type: 'dense', units: 8, useBias: false }, { type: 'batchNorm' }, { type: 'relu' }, { type: 'dense', units: 2 }],
  optimizer: { type: 'adam', learningRate: 0.05 },
  seed: 1,
};
const row = (i) => x.subarray(2 * i, 2 * i + 2);
const sameBits = (a, b) => a.length === b.length && a.every((v, k) => Object.is(v, b[k]));

/** Calls fn, which must throw (or reject with) an InputError carrying `code`. */
async function expectInputError(name, fn, code) {
  try {
    await fn();
    check(name, false, 'no error');
  } catch (error) {
    check(
      name,
      error instanceof InputError && error instanceof BnwasmError && error.name === 'InputError' && error.code === code,
      `${error?.constructor?.name} name=${error?.name} code=${error?.code} instanceof InputError=${error instanceof InputError}: ${error?.message}`,
    );
  }
}

// Room for every request of a dev server's page (250 entries by default), the wasm among them.
performance.setResourceTimingBufferSize(10000);

async function main() {
  const net = await createNetwork(config);
  const history = await net.fit(x, y, { epochs: 5, batchSize: 20 });
  check('fit: loss falls', history.loss.at(-1) < history.loss[0], history.loss.join(' '));
  check('fit: separable clusters learned', net.evaluate(x, y).accuracy >= 0.95, net.evaluate(x, y).accuracy);
  const p = net.predict(row(1));
  check('predict: probabilities sum to 1', Math.abs(p[0] + p[1] - 1) < 1e-6, `${p[0]} + ${p[1]}`);
  check('predict: class of example 1', p[1] > p[0], `${p[0]} ${p[1]}`);
  const again = await loadNetwork(net.save());
  check('save/load: same predictions bit for bit', [0, 1, 2, 3].every((i) => sameBits(again.predict(row(i)), net.predict(row(i)))), 'rows 0-3');
  again.dispose();
  await expectInputError('main thread: wrong-length input is an InputError', () => net.predict(new Float32Array(3)), 'BNWASM_WRONG_LENGTH');
  net.dispose();

  // A dense-only network fetched one wasm file (bnwasm-dense.wasm, whatever the bundler named
  // it); a network with a convolution fetches the second (bnwasm.wasm), and both run in the page.
  const wasmFetched = () => new Set(performance.getEntriesByType('resource').map((e) => e.name).filter((u) => /\.wasm(\?|#|$)/.test(u)));
  const denseOnly = wasmFetched();
  check('dense network: one wasm file fetched', denseOnly.size === 1, [...denseOnly].join(' '));
  const cnn = await createNetwork({
    inputShape: [1, 4, 4],
    layers: [{ type: 'conv2d', filters: 2, kernelSize: 3, padding: 'same' }, { type: 'maxPool2d', poolSize: 2 }, { type: 'flatten' }, { type: 'dense', units: 2 }],
    seed: 2,
  });
  const image = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i));
  const q = cnn.predict(image);
  check('conv network: probabilities sum to 1', Math.abs(q[0] + q[1] - 1) < 1e-6, `${q[0]} + ${q[1]}`);
  const cnnAgain = await loadNetwork(cnn.save());
  check('conv network: save/load bit for bit', sameBits(cnnAgain.predict(image), q), `${q}`);
  cnnAgain.dispose();
  cnn.dispose();
  const both = wasmFetched();
  check('conv network: a second wasm file fetched', both.size === 2 && [...denseOnly].every((u) => both.has(u)), [...both].join(' '));

  const trainer = await createTrainer(config);
  try {
    // Threads in the worker where the page is cross-origin isolated (SharedArrayBuffer), else one.
    const cores = globalThis.crossOriginIsolated && typeof SharedArrayBuffer !== 'undefined' ? navigator.hardwareConcurrency : 1;
    check('trainer: threads where the page is isolated, else one', trainer.threads === cores, `${trainer.threads} threads, expected ${cores}`);
    await trainer.fit(x, y, { epochs: 5, batchSize: 20 });
    const snapshot = await trainer.snapshot();
    check('trainer: separable clusters learned', snapshot.evaluate(x, y).accuracy >= 0.95, snapshot.evaluate(x, y).accuracy);
    const inWorker = await trainer.predict(row(3));
    check('trainer: worker predict equals snapshot predict', sameBits(inWorker, snapshot.predict(row(3))), `${inWorker}`);
    snapshot.dispose();
    await expectInputError('worker: wrong-length input arrives as an InputError', () => trainer.predict(new Float32Array(3)), 'BNWASM_WRONG_LENGTH');
  } finally {
    trainer.terminate();
  }
}

const report = (state) => {
  window.bnwasmConsumer = { done: true, checks, ...state };
  document.getElementById('result').textContent = JSON.stringify(window.bnwasmConsumer, null, 2);
};
main().then(
  () => report({}),
  (error) => report({ error: `${error?.name}: ${error?.message}\n${error?.stack}` }),
);
