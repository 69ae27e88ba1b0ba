// A fixed, seeded run of the interop fuzzer (tests/fuzz/interop-fuzz.mjs): mutated
// ONNX, safetensors and model.json/weights inputs either import or are refused
// with ModelFormatError, and no network is left half-built. Longer runs:
// `node tests/fuzz/interop-fuzz.mjs SECONDS`.
import { fuzzInterop } from '../fuzz/interop-fuzz.mjs';

test('1,200 mutated files per reader: a Network or a ModelFormatError, nothing else', async () => {
  const counts = await fuzzInterop({ runs: 1200, seed: 1 });
  expect(counts.imported + counts.refused).toBe(3600);
  // The mutations must reach past the first checks: some inputs still import.
  expect(counts.imported).toBeGreaterThan(100);
  expect(counts.refused).toBeGreaterThan(1000);
});
