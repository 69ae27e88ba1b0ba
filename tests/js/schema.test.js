// One description of a network: every option's default is written once (CONFIG_DEFAULTS in
// web/src/config.js, FIT_DEFAULTS in web/src/network.js). The places that repeat a default for
// their readers (the .d.ts `@default` tags, the README's bracketed defaults, the core's C++
// structs) must say the same; this test fails on the first that drifts.
import { readFileSync } from 'node:fs';
import { CONFIG_DEFAULTS } from '../../web/src/config.js';
import { FIT_DEFAULTS } from '../../web/src/network.js';

const read = (path) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const types = read('web/src/index.d.ts');
const readme = read('README.md');
const networkH = read('cpp/include/bnwasm/network.h');

// A default as written in a doc ("0.9", "1e-5", "'unbiased'", "true", "null") as a JS value.
// Anything else (an object written in JS syntax) stays text: no default of that kind is compared.
const literal = (text) => {
  try {
    return JSON.parse(text.trim().replace(/^'(.*)'$/, '"$1"'));
  } catch {
    return text;
  }
};

// The `@default` of each property of one interface in index.d.ts.
function typeDefaults(name) {
  const body = types.slice(types.indexOf(`export interface ${name} `)).split('\n}\n')[0];
  const out = {};
  for (const m of body.matchAll(/@default ([^ ]+?)\.? \*\/\n\s+(\w+)\??:|@default ([^\n]+?)\.? [^\n]*\*\/\n\s+(\w+)\??:/g)) {
    out[m[2] ?? m[4]] = m[1] ?? m[3];
  }
  // Multi-line JSDoc blocks: "@default X" on its own line, the property after the closing "*/".
  for (const m of body.matchAll(/@default ([^\s(]+)[^\n]*\n\s+\*\/\n\s+(\w+)\??:/g)) out[m[2]] ??= m[1];
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, literal(v.replace(/\.$/, ''))]));
}

const withoutType = (defaults) => Object.fromEntries(Object.entries(defaults).filter(([k]) => k !== 'type'));

test.each([
  ['DenseLayerConfig', CONFIG_DEFAULTS.dense],
  ['BatchNormLayerConfig', CONFIG_DEFAULTS.batchNorm],
  ['SgdConfig', CONFIG_DEFAULTS.sgd],
  ['AdamConfig', CONFIG_DEFAULTS.adam],
  ['FitOptions', FIT_DEFAULTS],
])('index.d.ts %s says the defaults the code fills in', (name, defaults) => {
  expect(typeDefaults(name)).toEqual(withoutType(defaults));
});

test('index.d.ts NetworkConfig says the network defaults', () => {
  const d = typeDefaults('NetworkConfig');
  expect({ loss: d.loss, seed: d.seed }).toEqual(CONFIG_DEFAULTS.network);
});

// "`name` [value]" and "name [value]" pairs in one README passage.
function readmeDefaults(passage) {
  const out = {};
  for (const m of passage.matchAll(/`?(\w+)`?\s+\[([^\]:;]+?)(?:[:;][^\]]*)?\]/g)) out[m[1]] = literal(m[2]);
  return out;
}

test("the README's batch-norm, optimizer and fit defaults are the code's", () => {
  const bn = readmeDefaults(readme.slice(readme.indexOf('Options per layer'), readme.indexOf('Running mean starts at 0')));
  expect(bn).toEqual({
    momentum: CONFIG_DEFAULTS.batchNorm.momentum,
    epsilon: CONFIG_DEFAULTS.batchNorm.epsilon,
    runningVariance: CONFIG_DEFAULTS.batchNorm.runningVariance,
    statistics: CONFIG_DEFAULTS.batchNorm.statistics,
    biasCorrection: CONFIG_DEFAULTS.batchNorm.biasCorrection,
  });
  const sgd = readme.slice(readme.indexOf("{ type: 'sgd'"));
  expect(readmeDefaults(sgd.slice(0, sgd.indexOf('}')))).toEqual(withoutType(CONFIG_DEFAULTS.sgd));
  const adam = readme.slice(readme.indexOf("{ type: 'adam', learningRate ["));
  expect(readmeDefaults(adam.slice(0, adam.indexOf('}')))).toEqual(withoutType(CONFIG_DEFAULTS.adam));
  const fit = readme.slice(readme.indexOf('`fit` takes'));
  expect(readmeDefaults(fit.slice(0, fit.indexOf('\n-')))).toEqual({
    epochs: FIT_DEFAULTS.epochs,
    batchSize: FIT_DEFAULTS.batchSize,
    shuffle: FIT_DEFAULTS.shuffle,
  });
});

test("the core's LayerSpec and OptimizerSpec defaults are the code's (Adam, the default optimizer)", () => {
  const cpp = (struct, field) => {
    const body = networkH.slice(networkH.indexOf(`struct ${struct} {`)).split('\n};')[0];
    const m = body.match(new RegExp(`\\s${field} = ([^;]+);`));
    return m[1] === 'true' || m[1] === 'false' ? m[1] === 'true' : Number(m[1]);
  };
  expect([cpp('LayerSpec', 'momentum'), cpp('LayerSpec', 'epsilon'), cpp('LayerSpec', 'use_bias'), cpp('LayerSpec', 'init_std')]).toEqual([
    CONFIG_DEFAULTS.batchNorm.momentum,
    CONFIG_DEFAULTS.batchNorm.epsilon,
    CONFIG_DEFAULTS.dense.useBias,
    CONFIG_DEFAULTS.dense.initStd,
  ]);
  expect(cpp('LayerSpec', 'unbiased_variance')).toBe(CONFIG_DEFAULTS.batchNorm.runningVariance === 'unbiased');
  const adam = CONFIG_DEFAULTS.adam;
  expect(['learning_rate', 'beta1', 'beta2', 'epsilon', 'weight_decay'].map((f) => cpp('OptimizerSpec', f))).toEqual([
    adam.learningRate,
    adam.beta1,
    adam.beta2,
    adam.epsilon,
    adam.weightDecay,
  ]);
  expect(cpp('NetworkSpec', 'seed')).toBe(CONFIG_DEFAULTS.network.seed);
});
