// torchvision's resnet18 and mobilenet_v2 (Debian's python3-torchvision 0.14.1, weights=None,
// num_classes=10, input 3x32x32) in bnwasm, against PyTorch float64:
// - inference through safetensors: the config traced by torch.fx (bnwasm_graph.py) and the
//   state_dict, read by loadSafetensors; probabilities, logits and one image at a time;
// - training steps (SGD with momentum) from the same state, the losses, every tensor (running
//   averages included), the batch counts and the outputs afterwards;
// - export back: toSafetensors() loaded into torchvision's own module with
//   load_state_dict(strict=True), the same outputs, and PyTorch-trained weights read back.
// The references are generated at test time (scripts/pytorch/make_torchvision_fixtures.py, into
// build/torchvision/, checked against tests/fixtures/torchvision.sha256; the first run takes a
// few minutes); its docstring says how each is made.
//
// Tolerances: parity-tolerances.js, the existing fixtures' own, wherever the model allows them.
// The generator holds every case to them the way scripts/make_fixtures.py does: four float32
// PyTorch runs of the same steps (as given, without mkldnn, and with every starting value moved by
// one ulp, two ways) must each use at most 10% of every tolerance, so that float32 rounding alone
// cannot fail this test. The inference checks and the fine-tuning recipe (batch norm frozen:
// PyTorch's eval() on its batch-norm modules, bnwasm's mode 'frozen'), batch 4, learning rate
// 1e-2, 3 steps, pass that at the existing tolerances with room to spare (at most 4.8% used).
//
// Batch norm in training mode is another matter at this size, and for any float32 engine. At
// 3x32x32 the last stages of both networks are 1x1 images, so each batch norm there normalizes B
// values per channel, and channels whose B values nearly agree (|x| / std up to ~20 was measured)
// amplify every rounding error by that ratio, layer after layer. Measured in float64 alone
// (make_torchvision_fixtures.py's functions, reproducible): moving ResNet-18's inputs by 1e-7
// relative moves its weight gradients by 2e-5 of their largest (a 200x amplification); in
// MobileNetV2, moving the weights by 1e-7 moves the loss by 1.1e-5 relative and the last conv's
// gradient by 17%, and float32 PyTorch's depthwise-weight gradients at batch 4 are 1-3% off its
// float64 ones (ReLU6 decisions flip). Trajectories diverge step by step (ResNet-18 at learning
// rate 1e-2: step 3's loss moves 1e-3 relative under a 1e-7 nudge). So:
// - resnet18-batch-b4 keeps batch 4 with learning rate 2e-4 and 2 steps; its float32 runs miss
//   the losses by up to 1.7e-6 relative (17% of rtol 1e-5): loss rtol 3e-5 (the usual 10x
//   margin over what float32 PyTorch does); weights and outputs at the existing tolerances.
// - mobilenet_v2-batch-b32: at batch 4 (and 8, 16; and at 64x64) float32 PyTorch's own weights
//   miss float64's by 15 to 50x the weight tolerance, so no float32 engine can be held to it
//   there. Batch 32, 2 steps, learning rate 2e-4: the float32 runs use up to 4.7x the weight
//   tolerance (one depthwise channel's update 10% off) and 73% of the loss tolerance; weights
//   rtol 5e-3, atolRel 5e-4 and loss rtol 1e-4 keep the 10x margin. It still fails a wrong
//   gradient (the updates are ~2e-4 of weights ~0.2: atol 1e-4) or running average (rtol 5e-3
//   against a 4/3 or 0.9/0.1 mistake). The generator refuses any case over its budget.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeNetwork } from 'bnwasm';
import { loadSafetensors } from 'bnwasm/interop';
import { readSafetensors } from '../../web/src/interop/safetensors.js';
import { torchModule } from '../../web/src/interop/common.js';
import { ensureTorchvisionFixtures } from '../../scripts/pytorch/torchvision-fixtures.mjs';
import { TOLERANCES } from './parity-tolerances.js';

const SCRIPT = new URL('../../scripts/pytorch/safetensors_roundtrip.py', import.meta.url).pathname;
const BASE = { loss: TOLERANCES.loss, weights: TOLERANCES.weights, outputs: TOLERANCES.outputs };
const CASES = {
  'resnet18-frozen-b4': BASE,
  'resnet18-batch-b4': { ...BASE, loss: { rtol: 3e-5, atolRel: 3e-6 } },
  'mobilenet_v2-frozen-b4': BASE,
  'mobilenet_v2-batch-b32': { ...BASE, loss: { rtol: 1e-4, atolRel: 1e-5 }, weights: { rtol: 5e-3, atolRel: 5e-4 } },
};
// The logits (the dense layer's outputs, before the softmax) as the outputs.
const INFERENCE = { outputs: TOLERANCES.outputs, logits: TOLERANCES.outputs };

let dir;
beforeAll(() => {
  dir = ensureTorchvisionFixtures('training');
}, 1_200_000);

const file = (name) => readFileSync(join(dir, name));
const tensorsOf = (bytes) => readSafetensors(bytes, 'test').tensors;
const json = (name) => JSON.parse(readFileSync(join(dir, name), 'utf8'));
const maxAbs = (values) => values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

// The parity table, printed at the end: per row (model or case) and column (what was compared),
// the worst |bnwasm - PyTorch float64| and its share of the tolerance.
const table = new Map();
afterAll(() => {
  const columns = [...new Set([...table.values()].flatMap((r) => [...r.keys()]))];
  const cell = (c) => (c ? `${c.absolute.toExponential(1)} (${(100 * c.share).toFixed(1)}%)` : '');
  console.log(
    `torchvision parity, worst |bnwasm - PyTorch float64| (share of the tolerance):\n${['', ...columns].join(' | ')}\n` +
      [...table].map(([row, r]) => [row, ...columns.map((c) => cell(r.get(c)))].join(' | ')).join('\n'),
  );
});

/**
 * Throws, naming the worst element, when |actual - expected| > atolRel * scale + rtol |expected|
 * anywhere (scale: a number, by default max|expected|, or one per element); records the worst
 * difference and share of the tolerance under table[row][column].
 */
function expectClose(actual, expected, { rtol, atolRel }, { row, column, what, scale = maxAbs(expected) }) {
  if (actual.length !== expected.length) throw new Error(`${what}: ${actual.length} values, expected ${expected.length}`);
  const atolAt = typeof scale === 'number' ? () => atolRel * scale : (i) => atolRel * scale[i];
  let worst = 0;
  let share = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    const s = diff === 0 ? 0 : diff / (atolAt(i) + rtol * Math.abs(expected[i]));
    if (!(s <= share)) {
      share = s;
      at = i;
    }
    worst = Math.max(worst, diff);
  }
  const r = table.get(row) ?? new Map();
  const c = r.get(column) ?? { absolute: 0, share: 0 };
  r.set(column, { absolute: Math.max(c.absolute, worst), share: Math.max(c.share, share) });
  table.set(row, r);
  if (!(share <= 1)) {
    throw new Error(
      `${what}: out of tolerance at index ${at}: expected ${expected[at]}, actual ${actual[at]}, |diff| ${Math.abs(actual[at] - expected[at]).toExponential(3)} ` +
        `> ${(atolAt(at) + rtol * Math.abs(expected[at])).toExponential(3)} (atolRel ${atolRel}, rtol ${rtol}; ${(100 * share).toFixed(0)}% of it)`,
    );
  }
}

/** Every tensor of the network against the state_dict, as pytorch-parity.test.js compares them. */
function expectTensors(net, fixture, state, tolerance, row) {
  const weights = net.getWeights();
  expect(weights.length).toBe(fixture.tensors.flat().length);
  const key = (layer, name) => fixture.tensors[layer].find(([n]) => n === name)[1];
  for (const t of weights) {
    const expected = state.get(key(t.layer, t.name)).values();
    // Running statistics are each feature's own: a variance is scaled by itself, a mean by its
    // feature's spread (pytorch-parity.test.js atolScale).
    let scale;
    if (t.name === 'runningVariance') scale = expected.map(Math.abs);
    else if (t.name === 'runningMean') scale = state.get(key(t.layer, 'runningVariance')).values().map(Math.sqrt);
    expectClose(t.values, expected, tolerance, { row, column: 'weights, statistics', what: `${row}: ${key(t.layer, t.name)}`, scale });
  }
  // num_batches_tracked, as toSafetensors writes them.
  const tracked = [...tensorsOf(net.toSafetensors())].filter(([k]) => k.endsWith('num_batches_tracked'));
  expect(tracked.length).toBeGreaterThan(0);
  for (const [k, t] of tracked) expect({ [k]: t.values()[0] }).toEqual({ [k]: state.get(k).values()[0] });
}

describe.each(['resnet18', 'mobilenet_v2'])('%s', (model) => {
  let fixture;
  let net;
  let x;
  let inference;
  beforeAll(async () => {
    fixture = json(`${model}.json`);
    net = await loadSafetensors(file(`${model}-initial.safetensors`), fixture.config);
    inference = tensorsOf(file(`${model}-inference.safetensors`));
    x = inference.get('x').values();
  }, 120_000);
  afterAll(() => net?.dispose());

  test('the config torch.fx traced: the module paths as layer names, every state_dict key a tensor of the network', async () => {
    const { layers } = await describeNetwork(fixture.config);
    const count = (type) => layers.filter((l) => l.type === type).length;
    const depthwise = fixture.config.layers.filter((l) => l.type === 'conv2d' && l.groups > 1);
    if (model === 'resnet18') {
      expect([count('conv2d'), count('batchNorm'), count('add'), count('maxPool2d'), depthwise.length]).toEqual([20, 20, 8, 1, 0]);
      expect(fixture.config.layers.map((l) => l.name)).toContain('layer4.1.conv2');
    } else {
      expect([count('conv2d'), count('batchNorm'), count('add'), count('relu6'), count('dropout'), depthwise.length]).toEqual([52, 52, 10, 35, 1, 17]);
      expect(depthwise.every((l) => l.groups === l.filters)).toBe(true);
      expect(fixture.config.layers.map((l) => l.name)).toContain('features.17.conv.1.0');
    }
    expect(layers.at(-1).outputShape).toEqual([10]);
    const theirs = [...tensorsOf(file(`${model}-initial.safetensors`)).keys()].sort();
    expect([...tensorsOf(net.toSafetensors()).keys()].sort()).toEqual(theirs);
  });

  test('inference through safetensors: probabilities, logits and one image at a time match PyTorch float64', () => {
    const row = `${model} from safetensors`;
    const probabilities = net.predictBatch(x);
    expectClose(probabilities, inference.get('probabilities').values(), INFERENCE.outputs, { row, column: 'probabilities', what: `${model} predictBatch` });
    const logits = net.activations(x, fixture.config.layers.length - 1);
    expectClose(logits, inference.get('logits').values(), INFERENCE.logits, { row, column: 'logits', what: `${model} logits` });
    const n = x.length / net.inputSize;
    const each = new Float32Array(probabilities.length);
    for (let i = 0; i < n; i++) each.set(net.predict(x.subarray(i * net.inputSize, (i + 1) * net.inputSize)), i * 10);
    expectClose(each, inference.get('probabilities').values(), INFERENCE.outputs, { row, column: 'predict, one image', what: `${model} predict` });
  }, 120_000);

  test("toSafetensors loads into torchvision's module with load_state_dict(strict=True), outputs equal; PyTorch-trained weights load back", async () => {
    const n = x.length / net.inputSize;
    const rows = Array.from({ length: n }, (_, r) => Array.from(x.subarray(r * net.inputSize, (r + 1) * net.inputSize)));
    const tmp = mkdtempSync(join(tmpdir(), 'bnwasm-torchvision-'));
    try {
      writeFileSync(join(tmp, 'model.json'), JSON.stringify(torchModule(net)));
      writeFileSync(join(tmp, 'net.safetensors'), net.toSafetensors());
      writeFileSync(join(tmp, 'x.json'), JSON.stringify(rows));
      const log = execFileSync('/usr/bin/python3', [SCRIPT, join(tmp, 'model.json'), join(tmp, 'net.safetensors'), join(tmp, 'x.json'), tmp, `torchvision:${model}`], {
        encoding: 'utf8',
      });
      expect(log).toMatch(new RegExp(`loaded ${tensorsOf(net.toSafetensors()).size} tensors strictly`));
      const row = `${model} exported back`;
      const torchOut = JSON.parse(readFileSync(join(tmp, 'outputs.json'), 'utf8')).flat();
      expectClose(net.predictBatch(x), torchOut, INFERENCE.outputs, { row, column: 'probabilities', what: `torchvision ${model} with bnwasm's weights` });
      // And back: what PyTorch trained (3 SGD steps in training mode), read by loadSafetensors.
      const back = await loadSafetensors(readFileSync(join(tmp, 'trained.safetensors')), fixture.config);
      try {
        const trainedOut = JSON.parse(readFileSync(join(tmp, 'trained-outputs.json'), 'utf8')).flat();
        expectClose(back.predictBatch(x), trainedOut, INFERENCE.outputs, { row, column: 'PyTorch-trained, read back', what: `bnwasm with ${model}'s PyTorch-trained weights` });
      } finally {
        back.dispose();
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 300_000);
});

describe.each(Object.keys(CASES))('%s: training steps against PyTorch float64', (name) => {
  let fixture;
  let data;
  let net;
  let losses;
  beforeAll(async () => {
    fixture = json(`${name}.json`);
    data = tensorsOf(file(`${name}-data.safetensors`));
    net = await loadSafetensors(file(`${fixture.model}-initial.safetensors`), fixture.config);
    const x = data.get('x').values();
    const y = Int32Array.from(data.get('y').values());
    const m = fixture.batch;
    const size = net.inputSize;
    losses = Array.from({ length: fixture.steps }, (_, s) => net.trainBatch(x.subarray(s * m * size, (s + 1) * m * size), y.subarray(s * m, (s + 1) * m)));
  }, 300_000);
  afterAll(() => net?.dispose());

  test('the generator held float32 PyTorch to these tolerances', () => {
    expect(fixture.tolerances).toEqual(CASES[name]);
    for (const [kind, share] of Object.entries(fixture.float32Shares)) expect({ [kind]: share <= 0.1 }).toEqual({ [kind]: true });
  });

  test('trainBatch returns each step\'s loss', () => {
    expectClose(losses, data.get('losses').values(), CASES[name].loss, { row: name, column: 'losses', what: `${name} losses` });
  });

  test('every tensor after the steps, running averages and batch counts included', () => {
    expectTensors(net, fixture, tensorsOf(file(`${name}-final.safetensors`)), CASES[name].weights, name);
  }, 120_000);

  test('predictBatch afterwards', () => {
    expectClose(net.predictBatch(data.get('x_infer').values()), data.get('probabilities').values(), CASES[name].outputs, { row: name, column: 'probabilities', what: `${name} predictBatch` });
  });
});
