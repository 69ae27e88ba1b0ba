// One thread of the threaded module's pool in Node.js: gives pthread.js (written for Web
// Workers) the globals it uses, self, postMessage and onmessage, over worker_threads' port.
import { parentPort } from 'node:worker_threads';

globalThis.self = globalThis;
globalThis.postMessage = (message, transfer) => parentPort.postMessage(message, transfer);
const { servePthread } = await import('./pthread.js');
servePthread();
parentPort.on('message', (data) => globalThis.onmessage({ data }));
