// No leaks: wasm allocations, live networks and the JS heap stay flat across
// 100,000 predicts, 1,000 create/train/dispose cycles and 1,000 save/load
// cycles, and networks nobody disposed are freed once garbage-collected. On both
// modules: the threaded one (Node's default, every core) and the single-thread one.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./memory-check.mjs', import.meta.url));
describe.each([['threaded', '2'], ['single-thread', '1']])('%s module', (_, threads) => {
let m;
beforeAll(() => {
  const out = execFileSync(process.execPath, ['--expose-gc', script, threads], { encoding: 'utf8' });
  m = JSON.parse(out.trim().split('\n').at(-1));
  console.log(JSON.stringify(m, null, 1));
});

test('runs on the module it names', () => {
  if (threads === '1') expect(m.threads).toBe(1);
  else expect(m.threads).toBeGreaterThan(1);
});

test.each(['predict', 'createDispose', 'saveLoad'])('%s: wasm allocations and live networks are flat', (phase) => {
  const { before, after } = m[phase];
  expect(after.allocatedBytes).toBe(before.allocatedBytes); // exact: malloc'd bytes in use
  expect(after.liveNetworks).toBe(before.liveNetworks);
  expect(after.wasmMemoryBytes).toBe(before.wasmMemoryBytes); // the memory never had to grow
  // The JS heap after forced GC: V8 keeps some slack (compiled code, caches),
  // so allow 1 MiB; a leak of even 16 bytes per predict would be 1.6 MB.
  expect(after.js - before.js).toBeLessThan(1 << 20);
});

test('forgotten networks are freed by the FinalizationRegistry', () => {
  const { before, during, after } = m.forgotten;
  expect(during.liveNetworks).toBe(before.liveNetworks + 200);
  expect(during.allocatedBytes).toBeGreaterThan(before.allocatedBytes);
  expect(after.liveNetworks).toBe(before.liveNetworks);
  expect(after.allocatedBytes).toBe(before.allocatedBytes);
});
});
