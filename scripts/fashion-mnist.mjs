// Reads Fashion-MNIST from Debian's dataset-fashion-mnist package (IDX files,
// gzip): a big-endian header (magic, counts, dims), then uint8 data.
import { readFileSync, existsSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';

export const FASHION_MNIST_DIR = process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';
export const CLASS_NAMES = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
  'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

/**
 * The default network for Fashion-MNIST (the one `npm start`, `npm run train`,
 * the accuracy test and the benchmark train): 784-256-BN-ReLU-256-BN-ReLU-10,
 * dense layers before batch norm without bias, Adam 1e-3. Trained at batch 64.
 */
export function fashionMnistConfig({ seed = 1 } = {}) {
  return {
    inputSize: 784,
    layers: [
      { type: 'dense', units: 256, useBias: false },
      { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 },
      { type: 'relu' },
      { type: 'dense', units: 256, useBias: false },
      { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 },
      { type: 'relu' },
      { type: 'dense', units: 10 },
    ],
    loss: 'softmaxCrossEntropy',
    optimizer: { type: 'adam', learningRate: 1e-3 },
    seed,
  };
}

/**
 * The batch-normalized CNN for Fashion-MNIST (issue 10; the accuracy test and
 * the benchmark train it): conv 16 3x3 'same' -> BN -> ReLU -> max pool 2,
 * conv 32 3x3 'same' -> BN -> ReLU -> max pool 2, dense 128 -> BN -> ReLU,
 * dense 10; layers before batch norm without bias; Adam 1e-3, batch 64.
 */
export function fashionMnistCnnConfig({ seed = 1 } = {}) {
  return {
    inputShape: [1, 28, 28],
    layers: [
      { type: 'conv2d', filters: 16, kernelSize: 3, padding: 'same', useBias: false },
      { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 },
      { type: 'relu' },
      { type: 'maxPool2d', poolSize: 2 },
      { type: 'conv2d', filters: 32, kernelSize: 3, padding: 'same', useBias: false },
      { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 },
      { type: 'relu' },
      { type: 'maxPool2d', poolSize: 2 },
      { type: 'dense', units: 128, useBias: false },
      { type: 'batchNorm', momentum: 0.9, epsilon: 1e-5 },
      { type: 'relu' },
      { type: 'dense', units: 10 },
    ],
    loss: 'softmaxCrossEntropy',
    optimizer: { type: 'adam', learningRate: 1e-3 },
    seed,
  };
}

/**
 * The small residual network (issue 16), scripts/pytorch/small_resnet.py's SmallResNet as
 * torch.fx traces it: a conv stem (8 filters 3x3, batch norm, ReLU); a block of conv-BN-ReLU-
 * conv-BN whose input is added to its output, then ReLU; a block that halves the image (conv
 * stride 2) with a 1x1 stride-2 conv and batch norm on its skip; global average pooling and a
 * dense head. Layers with weights are named after their PyTorch modules, so its safetensors
 * load into SmallResNet with load_state_dict(strict=True). `widths` [8, 16].
 */
export function fashionMnistResNetConfig({ seed = 1, inputShape = [1, 28, 28] } = {}) {
  const conv = (name, filters, kernel, stride, inputs) => ({
    type: 'conv2d', filters, kernelSize: kernel, stride, padding: kernel === 3 ? 1 : 0, useBias: false, name, ...(inputs && { inputs }),
  });
  const bn = (name) => ({ type: 'batchNorm', momentum: 0.9, epsilon: 1e-5, name });
  return {
    inputShape,
    layers: [
      conv('conv1', 8, 3, 1), bn('bn1'), { type: 'relu', name: 'relu' },
      conv('layer1.0.conv1', 8, 3, 1), bn('layer1.0.bn1'), { type: 'relu' },
      conv('layer1.0.conv2', 8, 3, 1), bn('layer1.0.bn2'),
      { type: 'add', inputs: ['layer1.0.bn2', 'relu'] }, { type: 'relu', name: 'layer1_0_relu_1' },
      conv('layer2.0.downsample.0', 16, 1, 2), bn('layer2.0.downsample.1'),
      conv('layer2.0.conv1', 16, 3, 2, ['layer1_0_relu_1']), bn('layer2.0.bn1'), { type: 'relu' },
      conv('layer2.0.conv2', 16, 3, 1), bn('layer2.0.bn2'),
      { type: 'add', inputs: ['layer2.0.bn2', 'layer2.0.downsample.1'] }, { type: 'relu' },
      { type: 'globalAvgPool' },
      { type: 'dense', units: 10, name: 'fc' },
    ],
    loss: 'softmaxCrossEntropy',
    optimizer: { type: 'adam', learningRate: 1e-2 },
    seed,
  };
}

function readIdx(file, expectedMagic) {
  const path = `${FASHION_MNIST_DIR}/${file}`;
  if (!existsSync(path)) {
    throw new Error(`${path} is missing: install Debian's dataset-fashion-mnist (scripts/setup.sh does) or set FASHION_MNIST_DIR`);
  }
  const bytes = gunzipSync(readFileSync(path));
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0);
  if (magic !== expectedMagic) throw new Error(`${path}: magic ${magic.toString(16)}, expected ${expectedMagic.toString(16)}`);
  const dims = magic & 0xff;
  const shape = [];
  for (let i = 0; i < dims; i++) shape.push(view.getUint32(4 + 4 * i));
  const offset = 4 + 4 * dims;
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length - offset !== count) throw new Error(`${path}: ${bytes.length - offset} data bytes, header says ${count}`);
  return { shape, data: bytes.subarray(offset) };
}

/** Pixels scaled to [0, 1] as Float32Array (n * 784); labels as Uint8Array (n). */
export function loadFashionMnist({ trainLimit = Infinity, testLimit = Infinity } = {}) {
  const load = (images, labels, limit) => {
    const x = readIdx(images, 0x803);
    const y = readIdx(labels, 0x801);
    const n = Math.min(x.shape[0], limit);
    const pixels = new Float32Array(n * 784);
    for (let i = 0; i < n * 784; i++) pixels[i] = x.data[i] / 255;
    return { x: pixels, y: y.data.slice(0, n), n };
  };
  return {
    train: load('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz', trainLimit),
    test: load('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz', testLimit),
  };
}
