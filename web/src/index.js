// bnwasm: a batch-normalized neural network in SIMD WebAssembly.
export { createNetwork, loadNetwork, Network } from './network.js';
export {
  BnwasmError,
  ConfigError,
  InputError,
  DivergenceError,
  ModelFormatError,
  DisposedError,
} from './errors.js';
