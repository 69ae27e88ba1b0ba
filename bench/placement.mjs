#!/usr/bin/env node
// The pool against two copies that share nothing, against the distance between the CPUs, in the
// same seconds. Each cycle times short blocks of dense training at batch 64:
//   - one process on the threaded module, at 1 thread and at 2 (the pool), on CPUs 0 and 1;
//   - two single-thread processes pinned to CPU 0 and CPU 1, each alone, then both at once;
//   - bench/native/pingpong, just before and just after the pool's blocks: a cache line's round
//     trip between CPU 0 and CPU 1, and the time one takes to read 256 KB the other just wrote.
// A virtual machine's CPUs can sit near each other (a shared cache) in one minute and far apart
// in the next; two copies do not notice, a pool that hands buffers between its threads does.
// Prints a line per cycle, then the medians by round trip, and writes
// bench/results/placement-<time>.json.
//   node bench/placement.mjs [--cycles 60] [--block-ms 300]
// Needs two CPUs, taskset (util-linux) and a C compiler (cc); builds build/bench/pingpong.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median, NEAR_NS } from './report.mjs';
import { batchSteps, canPin, cpuDistance, quietPoolStopWarning, threadedPool, warmUp } from './timing.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SELF = fileURLToPath(import.meta.url);
const { values: args } = parseArgs({
  options: {
    cycles: { type: 'string', default: '60' },
    'block-ms': { type: 'string', default: '300' },
    block: { type: 'string' }, // internal: run as a block process ('pool' or 'copy')
  },
});
const BATCH = 64;

if (args.block) await blockProcess(args.block);
else await drive(Number(args.cycles), Number(args['block-ms']));

// A process that trains on command: each stdin line "THREADS MS" runs MS ms of steps (after two
// untimed ones) and prints {rate} in examples/s. 'pool' switches the threaded module's count;
// 'copy' is the single-thread build (configure({ threads: 1 })).
async function blockProcess(kind) {
  quietPoolStopWarning(); // the pool is stopped and restarted from Node's main thread
  const { loadFashionMnist } = await import('../scripts/fashion-mnist.mjs');
  const { MLP_CONFIG } = await import('./model.mjs');
  const { configure, createNetwork } = await import('../web/src/index.node.js');
  let setThreads = () => {};
  if (kind === 'copy') configure({ threads: 1 });
  else ({ setThreads } = await threadedPool('the pool'));
  const { train } = loadFashionMnist({ trainLimit: 4096, testLimit: 1 });
  const net = await createNetwork(MLP_CONFIG);
  const trainStep = batchSteps(net, train, BATCH);
  let at = 0;
  const step = () => trainStep(at++);
  await warmUp(step);
  console.log(JSON.stringify({ ready: kind }));
  for await (const line of createInterface({ input: process.stdin })) {
    const [threads, ms] = line.trim().split(/\s+/).map(Number);
    setThreads(threads);
    step();
    step();
    const t0 = performance.now();
    let steps = 0;
    while (performance.now() - t0 < ms) {
      step();
      steps++;
    }
    console.log(JSON.stringify({ rate: (steps * BATCH) / ((performance.now() - t0) / 1000) }));
  }
  net.dispose();
}

// One block process, driven line by line.
function blockRunner(command, kind) {
  const child = spawn(command[0], [...command.slice(1), SELF, '--block', kind], { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] });
  const replies = [];
  let waiting = null;
  createInterface({ input: child.stdout }).on('line', (line) => {
    const reply = JSON.parse(line);
    if (waiting) {
      waiting(reply);
      waiting = null;
    } else replies.push(reply);
  });
  const next = () => (replies.length ? Promise.resolve(replies.shift()) : new Promise((resolve) => (waiting = resolve)));
  return {
    ready: next,
    run: async (threads, ms) => {
      child.stdin.write(`${threads} ${ms}\n`);
      return (await next()).rate;
    },
    stop: () => child.kill(),
  };
}

async function drive(cycles, ms) {
  // CPUs 0 and 1 only, whatever the machine has: the pool, the copies and the probe all use them.
  if (availableParallelism() < 2) throw new Error('bench/placement.mjs needs two CPUs');
  const threads = 2;
  if (!canPin()) throw new Error('bench/placement.mjs needs taskset (Debian: util-linux)');
  const pingpong = () => {
    const d = cpuDistance();
    if (d === undefined) throw new Error('bench/placement.mjs needs a C compiler (cc) for bench/native/pingpong.c, and CPUs 0 and 1');
    return d;
  };
  pingpong();
  const pool = blockRunner(['taskset', '-c', '0,1', process.execPath], 'pool');
  const copies = [0, 1].map((cpu) => blockRunner(['taskset', '-c', String(cpu), process.execPath], 'copy'));
  await Promise.all([pool.ready(), ...copies.map((c) => c.ready())]);
  const rows = [];
  for (let i = 0; i < cycles; i++) {
    const time = new Date().toISOString().slice(11, 19);
    // The distance is measured on either side of the pool's blocks; a cycle counts as near or far
    // only when both agree.
    const before = pingpong();
    const r = { time };
    // The pool's two blocks alternate which goes first, so a drift over the cycle favours neither.
    for (const n of i % 2 ? [threads, 1] : [1, threads]) r[n === 1 ? 'pool1' : 'poolAll'] = await pool.run(n, ms);
    const after = pingpong();
    r.roundTripNs = Math.max(before.roundTripNs, after.roundTripNs);
    r.nearBefore = before.roundTripNs < NEAR_NS;
    r.nearAfter = after.roundTripNs < NEAR_NS;
    r.handoffUs = Math.max(before.handoffUs, after.handoffUs);
    r.cpu0 = await copies[0].run(1, ms);
    r.cpu1 = await copies[1].run(1, ms);
    const both = await Promise.all(copies.map((c) => c.run(1, ms)));
    r.together = both[0] + both[1];
    r.poolRatio = r.poolAll / r.pool1;
    r.copiesRatio = r.together / Math.max(r.cpu0, r.cpu1);
    rows.push(r);
    const f = (x) => Math.round(x).toLocaleString('en-US');
    console.log(
      `${time}  round trip ${f(before.roundTripNs)} / ${f(after.roundTripNs)} ns, 256 KB handoff ${r.handoffUs.toFixed(1)} us | pool ${f(r.pool1)} -> ${f(r.poolAll)}: ` +
        `${r.poolRatio.toFixed(3)}x | copies alone ${f(r.cpu0)}, ${f(r.cpu1)}; together ${f(r.together)}: ${r.copiesRatio.toFixed(3)}x`,
    );
  }
  pool.stop();
  copies.forEach((c) => c.stop());
  // Medians of the cycles whose CPUs were near (a shared cache) and far on both sides of the pool's
  // blocks, among cycles whose CPUs ran at the same speed (within 10%): a slowed CPU lowers both
  // ratio columns. The round trip and handoff columns are the larger of the two measurements.
  console.log(`\ndense training at batch 64, ${cycles} cycles of ${ms} ms blocks, ${threads} threads against 1; medians:`);
  console.log('| CPUs | cycles | round trip (ns) | 256 KB handoff (us) | pool, 1 thread | pool, 2 threads | pool ratio | two copies ratio |');
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  const equal = (r) => Math.min(r.cpu0, r.cpu1) / Math.max(r.cpu0, r.cpu1) >= 0.9;
  const groups = [
    ['near, equal speed', rows.filter((r) => equal(r) && r.nearBefore && r.nearAfter)],
    ['far, equal speed', rows.filter((r) => equal(r) && !r.nearBefore && !r.nearAfter)],
    ['moved during the blocks, equal speed', rows.filter((r) => equal(r) && r.nearBefore !== r.nearAfter)],
    ['one CPU slower by 10% or more', rows.filter((r) => !equal(r))],
  ];
  const summary = {};
  for (const [name, list] of groups) {
    if (list.length === 0) continue;
    const m = (k) => median(list.map((r) => r[k]));
    summary[name] = { cycles: list.length, roundTripNs: m('roundTripNs'), handoffUs: m('handoffUs'), pool1: m('pool1'), poolAll: m('poolAll'), poolRatio: m('poolRatio'), copiesRatio: m('copiesRatio') };
    const s = summary[name];
    console.log(
      `| ${name} | ${s.cycles} | ${Math.round(s.roundTripNs)} | ${s.handoffUs.toFixed(1)} | ${Math.round(s.pool1).toLocaleString('en-US')} | ` +
        `${Math.round(s.poolAll).toLocaleString('en-US')} | ${s.poolRatio.toFixed(3)}x | ${s.copiesRatio.toFixed(3)}x |`,
    );
  }
  mkdirSync(`${ROOT}bench/results`, { recursive: true });
  const file = `bench/results/placement-${new Date().toISOString().replace(/[:.]/g, '-')}.json`;
  writeFileSync(`${ROOT}${file}`, JSON.stringify({ threads, cycles, blockMs: ms, nearNs: NEAR_NS, summary, rows }, null, 1));
  console.log(`wrote ${file}`);
  process.exit(0);
}
