// bnwasm: a batch-normalized neural network in SIMD WebAssembly.
export { createNetwork, loadNetwork, Network, InferenceNetwork } from './network.js';
export { createTrainer, Trainer } from './trainer.js';
export {
  BnwasmError,
  ConfigError,
  InputError,
  DivergenceError,
  ModelFormatError,
  DisposedError,
} from './errors.js';
