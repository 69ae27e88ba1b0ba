// Model bytes larger than a fresh module's memory: loadTrainer hands them to a new worker, whose
// module must grow its memory to take them. The bytes were written through a view of HEAPU8 read
// before the call that grew the memory (`mod.HEAPU8.set(bytes, mod._bn_arg(n))` reads the view
// first), which threw "RangeError: offset is out of bounds" for torchvision's resnet18 (45 MB)
// in the README's fine-tuning example. Both modules: the single-thread one (growth detaches the
// old buffer) and the threaded one (a SharedArrayBuffer that grows, leaving old views short).
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

// Each thread count in its own process (configure() applies once per process), from a file in
// the repository's root so 'bnwasm' resolves to the package.
const script = (threads) => `
import { configure, createNetwork, loadNetwork, loadTrainer, memoryUsage } from 'bnwasm';
configure({ threads: ${threads} });
// 2048 x 4096 weights plus Adam's moments: 32 MiB of weights in the saved bytes.
const config = { inputSize: 2048, layers: [{ type: 'dense', units: 4096 }, { type: 'dense', units: 2 }], seed: 5 };
const net = await createNetwork(config);
const bytes = net.save();
const trainer = await loadTrainer(bytes);
const x = Float32Array.from({ length: 4 * 2048 }, (_, i) => Math.sin(i));
const y = new Int32Array([0, 1, 0, 1]);
const worker = await trainer.snapshot();
const again = await loadNetwork(bytes);
console.log(JSON.stringify({
  bytes: bytes.length,
  threads: trainer.threads,
  same: worker.predictBatch(x).every((v, i) => v === net.predictBatch(x)[i]) && again.predictBatch(x).every((v, i) => v === net.predictBatch(x)[i]),
}));
trainer.terminate();
`;

test.each([1, 2])('loadTrainer of model bytes larger than a fresh module (%i thread(s))', (threads) => {
  const file = `${root}/.memory-growth-${threads}.mjs`;
  writeFileSync(file, script(threads));
  let run;
  try {
    run = spawnSync(process.execPath, [file], { cwd: root, encoding: 'utf8' });
  } finally {
    rmSync(file, { force: true });
  }
  expect(run.stderr).toBe('');
  const result = JSON.parse(run.stdout.trim().split('\n').pop());
  expect(result.bytes).toBeGreaterThan(32 * 1024 * 1024);
  expect(result.threads).toBe(threads);
  expect(result.same).toBe(true);
}, 120_000);
