// The browser half of tests/e2e/interop.test.mjs: bnwasm and onnxruntime-web side by side.
// 1. Trains two small batch-normalized networks with bnwasm in this page.
// 2. Exports each with toONNX at opsets 13 to 17, folded and not, runs every file in
//    onnxruntime-web (wasm backend, one thread, files served from node_modules) and compares
//    its outputs with predictBatch on the same inputs.
// 3. Imports PyTorch-exported ONNX fixtures with importONNX and compares predictBatch, and
//    onnxruntime-web on the same file, with PyTorch's float64 reference outputs.
// Shows the tables and writes the numbers to body[data-result] as JSON.
import * as ort from '/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs';
import { createNetwork } from '/web/src/index.js';
import { importONNX } from '/web/src/interop/index.js';
import { rng } from '/web/demo/experiments/common.js'; // mulberry32: the same data on every run

// |onnxruntime-web - predictBatch| <= 1e-5 absolute. Both engines run the same float32
// weights through the same operations, in a different order: ORT's Gemm blocks its dot
// products differently, and its BatchNormalization computes (x - mean) / sqrt(var + eps)
// * scale + bias where bnwasm multiplies by a cached 1 / sqrt(var + eps); a folded file
// also rounds each folded weight once more. Each of these is a few float32 roundings
// (u = 6e-8) of values no bigger than ~10 here, so outputs of magnitude <= ~3
// (probabilities; a few units for MSE) differ by at most ~2e-6. 1e-5 leaves a margin of
// 5 and is still 100x below a real mistake (a wrong epsilon, variance estimator, transB,
// or a missing softmax move these outputs by > 1e-3).
const EXPORT_TOLERANCE = 1e-5;
// |x - PyTorch float64| <= 2e-6 + 1e-5 * |reference|: the reference runs the same float32
// weights in float64, so the difference is one engine's float32 arithmetic on <= 3 dense
// layers of <= 16 terms and 2 batch norms; tests/js/interop-onnx-import.test.js derives it.
const IMPORT_TOLERANCE = { atol: 2e-6, rtol: 1e-5 };
const OPSETS = [13, 14, 15, 16, 17];
const FIXTURE_OPSETS = [13, 17];
const FIXTURES = [
  'conv-bn-relu-maxpool-conv-bn-avgpool-linear-softmax',
  'flatten-linear-bn-relu-dropout-softmax',
  'input-bn-sigmoid-raw',
  'matmul-add-bn-relu-two-bn',
  'nobias-bn-m02-eps1e-3-tanh-logsoftmax',
];
const TRAIN_STEPS = 20;
const BATCH = 32;
const TEST_ROWS = 50;

// Three networks between them use every layer type and most batch-norm options; fold: true
// merges the batch norms that follow a dense or conv layer, not the regressor's one on its inputs.
// The CNN's ONNX input is [batch, channels, height, width]: its rows are those images, flat.
const MODELS = {
  classifier: {
    inputSize: 6,
    layers: [
      { type: 'dense', units: 16, useBias: false },
      { type: 'batchNorm' },
      { type: 'relu' },
      { type: 'dense', units: 8 },
      { type: 'batchNorm', momentum: 0.8, epsilon: 1e-3, runningVariance: 'biased' },
      { type: 'tanh' },
      { type: 'dense', units: 3 },
    ],
    optimizer: { type: 'adam', learningRate: 0.05 },
    seed: 3,
  },
  regressor: {
    inputSize: 5,
    loss: 'meanSquaredError',
    layers: [
      { type: 'batchNorm' },
      { type: 'dense', units: 10 },
      { type: 'batchNorm', statistics: 'cumulative' },
      { type: 'sigmoid' },
      { type: 'dense', units: 2 },
    ],
    optimizer: { type: 'sgd', learningRate: 0.1, momentum: 0.9 },
    seed: 4,
  },
  cnn: {
    inputShape: [2, 6, 6],
    layers: [
      { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same', useBias: false },
      { type: 'batchNorm' },
      { type: 'relu' },
      { type: 'maxPool2d', poolSize: 2 },
      { type: 'conv2d', filters: 6, kernelSize: 2 },
      { type: 'batchNorm', momentum: 0.8, epsilon: 1e-3 },
      { type: 'tanh' },
      { type: 'avgPool2d', poolSize: 2 },
      { type: 'dense', units: 3 },
    ],
    optimizer: { type: 'adam', learningRate: 0.05 },
    seed: 5,
  },
};

/** The dimensions of a batch of `rows` inputs in the network's ONNX graph. */
const inputDims = (net, rows) => [rows, ...(net.config.inputShape ?? [net.inputSize])];

/** Rows with per-feature offsets and scales, so the running statistics move far from 0 and 1. */
function inputs(rows, size, seed) {
  const random = rng(seed);
  return Float32Array.from({ length: rows * size }, (_, i) => (random() * 2 - 1) * (1 + (i % size)) + (i % size) * 0.7);
}

/** Labels or targets that depend on the inputs, so training has something to learn. */
function targets(net, x) {
  const n = x.length / net.inputSize;
  if (net.config.loss === 'meanSquaredError') {
    return Float32Array.from({ length: n * net.outputSize }, (_, i) => Math.sin(x[Math.floor(i / net.outputSize) * net.inputSize + (i % net.outputSize)]));
  }
  return Int32Array.from({ length: n }, (_, r) => (x[r * net.inputSize] + x[r * net.inputSize + 1] > 1 ? 2 : x[r * net.inputSize + 2] > 1 ? 1 : 0));
}

const maxAbs = (values) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

function maxDiff(actual, expected) {
  let diff = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= diff)) diff = d; // NaN wins
  }
  return actual.length === expected.length ? diff : Infinity;
}

/** True when every element is within atol + rtol * |expected|. */
const within = (actual, expected, { atol, rtol }) =>
  actual.length === expected.length && expected.every((e, i) => Math.abs(actual[i] - e) <= atol + rtol * Math.abs(e));

async function runOrt(bytes, x, dims) {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const result = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', x, dims) });
    const output = result[session.outputNames[0]];
    return { data: output.data, dims: Array.from(output.dims) };
  } finally {
    await session.release();
  }
}

function addRow(table, cells) {
  const tr = document.createElement('tr');
  for (const [text, cls] of cells) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
  }
  document.querySelector(`#${table} tbody`).append(tr);
}

const fmt = (d) => (Number.isFinite(d) ? d.toExponential(2) : String(d));
const yesNo = (ok) => [ok ? 'yes' : 'NO', ok ? 'yes' : 'no'];

async function exportDirection(result) {
  for (const [name, config] of Object.entries(MODELS)) {
    const net = await createNetwork(config);
    try {
      const x = inputs(BATCH, net.inputSize, 11);
      const y = targets(net, x);
      const losses = [];
      for (let step = 0; step < TRAIN_STEPS; step++) losses.push(net.trainBatch(x, y));
      const runningMean = maxAbs(net.getWeights().filter((t) => t.name === 'runningMean').flatMap((t) => [...t.values]));
      result.training.push({ model: name, steps: net.steps, firstLoss: losses[0], lastLoss: losses.at(-1), runningMean });
      addRow('training', [[name], [config.layers.map((l) => l.type).join(' ')], [String(net.steps), 'num'], [`${losses[0].toFixed(4)} → ${losses.at(-1).toFixed(4)}`, 'num'], [runningMean.toFixed(3), 'num']]);

      // Fresh inputs, not the training batch.
      const test = inputs(TEST_ROWS, net.inputSize, 99);
      const expected = net.predictBatch(test);
      for (const opset of OPSETS) {
        for (const fold of [false, true]) {
          const bytes = net.toONNX({ opset, fold });
          const output = await runOrt(bytes, test, inputDims(net, TEST_ROWS));
          const diff = maxDiff(output.data, expected);
          const dimsOk = output.dims.join() === `${TEST_ROWS},${net.outputSize}`;
          const agree = dimsOk && diff <= EXPORT_TOLERANCE;
          result.export.push({ model: name, opset, fold, bytes: bytes.length, dims: output.dims, diff, agree });
          addRow('export', [[name], [String(opset), 'num'], [String(fold)], [String(bytes.length), 'num'], [fmt(diff), 'num'], [fmt(EXPORT_TOLERANCE), 'num'], yesNo(agree)]);
        }
      }
    } finally {
      net.dispose();
    }
  }
}

async function importDirection(result) {
  const base = new URL('/tests/fixtures/onnx/', location.href);
  const get = async (file) => {
    const response = await fetch(new URL(file, base));
    if (!response.ok) throw new Error(`GET ${file}: HTTP ${response.status}`);
    return response;
  };
  for (const name of FIXTURES) {
    const fixture = await (await get(`${name}.json`)).json();
    const x = Float32Array.from(fixture.x.flat());
    const rows = fixture.x.length;
    const reference = fixture.output.flat();
    // bnwasm's softmax networks output probabilities; the LogSoftmax file outputs their logs.
    const probabilities = fixture.final === 'LogSoftmax' ? reference.map(Math.exp) : reference;
    // Conv fixtures come in two exports each: torch's default (BatchNorm2d folded into the Conv)
    // and TrainingMode.PRESERVE (batchNormKept: the running averages in the file).
    for (const { file, opset, constantFolding, batchNormKept = [] } of fixture.files) {
      if (!FIXTURE_OPSETS.includes(opset)) continue;
      const bytes = new Uint8Array(await (await get(file)).arrayBuffer());
      const net = await importONNX(bytes);
      let actual;
      try {
        actual = net.predictBatch(x);
      } finally {
        net.dispose();
      }
      const output = await runOrt(bytes, x, [rows, ...fixture.inputShape]);
      const bnwasmDiff = maxDiff(actual, probabilities);
      const ortDiff = maxDiff(output.data, reference);
      const agree = within(actual, probabilities, IMPORT_TOLERANCE) && within(output.data, reference, IMPORT_TOLERANCE);
      const kept = batchNormKept.length > 0;
      result.import.push({ fixture: name, opset, constantFolding, batchNormKept: kept, bnwasmDiff, ortDiff, agree });
      addRow('import', [[kept ? `${name} (batch norm kept)` : name], [String(opset), 'num'], [String(constantFolding)], [fmt(bnwasmDiff), 'num'], [fmt(ortDiff), 'num'], ['2e-6 + 1e-5·|ref|'], yesNo(agree)]);
    }
  }
}

const status = document.getElementById('status');
const result = { training: [], export: [], import: [] };
try {
  // One thread: ORT's threads need SharedArrayBuffer, which not every host offers
  // (cross-origin isolation), and these graphs are far too small to gain from them.
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmPaths = '/node_modules/onnxruntime-web/dist/';
  result.env = { ort: ort.env.versions?.web ?? '?', numThreads: ort.env.wasm.numThreads, crossOriginIsolated: globalThis.crossOriginIsolated === true };
  document.getElementById('env').textContent =
    `onnxruntime-web ${result.env.ort}, ${result.env.numThreads} thread; page cross-origin isolated: ${result.env.crossOriginIsolated}`;
  const t0 = performance.now();
  await exportDirection(result);
  const t1 = performance.now();
  await importDirection(result);
  result.seconds = { export: (t1 - t0) / 1000, import: (performance.now() - t1) / 1000 };
  const rows = [...result.export, ...result.import];
  const failed = rows.filter((r) => !r.agree).length;
  status.textContent = failed === 0 ? `All ${rows.length} comparisons agree.` : `${failed} of ${rows.length} comparisons disagree.`;
  status.className = failed === 0 ? 'pass' : 'fail';
} catch (error) {
  // The message first: WebKit's stack of an error thrown inside a wasm module holds frames only.
  result.error = error instanceof Error ? `${error.name}: ${error.message}\n${error.stack}` : `thrown: ${String(error)} (${typeof error})`;
  status.textContent = 'error';
  status.className = 'fail';
  document.getElementById('error').textContent = result.error;
}
document.body.dataset.result = JSON.stringify(result);
