// A Node CommonJS script: `require` of the installed package.
const bnwasm = require('bnwasm');
const bnwasmInterop = require('bnwasm/interop');
const { mainThread, inWorker, interop, entryOf } = require('./scenario.cjs');

entryOf(require.resolve('bnwasm'), 'require');
entryOf(require.resolve('bnwasm/interop'), 'require');
(async () => {
  await mainThread(bnwasm);
  await inWorker(bnwasm);
  await interop(bnwasm, bnwasmInterop);
  console.log('cjs consumer: ok');
})().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
