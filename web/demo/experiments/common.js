// What the experiments share: the one seeded generator (the demo's data sets and the
// tests use it too), seeded mini-batches, single-example accuracy, percentiles. No Node
// imports: the demo's Figure 1 worker imports this file, and so do scripts/experiments/.

/** mulberry32: a small seeded generator of floats in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples from a uniform generator (Box-Muller; 1 - u keeps log's argument > 0). */
export function gaussian(random) {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/**
 * Endless mini-batches of `batchSize` examples drawn without replacement,
 * reshuffled (Fisher-Yates, seeded) every epoch; an epoch's leftover examples
 * are dropped so every batch has the same size. The same seed gives the same
 * batches, so several networks can be trained on exactly the same data.
 * @param {{x: Float32Array, y: Uint8Array, n: number}} data
 * @returns {() => {x: Float32Array, y: Int32Array}} next(); the arrays are reused
 */
export function batcher(data, batchSize, seed) {
  const d = data.x.length / data.n;
  const random = rng(seed);
  const order = new Uint32Array(data.n).map((_, i) => i);
  const x = new Float32Array(batchSize * d);
  const y = new Int32Array(batchSize);
  let next = data.n; // forces a shuffle on the first call
  return () => {
    if (next + batchSize > data.n) {
      for (let i = data.n - 1; i > 0; i--) {
        const j = Math.floor(random() * (i + 1));
        [order[i], order[j]] = [order[j], order[i]];
      }
      next = 0;
    }
    for (let r = 0; r < batchSize; r++, next++) {
      const i = order[next];
      x.set(data.x.subarray(i * d, (i + 1) * d), r * d);
      y[r] = data.y[i];
    }
    return { x, y };
  };
}

/**
 * Accuracy by single-example inference: predictBatch in inference mode, whose
 * row i equals predict(row i) bit for bit, then the arg max of each row.
 */
export function accuracy(net, data) {
  const p = net.predictBatch(data.x);
  const k = net.outputSize;
  let correct = 0;
  for (let i = 0; i < data.n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (p[i * k + c] > p[i * k + best]) best = c;
    correct += best === data.y[i];
  }
  return correct / data.n;
}

/** The value below which `q` percent of `values` lie (linear interpolation). */
export function percentile(values, q) {
  const sorted = Float64Array.from(values).sort();
  const at = (q / 100) * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (at - lo) * (sorted[hi] - sorted[lo]);
}

export const pct = (v) => `${(100 * v).toFixed(1)}%`;
