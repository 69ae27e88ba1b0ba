#!/usr/bin/env node
// Which mean and variance should batch norm use at test time? Measures test
// accuracy by single-example inference on Fashion-MNIST (issue 6,
// "Measurements") and writes docs/test-time-statistics.{md,svg}.
//
// 1. After 10, 30, 100, 300 and 1000 steps: (a) EMA, (b) bias-corrected EMA,
//    (c) population statistics, (d) cumulative average; momentum 0.9 and 0.99.
//    Running statistics never touch the training forward pass, so every
//    variant follows the same trajectory: one set of networks is trained side
//    by side on the same batches (checked below) and only the statistics differ.
// 2. Mini-batches of 4, 16 and 64, with and without batch renormalization,
//    after the same number of training examples; differences here are of the
//    order of the seed-to-seed spread, so each run is repeated over seeds.
//
//   npm run experiments:statistics [-- --seeds 1,2,3 --examples 64000]
// Part 1 uses the first seed.
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createNetwork, loadNetwork } from '../../web/src/index.node.js';
import { fashionMnistConfig, loadFashionMnist } from '../fashion-mnist.mjs';
import { accuracy, batcher, pct } from '../../web/demo/experiments/common.js';
import { machine, seconds, writeResults } from './report.mjs';
import { lineChart, PALETTE } from './svg.mjs';

const { values: args } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1,2,3' },
    examples: { type: 'string', default: '64000' }, // training examples seen per run in part 2
  },
});
const SEEDS = args.seeds.split(',').map(Number);
const EXAMPLES = Number(args.examples);
const CHECKPOINTS = [10, 30, 100, 300, 1000];
const BATCH_SIZE = 64;
const BATCH_SIZES = [4, 16, 64];
const MOMENTUM = 0.9; // part 2's batch norms
const RENORM = { rMax: 3, dMax: 5 }; // the final values of Ioffe (2017), used from the first step
if (!SEEDS.every(Number.isInteger)) throw new RangeError(`--seeds must be integers separated by commas, got '${args.seeds}'`);
if (!(EXAMPLES > 0 && BATCH_SIZES.every((b) => EXAMPLES % b === 0))) {
  throw new RangeError(`--examples must be a positive multiple of ${BATCH_SIZES.at(-1)}, got '${args.examples}'`);
}
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));

/** The default Fashion-MNIST network with `bn` merged into each batch-norm layer's options. */
function defaultNetwork(bn, seed) {
  const config = fashionMnistConfig({ seed });
  config.layers = config.layers.map((l) => (l.type === 'batchNorm' ? { ...l, ...bn } : l));
  return config;
}

/** Accuracy with population statistics, measured on a copy so `net` keeps its running averages. */
async function populationAccuracy(net, train, test) {
  const copy = await loadNetwork(net.save());
  await copy.recomputeStatistics(train.x, { batchSize: 1024 });
  const a = accuracy(copy, test);
  copy.dispose();
  return a;
}

/** Trainable tensors only: running statistics are meant to differ. */
const trained = (net) => net.getWeights().filter((t) => !t.name.startsWith('running'));

// The statistics of part 1. Population statistics do not depend on momentum,
// nor does the cumulative average: one column each.
const VARIANTS = [
  { key: 'ema90', label: '(a) EMA 0.9', bn: { momentum: 0.9 }, color: PALETTE[0], dash: 'solid' },
  { key: 'ema99', label: '(a) EMA 0.99', bn: { momentum: 0.99 }, color: PALETTE[0], dash: 'dashed' },
  { key: 'bc90', label: '(b) bias-corrected 0.9', bn: { momentum: 0.9, biasCorrection: true }, color: PALETTE[1], dash: 'solid' },
  { key: 'bc99', label: '(b) bias-corrected 0.99', bn: { momentum: 0.99, biasCorrection: true }, color: PALETTE[1], dash: 'dashed' },
  { key: 'population', label: '(c) population', color: PALETTE[4], dash: 'solid' },
  { key: 'cumulative', label: '(d) cumulative', bn: { statistics: 'cumulative' }, color: PALETTE[2], dash: 'solid' },
];

async function statisticsOverSteps(train, test, seed) {
  const trainedVariants = VARIANTS.filter((v) => v.bn);
  const nets = await Promise.all(trainedVariants.map((v) => createNetwork(defaultNetwork(v.bn, seed))));
  const next = batcher(train, BATCH_SIZE, seed);
  const rows = [];
  for (let step = 1; step <= CHECKPOINTS.at(-1); step++) {
    const { x, y } = next();
    const losses = nets.map((net) => net.trainBatch(x, y));
    if (losses.some((l) => l !== losses[0])) {
      throw new Error(`step ${step}: losses differ (${losses}); the variants did not train identically`);
    }
    if (!CHECKPOINTS.includes(step)) continue;
    const row = { step };
    trainedVariants.forEach((v, i) => (row[v.key] = accuracy(nets[i], test)));
    row.population = await populationAccuracy(nets[0], train, test);
    rows.push(row);
    console.log(`  step ${String(step).padStart(4)}: ${VARIANTS.map((v) => `${v.key} ${pct(row[v.key])}`).join('  ')}`);
  }
  // Same batches, same seed: the trainable weights must agree bit for bit.
  const reference = trained(nets[0]);
  for (const net of nets.slice(1)) {
    trained(net).forEach((t, k) => {
      if (!t.values.every((v, j) => v === reference[k].values[j])) throw new Error(`layer ${t.layer} ${t.name} differs between variants`);
    });
  }
  nets.forEach((net) => net.dispose());
  return rows;
}

async function batchSizes(train, test) {
  const rows = [];
  for (const batchSize of BATCH_SIZES) {
    const row = { batchSize, steps: EXAMPLES / batchSize };
    for (const [key, renorm] of [['plain', null], ['renorm', RENORM]]) {
      row[key] = { ema: [], population: [] };
      for (const seed of SEEDS) {
        const started = performance.now();
        const net = await createNetwork(defaultNetwork({ momentum: MOMENTUM, renorm }, seed));
        const next = batcher(train, batchSize, seed);
        for (let step = 0; step < row.steps; step++) {
          const { x, y } = next();
          net.trainBatch(x, y);
        }
        row[key].ema.push(accuracy(net, test));
        row[key].population.push(await populationAccuracy(net, train, test));
        net.dispose();
        const { ema, population } = row[key];
        const took = seconds(performance.now() - started);
        console.log(`  batch ${batchSize}, ${key}, seed ${seed}: EMA ${pct(ema.at(-1))}, population ${pct(population.at(-1))} (${took})`);
      }
    }
    rows.push(row);
  }
  return rows;
}

function stepsTable(rows) {
  const head = `| steps | ${VARIANTS.map((v) => v.label).join(' | ')} |`;
  const rule = `|---:|${VARIANTS.map(() => '---:').join('|')}|`;
  const body = rows.map((r) => `| ${r.step} | ${VARIANTS.map((v) => pct(r[v.key])).join(' | ')} |`);
  return [head, rule, ...body].join('\n');
}

/** "84.2% (82.0-84.5%)": the mean over seeds, and the range. */
function spread(values) {
  const mean = values.reduce((a, b) => a + b) / values.length;
  if (values.length === 1) return pct(mean);
  return `${pct(mean)} (${pct(Math.min(...values)).slice(0, -1)}-${pct(Math.max(...values))})`;
}

function batchTable(rows) {
  return [
    '| batch size | steps | batch norm, EMA | batch norm, population | renorm, EMA | renorm, population |',
    '|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const cells = [r.plain.ema, r.plain.population, r.renorm.ema, r.renorm.population].map(spread);
      return `| ${r.batchSize} | ${r.steps} | ${cells.join(' | ')} |`;
    }),
  ].join('\n');
}

function plot(rows) {
  return lineChart({
    title: 'Test accuracy, single-example inference, by test-time statistics',
    xLabel: `training steps (mini-batches of ${BATCH_SIZE})`,
    yLabel: 'test accuracy',
    xScale: 'log',
    xTicks: CHECKPOINTS,
    formatY: (v) => `${Math.round(100 * v)}%`,
    width: 820,
    height: 440,
    series: VARIANTS.map((v) => ({
      name: v.label,
      color: v.color,
      dash: v.dash,
      markers: true,
      points: rows.map((r) => [r.step, r[v.key]]),
    })),
  });
}

async function main() {
  const started = performance.now();
  const { train, test } = loadFashionMnist();
  console.log(`Fashion-MNIST: ${train.n} training, ${test.n} test images; seeds ${SEEDS.join(', ')}`);

  console.log(`1. test-time statistics over steps (batch ${BATCH_SIZE}, seed ${SEEDS[0]})`);
  const t1 = performance.now();
  const steps = await statisticsOverSteps(train, test, SEEDS[0]);
  const time1 = performance.now() - t1;

  console.log(`2. batch sizes ${BATCH_SIZES.join(', ')}, ${EXAMPLES} training examples each, seeds ${SEEDS.join(', ')}`);
  const t2 = performance.now();
  const sizes = await batchSizes(train, test);
  const time2 = performance.now() - t2;

  writeFileSync(`${DOCS}test-time-statistics.svg`, plot(steps));
  const total = performance.now() - started;
  const results = `
### 1. Accuracy after n steps, by test-time statistics

Mini-batches of ${BATCH_SIZE}, seed ${SEEDS[0]}. Every column is the same trained network (checked: the
trainable weights agree bit for bit); only the mean and variance used at test time differ. Population
statistics: \`recomputeStatistics\` over all ${train.n.toLocaleString('en-US')} training images, on a copy of the network.
Cumulative averages and population statistics do not depend on momentum.

${stepsTable(steps)}

![Test accuracy over training steps for each kind of test-time statistics](test-time-statistics.svg)

### 2. Mini-batch size and batch renormalization

Every run sees ${EXAMPLES.toLocaleString('en-US')} training examples (so ${BATCH_SIZES.map((b) => EXAMPLES / b).join(', ')} steps).
Batch norm momentum ${MOMENTUM}; renorm \`{ rMax: ${RENORM.rMax}, dMax: ${RENORM.dMax} }\` from the first step (no ramp-up). Each
cell is the mean over seeds ${SEEDS.join(', ')}, with the range in brackets.

${batchTable(sizes)}

Run on ${machine()}: part 1 took ${seconds(time1)}, part 2 ${seconds(time2)},
${seconds(total)} in all (including loading the data).`;
  writeResults(`${DOCS}test-time-statistics.md`, results, (markers) => `# Test-time statistics\n\n${markers}\n`);
  console.log(`wrote docs/test-time-statistics.md and docs/test-time-statistics.svg in ${seconds(total)}`);
}

await main();
