// Model files written by bnwasm 0.1, one per file format (tests/fixtures/models, made by
// scripts/fixtures/legacy-models.sh with the commit that wrote each format), still load:
// the same weights and running statistics, the same predictions bit for bit, and training
// goes on from them. Saved again, they load back in today's format unchanged.
import { readFileSync, readdirSync } from 'node:fs';
import { loadNetwork } from 'bnwasm';
import { bytesEqual } from './helpers.js';

const dir = new URL('../fixtures/models/', import.meta.url);
const fixtures = readdirSync(dir).filter((f) => f.endsWith('.bnwasm')).sort();

test('there is a fixture of each earlier format', () => {
  expect(fixtures.map((f) => f.split('-')[0])).toEqual(expect.arrayContaining(['format1', 'format2']));
});

describe.each(fixtures)('%s', (file) => {
  const bytes = readFileSync(new URL(file, dir));
  const expected = JSON.parse(readFileSync(new URL(file.replace('.bnwasm', '.json'), dir), 'utf8'));

  test('loads with its config, steps and tensors as they were saved', async () => {
    expect(bytes.readUInt32LE(4)).toBe(expected.format);
    const net = await loadNetwork(bytes);
    expect(net.config).toMatchObject(expected.config);
    expect(net.steps).toBe(expected.steps);
    const weights = net.getWeights().map((t) => ({ layer: t.layer, name: t.name, shape: t.shape, values: Array.from(t.values) }));
    expect(weights).toEqual(expected.weights);
    net.dispose();
  });

  test('predicts what the build that saved it predicted, bit for bit', async () => {
    const net = await loadNetwork(bytes);
    // float32 values of that build, stored as JSON numbers (exact: each is a float32).
    expect(Array.from(net.predictBatch(Float32Array.from(expected.probe)))).toEqual(expected.predictions);
    net.dispose();
  });

  test('trains on, and saves in the current format, which loads back the same', async () => {
    const net = await loadNetwork(bytes);
    const n = 4;
    const x = Float32Array.from(expected.probe).subarray(0, n * net.inputSize);
    const y = Int32Array.from({ length: n }, (_, i) => i % net.outputSize);
    const loss = net.trainBatch(x, y);
    expect(Number.isFinite(loss)).toBe(true);
    expect(net.steps).toBe(expected.steps + 1);
    const saved = net.save();
    const back = await loadNetwork(saved);
    expect(bytesEqual(back.save(), saved)).toBe(true);
    expect(Array.from(back.predictBatch(x))).toEqual(Array.from(net.predictBatch(x)));
    net.dispose();
    back.dispose();
  });
});
