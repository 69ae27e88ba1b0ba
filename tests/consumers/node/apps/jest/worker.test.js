// No ES module anywhere in this test: it trains with createTrainer in a worker thread, which
// runs the package's ES-module worker outside Jest's module system.
const bnwasm = require('bnwasm');
const { createTrainer, InputError, BnwasmError } = require('bnwasm');
const { inWorker } = require('./scenario.cjs');

test('createTrainer: fit, snapshot, predict, an InputError from the worker, terminate', () => inWorker(bnwasm), 60_000);

test("Jest's matchers see the classes and typed arrays this test file got", async () => {
  const trainer = await createTrainer({ inputSize: 2, layers: [{ type: 'dense', units: 3 }], seed: 1 });
  try {
    await expect(trainer.predict(new Float32Array(5))).rejects.toThrow(InputError);
    await expect(trainer.predict(new Float32Array(5))).rejects.toBeInstanceOf(BnwasmError);
    await expect(trainer.predict(new Float32Array(5))).rejects.toMatchObject({ name: 'InputError', code: 'BNWASM_WRONG_LENGTH' });
    const net = await trainer.snapshot();
    const x = new Float32Array([0.5, -1]);
    const out = await trainer.predict(x);
    expect(out).toBeInstanceOf(Float32Array);
    expect(out).toEqual(net.predict(x));
    net.dispose();
  } finally {
    trainer.terminate();
  }
}, 60_000);
