// Shared helpers for the Jest suites.

/** A deterministic generator (mulberry32) so test data is the same on every run. */
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

/** Standard normal samples via Box-Muller. */
export function gaussian(random) {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

/**
 * Three Gaussian blobs in `dims` dimensions, classes 0..2: a small problem a
 * network learns in a few hundred steps.
 */
export function blobs(n, dims = 4, seed = 7) {
  const random = rng(seed);
  const normal = gaussian(random);
  const x = new Float32Array(n * dims);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    y[i] = c;
    for (let d = 0; d < dims; d++) x[i * dims + d] = (d % 3 === c ? 2.5 : 0) + normal();
  }
  return { x, y };
}

export const smallConfig = (overrides = {}) => ({
  inputSize: 4,
  layers: [
    { type: 'dense', units: 16, useBias: false },
    { type: 'batchNorm' },
    { type: 'relu' },
    { type: 'dense', units: 3 },
  ],
  optimizer: { type: 'adam', learningRate: 0.01 },
  seed: 5,
  ...overrides,
});

/** Throws with the worst element's index, expected and actual value when arrays differ beyond tolerance. */
export function expectClose(actual, expected, { rtol, atol, what = 'value' }) {
  if (actual.length !== expected.length) {
    throw new Error(`${what}: length ${actual.length}, expected ${expected.length}`);
  }
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const excess = Math.abs(actual[i] - expected[i]) - (atol + rtol * Math.abs(expected[i]));
    if (!(excess <= worstExcess)) {
      worst = i;
      worstExcess = excess;
      if (Number.isNaN(excess)) break;
    }
  }
  if (worst >= 0) {
    throw new Error(
      `${what}[${worst}]: expected ${expected[worst]}, got ${actual[worst]} ` +
        `(|diff| ${Math.abs(actual[worst] - expected[worst])} > atol ${atol} + rtol ${rtol} * |expected|)`,
    );
  }
}

export const bytesEqual = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
