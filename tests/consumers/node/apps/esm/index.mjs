// A Node ES module script: `import` from the installed package.
import * as bnwasm from 'bnwasm';
import { createTrainer, InputError } from 'bnwasm';
import * as bnwasmInterop from 'bnwasm/interop';
import scenario from './scenario.cjs';

scenario.entryOf(import.meta.resolve('bnwasm'), 'import');
scenario.entryOf(import.meta.resolve('bnwasm/interop'), 'import');
if (bnwasm.createTrainer !== createTrainer || bnwasm.InputError !== InputError) throw new Error('named and namespace imports differ');
await scenario.mainThread(bnwasm);
await scenario.inWorker(bnwasm);
await scenario.interop(bnwasm, bnwasmInterop);
console.log('esm consumer: ok');
