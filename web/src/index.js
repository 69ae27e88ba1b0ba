// bnwasm: a batch-normalized neural network in SIMD WebAssembly.
export { createNetwork, loadNetwork, memoryUsage, Network, InferenceNetwork } from './network.js';
export { createTrainer, loadTrainer, Trainer } from './trainer.js';
export { configure, threadCount } from './module.js';
export { describeNetwork, networkSchema } from './config.js';
export {
  BnwasmError,
  ConfigError,
  InputError,
  DivergenceError,
  ModelFormatError,
  DisposedError,
  WorkerError,
} from './errors.js';
