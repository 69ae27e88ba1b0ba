// The two single-thread builds (issue 18): a network of dense, batch-norm, activation and merge
// layers runs on bnwasm-dense.wasm, one with a convolution or pooling layer on bnwasm.wasm, and
// a dense network gives the same bits on both (the same code, only the registry's list differs).
// Runs on one thread: the threaded build is the full one and runs every network.
import { readFileSync, readdirSync } from 'node:fs';
import { configure, createNetwork, createTrainer, loadNetwork, loadTrainer, memoryUsage, networkSchema, ModelFormatError } from 'bnwasm';
import { create, lastError } from '../../web/src/core.js';
import { loadModule } from '../../web/src/module.js';
import { Network, buildOf } from '../../web/src/network.js';
import { encodeValue } from '../../web/src/value.js';
import { denseLayerTypes } from '../../web/dist/bnwasm-dense.mjs';
import { blobs } from './helpers.js';

configure({ threads: 1 });

const denseConfig = {
  inputSize: 4,
  layers: [
    { type: 'dense', units: 16, useBias: false },
    { type: 'batchNorm' },
    { type: 'relu' },
    { type: 'dense', units: 8, name: 'a' },
    { type: 'tanh', name: 'b' },
    { type: 'add', inputs: ['a', 'b'] },
    { type: 'dropout', rate: 0.25 },
    { type: 'dense', units: 3 },
  ],
  optimizer: { type: 'adam', learningRate: 0.01 },
  seed: 11,
};
const convConfig = {
  inputShape: [1, 6, 6],
  layers: [
    { type: 'conv2d', filters: 4, kernelSize: 3, padding: 'same' },
    { type: 'batchNorm' },
    { type: 'relu' },
    { type: 'maxPool2d', poolSize: 2 },
    { type: 'flatten' },
    { type: 'dense', units: 3 },
  ],
  seed: 3,
};
const poolOnly = { inputShape: [2, 4, 4], layers: [{ type: 'globalAvgPool' }, { type: 'dense', units: 3 }], seed: 1 };

/** A network of `config` on the module of `build`, whatever its layers (the facade would pick). */
async function networkOn(build, config) {
  const mod = await loadModule(build);
  const handle = create(mod, encodeValue(config));
  if (handle === null) throw new Error(JSON.stringify(lastError(mod)));
  return new Network(mod, handle);
}

const sameBits = (a, b) => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

test('a dense network runs on the dense build, one with a convolution or pooling layer on the full one', async () => {
  const dense = await createNetwork(denseConfig);
  const conv = await createNetwork(convConfig);
  const pool = await createNetwork(poolOnly);
  expect([buildOf(dense), buildOf(conv), buildOf(pool)]).toEqual(['dense', 'full', 'full']);
  for (const net of [dense, conv, pool]) net.dispose();
});

test('the dense build lists what the full one has but its convolution and pooling types', async () => {
  const full = (await networkSchema()).layers.map((l) => l.type); // the full build's registry
  expect(full).toEqual(expect.arrayContaining(denseLayerTypes));
  const left = full.filter((t) => !denseLayerTypes.includes(t));
  expect(left.sort()).toEqual(['avgPool2d', 'conv2d', 'globalAvgPool', 'globalMaxPool', 'maxPool2d']);
  // Each is refused by the dense core itself with an error that names it (the facade never
  // sends it there: this is its guard).
  const mod = await loadModule('dense');
  for (const type of left) {
    expect(create(mod, encodeValue({ inputShape: [1, 4, 4], layers: [{ type }] }))).toBeNull();
    expect(lastError(mod).message).toBe(`type '${type}' is not in this build of bnwasm (the dense build has no convolution or pooling layers)`);
  }
});

test('a dense network gives the same bits on both builds: weights, outputs and saved bytes after training', async () => {
  const { x, y } = blobs(96, 4, 5);
  const nets = [await networkOn('dense', denseConfig), await networkOn('full', denseConfig)];
  expect(nets.map(buildOf)).toEqual(['dense', 'full']);
  for (const net of nets) {
    for (let step = 0; step < 5; step++) net.trainBatch(x.subarray(step * 16 * 4, (step + 1) * 16 * 4), y.subarray(step * 16, (step + 1) * 16));
    await net.fit(x, y, { epochs: 2, batchSize: 16 });
  }
  const [a, b] = nets;
  const wa = a.getWeights();
  const wb = b.getWeights();
  expect(wa.length).toBe(wb.length);
  wa.forEach((t, i) => expect(sameBits(t.values, wb[i].values)).toBe(true));
  expect(sameBits(a.predictBatch(x), b.predictBatch(x))).toBe(true);
  expect(sameBits(a.predict(x.subarray(0, 4)), b.predict(x.subarray(0, 4)))).toBe(true);
  expect(sameBits(a.save(), b.save())).toBe(true);
  // The same model bytes load on either build: loadNetwork picks the dense one.
  const loaded = await loadNetwork(b.save());
  expect(buildOf(loaded)).toBe('dense');
  expect(sameBits(loaded.predictBatch(x), b.predictBatch(x))).toBe(true);
  for (const net of [...nets, loaded]) net.dispose();
});

test('loadNetwork and loadTrainer pick the build a saved model needs', async () => {
  const conv = await createNetwork(convConfig);
  const dense = await createNetwork(denseConfig);
  const convBytes = conv.save();
  const denseBytes = dense.save();
  expect(buildOf(await loadNetwork(convBytes))).toBe('full');
  expect(buildOf(await loadNetwork(denseBytes))).toBe('dense');
  const trainers = [await loadTrainer(convBytes), await loadTrainer(denseBytes), await createTrainer(convConfig), await createTrainer(denseConfig)];
  try {
    expect(trainers.map((t) => t._build)).toEqual(['full', 'dense', 'full', 'dense']);
    // The worker's snapshot comes back to this thread on the build its layers need.
    const snapshots = [await trainers[0].snapshot(), await trainers[1].snapshot()];
    expect(snapshots.map(buildOf)).toEqual(['full', 'dense']);
    for (const s of snapshots) s.dispose();
  } finally {
    for (const t of trainers) t.terminate();
  }
  conv.dispose();
  dense.dispose();
});

test('model files of formats 1 and 2 load on the full build (the dense one reads format 3 only)', async () => {
  const dir = new URL('../fixtures/models/', import.meta.url);
  const files = readdirSync(dir).filter((f) => /^format[12]-.*\.bnwasm$/.test(f));
  expect(files.length).toBeGreaterThan(1);
  const denseMod = await loadModule('dense');
  for (const file of files) {
    const bytes = readFileSync(new URL(file, dir));
    const net = await loadNetwork(bytes);
    expect(buildOf(net)).toBe('full');
    net.dispose();
    // The dense core refuses them itself, naming the build that reads them.
    const p = denseMod._bn_arg(bytes.length);
    denseMod.HEAPU8.set(bytes, p);
    expect(denseMod._bn_load(bytes.length)).toBe(0);
    expect(lastError(denseMod).message).toMatch(/^model format version [12] is read by the full build of bnwasm$/);
  }
});

test('bytes the facade cannot read go to the full build, which reports them as before', async () => {
  const dense = await createNetwork(denseConfig);
  const bytes = dense.save();
  dense.dispose();
  const damaged = bytes.slice();
  damaged[20] ^= 0xff; // inside the stored config: the checksum no longer matches
  await expect(loadNetwork(damaged)).rejects.toThrow(/checksum mismatch/);
  await expect(loadNetwork(bytes.subarray(0, 10))).rejects.toBeInstanceOf(ModelFormatError);
  await expect(loadNetwork(new Uint8Array(40))).rejects.toThrow(/not a bnwasm model/);
  // A config with a type no build has: the full build's message, listing every type.
  await expect(createNetwork({ inputSize: 2, layers: [{ type: 'conv3d' }] })).rejects.toThrow(/must be one of .*'conv2d'/);
});

test('networks on both builds are freed: allocations and live networks back where they were', async () => {
  await loadModule('dense');
  await loadModule('full');
  const before = await memoryUsage();
  for (let i = 0; i < 20; i++) {
    const a = await createNetwork(denseConfig);
    const b = await createNetwork(convConfig);
    const c = await loadNetwork(b.save());
    for (const net of [a, b, c]) net.dispose();
  }
  const after = await memoryUsage();
  expect(after.allocatedBytes).toBe(before.allocatedBytes);
  expect(after.liveNetworks).toBe(before.liveNetworks);
});
