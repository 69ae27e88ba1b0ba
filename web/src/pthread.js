// One thread of the threaded module's pool: the protocol of Emscripten 3.1.6's own pthread
// worker script (bnwasm-mt.worker.js, which is not shipped), with the glue imported statically.
// In a browser the thread is another instance of the trainer's worker script (threads.browser.js
// starts it and calls servePthread there), so bundlers have no second worker to find; in Node,
// pthread-worker.node.js calls it. The wasm module and the shared memory come from the thread
// that starts the pool; nothing is fetched here.
import createModule from '../dist/bnwasm-mt.mjs';

let Module = {};

Module.instantiateWasm = (imports, receiveInstance) => {
  const instance = new WebAssembly.Instance(Module.wasmModule, imports);
  receiveInstance(instance);
  Module.wasmModule = null;
  return instance.exports;
};

/** Makes this worker a thread of the pool: it answers the messages of the glue that started it. */
export function servePthread() {
  self.onmessage = onMessage;
}

function onMessage(event) {
  const data = event.data;
  switch (data.cmd) {
    case 'load':
      Module.wasmModule = data.wasmModule;
      Module.wasmMemory = data.wasmMemory;
      Module.buffer = data.wasmMemory.buffer;
      Module.ENVIRONMENT_IS_PTHREAD = true;
      createModule(Module).then((instance) => {
        Module = instance;
      });
      return;
    case 'run': {
      Module.__performance_now_clock_drift = performance.now() - data.time;
      Module.__emscripten_thread_init(data.threadInfoStruct, 0, 0, 1);
      Module.establishStackSpace();
      Module.PThread.receiveObjectTransfer(data);
      Module.PThread.threadInit();
      try {
        const result = Module.invokeEntryPoint(data.start_routine, data.arg);
        if (Module.keepRuntimeAlive()) Module.PThread.setExitStatus(result);
        else Module.__emscripten_thread_exit(result);
      } catch (error) {
        if (error === 'unwind') return;
        if (!(error instanceof Module.ExitStatus)) {
          // The thread died in a task (a trap): the thread waiting for that task would wait for
          // ever. Marked, it throws instead (parallel.h, set_parallel_failed); the error itself
          // goes on to this worker's error event.
          Module._bn_pool_thread_failed();
          throw error;
        }
        if (!Module.keepRuntimeAlive()) Module.__emscripten_thread_exit(error.status);
      }
      return;
    }
    case 'cancel':
      if (Module._pthread_self()) Module.__emscripten_thread_exit(-1);
      return;
    case 'processThreadQueue':
      if (Module._pthread_self()) Module._emscripten_current_thread_process_queued_calls();
      return;
    default:
      // setimmediate and the rest of Emscripten's protocol: nothing this module uses.
      return;
  }
}
