// How the Node benches time bnwasm alike: the warm-up before a rate is measured, and one
// thread's training rate pinned to each CPU (the ceiling two threads are judged against).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './report.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/**
 * Seconds of warm-up before a training rate is timed. V8 first runs wasm on its baseline
 * compiler and optimizes the hot functions in the background: one thread of the dense network
 * reached its steady rate after about 100 steps, two threads (which leave the compiler no idle
 * core) after 100 to 600 (1.5-1.9 ms a step before, 1.1-1.2 after). bench/browser/page.js
 * waits as long (WARM_UP_MS).
 */
export const WARM_UP_SECONDS = 2;

/** Calls step(0), step(1), ... (awaited): 5 times and for at least WARM_UP_SECONDS. Returns the count. */
export async function warmUp(step) {
  const w0 = performance.now();
  let i = 0;
  for (; i < 5 || performance.now() - w0 < WARM_UP_SECONDS * 1000; i++) await step(i);
  return i;
}

/**
 * The median time of call(input(i)) in microseconds over `calls` calls (i = 0, 1, ...), after
 * `warm` untimed ones; input(i) is made before the clock starts. For a call that returns at once:
 * awaiting it would time a microtask too.
 */
export function p50Us(call, input, warm, calls) {
  for (let i = 0; i < warm; i++) call(input(i));
  const times = new Float64Array(calls);
  for (let i = 0; i < calls; i++) {
    const x = input(i);
    const t0 = performance.now();
    call(x);
    times[i] = performance.now() - t0;
  }
  return median(times) * 1000;
}

/**
 * A training step over consecutive mini-batches of `batch` rows of `train` (loadFashionMnist's
 * {x, y, n}): step(i) trains `net` on batch i, wrapping at the last whole one, and returns what
 * trainBatch returns.
 */
export function batchSteps(net, train, batch) {
  const width = train.x.length / train.n;
  const count = Math.floor(train.n / batch);
  return (i) => {
    const b = i % count;
    return net.trainBatch(train.x.subarray(b * batch * width, (b + 1) * batch * width), train.y.subarray(b * batch, (b + 1) * batch));
  };
}

/**
 * One block of a job, as a rate (examples/s): run() once untimed (the first call after the other
 * side ran, or after the pool was switched), then `calls` timed calls of `examples` examples each.
 */
export function blockRate({ calls, run, examples }) {
  run();
  const t0 = performance.now();
  for (let i = 0; i < calls; i++) run();
  return (calls * examples) / ((performance.now() - t0) / 1000);
}

/**
 * `pairs` pairs of measurements of two sides, first(), second(), alternating which goes first so
 * that a drift over a pair favours neither. Returns the sides' medians, each pair's ratio (second
 * / first for a rate; first / second for a time, lowerIsBetter: either way, above 1 when the
 * second side is faster) and their median.
 */
export function alternatePairs(first, second, pairs, lowerIsBetter = false) {
  const a = [], b = [], ratios = [];
  for (let p = 0; p < pairs; p++) {
    const r = [];
    for (const side of p % 2 === 0 ? [0, 1] : [1, 0]) r[side] = side === 0 ? first() : second();
    a.push(r[0]);
    b.push(r[1]);
    ratios.push(lowerIsBetter ? r[0] / r[1] : r[1] / r[0]);
  }
  return { first: median(a), second: median(b), ratio: median(ratios), ratios };
}

/**
 * Copies the package as built (web/src and web/dist) to dir: a second instance of it for one
 * process (Node keeps one instance of a module per URL, and configure() is per instance).
 */
export function copyPackage(dir) {
  for (const part of ['src', 'dist']) cpSync(join(ROOT, 'web', part), join(dir, part), { recursive: true });
}

/**
 * Silences one warning of the threaded glue: stopping the pool joins its threads from Node's main
 * thread, which is fine in a bench (nothing else waits on it) but makes the glue warn "Blocking on
 * the main thread". The glue binds console.warn when the module loads: call this first.
 */
export function quietPoolStopWarning() {
  const print = console.warn;
  console.warn = (...a) => (String(a[0]).startsWith('Blocking on the main thread') ? undefined : print(...a));
}

/**
 * The threaded module (loadModule('full'); `who` names the caller in the error when this machine
 * loads another build) and setThreads(n), which restarts its pool with n threads and throws if
 * it got another count.
 */
export async function threadedPool(who) {
  const { loadModule } = await import('../web/src/module.js');
  const mod = await loadModule('full');
  if (mod.bnwasmBuild !== 'threaded') throw new Error(`${who} needs the threaded module, got the ${mod.bnwasmBuild} build`);
  const setThreads = (n) => {
    const got = mod._bn_set_thread_count(n);
    if (got !== n) throw new Error(`asked for ${n} threads, got ${got}`);
  };
  return { mod, setThreads };
}

/** Whether this machine can pin a process to one CPU (util-linux's taskset). */
export const canPin = () => existsSync('/usr/bin/taskset');

/**
 * One thread's training rate at batch 64 on each CPU (examples/s, by CPU index):
 * bench/core-speed.mjs under `taskset -c i`, one run per CPU.
 */
export function pinnedCoreRates(model) {
  return cpus().map((_, i) => {
    const child = spawnSync('taskset', ['-c', String(i), process.execPath, 'bench/core-speed.mjs', '--model', model], { cwd: ROOT, encoding: 'utf8' });
    if (child.status !== 0) throw new Error(`bench/core-speed.mjs on CPU ${i} exited with ${child.status}: ${child.stderr}`);
    return JSON.parse(child.stdout.trim().split('\n').pop()).train64;
  });
}

/**
 * The same, with every CPU busy at once: one bench/core-speed.mjs per CPU, each pinned to its
 * own, started together. Independent processes share nothing but the machine (its caches, its
 * memory, the host's other tenants), so sum(rates) / mean(pinnedCoreRates) is what the machine
 * gives N copies of the job that never wait for each other: a ceiling for N threads that do.
 */
export function concurrentCoreRates(model) {
  const n = cpus().length;
  const script = Array.from({ length: n }, (_, i) => `taskset -c ${i} "$0" bench/core-speed.mjs --model ${model} --cpu ${i} &`).join(' ') + ' wait';
  const child = spawnSync('sh', ['-c', script, process.execPath], { cwd: ROOT, encoding: 'utf8' });
  if (child.status !== 0) throw new Error(`bench/core-speed.mjs on every CPU at once exited with ${child.status}: ${child.stderr}`);
  const rates = new Array(n);
  for (const line of child.stdout.trim().split('\n')) {
    const r = JSON.parse(line);
    rates[r.cpu] = r.train64;
  }
  if (rates.some((r) => r === undefined)) throw new Error(`bench/core-speed.mjs on every CPU at once: a CPU reported nothing (${child.stdout})`);
  return rates;
}

/** Per CPU, the median of its rates over several pinnedCoreRates runs; undefined for none. */
export const medianPerCore = (runs) => (runs.length === 0 ? undefined : runs[0].map((_, i) => median(runs.map((rates) => rates[i]))));

/**
 * How far apart CPU 0 and CPU 1 are, as a pool that hands buffers between them feels it
 * (bench/native/pingpong.c, built here with cc on first use): { roundTripNs, handoffUs, ownUs },
 * a cache line's round trip and the time to read 256 KB the other CPU / this CPU just wrote.
 * Undefined with fewer than two CPUs, no C compiler, or CPU 0 or 1 out of this process's reach.
 */
export function cpuDistance() {
  if (cpus().length < 2) return undefined;
  const out = `${ROOT}build/bench/pingpong`;
  const src = `${ROOT}bench/native/pingpong.c`;
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(`${ROOT}build/bench`, { recursive: true });
    if (spawnSync('cc', ['-O2', '-pthread', src, '-o', out], { stdio: 'inherit' }).status !== 0) return undefined;
  }
  // A process kept off CPU 0 or CPU 1 (a container's cpuset, taskset) cannot measure them: the
  // probe says so and exits 1, and the bench goes on without the line.
  const probe = spawnSync(out, ['0', '1'], { encoding: 'utf8' });
  if (probe.status !== 0) return undefined;
  const [, roundTripNs, , handoffUs, , ownUs] = probe.stdout.trim().split(/\s+/).map(Number);
  return { roundTripNs, handoffUs, ownUs };
}
