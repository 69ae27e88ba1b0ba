// One description of a network: every layer type, its options, defaults and ranges are one
// registry entry in the core (cpp/src/ops/), which networkSchema() returns. The README's list
// of layers and options and the config types (web/src/schema.d.ts) are written from it by
// scripts/docs/options.mjs; this test fails when either is out of date, or when the core fills
// in defaults other than the ones its schema says. fit's options are JS's own: FIT_DEFAULTS in
// web/src/network.js, repeated in index.d.ts and the README.
import { readFileSync } from 'node:fs';
import { describeNetwork, networkSchema } from 'bnwasm';
import { FIT_DEFAULTS } from '../../web/src/network.js';
import { README, TYPES, renderReadme, renderTypes, withReadmeRegion } from '../../scripts/docs/options.mjs';

const read = (path) => readFileSync(path, 'utf8');
let schema;
beforeAll(async () => {
  schema = await networkSchema();
});

test("the README's layers and options are written from the core's registry (node scripts/docs/options.mjs)", () => {
  const readme = read(README);
  expect(readme).toBe(withReadmeRegion(readme, renderReadme(schema)));
});

test('web/src/schema.d.ts is written from the core\'s registry (node scripts/docs/options.mjs)', () => {
  expect(read(TYPES)).toBe(renderTypes(schema));
});

test('every layer type and option is in the schema, with a default or marked required', () => {
  const types = schema.layers.map((l) => l.type);
  expect(types).toEqual(expect.arrayContaining(['dense', 'batchNorm', 'relu', 'conv2d', 'maxPool2d', 'add']));
  for (const layer of schema.layers) {
    expect(layer.doc.length).toBeGreaterThan(10);
    for (const o of layer.options) {
      expect(o.doc.length).toBeGreaterThan(5);
      expect(['int', 'number', 'bool', 'enum', 'size', 'padding', 'record']).toContain(o.kind);
    }
  }
});

// The smallest config of each layer type: its required options only.
const REQUIRED = { units: 3, filters: 2, kernelSize: 1, poolSize: 1 };

test.each(['dense', 'batchNorm', 'relu', 'sigmoid', 'tanh', 'conv2d', 'maxPool2d', 'avgPool2d', 'globalAvgPool', 'flatten'])(
  '%s: the config the core fills in has the schema\'s defaults',
  async (type) => {
    const entry = schema.layers.find((l) => l.type === type);
    const layer = { type };
    for (const o of entry.options) if (!('default' in o) && !o.defaultFrom) layer[o.name] = REQUIRED[o.name];
    const { config } = await describeNetwork({ inputShape: [2, 3, 3], layers: [layer, { type: 'flatten' }, { type: 'dense', units: 2 }] });
    for (const o of entry.options) {
      const filled = config.layers[0][o.name];
      if ('default' in o) expect([o.name, filled]).toEqual([o.name, o.default]);
      else if (o.defaultFrom) expect([o.name, filled]).toEqual([o.name, config.layers[0][o.defaultFrom]]);
    }
  },
);

test("the optimizers' and the network's defaults are the ones the core fills in", async () => {
  for (const optimizer of schema.optimizers) {
    const { config } = await describeNetwork({ inputSize: 2, layers: [{ type: 'dense', units: 2 }], optimizer: { type: optimizer.type } });
    for (const o of optimizer.options) expect([o.name, config.optimizer[o.name]]).toEqual([o.name, o.default]);
  }
  const { config } = await describeNetwork({ inputSize: 2, layers: [{ type: 'dense', units: 2 }] });
  for (const o of schema.network) expect([o.name, config[o.name]]).toEqual([o.name, o.default]);
});

// ---- fit's options (JS's own) ----------------------------------------------------------

const types = read(new URL('../../web/src/index.d.ts', import.meta.url));
const readme = read(README);

// A default as written in a doc ("0.9", "'unbiased'", "true") as a JS value.
const literal = (text) => {
  try {
    return JSON.parse(text.trim().replace(/^'(.*)'$/, '"$1"'));
  } catch {
    return text;
  }
};

test('index.d.ts FitOptions says the defaults fit fills in', () => {
  const body = types.slice(types.indexOf('export interface FitOptions ')).split('\n}\n')[0];
  const out = {};
  for (const m of body.matchAll(/@default ([^ ]+?)\.? \*\/\n\s+(\w+)\??:|@default ([^\n]+?)\.? [^\n]*\*\/\n\s+(\w+)\??:/g)) {
    out[m[2] ?? m[4]] = literal((m[1] ?? m[3]).replace(/\.$/, ''));
  }
  expect(out).toEqual(FIT_DEFAULTS);
});

test("the README's fit defaults are fit's", () => {
  const fit = readme.slice(readme.indexOf('`fit` takes'));
  const passage = fit.slice(0, fit.indexOf('\n-'));
  const out = {};
  for (const m of passage.matchAll(/`?(\w+)`?\s+\[([^\]:;]+?)(?:[:;][^\]]*)?\]/g)) out[m[1]] = literal(m[2]);
  expect(out).toEqual({ epochs: FIT_DEFAULTS.epochs, batchSize: FIT_DEFAULTS.batchSize, shuffle: FIT_DEFAULTS.shuffle });
});
