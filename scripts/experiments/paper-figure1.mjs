#!/usr/bin/env node
// Reproduces the shape of Ioffe & Szegedy (2015), Figure 1, on Fashion-MNIST
// (issue 6, "The paper's experiment") and writes docs/paper-figure1.md,
// docs/figure1-accuracy.svg and docs/figure1-percentiles.svg. The experiment
// itself, and the preset the demo runs live, are in ./figure1.mjs.
//
//   npm run experiments:figure1 [-- --steps N]
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadFashionMnist } from '../fashion-mnist.mjs';
import { pct, percentile } from '../../web/demo/experiments/common.js';
// The experiment is the demo's browser code: install the Node platform before it loads bnwasm.
import '../../web/src/platform.node.js';
import { FIGURE1_PRESET, runFigure1 } from '../../web/demo/experiments/figure1.js';
import { machine, seconds, writeResults } from './report.mjs';
import { chart, lineChart, panels, PALETTE } from './svg.mjs';

export { FIGURE1_PRESET };

const DOCS = fileURLToPath(new URL('../../docs/', import.meta.url));
const COLORS = { batchNorm: PALETTE[0], plain: PALETTE[2] };

function accuracyPlot(points, preset) {
  return lineChart({
    title: '(a) Test accuracy',
    xLabel: `training steps (mini-batches of ${preset.batchSize})`,
    yLabel: 'test accuracy (single-example inference)',
    formatY: (v) => `${Math.round(100 * v)}%`,
    width: 700,
    height: 420,
    series: preset.networks.map((n) => ({
      name: n.label,
      color: COLORS[n.key],
      points: points.map((p) => [p.step, p.accuracy[n.key]]),
    })),
  });
}

function percentilesPlot(points, preset) {
  // One y range for both panels, so the spread of the two can be compared by eye.
  const all = points.flatMap((p) => preset.networks.flatMap((n) => p.percentiles[n.key]));
  const yDomain = [Math.floor(Math.min(...all)), Math.ceil(Math.max(...all))];
  const dashes = ['dashed', 'solid', 'dotted'];
  const panel = (n, letter) =>
    chart({
      title: `(${letter}) ${n.label}`,
      xLabel: 'training steps',
      yLabel: `input to the sigmoid, unit ${preset.probe.unit} of hidden layer 3`,
      yDomain,
      width: 520,
      height: 400,
      series: preset.probe.percentiles.map((q, k) => ({
        name: `${q}th percentile`,
        color: COLORS[n.key],
        dash: dashes[k % dashes.length],
        points: points.map((p) => [p.step, p.percentiles[n.key][k]]),
      })),
    });
  const plain = preset.networks.find((n) => n.key === 'plain');
  const batchNorm = preset.networks.find((n) => n.key === 'batchNorm');
  return panels([panel(plain, 'b'), panel(batchNorm, 'c')]);
}

function accuracyTable(points, preset) {
  const every = Math.max(1, Math.round(points.length / 8)); // a handful of rows; the plot has the rest
  const rows = points.filter((p, i) => i % every === 0 || i === points.length - 1);
  return [
    `| steps | ${preset.networks.map((n) => n.label).join(' | ')} |`,
    `|---:|${preset.networks.map(() => '---:').join('|')}|`,
    ...rows.map((p) => `| ${p.step} | ${preset.networks.map((n) => pct(p.accuracy[n.key])).join(' | ')} |`),
  ].join('\n');
}

/**
 * How far each percentile of the sigmoid inputs moves over training: per unit,
 * max - min over the measurements from step `from` on; then the median over
 * the units, and the plotted unit's own value.
 */
function drift(points, key, from, unit, field = 'units') {
  const window = points.filter((p) => p.step >= from);
  const units = window[0][field][key];
  const range = (u, k) => {
    const v = window.map((p) => p[field][key][u][k]);
    return Math.max(...v) - Math.min(...v);
  };
  return units[0].map((_, k) => ({
    median: percentile(units.map((_, u) => range(u, k)), 50),
    unit: range(unit, k),
  }));
}

function driftTable(points, preset) {
  const { probe, steps, evaluateEvery } = preset;
  const qs = probe.percentiles.map((q) => `${q}th`);
  const columns = [...qs.map((q) => `${q}: median unit`), ...qs.map((q) => `${q}: unit ${probe.unit}`)];
  const lines = [
    `| network, test-time statistics | steps | ${columns.join(' | ')} |`,
    `|---|---|${qs.map(() => '---:').join('|')}|${qs.map(() => '---:').join('|')}|`,
  ];
  for (const from of [evaluateEvery, steps / 4]) {
    const rows = [
      ['without batch norm', drift(points, 'plain', from, probe.unit)],
      ['with batch norm, running averages', drift(points, 'batchNorm', from, probe.unit)],
      ['with batch norm, population statistics', drift(points, 'batchNorm', from, probe.unit, 'populationUnits')],
    ];
    for (const [label, d] of rows) {
      const cells = [...d.map((c) => c.median), ...d.map((c) => c.unit)].map((v) => v.toFixed(2));
      lines.push(`| ${label} | ${from}-${steps} | ${cells.join(' | ')} |`);
    }
  }
  return lines.join('\n');
}

async function main() {
  const { values: args } = parseArgs({ options: { steps: { type: 'string' } } });
  const preset = structuredClone(FIGURE1_PRESET);
  if (args.steps) preset.steps = Number(args.steps);
  const started = performance.now();
  const data = loadFashionMnist();
  console.log(`${preset.name}: ${preset.steps} steps, mini-batches of ${preset.batchSize}`);
  const points = [];
  for await (const p of runFigure1(data, preset, { population: true })) {
    points.push(p);
    const line = preset.networks.map((n) => {
      const percentiles = p.percentiles[n.key].map((v) => v.toFixed(2)).join(', ');
      return `${n.key} ${pct(p.accuracy[n.key])} [${percentiles}]`;
    });
    console.log(`  step ${String(p.step).padStart(6)}: ${line.join('  ')}`);
  }
  writeFileSync(`${DOCS}figure1-accuracy.svg`, accuracyPlot(points, preset));
  writeFileSync(`${DOCS}figure1-percentiles.svg`, percentilesPlot(points, preset));
  const total = performance.now() - started;
  const [bn, plain] = preset.networks;
  const sgd = bn.config.optimizer;
  const dense = bn.config.layers[0];
  const results = `
Setup: ${preset.description} Learning rate ${sgd.learningRate}, no momentum; initial weights
N(0, ${dense.initStd}^2) in every dense layer, biases 0, gamma 1, beta 0; ${preset.steps.toLocaleString('en-US')} steps
(${((preset.steps * preset.batchSize) / 60000).toFixed(0)} epochs; the paper ran 50,000), both networks on the same
seeded mini-batches. Batch norm: momentum ${bn.config.layers[1].momentum}, epsilon ${bn.config.layers[1].epsilon}; test-time
statistics are the running averages. Measured at step 0 and every ${preset.evaluateEvery} steps: accuracy over the
10,000 test images, one at a time; percentiles over the first ${preset.probe.examples} test images of unit ${preset.probe.unit}'s
input to its sigmoid in the third hidden layer (\`net.activations(x, ${bn.probeLayer})\`, the batch norm's output, with
batch norm; \`net.activations(x, ${plain.probeLayer})\`, the dense layer's output, without).

![Figure 1(a): test accuracy over training, with and without batch norm](figure1-accuracy.svg)

![Figure 1(b, c): 15th, 50th and 85th percentiles of a sigmoid's input over training](figure1-percentiles.svg)

${accuracyTable(points, preset)}

How much the sigmoid's input distribution moves: for each of the 100 units of the third hidden layer, the range
(max - min) over the measurements in the window of its 15th, 50th and 85th percentiles; the median over the units,
and the plotted unit's own. "Population statistics" measures the same trained network with \`recomputeStatistics\`
over the training set on a copy (not plotted).

${driftTable(points, preset)}

Run on ${machine()}: ${seconds(total)} (including loading the data).`;
  const title = "# The paper's experiment: Ioffe & Szegedy (2015), Figure 1";
  writeResults(`${DOCS}paper-figure1.md`, results, (markers) => `${title}\n\n${markers}\n`);
  console.log(`wrote docs/paper-figure1.md, docs/figure1-accuracy.svg, docs/figure1-percentiles.svg in ${seconds(total)}`);
}

// Importing this file (for FIGURE1_PRESET) runs nothing.
if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
