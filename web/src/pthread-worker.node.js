// One pthread of the threaded module in Node.js: gives Emscripten's worker script (written for
// Web Workers) the globals it uses, self, postMessage and onmessage, over worker_threads' port.
import { parentPort } from 'node:worker_threads';

const early = [];
globalThis.self = globalThis;
globalThis.postMessage = (message, transfer) => parentPort.postMessage(message, transfer);
parentPort.on('message', (data) => (globalThis.onmessage ? globalThis.onmessage({ data }) : early.push(data)));
await import('../dist/bnwasm-mt.worker.js');
for (const data of early.splice(0)) globalThis.onmessage({ data });
