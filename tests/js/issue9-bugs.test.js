// Two bugs that came from writing the same logic twice (issue 9), kept as regression tests.
import { createNetwork, loadNetwork, createTrainer, loadTrainer, ConfigError, InputError } from 'bnwasm';
import { blobs, smallConfig } from './helpers.js';

test('a checkpoint resumes only with the data length, batch size and shuffle it was taken with', async () => {
  const { x, y } = blobs(256);
  const options = { epochs: 2, batchSize: 32 };
  const net = await createNetwork(smallConfig());
  const checkpoints = [];
  await net.fit(x, y, { ...options, checkpointEvery: 3, onCheckpoint: (c) => checkpoints.push(c) });
  const c = checkpoints[0];
  const resumed = await loadNetwork(c.bytes);
  const stepsBefore = resumed.steps;
  const cases = [
    [x.subarray(0, 100 * 4), y.subarray(0, 100), { ...options, batchSize: 7 }, /^fit\(\): resumeFrom was taken with batchSize 32, this fit has batchSize 7/],
    [x.subarray(0, 100 * 4), y.subarray(0, 100), options, /^fit\(\): resumeFrom was taken on 256 examples, x has 100; resume with the same data$/],
    [x, y, { ...options, shuffle: false }, /^fit\(\): resumeFrom was taken with shuffle true, this fit has shuffle false/],
  ];
  for (const [xs, ys, o, message] of cases) {
    const error = await resumed.fit(xs, ys, { ...o, resumeFrom: c }).catch((e) => e);
    expect(error).toBeInstanceOf(InputError);
    expect(error.code).toBe('BNWASM_INVALID_ARGUMENT');
    expect(error.message).toMatch(message);
    expect(resumed.steps).toBe(stepsBefore); // refused before any step
  }
  // The same checks hold in a worker, for a checkpoint taken on the main thread.
  const trainer = await loadTrainer(c.bytes);
  const error = await trainer.fit(x.subarray(0, 100 * 4), y.subarray(0, 100), { ...options, batchSize: 7, resumeFrom: c }).catch((e) => e);
  expect(error).toBeInstanceOf(InputError);
  expect(error.message).toMatch(/^fit\(\): resumeFrom was taken with batchSize 32, this fit has batchSize 7/);
  trainer.terminate();
  resumed.dispose();
  net.dispose();
});

test('a network over the 2^28-weight limit is a ConfigError, from createNetwork and createTrainer', async () => {
  // 16384 inputs x 16385 units = 268,451,840 weights > 2^28 = 268,435,456.
  const config = { inputSize: 16384, layers: [{ type: 'dense', units: 16385 }, { type: 'relu' }, { type: 'dense', units: 2 }] };
  const error = await createNetwork(config).catch((e) => e);
  expect(error).toBeInstanceOf(ConfigError);
  expect(error.code).toBe('BNWASM_INVALID_CONFIG');
  expect(error.message).toMatch(/^createNetwork\(\): layers\[0\]: brings the network to 268468225 weights, more than the 268435456 \(2\^28\) that fit in wasm memory with their gradients and optimizer moments$/);
  const viaWorker = await createTrainer(config).catch((e) => e);
  expect(viaWorker).toBeInstanceOf(ConfigError);
  expect(viaWorker.message).toMatch(/^createTrainer\(\): layers\[0\]: brings the network to 268468225 weights/);
});
