// A TypeScript --strict consumer. The same file is checked as an ES module and as CommonJS
// (module node16 and nodenext, "type" module or commonjs) and for a bundler with the DOM
// library; the Node builds are also run.
import {
  BnwasmError,
  createNetwork,
  createTrainer,
  InputError,
  loadNetwork,
  type Evaluation,
  type ErrorCode,
  type Network,
  type NetworkConfig,
  type TrainerProgress,
} from 'bnwasm';

const config: NetworkConfig = {
  inputSize: 2,
  layers: [{ type: 'dense', units: 8, useBias: false }, { type: 'batchNorm', momentum: 0.9 }, { type: 'relu' }, { type: 'dense', units: 2 }],
  optimizer: { type: 'adam', learningRate: 0.01 },
  seed: 3,
};

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`typescript consumer: ${what}`);
}

async function codeOf(call: () => unknown): Promise<ErrorCode | string | undefined> {
  try {
    await call();
  } catch (error: unknown) {
    // instanceof narrows to the package's class: `code` is typed.
    if (error instanceof InputError) return error.code;
    throw error;
  }
  return undefined;
}

async function main(): Promise<void> {
  const n = 400;
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 2;
    x[2 * i] = y[i] === 1 ? 1 + Math.sin(i) / 2 : -1 + Math.sin(i) / 2;
    x[2 * i + 1] = Math.cos(i * 1.7);
  }

  const net: Network = await createNetwork(config);
  await net.fit(x, y, { epochs: 5, batchSize: 20 });
  const evaluation: Evaluation = net.evaluate(x, y);
  check((evaluation.accuracy ?? 0) > 0.95, `accuracy ${evaluation.accuracy}`);
  const p: Float32Array = net.predict(x.subarray(0, 2));
  const again = await loadNetwork(net.save());
  check(again.predict(x.subarray(0, 2))[0] === p[0], 'save/load');
  again.dispose();
  // @ts-expect-error predict takes a Float32Array, not a number[]
  check((await codeOf(() => net.predict([1, 2]))) === 'BNWASM_WRONG_TYPE', 'predict(number[]) is an InputError');
  net.dispose();

  const trainer = await createTrainer(config);
  let last: TrainerProgress | undefined;
  const history = await trainer.fit(x, y, { epochs: 5, batchSize: 20, onProgress: (progress) => (last = progress) });
  check(history.loss.length === 5 && last !== undefined, 'trainer.fit');
  const snapshot = await trainer.snapshot();
  const out: Float32Array = await trainer.predict(x.subarray(0, 2));
  check(snapshot.predict(x.subarray(0, 2))[0] === out[0], 'snapshot predicts as the worker');
  check((await codeOf(() => trainer.predict(new Float32Array(3)))) === 'BNWASM_WRONG_LENGTH', 'InputError from the worker');
  snapshot.dispose();
  trainer.terminate();
  const isBnwasm: (e: unknown) => e is BnwasmError = (e): e is BnwasmError => e instanceof BnwasmError;
  check(!isBnwasm(new Error('x')), 'BnwasmError is a class');
  console.log('typescript consumer: ok');
}

main().catch((error: unknown) => {
  console.error(error);
  throw error;
});
