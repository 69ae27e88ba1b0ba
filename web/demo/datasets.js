// The demo's two datasets: Fashion-MNIST from the file scripts/prepare-demo-data.mjs writes,
// and two spirals generated here.
import { gaussian, rng } from './experiments/common.js';

export const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

/**
 * Whether the page can share memory with its worker: cross-origin isolated (scripts/serve.mjs
 * sends COOP/COEP) and SharedArrayBuffer there. Both are tested: WebKitGTK reports
 * crossOriginIsolated under COOP/COEP yet has no SharedArrayBuffer (unless
 * JSC_useSharedArrayBuffer=1 is set).
 */
export const SHARED_MEMORY = globalThis.crossOriginIsolated === true && typeof SharedArrayBuffer !== 'undefined';

// Float32Arrays the worker can share without a copy where it can; plain ones otherwise
// (copied once per fit).
function floats(length) {
  const buffer = SHARED_MEMORY ? new SharedArrayBuffer(length * 4) : new ArrayBuffer(length * 4);
  return new Float32Array(buffer);
}

const COPY_SLICE = 1 << 20; // floats copied per task (4 MB)

/**
 * An array as a worker should get it: itself where memory is shared; otherwise a copy to move
 * (transfer) to the worker, made a slice per task. Posting Fashion-MNIST's 220 MB of floats
 * as they are copies them in one go, and the page stops drawing for a second or more.
 */
export async function forWorker(array) {
  if (SHARED_MEMORY) return array;
  const copy = new array.constructor(array.length);
  for (let at = 0; at < array.length; at += COPY_SLICE) {
    copy.set(array.subarray(at, at + COPY_SLICE), at);
    await new Promise((resolve) => setTimeout(resolve, 0)); // the page draws between slices
  }
  return copy;
}

/** Pixels as uint8 (for drawing) and scaled to [0, 1] as float32 (for training). */
export async function loadFashionMnist(url = 'data/fashion-mnist.bin') {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} (run 'npm run demo-data')`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== 'BNFMNIST') throw new Error(`${url}: not a demo data file (magic ${JSON.stringify(magic)})`);
  const view = new DataView(bytes.buffer);
  const nTrain = view.getUint32(8, true);
  const nTest = view.getUint32(12, true);
  let offset = 16;
  const take = (length) => bytes.subarray(offset, (offset += length));
  const split = (n) => {
    const pixels = take(n * 784);
    const labels = take(n);
    const x = floats(n * 784);
    for (let i = 0; i < x.length; i++) x[i] = pixels[i] / 255;
    return { x, y: labels, pixels, n };
  };
  const train = split(nTrain);
  const test = split(nTest);
  return { name: 'fashion-mnist', inputSize: 784, classNames: FASHION_CLASSES, train, test };
}

/** Two interleaved spirals in [-1, 1]^2, with a little noise. */
export function makeSpirals({ trainPerClass = 600, testPerClass = 300, noise = 0.05, seed = 3 } = {}) {
  const random = rng(seed);
  const normal = gaussian(random);
  const make = (perClass) => {
    const n = 2 * perClass;
    const x = floats(2 * n);
    const y = new Uint8Array(n);
    for (let i = 0; i < n; i++) {
      const label = i % 2;
      const t = 0.15 + Math.sqrt(random()) * 0.85; // uniform density along the arm
      const angle = t * 3.2 * Math.PI + label * Math.PI;
      x[2 * i] = t * Math.cos(angle) + noise * normal();
      x[2 * i + 1] = t * Math.sin(angle) + noise * normal();
      y[i] = label;
    }
    return { x, y, n };
  };
  return { name: 'toy', inputSize: 2, classNames: ['blue arm', 'orange arm'], train: make(trainPerClass), test: make(testPerClass) };
}
