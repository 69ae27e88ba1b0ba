// A Node CommonJS script: `require` of the installed package.
const bnwasm = require('bnwasm');
const { mainThread, inWorker, entryOf } = require('./scenario.cjs');

entryOf(require.resolve('bnwasm'), 'require');
(async () => {
  await mainThread(bnwasm);
  await inWorker(bnwasm);
  console.log('cjs consumer: ok');
})().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
