// A trainer's worker that hangs while it starts a thread (Firefox ESR's Worker constructor, made
// inside the trainer's worker, sometimes never returns): the client hears 'threadSpawning' with no
// 'threadSpawned' after it, drops that worker and starts one on one thread. Workers here are
// stand-ins (platform.spawnWorker), so the test is about the client's protocol alone.
import { jest } from '@jest/globals';
import { createTrainer, loadTrainer } from 'bnwasm';
import { platform, setPlatform } from '../../web/src/platform.js';
import { startLimits } from '../../web/src/trainer.js';

const INFO = { config: { inputSize: 2 }, inputSize: 2, outputSize: 2, threads: 1, build: 'full' };

/**
 * Stand-in workers: `script[i]` runs the i-th spawned worker ('hang': announces a thread's
 * Worker constructor and never leaves it; 'answer': answers its first request with INFO; 'no
 * threads, refused': tells that its threads could not start, then refuses the config).
 */
function standIns(script) {
  const workers = [];
  const spawnWorker = ({ onMessage }) => {
    const worker = { kind: script[workers.length], received: [], terminated: false };
    workers.push(worker);
    return {
      post(message) {
        worker.received.push(message);
        if (message.type === 'configure') return;
        if (worker.kind === 'hang') {
          setTimeout(() => onMessage({ type: 'threadSpawning' }), 1);
        } else if (worker.kind === 'no threads, refused') {
          setTimeout(() => onMessage({ type: 'threadFailure', reason: "a thread's worker failed (its script could not load)" }), 1);
          const error = { name: 'ConfigError', message: "createTrainer(): layers[0].type: unknown layer type 'nope'", code: 'BNWASM_INVALID_CONFIG' };
          setTimeout(() => onMessage({ id: message.id, type: 'error', error }), 2);
        } else {
          setTimeout(() => onMessage({ type: 'threadSpawning' }), 1);
          setTimeout(() => onMessage({ type: 'threadSpawned' }), 2);
          setTimeout(() => onMessage({ id: message.id, type: 'result', result: INFO }), 3);
        }
      },
      terminate() {
        worker.terminated = true;
      },
      ref() {},
      unref() {},
    };
  };
  return { workers, spawnWorker };
}

describe('a thread that never starts while the trainer starts', () => {
  const realSpawn = platform.spawnWorker;
  const realLimit = startLimits.threadSpawnMs;
  let warn;
  beforeEach(() => {
    startLimits.threadSpawnMs = 200;
    warn = jest.spyOn(console, 'warn').mockImplementation(() => {});
  });
  afterEach(() => {
    setPlatform({ spawnWorker: realSpawn });
    startLimits.threadSpawnMs = realLimit;
    warn.mockRestore();
  });

  test('createTrainer replaces the stuck worker with one on one thread, and says so once', async () => {
    const { workers, spawnWorker } = standIns(['hang', 'answer', 'hang', 'answer']);
    setPlatform({ spawnWorker });
    const trainer = await createTrainer({ inputSize: 2, layers: [{ type: 'dense', units: 2 }], loss: 'softmaxCrossEntropy' });
    expect(workers.map((w) => w.kind)).toEqual(['hang', 'answer']);
    expect(workers[0].terminated).toBe(true);
    expect(workers[1].terminated).toBe(false);
    // The second worker is told to load the single-thread module, then gets its own copy of
    // the config (the first worker's copy was transferred to it).
    expect(workers[1].received[0]).toEqual({ type: 'configure', settings: { threads: 1 } });
    const [first, second] = [workers[0].received.at(-1), workers[1].received.at(-1)];
    expect(second.type).toBe('create');
    expect(second.config).not.toBe(first.config);
    expect(Array.from(second.config)).toEqual(Array.from(first.config));
    expect(trainer.threads).toBe(1);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatch(/did not get past starting a thread's worker in 0\.2 s .*Firefox.*one thread/);
    trainer.terminate();

    // A second hang in the same realm replaces the worker again, without a second warning.
    const bytes = new Uint8Array([1, 2, 3]);
    const loaded = await loadTrainer(bytes);
    expect(workers.map((w) => w.kind)).toEqual(['hang', 'answer', 'hang', 'answer']);
    expect(Array.from(workers[3].received.at(-1).bytes)).toEqual([1, 2, 3]);
    expect(Array.from(bytes)).toEqual([1, 2, 3]); // the caller's bytes stay theirs
    expect(warn).toHaveBeenCalledTimes(1);
    loaded.terminate();
  });

  test('a worker that starts its thread is kept', async () => {
    const { workers, spawnWorker } = standIns(['answer']);
    setPlatform({ spawnWorker });
    const trainer = await createTrainer({ inputSize: 2, layers: [{ type: 'dense', units: 2 }], loss: 'softmaxCrossEntropy' });
    // Past the limit: the constructor returned, so the timer was cleared and nothing is replaced.
    await new Promise((resolve) => setTimeout(resolve, 2 * startLimits.threadSpawnMs));
    expect(workers).toHaveLength(1);
    expect(workers[0].terminated).toBe(false);
    expect(warn).not.toHaveBeenCalled();
    trainer.terminate();
  });

  // Last in this file: the failure stays recorded for the rest of the realm.
  // The worker tells before its reply, so a config the core then refuses still counts (the
  // reason rode on the successful reply before, and a refused start lost it).
  test("threads a worker could not start: its client warns once and starts the next worker on one", async () => {
    const { workers, spawnWorker } = standIns(['no threads, refused', 'answer']);
    setPlatform({ spawnWorker });
    const config = { inputSize: 2, layers: [{ type: 'dense', units: 2 }], loss: 'softmaxCrossEntropy' };
    await expect(createTrainer(config)).rejects.toThrow(/unknown layer type 'nope'/);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toBe("bnwasm: the threaded module could not start (a thread's worker failed (its script could not load)); running on one thread");
    expect(workers[0].received.map((m) => m.type)).toEqual(['create']); // nothing configured
    const second = await createTrainer(config);
    expect(workers[1].received[0]).toEqual({ type: 'configure', settings: { threads: 1 } });
    expect(warn).toHaveBeenCalledTimes(1);
    second.terminate();
  });
});
