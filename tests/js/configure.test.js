// configure(): where bnwasm finds its wasm and its worker. Each Jest test file has its own
// module registry, so the wasm module is not loaded before the first test here.
import { readFileSync } from 'node:fs';
import { configure, createNetwork, createTrainer, BnwasmError, InputError } from 'bnwasm';
import { blobs, smallConfig } from './helpers.js';

const WASM = new URL('../../web/dist/bnwasm.wasm', import.meta.url);

function expectInputError(call, code, message) {
  let error;
  try {
    call();
  } catch (e) {
    error = e;
  }
  expect(error).toBeInstanceOf(InputError);
  expect(error).toBeInstanceOf(BnwasmError);
  expect(error).toMatchObject({ name: 'InputError', code });
  expect(error.message).toMatch(message);
}

test('bad options are InputErrors that name the option, what was expected and what came', () => {
  expectInputError(() => configure(null), 'BNWASM_INVALID_ARGUMENT', /^configure\(\): options must be an object, got null$/);
  expectInputError(() => configure({ wasmURL: 'x' }), 'BNWASM_INVALID_ARGUMENT', /unknown option 'wasmURL' \(expected one of wasmUrl, wasmBinary, workerUrl, threads\)/);
  expectInputError(() => configure({ wasmUrl: 7 }), 'BNWASM_WRONG_TYPE', /wasmUrl must be a string or URL, got 7$/);
  expectInputError(() => configure({ workerUrl: {} }), 'BNWASM_WRONG_TYPE', /workerUrl must be a string or URL, got Object$/);
  expectInputError(() => configure({ wasmBinary: [0, 97, 115, 109] }), 'BNWASM_WRONG_TYPE', /wasmBinary must be an ArrayBuffer or Uint8Array, got Array\(4\)$/);
  expectInputError(() => configure({ wasmUrl: WASM, wasmBinary: new Uint8Array(8) }), 'BNWASM_INVALID_ARGUMENT', /give wasmUrl or wasmBinary, not both/);
  expectInputError(() => configure({ threads: 0 }), 'BNWASM_INVALID_ARGUMENT', /^configure\(\): threads must be an integer from 1 to 256, got 0$/);
  expectInputError(() => configure({ threads: 2.5 }), 'BNWASM_INVALID_ARGUMENT', /threads must be an integer from 1 to 256, got 2\.5$/);
  expectInputError(() => configure({ threads: 257 }), 'BNWASM_INVALID_ARGUMENT', /threads must be an integer from 1 to 256, got 257$/);
  expectInputError(() => configure({ threads: '4' }), 'BNWASM_WRONG_TYPE', /threads must be an integer from 1 to 256, got "4"$/);
});

test("a worker gets its client's wasm setting: a wrong wasmUrl fails the trainer, not the default", async () => {
  const missing = new URL('./no-such-dir/bnwasm.wasm', WASM);
  configure({ wasmUrl: missing });
  await expect(createTrainer(smallConfig())).rejects.toThrow(/no-such-dir\/bnwasm\.wasm/);
});

test('wasmBinary: the module is built from the given bytes, and the setting is fixed once it is loaded', async () => {
  configure({ wasmBinary: readFileSync(WASM) });
  const net = await createNetwork(smallConfig());
  const { x, y } = blobs(32);
  expect(Number.isFinite(net.trainBatch(x, y))).toBe(true);
  net.dispose();
  expectInputError(() => configure({ wasmUrl: WASM }), 'BNWASM_INVALID_ARGUMENT', /already loaded; call configure\(\) before the first createNetwork/);
  expectInputError(() => configure({ threads: 2 }), 'BNWASM_INVALID_ARGUMENT', /already loaded; call configure\(\) before the first createNetwork/);
  expect(() => configure({ workerUrl: new URL('../../web/src/worker.node.js', import.meta.url) })).not.toThrow();
  const trainer = await createTrainer(smallConfig());
  expect(trainer.inputSize).toBe(smallConfig().inputSize);
  trainer.terminate();
});
