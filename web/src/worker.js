// The trainer's worker: one Network, driven by messages. The same file runs as a module
// Web Worker and, through worker.node.js, as a Node worker_threads Worker.
//
// Protocol (the client is trainer.js):
//   requests  {id, type: 'create', config}            -> result {config, inputSize, outputSize, threads, build}
//             (config: its Value bytes, encoded on the page; build: the wasm build it runs on)
//             {id, type: 'load', bytes}                -> result {config, inputSize, outputSize, threads, build}
//             {id, type: 'fit', x, y, options}         -> progress {progress}* and checkpoint {checkpoint}*
//                                                         (bytes transferred), then result (history)
//             {id, type: 'pause' | 'resume'}           -> result {step}  (pause: once the fit has stopped)
//             {id, type: 'snapshot'}                   -> result {bytes}  (save(); the buffer is transferred)
//             {id, type: 'predict', x}                 -> result {output} (transferred)
//             {id, type: 'predictBatch', x}            -> result {output} (transferred)
//             {id, type: 'evaluate', x, y}             -> result {loss, accuracy?}
//             {id, type: 'recomputeStatistics', x, options} -> progress {progress}*, then result
//             {type: 'abort', fit}                     (no reply: the fit resolves early)
//             {type: '__crash', how, atStep?}          (internal test hook, Trainer._crash: the worker dies)
//   replies   {id, type: 'result', result} | {id, type: 'error', error: {name, message, code, details}}
//             | {id, type: 'progress', progress} | {id, type: 'checkpoint', checkpoint}
//   notices   {type: 'threadFailure', reason}          (its threads could not start: sent while it
//             starts, before the create/load reply, whether or not the network is then refused)
import { buildOf, loadNetwork, openNetwork } from './network.js';
import { BnwasmError, InputError, describe, serializeError } from './errors.js';
import { setThreadFailureHandler, threadCount } from './module.js';
import { exitThread, workerPort } from './worker-port.js';
import './threads.browser.js';

const port = workerPort();
let net = null;
let fitting = null; // the running fit: {id, controller}
let crashAt = null; // test hook: {step, how}, die once the running fit reaches that step
let paused = false; // a pause request holds the running fit until resume (or its end)
let held = false; // the running fit is held between two mini-batches
let wake = null; // resolves the held fit's wait
let pauseAcks = []; // ids of pause requests to answer once the fit has stopped

const reply = (id, result, transfer = []) => port.post({ id, type: 'result', result }, transfer);

// Threads that could not start are the client's to warn about: it does so once per page, however
// many trainers it starts, and starts the next ones on one thread (module.js threadsFailed). A
// notice of its own, not part of the reply: a config or model the core then refuses still tells.
setThreadFailureHandler((reason) => port.post({ type: 'threadFailure', reason }));

port.listen(async (message) => {
  const { id, type } = message;
  try {
    switch (type) {
      case 'create':
      case 'load': {
        if (net) throw new BnwasmError(`${type}: this worker already holds a network`, 'BNWASM_INVALID_ARGUMENT');
        net = type === 'create' ? await openNetwork('createTrainer', undefined, message.config) : await loadNetwork(message.bytes);
        reply(id, { config: net.config, inputSize: net.inputSize, outputSize: net.outputSize, threads: await threadCount(), build: buildOf(net) });
        return;
      }
      case 'abort':
        if (fitting && fitting.id === message.fit) {
          fitting.controller.abort();
          wake?.();
        }
        return;
      case 'pause':
        network('pause');
        if (fitting && !held) {
          paused = true;
          pauseAcks.push(id);
        } else {
          reply(id, { step: net.steps });
        }
        return;
      case 'resume':
        paused = false;
        wake?.();
        reply(id, { step: network('resume').steps });
        return;
      case 'snapshot': {
        const bytes = network('snapshot').save();
        reply(id, { bytes }, [bytes.buffer]);
        return;
      }
      case 'predict':
      case 'predictBatch': {
        const output = network(type)[type](message.x);
        reply(id, { output }, [output.buffer]);
        return;
      }
      case 'evaluate':
        reply(id, network('evaluate').evaluate(message.x, message.y));
        return;
      case 'fit':
        reply(id, await fit(id, message.x, message.y, message.options));
        return;
      case 'recomputeStatistics': {
        const { onProgress, ...options } = message.options;
        const post = (progress) => port.post({ id, type: 'progress', progress });
        await network('recomputeStatistics').recomputeStatistics(message.x, { ...options, onProgress: onProgress ? post : undefined });
        reply(id, undefined);
        return;
      }
      case '__crash':
        if (message.atStep === undefined) await crash(message.how);
        crashAt = { step: message.atStep, how: message.how };
        return;
      default:
        throw new InputError(`bnwasm worker: unknown request type ${describe(type)}`, 'BNWASM_INVALID_ARGUMENT');
    }
  } catch (error) {
    port.post({ id, type: 'error', error: serializeError(error) });
  }
});

// Test hook (Trainer._crash): end this worker the way a fault would, with no reply. In Node
// exitThread ends just this thread ('exit' on the client); an uncaught error ('error', then
// 'exit') is the other way. Browsers give no event for a worker that closes itself, so they
// always get the uncaught error. Never resolves: nothing runs after it.
function crash(how) {
  if (how === 'exit') exitThread(70);
  // Thrown from a microtask, outside every request's try: uncaught before any other message runs.
  queueMicrotask(() => {
    throw new Error('bnwasm worker: crashed on request (Trainer._crash, a test hook)');
  });
  return new Promise(() => {});
}

function network(fn) {
  if (!net) throw new BnwasmError(`${fn}(): the worker has no network yet`, 'BNWASM_INVALID_ARGUMENT');
  return net;
}

// Network.fit, with its callbacks turned into messages: progress and checkpoints are posted
// (their buffers moved), pause holds it between mini-batches, abort ends it.
async function fit(id, x, y, { onProgress, onCheckpoint, aborted, ...options }) {
  const controller = new AbortController();
  if (aborted) controller.abort();
  const state = { id, controller };
  const busy = fitting;
  if (!busy) fitting = state; // Network.fit refuses a second fit itself
  try {
    return await network('fit').fit(x, y, {
      ...options,
      signal: controller.signal,
      onProgress: onProgress ? (progress) => port.post({ id, type: 'progress', progress }, buffersOf(progress)) : undefined,
      onCheckpoint: onCheckpoint ? (checkpoint) => port.post({ id, type: 'checkpoint', checkpoint }, [checkpoint.bytes.buffer]) : undefined,
      onBatchEnd: (step) => hold(step, controller.signal),
    });
  } finally {
    if (!busy) {
      fitting = null;
      paused = false;
      for (const ack of pauseAcks.splice(0)) reply(ack, { step: net.steps });
    }
  }
}

// Between mini-batches: die if the crash hook says so; hold while paused. Returns a promise
// only when the fit must wait, so an ordinary step costs nothing.
function hold(step, signal) {
  if (crashAt && step >= crashAt.step) return crash(crashAt.how);
  if (!paused || signal.aborted) return undefined;
  for (const ack of pauseAcks.splice(0)) reply(ack, { step });
  held = true;
  return (async () => {
    while (paused && !signal.aborted) await new Promise((resolve) => (wake = resolve));
    held = false;
    wake = null;
  })();
}

// The ArrayBuffers of every typed array in a progress report, to move rather than copy.
function buffersOf(value, list = []) {
  if (ArrayBuffer.isView(value)) list.push(value.buffer);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) buffersOf(v, list);
  return list;
}
