// bnwasm: a batch-normalized neural network in SIMD WebAssembly.
export { createNetwork, loadNetwork, memoryUsage, Network, InferenceNetwork } from './network.js';
export { createTrainer, Trainer } from './trainer.js';
export {
  BnwasmError,
  ConfigError,
  InputError,
  DivergenceError,
  ModelFormatError,
  DisposedError,
} from './errors.js';
