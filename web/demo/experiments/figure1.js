// Ioffe & Szegedy (2015), Figure 1, on Fashion-MNIST: the presets and the
// experiment itself. No Node imports: the demo's worker (../figure1-worker.js)
// runs FIGURE1_DEMO_PRESET live; scripts/experiments/paper-figure1.mjs runs
// FIGURE1_PRESET and writes docs/ (through the re-export in figure1.mjs there).
import { createNetwork, loadNetwork } from '../../src/index.js';
import { accuracy, batcher, percentile } from './common.js';

/** The MNIST network of the paper: 3 hidden layers of 100 sigmoid units, with or without batch norm. */
function network(batchNorm, { initStd, learningRate, seed }) {
  const layers = [];
  for (let i = 0; i < 3; i++) {
    // A dense layer followed by batch norm needs no bias: beta takes its role.
    layers.push({ type: 'dense', units: 100, useBias: !batchNorm, init: 'normal', initStd });
    if (batchNorm) layers.push({ type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 });
    layers.push({ type: 'sigmoid' });
  }
  layers.push({ type: 'dense', units: 10, init: 'normal', initStd });
  return { inputSize: 784, layers, loss: 'softmaxCrossEntropy', optimizer: { type: 'sgd', learningRate }, seed };
}

const HYPER = { initStd: 0.01, learningRate: 0.5, seed: 1 };

/**
 * Plain data (JSON-able): two network configs trained side by side on the same
 * mini-batches, and what to measure. A network's `probeLayer` is the layer
 * whose output is the last hidden layer's sigmoid input: the batch norm with
 * batch norm, the dense layer without.
 */
export const FIGURE1_PRESET = {
  name: 'Ioffe & Szegedy 2015, Figure 1',
  description:
    '784 -> 3 x (dense 100 -> sigmoid) -> 10 on Fashion-MNIST, with and without batch norm after each dense layer; ' +
    'SGD, mini-batches of 60, Gaussian initial weights (std 0.01). Test accuracy, and the 15th, 50th and 85th ' +
    "percentiles of one last-hidden-layer unit's input to its sigmoid, over training.",
  batchSize: 60,
  steps: 20000,
  evaluateEvery: 500,
  probe: { unit: 0, examples: 1000, percentiles: [15, 50, 85] },
  networks: [
    { key: 'batchNorm', label: 'with batch norm', config: network(true, HYPER), probeLayer: 7 },
    { key: 'plain', label: 'without batch norm', config: network(false, HYPER), probeLayer: 4 },
  ],
};

/** Steps from `from` to `to` (both included), `by` apart. */
const stepsBy = (from, to, by) => Array.from({ length: Math.floor((to - from) / by) + 1 }, (_, i) => from + i * by);

/**
 * The same experiment cut to about a minute in a browser: 8,000 steps (the
 * batch-norm network is near its best by then and the plain one has left its
 * plateau), measured often early, where the curves move fastest.
 */
export const FIGURE1_DEMO_PRESET = {
  ...FIGURE1_PRESET,
  steps: 8000,
  evaluateAt: [...stepsBy(0, 500, 25), ...stepsBy(600, 2000, 100), ...stepsBy(2200, 8000, 200)],
};

/** The percentiles `qs` of every unit (column) of a (rows, width) row-major array. */
function unitPercentiles(out, rows, qs) {
  const width = out.length / rows;
  const column = new Float32Array(rows);
  const units = [];
  for (let u = 0; u < width; u++) {
    for (let r = 0; r < rows; r++) column[r] = out[r * width + u];
    units.push(qs.map((q) => percentile(column, q)));
  }
  return units;
}

/**
 * Runs the experiment: trains the preset's networks on the same seeded
 * mini-batches and yields a measurement at step 0 and every `evaluateEvery`
 * steps, or, if the preset lists them in `evaluateAt`, at those steps. Test
 * accuracy is by single-example inference (running averages); percentiles are
 * over the first `probe.examples` test images, in inference mode, for every
 * unit of the probed layer (`units`) and for `probe.unit` (`percentiles`). Each
 * yield follows the synchronous training steps since the last one: run it in a
 * worker when a page must stay responsive.
 * @param {{train: {x: Float32Array, y: Uint8Array, n: number}, test: {x: Float32Array, y: Uint8Array, n: number}}} data
 *   Fashion-MNIST as loadFashionMnist() returns it (pixels in [0, 1])
 * @param {typeof FIGURE1_PRESET & {evaluateAt?: number[]}} [preset]
 * @param {{population?: boolean}} [options] population: also measure the batch-norm
 *   networks' units with population statistics of the training set
 *   (recomputeStatistics on a copy), in `populationUnits`
 * @returns {AsyncGenerator<{step: number, accuracy: Record<string, number>, percentiles: Record<string, number[]>,
 *   units: Record<string, number[][]>, populationUnits: Record<string, number[][]>}>}
 */
export async function* runFigure1({ train, test }, preset = FIGURE1_PRESET, { population = false } = {}) {
  const { batchSize, steps, evaluateEvery, evaluateAt, probe } = preset;
  const due = evaluateAt ? new Set(evaluateAt) : null;
  const probeX = test.x.subarray(0, probe.examples * (test.x.length / test.n));
  const nets = [];
  try {
    for (const n of preset.networks) nets.push(await createNetwork(n.config));
    const next = batcher(train, batchSize, preset.networks[0].config.seed);
    const measure = async (step) => {
      const m = { step, accuracy: {}, percentiles: {}, units: {}, populationUnits: {} };
      for (const [i, n] of preset.networks.entries()) {
        m.accuracy[n.key] = accuracy(nets[i], test);
        m.units[n.key] = unitPercentiles(nets[i].activations(probeX, n.probeLayer), probe.examples, probe.percentiles);
        m.percentiles[n.key] = m.units[n.key][probe.unit];
        if (population && n.config.layers.some((l) => l.type === 'batchNorm')) {
          const copy = await loadNetwork(nets[i].save());
          await copy.recomputeStatistics(train.x);
          m.populationUnits[n.key] = unitPercentiles(copy.activations(probeX, n.probeLayer), probe.examples, probe.percentiles);
          copy.dispose();
        }
      }
      return m;
    };
    yield await measure(0);
    for (let step = 1; step <= steps; step++) {
      const { x, y } = next();
      for (const net of nets) net.trainBatch(x, y);
      if (due ? due.has(step) : step % evaluateEvery === 0) yield await measure(step);
    }
  } finally {
    for (const net of nets) net.dispose();
  }
}
