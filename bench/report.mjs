// What the Node bench (scripts/bench.mjs) and the browser bench (bench/browser/run.mjs) print
// alike: medians, numbers, Markdown tables, and bnwasm on every thread against one.

/** Median of the finite values (NaN when there are none). */
export function median(values) {
  const s = values.filter((x) => Number.isFinite(x)).sort((p, q) => p - q);
  if (s.length === 0) return NaN;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// Seconds of CPU this process has used: on a shared machine, a rate over CPU time is what the
// code does when it has a core to itself; the wall-clock rate is what the user sees. The
// engines' runners record both.
export const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/**
 * A cache line's round trip between two CPUs (bench/timing.mjs's cpuDistance) under this many
 * nanoseconds: the CPUs share a cache. About 120-180 ns on the machines of issue 18's runs,
 * against 370-650 ns for CPUs apart (bench/placement.mjs).
 */
export const NEAR_NS = 250;

/** x with d decimals and thousands separators; 'n/a' for a missing value. */
export const fmt = (x, d = 0) => (Number.isFinite(x) ? x.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }) : 'n/a');

/** A Markdown table (first row the header; the first column left-aligned, the rest right). */
export function table(rows) {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r) => `| ${r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((wd, c) => (c === 0 ? '-'.repeat(wd + 2) : `${'-'.repeat(wd + 1)}:`)).join('|')}|`, ...rows.slice(1).map(line)];
}

/** The 1-minute load averages sampled, and what they mean on this many cores. */
export const loadNote = (loads, cores) =>
  `1-minute load average ${loads.map((l) => l.toFixed(1)).join(', ')}` +
  (Math.max(...loads) > cores ? ' (above the core count: other work shared the machine, the numbers are low and noisy)' : '');

/** Rates by CPU index, as `CPU 0 30,545, CPU 1 29,934`. */
const perCpu = (rates) => rates.map((r, i) => `CPU ${i} ${fmt(r, 0)}`).join(', ');

/**
 * bnwasm on every thread (`all`: one result per round) against one thread (`one`), from the same
 * interleaved rounds, with issue 18's goals. The serial fraction f is the Karp-Flatt metric of
 * the measured speedup S on N threads, f = (N / S - 1) / (N - 1); Amdahl's law then predicts
 * 1 / (f + (1 - f) / p) on p cores (an upper bound: it leaves out memory bandwidth and the cost
 * of handing out more pieces). `cores` (one thread pinned to each CPU) and `together` (the same,
 * every CPU at once) set the measured speedup beside what the machine gives. Returns the lines to
 * print and the numbers.
 */
export function threadsTable(model, all, one, { note, where = 'configure({ threads: 1 })', cores, together, switches = [], distances = [] }) {
  const threads = all[0]?.threads ?? NaN;
  const metrics = model === 'mlp'
    ? [['training, batch 64 (examples/s)', 'train64', 0, 1.8], ['training, batch 256 (examples/s)', 'train256', 0, 1.8],
       ['single-example predict p50 (us)', 'predictOneUs', 1, 1], ['batch predict, 1000 examples (examples/s)', 'batchPredict', 0, 1.8]]
    : [['training, batch 64 (examples/s)', 'train64', 0, 1.7], ['single-image predict p50 (us)', 'predictOneUs', 1, 1],
       ['batch predict, 1000 images (examples/s)', 'batchPredict', 0, 1.8]];
  const rows = [['bnwasm ' + (model === 'mlp' ? 'dense network' : 'CNN'), '1 thread', `${threads} threads`, 'ratio', 'serial fraction', 'Amdahl 4 / 8 / 16 cores', 'goal']];
  const detail = {};
  for (const [label, m, d, goal] of metrics) {
    const a = median(all.map((r) => r[m]));
    const o = median(one.map((r) => r[m]));
    const speedup = m === 'predictOneUs' ? o / a : a / o;
    const f = (threads / speedup - 1) / (threads - 1);
    // A speedup above N (f < 0: the one-thread rounds ran slower than a thread does here, on a
    // slower CPU or with less cache) predicts nothing: Amdahl's law takes f >= 0.
    const amdahl = (p) => 1 / (Math.max(0, f) + (1 - Math.max(0, f)) / p);
    const parallel = m !== 'predictOneUs';
    rows.push([
      label, fmt(o, d), fmt(a, d), `${fmt(speedup, 2)}x`,
      parallel ? fmt(Math.max(0, f), 3) : '',
      parallel ? [4, 8, 16].map((p) => `${fmt(amdahl(p), 1)}x`).join(' / ') : '',
      m === 'predictOneUs' ? `no slower (within 3%): ${speedup >= 0.97 ? 'met' : 'NOT met'}` : `>= ${goal}x ${speedup >= goal ? 'met' : 'NOT met'}`,
    ]);
    detail[m] = { oneThread: o, allThreads: a, speedup, serialFraction: parallel ? f : undefined };
  }
  const lines = ['', `bnwasm on ${threads} threads against 1 (${where}), same rounds; ${note}`, ...table(rows)];
  if (cores !== undefined) {
    // N threads do at most the work of the N fastest CPUs together; one thread runs on one CPU
    // (at best the fastest). With unequal CPUs the ceiling is below N.
    const fastest = Math.max(...cores);
    const ceiling = cores.slice().sort((a, b) => b - a).slice(0, threads).reduce((s, r) => s + r, 0) / fastest;
    lines.push(
      `one thread's training at batch 64 pinned to each CPU (bench/core-speed.mjs under taskset, medians): ` +
        `${perCpu(cores)} examples/s; ` +
        `${threads} threads can at most reach ${fmt(ceiling, 2)}x one thread on the fastest CPU ` +
        `(training at batch 64: ${fmt(detail.train64.speedup, 2)}x, ${fmt((100 * detail.train64.speedup) / ceiling, 0)}% of that ceiling)`,
    );
    Object.assign(detail, { coreRates: cores, ceiling });
    if (together !== undefined) {
      // Copies that never wait for each other and share no data: what the machine itself gives N
      // at once (its caches and memory, the host's other tenants), against one copy on an average CPU.
      const alone = cores.reduce((s, r) => s + r, 0) / cores.length;
      const independent = together.reduce((s, r) => s + r, 0) / alone;
      lines.push(
        `the same with every CPU busy at once, one process each (bench/core-speed.mjs --cpu i, started together, medians): ` +
          `${perCpu(together)} examples/s, together ${fmt(independent, 2)}x one process alone ` +
          `(the mean of the CPUs above): what ${cores.length} copies of the job that share no data and never wait get from this machine ` +
          `(threads, training at batch 64: ${fmt(detail.train64.speedup, 2)}x)`,
      );
      Object.assign(detail, { coreRatesTogether: together, independentSpeedup: independent });
    }
  }
  if (switches.length > 0) {
    // bench/thread-switch.mjs: both counts in one process, the threaded build at each.
    const job = (m) => {
      const ratios = switches.map((s) => s[m].ratio);
      return {
        oneThread: median(switches.map((s) => s[m].oneThread)),
        allThreads: median(switches.map((s) => s[m].allThreads)),
        ratio: median(ratios),
        roundRatios: ratios,
      };
    };
    const inOne = { train64: job('train64'), batchPredict: job('batchPredict'), predictOneUs: job('predictOneUs') };
    if (switches.every((s) => s.predictOneBuilds !== undefined)) inOne.predictOneBuilds = job('predictOneBuilds');
    const describe = (label, j, unit, digits, goal, goalText) =>
      `${label} ${fmt(j.oneThread, digits)} / ${fmt(j.allThreads, digits)} ${unit}, ${fmt(j.ratio, 3)}x ` +
      `(${goalText}: ${j.ratio >= goal ? 'met' : 'NOT met'}; rounds ${j.roundRatios.map((r) => fmt(r, 2)).join(' / ')})`;
    const trainGoal = model === 'mlp' ? 1.8 : 1.7;
    lines.push(
      `the same in one process (bench/thread-switch.mjs: the threaded build, its pool stopped and restarted every few ` +
        `steps, medians of per-pair ratios): ${describe('training at batch 64', inOne.train64, 'examples/s', 0, trainGoal, `>= ${trainGoal}x`)}; ` +
        `${describe('batch predict of 1000', inOne.batchPredict, 'examples/s', 0, 1.8, '>= 1.8x')}; ` +
        `${describe('single predict p50', inOne.predictOneUs, 'us', 1, 0.97, 'no slower, within 3%')}`,
    );
    if (inOne.predictOneBuilds !== undefined) {
      lines.push(
        `single predict p50 on the two builds an application gets, in one process (the single-thread build of ` +
          `configure({ threads: 1 }), ${switches[0].predictOneBuilds.build}, from a copy of the package, against the threaded ` +
          `build; the same weights): ${describe('', inOne.predictOneBuilds, 'us', 2, 0.97, 'no slower, within 3%').trim()}`,
      );
    }
    detail.inOneProcess = inOne;
    if (distances.length === switches.length) {
      // Per round, beside that round's ratio: CPUs that share a cache hand buffers over in a
      // third of the time, and the pool's ratio follows (bench/placement.mjs).
      const near = distances.filter((d) => d.before.roundTripNs < NEAR_NS && d.after.roundTripNs < NEAR_NS).length;
      lines.push(
        `how far apart CPU 0 and CPU 1 were around each of those runs (bench/native/pingpong: a cache line's round trip ` +
          `before / after, ns): ${distances.map((d) => `${fmt(d.before.roundTripNs)} / ${fmt(d.after.roundTripNs)}`).join(', ')}; ` +
          `near (under ${NEAR_NS} ns, a shared cache) in ${near} of ${distances.length} rounds`,
      );
      detail.cpuDistances = distances;
    }
  }
  return { lines, detail: { threads, ...detail } };
}
