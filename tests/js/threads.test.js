// Threads through the public API: each thread count in its own Node process (a realm fixes its
// count when it loads bnwasm), training a dense and a convolutional network and one whose
// memory grows while the pool's threads are there. Weights, running averages, optimizer state
// (all in save()) and predictBatch's outputs are the same bits for 1, 2, 3, 4 and 8 threads.
// Then the faults: a thread that cannot start, memory grown where this thread's glue does not
// see it, a worker stopped in the middle of a step.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { jest } from '@jest/globals';
import { instantiateThreaded } from '../../web/src/threads.js';

const run = promisify(execFile);
const script = fileURLToPath(new URL('./threads-check.mjs', import.meta.url));
const check = async (args, file = script) => {
  const { stdout, stderr } = await run(process.execPath, [file, ...args], { timeout: 120000 });
  return { result: JSON.parse(stdout.trim().split('\n').pop()), stderr };
};
const cores = typeof availableParallelism === 'function' ? availableParallelism() : cpus().length;
/** The lines bnwasm printed (warnings, errors) in a child's stderr. */
const bnwasmLines = (stderr) => stderr.split('\n').filter((line) => line.startsWith('bnwasm:'));
const COULD_NOT_START = /^bnwasm: the threaded module could not start \(a thread's worker failed .*\); running on one thread$/;

test('training and batch inference give the same bits for 1, 2, 3, 4 and 8 threads', async () => {
  const runs = {};
  for (const threads of [1, 2, 3, 4, 8]) runs[threads] = (await check([String(threads)])).result;
  for (const threads of [1, 2, 3, 4, 8]) {
    expect(runs[threads].threads).toBe(threads); // the threaded module ran (1: the single-thread one)
    expect(runs[threads].memoryGrew).toBe(true);
    const { threads: _, ...rest } = runs[threads];
    const { threads: __, ...reference } = runs[1];
    expect({ threads, ...rest }).toEqual({ threads, ...reference });
  }
});

test('without configure(), Node uses every core', async () => {
  const { result } = await check(['default']);
  expect(result.threads).toBe(cores);
});

test('a thread that cannot start: one warning, then the single-thread module, same results', async () => {
  // A copy of the package without the threads' worker script (as if a host had not served it).
  const dir = mkdtempSync(join(tmpdir(), 'bnwasm-threads-'));
  try {
    const root = fileURLToPath(new URL('../../', import.meta.url));
    for (const part of ['web/src', 'web/dist', 'tests/js/threads-check.mjs', 'package.json']) {
      cpSync(join(root, part), join(dir, part), { recursive: true });
    }
    rmSync(join(dir, 'web/src/pthread-worker.node.js'));
    const broken = await check(['2'], join(dir, 'tests/js/threads-check.mjs'));
    expect(broken.result.threads).toBe(1);
    expect(bnwasmLines(broken.stderr)).toEqual([expect.stringMatching(COULD_NOT_START)]);
    const { result } = await check(['1']);
    expect({ ...broken.result, threads: 1 }).toEqual(result);
    // Found by a trainer's worker first (in a browser only workers run threads): its client warns,
    // once, even when that trainer's config is then refused, and the next trainers and the page's
    // own module start on one thread at once.
    const trainers = await check(['2', 'trainers'], join(dir, 'tests/js/threads-check.mjs'));
    expect(trainers.result).toEqual({ refused: ['BNWASM_INVALID_CONFIG', 1], trainerThreads: [1, 1], threads: 1 });
    expect(bnwasmLines(trainers.stderr)).toEqual([expect.stringMatching(COULD_NOT_START)]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a pool thread that dies in the middle of a job: a clear error, never a hang, then one thread', async () => {
  const started = Date.now();
  const { result, stderr } = await check(['2', 'fault']);
  const reference = (await check(['1'])).result;
  expect(result).toEqual({
    threads: 2,
    fault: 'BnwasmError BNWASM_THREAD_FAILED',
    step: 'BnwasmError BNWASM_THREAD_FAILED',
    configure: 'InputError BNWASM_INVALID_ARGUMENT',
    after: reference.dense,
    old: 'BnwasmError BNWASM_THREAD_FAILED',
    kept: true,
    threadsAfter: 1,
  });
  // The thread's own error is on the console, once.
  expect(bnwasmLines(stderr)).toEqual(["bnwasm: a thread's worker failed (unreachable)"]);
  expect(Date.now() - started).toBeLessThan(60000); // the processes ended by themselves
});

test('memory grown by another thread: the heap views follow it', async () => {
  const { result } = await check(['2', 'views']);
  expect(result.threads).toBe(2);
  expect(result.views).toEqual({ viewBytes: true, tail: [7, 7, 7, 7], sameOutputs: true });
});

test("a trainer's worker stopped in the middle of a step: the fit rejects and nothing hangs", async () => {
  const started = Date.now();
  const { result } = await check(['default', 'terminate']);
  expect(result).toEqual({ threads: cores, workerThreads: cores, fit: 'DisposedError' });
  expect(Date.now() - started).toBeLessThan(60000); // the process ended by itself
});

test("a thread's Worker constructor that throws: the start fails at once, and nothing is left running", async () => {
  // Emscripten's glue spawns its pool's workers before it returns; here the third one throws (a
  // browser without workers inside workers, a CSP's worker-src, Node out of threads).
  const spawned = [];
  const spawn = () => {
    if (spawned.length === 2) throw new TypeError('Worker is not defined');
    const worker = { terminated: false, terminate: () => (worker.terminated = true) };
    spawned.push(worker);
    return worker;
  };
  const createModule = (args) => {
    for (let i = 0; i < args.pthreadPoolSize; i++) args.pthreadWorker();
    return new Promise(() => {}); // never loads: only the throw can end the start
  };
  jest.useFakeTimers();
  try {
    await expect(instantiateThreaded(createModule, 4, {}, spawn)).rejects.toThrow(/^Worker is not defined$/);
    expect(spawned.map((w) => w.terminated)).toEqual([true, true]);
    expect(jest.getTimerCount()).toBe(0); // the 30 s start limit was cleared, not left to hold Node
  } finally {
    jest.useRealTimers();
  }
});
