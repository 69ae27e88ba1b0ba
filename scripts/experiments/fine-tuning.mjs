#!/usr/bin/env node
// Batch norm when fine-tuning on a few examples (issue 17, "The experiment the lecture asks
// for"): pretrain the small ResNet on Fashion-MNIST classes 0-4, give it a new head for
// classes 5-9 and fine-tune it on k examples per class, the body frozen or trainable, at
// several mini-batch sizes, with batch norm trained on batch statistics ('batch'), frozen on
// the pretrained running averages ('frozen'), or 'batch' followed by recomputeStatistics over
// the fine-tuning examples (AdaBN). Measures single-example test accuracy on classes 5-9 over
// seeds and writes docs/fine-tuning.{md,svg,csv}.
//
//   npm run experiments:finetune [-- --seeds 1,2,3,4,5 --ks 10,50,200 --batch-sizes 2,4,8,32
//                                    --examples 2500 --test-per-class 500 --pretrain-epochs 4]
//
// The pretrained network is cached in build/experiments/ (keyed by its config and training
// settings): later runs load it instead of training it again.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { createNetwork, loadNetwork } from '../../web/src/index.node.js';
import { fashionMnistResNetConfig, loadFashionMnist } from '../fashion-mnist.mjs';
import { accuracy, pct, rng } from '../../web/demo/experiments/common.js';
import { machine, seconds, writeResults } from './report.mjs';
import { chart, panels, PALETTE } from './svg.mjs';

const { values: args } = parseArgs({
  options: {
    seeds: { type: 'string', default: '1,2,3,4,5' },
    ks: { type: 'string', default: '10,50,200' },
    'batch-sizes': { type: 'string', default: '2,4,8,32' },
    // Fine-tuning examples seen per run (epochs = examples / (5 k)), and test images of each new
    // class (the first in the file; 1000 is all). Scoring 6 networks of a seed and setting on all
    // 5,000 test images took as long as fine-tuning them on a loaded machine; 2,500 images put the
    // standard error of an accuracy near 80% at 0.8 points, below the spread over seeds.
    examples: { type: 'string', default: '2500' },
    'test-per-class': { type: 'string', default: '500' },
    'pretrain-epochs': { type: 'string', default: '4' },
  },
});
const integers = (name) => {
  const list = args[name].split(',').map(Number);
  if (!list.every((v) => Number.isInteger(v) && v > 0)) throw new RangeError(`--${name} must be positive integers separated by commas, got '${args[name]}'`);
  return list;
};
const SEEDS = integers('seeds');
const KS = integers('ks');
const BATCH_SIZES = integers('batch-sizes');
const [EXAMPLES] = integers('examples');
const [TEST_PER_CLASS] = integers('test-per-class');
const [PRETRAIN_EPOCHS] = integers('pretrain-epochs');

const OLD_CLASSES = [0, 1, 2, 3, 4];
const NEW_CLASSES = [5, 6, 7, 8, 9];
// The ResNet's own optimizer (fashionMnistResNetConfig: Adam 1e-2). Fine-tuning at 1e-3 left the
// new head far from trained after the larger batches' few steps (a trial at k = 50: training loss
// 1.8 at batch 32 with the body frozen); 1e-2 was the best of 1e-3, 3e-3 and 1e-2 for both bodies.
const PRETRAIN = { batchSize: 64, learningRate: 1e-2, seed: 1 };
const FINETUNE_LEARNING_RATE = 1e-2;
const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));
const CACHE = fileURLToPath(new URL('../../build/experiments/', import.meta.url));

// The columns: how the body is treated while fine-tuning, and which batch norm it has at test time.
const BODIES = [
  { key: 'frozen', label: 'body frozen', freeze: true },
  { key: 'trainable', label: 'body trainable', freeze: false },
];
const MODES = [
  { key: 'batch', label: "'batch'", color: PALETTE[2] },
  { key: 'frozen', label: "'frozen'", color: PALETTE[0] },
  { key: 'recomputed', label: "'batch' + recomputeStatistics", color: PALETTE[4] },
];

/** The images of `classes` (the first `perClass` of each) with labels renumbered 0, 1, ... in that order. */
function only(data, classes, perClass = Infinity) {
  const rows = [];
  const counts = new Map();
  for (let i = 0; i < data.n; i++) {
    if (!classes.includes(data.y[i])) continue;
    counts.set(data.y[i], (counts.get(data.y[i]) ?? 0) + 1);
    if (counts.get(data.y[i]) <= perClass) rows.push(i);
  }
  const x = new Float32Array(rows.length * 784);
  const y = new Int32Array(rows.length);
  rows.forEach((i, r) => {
    x.set(data.x.subarray(i * 784, (i + 1) * 784), r * 784);
    y[r] = classes.indexOf(data.y[i]);
  });
  return { x, y, n: rows.length };
}

/**
 * k examples of each class of `data` (labels 0..classes-1), drawn by a seeded shuffle of
 * each class; a seed's k = 10 examples are among its k = 50, and those among its k = 200.
 */
function examplesPerClass(data, classes, k, seed) {
  const random = rng(seed);
  const picked = [];
  for (let c = 0; c < classes; c++) {
    const rows = [];
    for (let i = 0; i < data.n; i++) if (data.y[i] === c) rows.push(i);
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [rows[i], rows[j]] = [rows[j], rows[i]];
    }
    picked.push(...rows.slice(0, k));
  }
  const x = new Float32Array(picked.length * 784);
  const y = new Int32Array(picked.length);
  picked.forEach((i, r) => {
    x.set(data.x.subarray(i * 784, (i + 1) * 784), r * 784);
    y[r] = data.y[i];
  });
  return { x, y, n: picked.length };
}

/** The ResNet trained on classes 0-4, from the cache when it was trained with these settings before. */
async function pretrained(train, test) {
  const config = fashionMnistResNetConfig({ seed: PRETRAIN.seed });
  config.layers[config.layers.length - 1].units = OLD_CLASSES.length;
  config.optimizer = { type: 'adam', learningRate: PRETRAIN.learningRate };
  const key = JSON.stringify({ config, epochs: PRETRAIN_EPOCHS, batchSize: PRETRAIN.batchSize, classes: OLD_CLASSES, examples: train.n });
  const file = `${CACHE}fine-tuning-pretrained-${createHash('sha256').update(key).digest('hex').slice(0, 12)}.bnwasm`;
  const started = performance.now();
  let net;
  let cached = existsSync(file);
  if (cached) {
    net = await loadNetwork(readFileSync(file));
  } else {
    net = await createNetwork(config);
    await net.fit(train.x, train.y, {
      epochs: PRETRAIN_EPOCHS,
      batchSize: PRETRAIN.batchSize,
      onEpochEnd: (epoch, logs) => console.log(`  pretraining epoch ${epoch + 1}: loss ${logs.loss.toFixed(4)}`),
    });
    mkdirSync(CACHE, { recursive: true });
    writeFileSync(file, net.save());
  }
  const result = { net, cached, file, accuracy: accuracy(net, test), steps: net.steps, ms: performance.now() - started };
  console.log(`pretrained on classes ${OLD_CLASSES.join(', ')}: ${pct(result.accuracy)} of their test images, ${result.steps} steps (${cached ? `cached, ${file}` : seconds(result.ms)})`);
  return result;
}

/**
 * Single-example accuracy through predictBatch, after checking on the first images that its
 * rows equal predict() bit for bit (so the table's numbers are what predict() would give).
 */
function singleExampleAccuracy(net, test) {
  const rows = 16;
  const batch = net.predictBatch(test.x.subarray(0, rows * 784));
  for (let i = 0; i < rows; i++) {
    const one = net.predict(test.x.subarray(i * 784, (i + 1) * 784));
    one.forEach((v, c) => {
      if (!Object.is(v, batch[i * one.length + c])) throw new Error(`test image ${i}: predict() gives ${v} for class ${c}, predictBatch() ${batch[i * one.length + c]}`);
    });
  }
  return accuracy(net, test);
}

/** Fine-tunes a new head on `task` from `base`, one body setting, both training modes: the three accuracies. */
async function fineTune(base, task, test, { body, batchSize, epochs, seed }) {
  const after = base.config.layers.findIndex((l) => l.type === 'globalAvgPool');
  const head = () =>
    base.replaceHead({
      after,
      layers: [{ type: 'dense', units: NEW_CLASSES.length, name: 'head' }],
      freeze: body.freeze,
      optimizer: { type: 'adam', learningRate: FINETUNE_LEARNING_RATE },
      seed,
    });
  const result = {};
  for (const mode of ['batch', 'frozen']) {
    const net = await head();
    try {
      const history = await net.fit(task.x, task.y, { epochs, batchSize, batchNorm: mode });
      result.steps = history.steps;
      result[`${mode}Loss`] = history.loss.at(-1);
      result[mode] = singleExampleAccuracy(net, test);
      if (mode === 'batch') {
        await net.recomputeStatistics(task.x);
        result.recomputed = singleExampleAccuracy(net, test);
      }
    } finally {
      net.dispose();
    }
  }
  return result;
}

const mean = (v) => v.reduce((a, b) => a + b, 0) / v.length;
/** Sample standard deviation (n - 1); 0 for one value. */
const std = (v) => (v.length < 2 ? 0 : Math.sqrt(v.reduce((a, b) => a + (b - mean(v)) ** 2, 0) / (v.length - 1)));
const cell = (v) => (v.length < 2 ? pct(mean(v)) : `${(100 * mean(v)).toFixed(1)} ± ${(100 * std(v)).toFixed(1)}`);

function table(rows) {
  const columns = BODIES.flatMap((b) => MODES.map((m) => ({ b, m })));
  return [
    `| k | batch | steps | ${columns.map(({ b, m }) => `${b.label}, ${m.label}`).join(' | ')} |`,
    `|---:|---:|---:|${columns.map(() => '---:').join('|')}|`,
    ...rows.map((r) => `| ${r.k} | ${r.batchSize} | ${r.steps} | ${columns.map(({ b, m }) => cell(r.accuracy[b.key][m.key])).join(' | ')} |`),
  ].join('\n');
}

/**
 * Mode against mode on the same runs: the two networks of a (k, batch size, seed) saw the same
 * examples in the same order from the same head, so their difference is the mode's alone.
 */
function pairedTable(runs) {
  const pairs = [['frozen', 'batch'], ['recomputed', 'batch'], ['recomputed', 'frozen']];
  const label = (key) => MODES.find((m) => m.key === key).label;
  const points = (v) => `${v >= 0 ? '+' : ''}${(100 * v).toFixed(1)}`;
  const lines = [];
  for (const b of BODIES) {
    const mine = runs.filter((r) => r.body === b.key);
    for (const [a, c] of pairs) {
      const d = mine.map((r) => r[a] - r[c]);
      lines.push(
        `| ${b.label} | ${label(a)} vs ${label(c)} | ${d.filter((v) => v > 0).length} / ${d.filter((v) => v === 0).length} / ${d.filter((v) => v < 0).length}` +
          ` | ${points(mean(d))} | ${points(Math.min(...d))} to ${points(Math.max(...d))} |`,
      );
    }
  }
  return [
    `| body | A vs B | runs where A is higher / equal / lower (of ${runs.length / BODIES.length}) | mean A - B (points) | range of A - B |`,
    '|---|---|---:|---:|---:|',
    ...lines,
  ].join('\n');
}

/** One panel per k (columns) and body setting (rows): accuracy against batch size, a line per mode, ± 1 std. */
function plot(rows) {
  const values = rows.flatMap((r) => BODIES.flatMap((b) => MODES.flatMap((m) => {
    const v = r.accuracy[b.key][m.key];
    return [mean(v) - std(v), mean(v) + std(v)];
  })));
  const lo = Math.floor(20 * Math.min(...values)) / 20;
  const hi = Math.min(1, Math.ceil(20 * Math.max(...values)) / 20);
  const charts = [];
  for (const b of BODIES) {
    for (const k of KS) {
      const mine = rows.filter((r) => r.k === k);
      charts.push(chart({
        title: `k = ${k} per class, ${b.label}`,
        xLabel: 'fine-tuning mini-batch size',
        yLabel: 'test accuracy, classes 5-9',
        xScale: 'log',
        xDomain: [BATCH_SIZES[0] / 1.25, BATCH_SIZES.at(-1) * 1.25],
        xTicks: BATCH_SIZES,
        yDomain: [lo, hi],
        formatY: (v) => `${Math.round(100 * v)}%`,
        width: 400,
        height: 320,
        legend: false,
        series: MODES.map((m, i) => ({
          name: m.label,
          color: m.color,
          markers: true,
          dx: (i - 1) * 5, // side by side, so the bars do not hide each other
          points: mine.map((r) => [r.batchSize, mean(r.accuracy[b.key][m.key])]),
          errorBars: mine.map((r) => {
            const v = r.accuracy[b.key][m.key];
            return [mean(v) - std(v), mean(v) + std(v)];
          }),
        })),
      }));
    }
  }
  return panels(charts, {
    columns: KS.length,
    title: `Fine-tuning a new head on k examples per class: single-example test accuracy, mean ± 1 std over ${SEEDS.length} seeds`,
    legend: MODES.map((m) => ({ name: `batch norm ${m.label}`, color: m.color, markers: true })),
  });
}

function csv(runs) {
  // The last epoch's mean training loss: 'batch' + recomputeStatistics trained as 'batch' did.
  const head = 'k,batch_size,epochs,steps,seed,body,bn_mode,test_accuracy,last_epoch_loss';
  const loss = (r, m) => r[`${m === 'frozen' ? 'frozen' : 'batch'}Loss`].toFixed(4);
  return [head, ...runs.flatMap((r) => MODES.map((m) => `${r.k},${r.batchSize},${r.epochs},${r.steps},${r.seed},${r.body},${m.key},${r[m.key].toFixed(4)},${loss(r, m.key)}`))].join('\n') + '\n';
}

async function main() {
  const started = performance.now();
  const loadAtStart = loadavg()[0];
  const { train, test } = loadFashionMnist();
  const oldTrain = only(train, OLD_CLASSES);
  const oldTest = only(test, OLD_CLASSES);
  const newTrain = only(train, NEW_CLASSES);
  const newTest = only(test, NEW_CLASSES, TEST_PER_CLASS);
  console.log(`Fashion-MNIST classes ${OLD_CLASSES.join(', ')}: ${oldTrain.n} training images; classes ${NEW_CLASSES.join(', ')}: ${newTrain.n} to draw from, ${newTest.n} test images`);
  const base = await pretrained(oldTrain, oldTest);

  const t1 = performance.now();
  const runs = [];
  const rows = [];
  const clamped = [];
  for (const k of KS) {
    for (const requested of BATCH_SIZES) {
      const row = { k, batchSize: requested, accuracy: {} };
      for (const body of BODIES) {
        row.accuracy[body.key] = Object.fromEntries(MODES.map((m) => [m.key, []]));
        for (const seed of SEEDS) {
          const t = performance.now();
          const task = examplesPerClass(newTrain, NEW_CLASSES.length, k, seed);
          const batchSize = Math.min(requested, task.n);
          if (batchSize !== requested && !clamped.some((c) => c.k === k && c.requested === requested)) clamped.push({ k, requested, batchSize });
          const epochs = Math.max(1, Math.round(EXAMPLES / task.n));
          const r = await fineTune(base.net, task, newTest, { body, batchSize, epochs, seed });
          for (const m of MODES) row.accuracy[body.key][m.key].push(r[m.key]);
          row.steps = r.steps;
          row.epochs = epochs;
          runs.push({ k, batchSize, epochs, seed, body: body.key, ...r });
          console.log(
            `  k ${k}, batch ${batchSize}, ${body.label}, seed ${seed}: ${MODES.map((m) => `${m.label} ${pct(r[m.key])}`).join(', ')}` +
              ` (${epochs} epochs, ${r.steps} steps, loss ${r.batchLoss.toFixed(3)} / ${r.frozenLoss.toFixed(3)}; ${seconds(performance.now() - t)}, ${seconds(performance.now() - started)} so far)`,
          );
        }
      }
      rows.push(row);
    }
  }
  const fineTuning = performance.now() - t1;
  base.net.dispose();

  writeFileSync(`${DOCS}fine-tuning.svg`, plot(rows));
  writeFileSync(`${DOCS}fine-tuning.csv`, csv(runs));
  const total = performance.now() - started;
  const { user, system } = process.cpuUsage();
  const cpu = (user + system) / 1000; // ms, every thread of this process
  const epochsText = KS.map((k) => `${Math.max(1, Math.round(EXAMPLES / (NEW_CLASSES.length * k)))} for k = ${k}`).join(', ');
  const clampText = clamped.length
    ? `Batch sizes larger than the fine-tuning set were clamped to it: ${clamped.map((c) => `k = ${c.k}: ${c.requested} -> ${c.batchSize}`).join('; ')}.`
    : `No batch size was clamped: the smallest fine-tuning set (${NEW_CLASSES.length * Math.min(...KS)} examples) is larger than the largest batch (${Math.max(...BATCH_SIZES)}).`;
  const results = `
Pretrained network: ${pct(base.accuracy)} of the ${oldTest.n.toLocaleString('en-US')} test images of classes ${OLD_CLASSES[0]}-${OLD_CLASSES.at(-1)}
(${base.steps.toLocaleString('en-US')} steps: ${PRETRAIN_EPOCHS} epochs of ${oldTrain.n.toLocaleString('en-US')} images at batch ${PRETRAIN.batchSize}, Adam ${PRETRAIN.learningRate}, seed ${PRETRAIN.seed}).
Fine-tuning: Adam ${FINETUNE_LEARNING_RATE}, about ${EXAMPLES.toLocaleString('en-US')} examples seen per run (epochs: ${epochsText}); "steps" is
the optimizer steps of one run. ${clampText} Each cell is the mean ± the standard deviation (n - 1) over
seeds ${SEEDS.join(', ')} of the accuracy on ${newTest.n.toLocaleString('en-US')} test images of classes ${NEW_CLASSES[0]}-${NEW_CLASSES.at(-1)} (the first ${Math.min(TEST_PER_CLASS, 1000)} of each), each classified on its own.
Every run's numbers: [fine-tuning.csv](fine-tuning.csv).

${table(rows)}

Paired: each (k, batch size, seed) trained its networks on the same examples, in the same order, from the same
new head, so A - B is the difference the batch-norm mode makes on that run.

${pairedTable(runs)}

![Single-example test accuracy against fine-tuning batch size, one panel per k and body setting](fine-tuning.svg)

Run on ${machine()}: pretraining ${base.cached ? 'loaded from the cache' : `took ${seconds(base.ms)}`}, fine-tuning and scoring ${seconds(fineTuning)},
${seconds(total)} in all (including loading the data), ${seconds(cpu)} of CPU time; the machine is shared, its load average was
${loadAtStart.toFixed(1)} at the start and ${loadavg()[0].toFixed(1)} at the end.`;
  writeResults(`${DOCS}fine-tuning.md`, results, (markers) => `# Fine-tuning with batch norm\n\n${markers}\n`);
  console.log(`\n${table(rows)}\n\n${pairedTable(runs)}\n\nwrote docs/fine-tuning.md, docs/fine-tuning.svg and docs/fine-tuning.csv in ${seconds(total)}`);
}

await main();
