#!/usr/bin/env node
// Before and after in one run: bnwasm's rows of the benchmark (bench/run-engine.mjs) for this
// checkout and for another build, interleaved round by round, each in a fresh Node process,
// so the drift of a shared machine hits both alike. Prints the medians, wall-clock and per
// CPU-second, and the ratio after / before.
//   node scripts/bench-ab.mjs /path/to/other/checkout [--rounds 7] [--model mlp|cnn|all] [--quick] [--engine bnwasm-1t]
// The other checkout must be built (its web/dist); only its library is swapped in
// (BNWASM_ENTRY), the models and the harness are this checkout's.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '7' },
    model: { type: 'string', default: 'all' },
    quick: { type: 'boolean', default: false },
    // This checkout's engine (bench/run-engine.mjs): bnwasm-1t compares one thread with a build
    // from before threads existed.
    engine: { type: 'string', default: 'bnwasm' },
  },
});
const other = positionals[0] && resolve(positionals[0]);
const entry = other && join(other, 'web/src/index.node.js');
if (!entry || !existsSync(join(other, 'web/dist/bnwasm.wasm'))) {
  throw new Error('usage: node scripts/bench-ab.mjs /path/to/other/built/checkout [--rounds N] [--model mlp|cnn|all]');
}
const rounds = Number(args.rounds);
const models = args.model === 'all' ? ['mlp', 'cnn'] : [args.model];
const median = (a) => {
  const s = a.filter(Number.isFinite).sort((p, q) => p - q);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const loads = [];
for (const model of models) {
  const samples = { before: [], after: [] };
  for (let r = 0; r < rounds; r++) {
    loads.push(loadavg()[0]);
    for (const side of r % 2 ? ['after', 'before'] : ['before', 'after']) {
      process.stderr.write(`bench-ab: ${model} round ${r + 1}/${rounds}: ${side}\n`);
      const env = { ...process.env, ...(side === 'before' ? { BNWASM_ENTRY: entry } : {}) };
      const argv = ['bench/run-engine.mjs', side === 'after' ? args.engine : 'bnwasm', '--model', model, ...(args.quick ? ['--quick'] : [])];
      const child = spawnSync('node', argv, { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'inherit'] });
      if (child.status !== 0) throw new Error(`bench/run-engine.mjs exited with ${child.status}`);
      samples[side].push(JSON.parse(child.stdout.trim().split('\n').pop()));
    }
  }
  const metrics = model === 'cnn' ? ['train64', 'predictOneUs', 'batchPredict'] : ['train64', 'train256', 'predictOneUs', 'batchPredict'];
  const lines = [`${model}: medians of ${rounds} interleaved rounds (before: ${other})`, '| metric | before | after | after / before |', '|---|---:|---:|---:|'];
  for (const m of metrics) {
    for (const cpu of m === 'predictOneUs' ? [false] : [false, true]) {
      const get = (s) => (cpu ? s.cpu[m] : s[m]);
      const b = median(samples.before.map(get));
      const a = median(samples.after.map(get));
      // For a time (predictOneUs) lower is better: the ratio is still after / before.
      const name = `${m}${cpu ? ' per CPU-second' : ''}${m === 'predictOneUs' ? ' (us, p50)' : ' (examples/s)'}`;
      lines.push(`| ${name} | ${b.toFixed(m === 'predictOneUs' ? 1 : 0)} | ${a.toFixed(m === 'predictOneUs' ? 1 : 0)} | ${(a / b).toFixed(3)} |`);
    }
  }
  console.log(lines.join('\n'));
}
console.log(`1-minute load average ${loads.map((l) => l.toFixed(1)).join(', ')}`);
