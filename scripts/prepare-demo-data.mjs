#!/usr/bin/env node
// Prepares Fashion-MNIST for the demo page: the full 60,000/10,000 split from Debian's
// dataset-fashion-mnist (IDX, gzip) in one uncompressed file the page fetches and reads
// without a parser (55 MB; generated, not committed):
//
//   bytes 0-7    "BNFMNIST"
//   bytes 8-11   train count (uint32, little-endian)
//   bytes 12-15  test count  (uint32, little-endian)
//   then         train pixels (count x 784 uint8, row-major 28 x 28), train labels (count uint8),
//                test pixels, test labels
//
//   node scripts/prepare-demo-data.mjs [--force]
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { FASHION_MNIST_DIR } from './fashion-mnist.mjs';

export const DEMO_DATA = fileURLToPath(new URL('../web/demo/data/fashion-mnist.bin', import.meta.url));
const SOURCES = {
  trainImages: 'train-images-idx3-ubyte.gz',
  trainLabels: 'train-labels-idx1-ubyte.gz',
  testImages: 't10k-images-idx3-ubyte.gz',
  testLabels: 't10k-labels-idx1-ubyte.gz',
};

// IDX: a big-endian header (magic whose low byte is the number of dimensions, then the
// dimensions), then uint8 data.
function readIdx(file, expectedDims) {
  const path = `${FASHION_MNIST_DIR}/${file}`;
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: install Debian's dataset-fashion-mnist (npm run setup does) or set FASHION_MNIST_DIR`);
  }
  const bytes = gunzipSync(readFileSync(path));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== 0x800 + expectedDims) throw new Error(`${path}: magic 0x${magic.toString(16)}, expected 0x${(0x800 + expectedDims).toString(16)}`);
  const shape = Array.from({ length: expectedDims }, (_, i) => view.getUint32(4 + 4 * i));
  const data = bytes.subarray(4 + 4 * expectedDims);
  if (data.length !== shape.reduce((a, b) => a * b, 1)) throw new Error(`${path}: ${data.length} data bytes, the header says ${shape.join(' x ')}`);
  return { shape, data };
}

/** Writes the demo's data file unless it is already newer than its sources. Returns its path. */
export function prepareDemoData({ force = false, log = console.log } = {}) {
  if (!force && existsSync(DEMO_DATA)) {
    const built = statSync(DEMO_DATA).mtimeMs;
    const sources = Object.values(SOURCES).map((f) => `${FASHION_MNIST_DIR}/${f}`);
    if (sources.every((s) => !existsSync(s) || statSync(s).mtimeMs <= built)) return DEMO_DATA;
  }
  const trainImages = readIdx(SOURCES.trainImages, 3);
  const trainLabels = readIdx(SOURCES.trainLabels, 1);
  const testImages = readIdx(SOURCES.testImages, 3);
  const testLabels = readIdx(SOURCES.testLabels, 1);
  const nTrain = trainImages.shape[0];
  const nTest = testImages.shape[0];
  if (trainLabels.shape[0] !== nTrain || testLabels.shape[0] !== nTest) throw new Error('Fashion-MNIST: image and label counts differ');
  const header = Buffer.alloc(16);
  header.write('BNFMNIST', 0, 'ascii');
  header.writeUInt32LE(nTrain, 8);
  header.writeUInt32LE(nTest, 12);
  mkdirSync(dirname(DEMO_DATA), { recursive: true });
  writeFileSync(DEMO_DATA, Buffer.concat([header, trainImages.data, trainLabels.data, testImages.data, testLabels.data]));
  log(`demo data: ${nTrain} training and ${nTest} test images -> ${DEMO_DATA} (${(statSync(DEMO_DATA).size / 1e6).toFixed(1)} MB)`);
  return DEMO_DATA;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  prepareDemoData({ force: process.argv.includes('--force') });
}
