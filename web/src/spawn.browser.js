// The trainer's Web Worker, spawned from the page. Kept apart from platform.browser.js so the
// worker's own module graph (worker.js) never contains a `new Worker(...)` of itself.
import { viteDepsUrl } from './platform.browser.js';

/**
 * Starts worker.js as a module Web Worker, adapted to {post(message, transfer), terminate(),
 * ref(), unref()}, with callbacks for messages and for the worker dying.
 */
export function spawnWebWorker({ onMessage, onFailure, workerUrl }) {
  const url = workerUrl ?? viteDepsUrl('web/src/worker.js');
  // Bundlers recognise only this literal form; it must stay as written.
  const worker = url
    ? new Worker(url, { type: 'module', name: 'bnwasm-trainer' })
    : new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'bnwasm-trainer' });
  worker.onmessage = (event) => onMessage(event.data);
  // An uncaught error in a Web Worker does not end it, but its state is then unknown: the
  // client treats it as dead and terminates it. (A worker that closes itself sends no event.)
  worker.onerror = (event) => {
    event.preventDefault?.();
    onFailure(`it threw: ${event.message || 'the worker script failed to load'}`, {});
  };
  worker.onmessageerror = () => onFailure('a message could not be read', {});
  return {
    post: (message, transfer) => worker.postMessage(message, transfer),
    terminate: () => worker.terminate(),
    ref() {},
    unref() {},
  };
}
