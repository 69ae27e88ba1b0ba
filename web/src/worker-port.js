// The worker's end of the channel to its Trainer, the same shape in Web Workers and Node
// worker threads: {post(message, transfer), listen(handler)}. A 'configure' message (sent by
// the client before its first request when configure() named a wasm URL or bytes) is taken
// here, so the protocol in worker.js never sees it.
import { configureModule } from './module.js';
import { platform } from './platform.js';

/** The port to the client. */
export function workerPort() {
  const port = platform.workerPort();
  return {
    post: port.post,
    listen: (handler) =>
      port.listen((message) => (message?.type === 'configure' ? configureModule(message.settings) : handler(message))),
  };
}

/**
 * Ends this worker at once where the platform can (a Node worker thread exits with `code`).
 * Returns false where it cannot (a Web Worker), and the caller throws instead.
 */
export function exitThread(code) {
  return platform.exitThread(code);
}
