// bnwasm <-> safetensors <-> PyTorch. scripts/pytorch/safetensors_roundtrip.py loads
// what toSafetensors() wrote into the matching nn.Sequential with
// load_state_dict(strict=True) and must give predictBatch's outputs; it then trains
// a few steps and saves its state_dict, which loadSafetensors() must read back with
// PyTorch's outputs and num_batches_tracked.
//
// Tolerance for bnwasm (float32) against PyTorch's float64 evaluation of the same
// float32 tensors: |a - e| <= 2e-6 + 1e-5 |e|, the bound explained in
// interop-onnx-import.test.js (same layer sizes and depths here).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNetwork, ModelFormatError } from 'bnwasm';
// The count the core keeps (not public API: the safetensors file is where users see it).
import { batchesTracked } from '../../web/src/network.js';
import { loadSafetensors, toSafetensors } from 'bnwasm/interop';
import { expectClose, gaussian, rng } from './helpers.js';
import { readSafetensors, writeSafetensors } from '../../web/src/interop/safetensors.js';
import { torchModule } from '../../web/src/interop/common.js';

const TOLERANCE = { atol: 2e-6, rtol: 1e-5 };
const SCRIPT = new URL('../../scripts/pytorch/safetensors_roundtrip.py', import.meta.url).pathname;

const config = {
  inputSize: 5,
  layers: [
    { type: 'dense', units: 12 },
    { type: 'batchNorm', momentum: 0.8 },
    { type: 'relu' },
    { type: 'dense', units: 10, useBias: false },
    { type: 'batchNorm', statistics: 'cumulative', epsilon: 1e-3 },
    { type: 'tanh' },
    { type: 'dense', units: 8 },
    { type: 'sigmoid' },
    { type: 'dense', units: 3 },
  ],
  optimizer: { type: 'adam', learningRate: 0.02 },
  seed: 9,
};

function data(n, seed) {
  const normal = gaussian(rng(seed));
  const x = Float32Array.from({ length: n * 5 }, (_, i) => 1.5 * normal() + (i % 5) * 0.4);
  return { x, y: Int32Array.from({ length: n }, (_, i) => i % 3) };
}

const rows = (x, width) => Array.from({ length: x.length / width }, (_, r) => Array.from(x.subarray(r * width, (r + 1) * width)));

test('bnwasm -> safetensors -> PyTorch load_state_dict -> train -> safetensors -> bnwasm', async () => {
  const net = await createNetwork(config);
  const { x, y } = data(24, 1);
  for (let step = 0; step < 7; step++) net.trainBatch(x, y);
  const dir = mkdtempSync(join(tmpdir(), 'bnwasm-st-'));
  try {
    writeFileSync(join(dir, 'model.json'), JSON.stringify(torchModule(net)));
    writeFileSync(join(dir, 'net.safetensors'), net.toSafetensors());
    writeFileSync(join(dir, 'x.json'), JSON.stringify(rows(x, 5)));
    const log = execFileSync('/usr/bin/python3', [SCRIPT, join(dir, 'model.json'), join(dir, 'net.safetensors'), join(dir, 'x.json'), dir], {
      encoding: 'utf8',
    });
    expect(log).toMatch(/loaded 17 tensors strictly, trained 3 steps/);
    const torchOut = JSON.parse(readFileSync(join(dir, 'outputs.json'), 'utf8')).flat();
    const ours = net.predictBatch(x);
    expectClose(ours, torchOut, { ...TOLERANCE, what: 'PyTorch outputs of bnwasm weights' });
    const worstOut = ours.reduce((w, v, i) => Math.max(w, Math.abs(v - torchOut[i])), 0);

    const back = await loadSafetensors(readFileSync(join(dir, 'trained.safetensors')), net.config);
    const trainedOut = JSON.parse(readFileSync(join(dir, 'trained-outputs.json'), 'utf8')).flat();
    expectClose(back.predictBatch(x), trainedOut, { ...TOLERANCE, what: 'bnwasm outputs of PyTorch-trained weights' });
    // num_batches_tracked: 7 steps here, 3 in PyTorch.
    expect([1, 4].map((l) => batchesTracked(back, l))).toEqual([10, 10]);
    let worst = 0;
    const a = back.predictBatch(x);
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - trainedOut[i]));
    console.log(`safetensors <-> PyTorch: worst |bnwasm - PyTorch float64| bnwasm -> PyTorch ${worstOut}, PyTorch (trained) -> bnwasm ${worst}`);
    back.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  net.dispose();
});

test('a round trip in bnwasm is exact, and num_batches_tracked seeds bias correction and the cumulative average', async () => {
  const cfg = {
    inputSize: 5,
    layers: [
      { type: 'dense', units: 8 },
      { type: 'batchNorm', biasCorrection: true, momentum: 0.95 },
      { type: 'relu' },
      { type: 'dense', units: 6 },
      { type: 'batchNorm', statistics: 'cumulative' },
      { type: 'dense', units: 3 },
    ],
    optimizer: { type: 'sgd', learningRate: 0.05 },
  };
  const a = await createNetwork(cfg);
  const { x, y } = data(16, 2);
  for (let step = 0; step < 4; step++) a.trainBatch(x, y);
  const b = await loadSafetensors(toSafetensors(a), a.config);
  expect(b.getWeights()).toEqual(a.getWeights());
  expect([1, 4].map((l) => batchesTracked(b, l))).toEqual([4, 4]);
  // One more step on both: plain SGD keeps no state outside the file, so the
  // running statistics must agree (to the rounding of the uncorrected average,
  // which bnwasm rebuilds from the corrected one).
  const { x: x2, y: y2 } = data(16, 3);
  a.trainBatch(x2, y2);
  b.trainBatch(x2, y2);
  const wa = a.getWeights();
  const wb = b.getWeights();
  for (const [k, t] of wa.entries()) expectClose(wb[k].values, t.values, { rtol: 1e-6, atol: 1e-7, what: `layer ${t.layer} ${t.name}` });
  a.dispose();
  b.dispose();
});

describe('loadSafetensors refuses files that do not match the config', () => {
  let bytes;
  let cfg;
  beforeAll(async () => {
    const net = await createNetwork(config);
    bytes = net.toSafetensors();
    cfg = net.config;
    net.dispose();
  });
  const entries = () => {
    const { tensors } = readSafetensors(bytes, 'test');
    return [...tensors].map(([name, t]) => ({
      name,
      dtype: t.dtype,
      shape: t.shape,
      bytes: t.dtype === 'I64' ? new Uint8Array(new BigInt64Array(t.values().map(BigInt)).buffer) : new Uint8Array(Float32Array.from(t.values()).buffer),
    }));
  };

  test('a different width', async () => {
    const other = { ...cfg, layers: cfg.layers.map((l, i) => (i === 0 ? { ...l, units: 11 } : l)) };
    await expect(loadSafetensors(bytes, other)).rejects.toThrow(/'0.weight' has shape \[12,5\], config.layers\[0\] needs \[11,5\]/);
  });
  test('a missing tensor and an extra one', async () => {
    const missing = writeSafetensors(entries().filter((e) => e.name !== '1.running_var'));
    await expect(loadSafetensors(missing, cfg)).rejects.toThrow(/the file has no '1.running_var' \(layer 1, batchNorm runningVariance\)/);
    const extra = writeSafetensors([...entries(), { name: '9.weight', dtype: 'F32', shape: [1], bytes: new Uint8Array(4) }]);
    await expect(loadSafetensors(extra, cfg)).rejects.toThrow(/tensors the config does not: 9.weight/);
  });
  test('float64 tensors are rounded to float32', async () => {
    const f64 = entries().map((e) => (e.dtype === 'F32' ? { ...e, dtype: 'F64', bytes: new Uint8Array(Float64Array.from(new Float32Array(e.bytes.buffer)).buffer) } : e));
    const net = await loadSafetensors(writeSafetensors(f64), cfg);
    const ref = await loadSafetensors(bytes, cfg);
    expect(net.getWeights()).toEqual(ref.getWeights());
    net.dispose();
    ref.dispose();
  });
  test('float16 tensors are converted exactly', async () => {
    // Values float16 holds exactly, with their bit patterns.
    const HALF = [[0, 0x0000], [0.5, 0x3800], [1, 0x3c00], [-1.25, 0xbd00], [2 ** -20, 0x0010]];
    const f16 = entries().map((e, k) => {
      if (e.dtype !== 'F32') return e;
      const table = e.name.endsWith('running_var') ? HALF.filter(([v]) => v >= 0) : HALF;
      const n = e.bytes.length / 4;
      const pick = (i) => table[(i + k) % table.length];
      const bits = Uint16Array.from({ length: n }, (_, i) => pick(i)[1]);
      return { ...e, dtype: 'F16', bytes: new Uint8Array(bits.buffer), expected: Float32Array.from({ length: n }, (_, i) => pick(i)[0]) };
    });
    const net = await loadSafetensors(writeSafetensors(f16), cfg);
    const byName = new Map(f16.map((e) => [e.name, e.expected]));
    const suffix = { weight: 'weight', bias: 'bias', gamma: 'weight', beta: 'bias', runningMean: 'running_mean', runningVariance: 'running_var' };
    for (const t of net.getWeights()) expect(t.values).toEqual(byName.get(`${t.layer}.${suffix[t.name]}`));
    net.dispose();
  });
  test('a negative running variance or a NaN is the file\'s fault', async () => {
    const bad = entries().map((e) => (e.name === '1.running_var' ? { ...e, bytes: new Uint8Array(new Float32Array(12).fill(-1).buffer) } : e));
    await expect(loadSafetensors(writeSafetensors(bad), cfg)).rejects.toThrow(ModelFormatError);
  });
  // safetensors bytes with this header as it is (writeSafetensors lays tensors end to end).
  const raw = (header, dataBytes) => {
    const json = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(8 + json.length + dataBytes);
    new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
    out.set(json, 8);
    return out;
  };
  const f32 = (start, count) => ({ dtype: 'F32', shape: [count], data_offsets: [start, start + 4 * count] });
  test('data_offsets that overlap, as the reference reader refuses them, naming both tensors', async () => {
    // Two tensors on the same bytes: the real file with running_var aliased onto running_mean
    // (same shape), the data left as it is.
    const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength)));
    expect(header['1.running_var'].shape).toEqual(header['1.running_mean'].shape);
    header['1.running_var'].data_offsets = header['1.running_mean'].data_offsets;
    const [from, to] = header['1.running_mean'].data_offsets;
    const aliased = raw(header, bytes.length - 8 - headerLength);
    await expect(loadSafetensors(aliased, cfg)).rejects.toThrow(ModelFormatError);
    await expect(loadSafetensors(aliased, cfg)).rejects.toThrow(
      `loadSafetensors(): tensors '1.running_mean' [${from}, ${to}) and '1.running_var' [${from}, ${to}) overlap in data_offsets`,
    );
    // Partly overlapping.
    const partly = raw({ a: f32(0, 2), b: f32(4, 2) }, 12);
    await expect(loadSafetensors(partly, cfg)).rejects.toThrow(ModelFormatError);
    await expect(loadSafetensors(partly, cfg)).rejects.toThrow("loadSafetensors(): tensors 'a' [0, 8) and 'b' [4, 12) overlap in data_offsets");
  });
  test('holes in the data: before the first tensor, between two, after the last', async () => {
    const cases = [
      [raw({ a: f32(0, 1), b: f32(8, 1) }, 12), "loadSafetensors(): data bytes [4, 8) between tensors 'a' [0, 4) and 'b' [8, 12) belong to no tensor"],
      [raw({ b: f32(4, 1) }, 8), "loadSafetensors(): data bytes [0, 4) before tensor 'b' [4, 8) belong to no tensor"],
      [raw({ a: f32(0, 1) }, 8), "loadSafetensors(): data bytes [4, 8) after tensor 'a' [0, 4) belong to no tensor"],
    ];
    for (const [file, message] of cases) {
      await expect(loadSafetensors(file, cfg)).rejects.toThrow(ModelFormatError);
      await expect(loadSafetensors(file, cfg)).rejects.toThrow(message);
    }
    // Tensors listed out of offset order but tiling the data are fine (the order is the header's).
    expect([...readSafetensors(raw({ b: f32(4, 1), a: f32(0, 1) }, 8), 'test').tensors.keys()]).toEqual(['b', 'a']);
  });
  test('truncated and corrupt headers', async () => {
    for (const n of [0, 7, 8, 20, bytes.length - 1]) await expect(loadSafetensors(bytes.subarray(0, n), cfg)).rejects.toThrow(ModelFormatError);
    const corrupt = bytes.slice();
    corrupt[10] = 0xff;
    await expect(loadSafetensors(corrupt, cfg)).rejects.toThrow(/not valid UTF-8 JSON/);
  });
});
