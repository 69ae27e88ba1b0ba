// Type declarations for bnwasm. Defaults are written once, here and in the JSDoc of web/src.

import type { TrainerProgress } from './trainer.js';
export type Labels = Int32Array | Uint8Array | Uint16Array | Int16Array | Int8Array | Uint32Array;
/** Class labels for softmaxCrossEntropy, or (m * outputSize) float targets for meanSquaredError. */
export type Targets = Labels | Float32Array;

import type { AdamConfig, LayerConfig, NormalizedLayerConfig, SgdConfig } from './schema.js';
// The layer and optimizer configs, written from the core's registry (web/src/schema.d.ts).
export type * from './schema.js';

/** Earlier names of some layer configs. */
export type ActivationLayerConfig = import('./schema.js').ReluLayerConfig | import('./schema.js').SigmoidLayerConfig | import('./schema.js').TanhLayerConfig;
export type Pool2dLayerConfig = import('./schema.js').MaxPool2dLayerConfig | import('./schema.js').AvgPool2dLayerConfig;
export type ShapeLayerConfig = import('./schema.js').GlobalAvgPoolLayerConfig | import('./schema.js').FlattenLayerConfig;

export interface NetworkConfig {
  /** Values per example. Give this or inputShape. */
  inputSize?: number;
  /**
   * [channels, height, width] for image inputs (conv and pooling layers); examples
   * stay flat Float32Arrays in NCHW order (a 28x28 image is the same 784 floats).
   * A batch norm after a conv layer normalizes per channel over batch and positions.
   */
  inputShape?: [number, number, number];
  /**
   * The layers, in order. May be empty: the network's output is then its input (an image's
   * C * H * W values), its softmax for 'softmaxCrossEntropy', and training changes nothing
   * but `steps`.
   */
  layers: LayerConfig[];
  /** @default 'softmaxCrossEntropy' */
  loss?: 'softmaxCrossEntropy' | 'meanSquaredError';
  /** @default { type: 'adam', learningRate: 1e-3 } */
  optimizer?: SgdConfig | AdamConfig;
  /** Seeds initialisation and shuffling; same seed, same network. @default 1 */
  seed?: number;
}

/** A config with every default filled in, as Network.config returns it. */
export interface NormalizedNetworkConfig {
  inputSize: number;
  /** Present for image inputs. */
  inputShape?: [number, number, number];
  layers: NormalizedLayerConfig[];
  loss: 'softmaxCrossEntropy' | 'meanSquaredError';
  optimizer: Required<SgdConfig> | Required<AdamConfig>;
  seed: number;
}

/** One layer as the core built it (Network.layers, describeNetwork). */
export interface LayerInfo {
  index: number;
  type: LayerConfig['type'];
  /** Its name, when the config gives one. */
  name?: string;
  /** The layers it reads, by index; -1 is the network's input. */
  inputs: number[];
  /** [channels, height, width] for an image, [features] otherwise. */
  inputShapes: number[][];
  outputShape: number[];
  /** Its tensors (as getWeights lists them), with the names PyTorch's state_dict and TF.js give them. */
  tensors: { name: WeightTensor['name']; shape: number[]; trainable: boolean; torch: string; tfjs: string }[];
  /** Multiply-adds of one example's forward pass. */
  macs: number;
  /** conv2d: the zeros on each side, [top, left, bottom, right]. */
  pads?: [number, number, number, number];
}

export interface WeightTensor {
  /** Index into config.layers. */
  layer: number;
  /** dense: 'weight' [units, inputs], 'bias' [units]; conv2d: 'weight' [filters, inChannels, kh, kw], 'bias' [filters]; batchNorm: 'gamma', 'beta', 'runningMean', 'runningVariance' [features, or channels after a conv layer]. */
  name: 'weight' | 'bias' | 'gamma' | 'beta' | 'runningMean' | 'runningVariance';
  shape: number[];
  values: Float32Array;
}

export interface WeightUpdate {
  layer: number;
  name: WeightTensor['name'];
  /** Checked against the tensor's shape when given. */
  shape?: number[];
  values: Float32Array | ArrayLike<number>;
}

export interface BatchLogs {
  epoch: number;
  batch: number;
  loss: number;
}

export interface EpochLogs {
  loss: number;
  valLoss?: number;
  valAccuracy?: number;
}

export interface FitOptions {
  /** @default 1 */
  epochs?: number;
  /** @default 32 */
  batchSize?: number;
  /** Reshuffle every epoch with the network's seeded generator (its state is saved with the model). @default true */
  shuffle?: boolean;
  /** Scored at each epoch end (and, with onProgress, once before training and every validationInterval ms). */
  validationData?: [Float32Array, Targets];
  /** After every step. Return a promise to hold training until it settles (held time is left out of progress rates). */
  onBatchEnd?: (step: number, logs: BatchLogs) => void | Promise<void>;
  onEpochEnd?: (epoch: number, logs: EpochLogs) => void;
  /** Stops after the current mini-batch; fit() then resolves with aborted: true. */
  signal?: AbortSignal;
  /** Called at most every progressInterval ms. */
  onProgress?: (progress: TrainerProgress) => void;
  /** @default 100 */
  progressInterval?: number;
  /** Milliseconds between validations within an epoch; 0 validates at epoch ends only. @default 0 */
  validationInterval?: number;
  /** Batch-norm units reported in progress: a count (the first n) or unit indices. @default 4 */
  trackUnits?: number | number[];
  /**
   * How every batch-norm layer trains during this fit: 'batch' normalizes with each mini-batch's
   * statistics and updates the running averages; 'frozen' normalizes with the running averages
   * and leaves them (gamma and beta still learn; a mini-batch of one example is then allowed).
   * Left out, each layer trains as its `mode` option says.
   */
  batchNorm?: 'batch' | 'frozen';
  /** Call onCheckpoint every this many optimizer steps (counted over all fits, as `step`). */
  checkpointEvery?: number;
  onCheckpoint?: (checkpoint: Checkpoint) => void;
  /**
   * Continue exactly where a checkpoint was taken: on a network (loadNetwork) or trainer
   * (loadTrainer) made from checkpoint.bytes, with the same data and options, the fit ends with
   * the same bytes as if it had never stopped. Other data, batchSize or shuffle are refused.
   */
  resumeFrom?: Checkpoint;
}

/** What onCheckpoint receives; the same format from Network.fit and Trainer.fit, resumable in either. */
export interface Checkpoint {
  /** save() bytes at the checkpoint. */
  bytes: Uint8Array;
  /** Epoch of the fit the checkpoint was taken in, from 0. */
  epoch: number;
  /** Mini-batches of that epoch done (the next one's index). */
  batch: number;
  /** The network's optimizer steps. */
  step: number;
  /** The shuffling generator's state at the start of the epoch (16 hex digits): it redraws the epoch's order. */
  shuffleState: string;
  /** The fit's batchSize, number of examples and shuffle; resuming with others is refused. */
  batchSize: number;
  examples: number;
  shuffle: boolean;
}

export interface History {
  epoch: number[];
  loss: number[];
  valLoss: number[];
  valAccuracy: number[];
  /** The network's optimizer steps when the fit ended. */
  steps: number;
  /** True when the signal stopped the fit. */
  aborted: boolean;
}

export interface Evaluation {
  loss: number;
  /** Classification (softmaxCrossEntropy) only. */
  accuracy?: number;
}

export declare class Network {
  private constructor();
  readonly config: NormalizedNetworkConfig;
  /** Each layer's shapes and tensors, as the core built them. */
  readonly layers: LayerInfo[];
  readonly inputSize: number;
  readonly outputSize: number;
  /** Optimizer steps taken so far. */
  readonly steps: number;
  readonly disposed: boolean;
  /** One optimizer step on one mini-batch of m >= 2 examples; returns the loss before the update. */
  trainBatch(x: Float32Array, y: Targets): number;
  fit(x: Float32Array, y: Targets, options?: FitOptions): Promise<History>;
  /** ONE example with the running statistics, gamma and beta; probabilities for softmaxCrossEntropy. */
  predict(x: Float32Array, out?: Float32Array): Float32Array;
  /** Many examples in inference mode; row i equals predict(row i) exactly. */
  predictBatch(xs: Float32Array): Float32Array;
  evaluate(xs: Float32Array, ys: Targets): Evaluation;
  getWeights(): WeightTensor[];
  setWeights(list: WeightUpdate[]): void;
  /** Config, parameters, running statistics and optimizer state. */
  save(): Uint8Array;
  dispose(): void;
  /**
   * Sets every batch norm's running mean and variance to the exact (float64) statistics of its
   * input over x, layer by layer, earlier layers already using their new statistics.
   */
  recomputeStatistics(
    x: Float32Array,
    options?: {
      /** @default 1024 */
      batchSize?: number;
      /** At most every progressInterval ms, and once at the end. */
      onProgress?: (p: { layer: number; examplesDone: number; examplesTotal: number }) => void;
      /** @default 100 */
      progressInterval?: number;
    },
  ): Promise<void>;
  /** One layer's inference-mode outputs for many examples: (n * width of that layer). The layer by index or name. */
  activations(xs: Float32Array, layer: number | string): Float32Array;
  /**
   * A new network: this one up to the layer `after` (and what the new layers name in their
   * inputs, and everything these depend on), with its weights, running statistics and batch
   * counts, then `layers`. `freeze` makes the kept layers not trainable. This network is unchanged.
   */
  replaceHead(options: {
    after: number | string;
    layers: LayerConfig[];
    /** @default false */
    freeze?: boolean;
    loss?: NetworkConfig['loss'];
    optimizer?: NetworkConfig['optimizer'];
    seed?: number;
  }): Promise<Network>;
  /** A predict-only copy with every batch norm folded into the dense layer before it. */
  toInference(): Promise<InferenceNetwork>;
  /**
   * ONNX ModelProto bytes of the inference graph (input 'input', output 'output', dynamic batch).
   * Needs `import 'bnwasm/interop'`; throws BNWASM_INTEROP_NOT_LOADED otherwise.
   */
  toONNX(options?: {
    /** 13 to 17. @default 15 */
    opset?: number;
    /** Merge each batch norm into the dense layer before it. @default false */
    fold?: boolean;
  }): Uint8Array;
  /** The tensors under nn.Sequential state_dict names, safetensors format. Needs `import 'bnwasm/interop'`. */
  toSafetensors(): Uint8Array;
  /** A tfjs-layers model (model.json object and weights.bin bytes). Needs `import 'bnwasm/interop'`. */
  toTfjsLayers(): { modelJson: TfjsModelJson; weightData: ArrayBuffer };
}

/** A tfjs-layers model.json: format 'layers-model', modelTopology, weightsManifest. */
export interface TfjsModelJson {
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
}

export declare class InferenceNetwork {
  private constructor();
  readonly config: NormalizedNetworkConfig;
  readonly layers: LayerInfo[];
  readonly inputSize: number;
  readonly outputSize: number;
  readonly disposed: boolean;
  predict(x: Float32Array, out?: Float32Array): Float32Array;
  predictBatch(xs: Float32Array): Float32Array;
  evaluate(xs: Float32Array, ys: Targets): Evaluation;
  getWeights(): WeightTensor[];
  save(): Uint8Array;
  dispose(): void;
}

export declare function createNetwork(config: NetworkConfig): Promise<Network>;
/** What createNetwork would build, without building it: the config with its defaults, and each layer's shapes and tensors. Throws its ConfigError. */
export declare function describeNetwork(config: NetworkConfig): Promise<{ config: NormalizedNetworkConfig; layers: LayerInfo[] }>;
/** The core's registry: every layer type's and optimizer's options (kind, default, range, doc) and tensors. */
export declare function networkSchema(): Promise<{ layers: object[]; optimizers: object[]; network: object[] }>;
export declare function loadNetwork(bytes: Uint8Array | ArrayBuffer): Promise<Network>;
/** Memory diagnostics for leak checks. */
/**
 * Where bnwasm finds its files, for hosts the defaults do not fit (a CDN, a strict
 * Content-Security-Policy, a custom asset pipeline). By default the wasm and the worker are found
 * next to the package's modules (`new URL('./…', import.meta.url)`, which bundlers rewrite).
 * Call before the first createNetwork/loadNetwork/createTrainer; trainers pass the wasm setting
 * on to their worker. Bad options throw InputError.
 */
export interface ConfigureOptions {
  /**
   * Where to fetch bnwasm.wasm, the full build; a relative URL resolves against the page. Not
   * with wasmBinary. With it every network runs on that file (bnwasm-dense.wasm, the smaller
   * build for networks without convolution or pooling layers, is not fetched).
   */
  wasmUrl?: string | URL;
  /** The bytes of bnwasm.wasm (nothing is fetched; every network runs on them). Not with wasmUrl. */
  wasmBinary?: ArrayBuffer | Uint8Array;
  /** The trainer's worker: a module script running bnwasm's worker entry (`bnwasm/worker`). */
  workerUrl?: string | URL;
  /**
   * Threads for training and batch inference, the calling one included (an integer, 1 to 256);
   * default the cores available, at most 256. `1` loads the single-thread module. Threads run in
   * Node and in createTrainer's worker on a cross-origin-isolated page (COOP `same-origin` + COEP
   * `require-corp`); elsewhere bnwasm runs on one thread (a page's main thread always), with one
   * console warning when threads were asked for on a page that is not isolated. With wasmUrl or
   * wasmBinary (the single-thread build's file) there are none.
   */
  threads?: number;
}
export declare function configure(options: ConfigureOptions): void;
/** The threads this realm's bnwasm uses (1: the single-thread module). Loads a module if none is loaded. */
export declare function threadCount(): Promise<number>;

/**
 * Memory diagnostics, for leak checks: the wasm memory's size, the bytes allocated inside it
 * (both summed over the modules loaded: bnwasm.wasm and bnwasm-dense.wasm when networks of
 * both kinds were made) and the networks not yet disposed or collected.
 */
export declare function memoryUsage(): Promise<{ wasmMemoryBytes: number; allocatedBytes: number; liveNetworks: number }>;

export type ErrorCode =
  | 'BNWASM_INVALID_CONFIG'
  | 'BNWASM_WRONG_TYPE'
  | 'BNWASM_WRONG_LENGTH'
  | 'BNWASM_NON_FINITE'
  | 'BNWASM_LABEL_OUT_OF_RANGE'
  | 'BNWASM_BATCH_TOO_SMALL'
  | 'BNWASM_INVALID_ARGUMENT'
  | 'BNWASM_DIVERGED'
  | 'BNWASM_CORRUPT_MODEL'
  | 'BNWASM_DISPOSED'
  | 'BNWASM_WORKER_FAILED'
  | 'BNWASM_THREAD_FAILED'
  | 'BNWASM_BUSY'
  | 'BNWASM_INTEROP_NOT_LOADED';

export declare class BnwasmError extends Error {
  readonly code: ErrorCode | string;
  /** The offending element's index, where there is one. */
  readonly index?: number;
  readonly value?: number;
  /** A ConfigError's place in the config: 'config', 'optimizer', 'layers[2]', 'layers[2] (name)'. */
  readonly path?: string;
}
export declare class ConfigError extends BnwasmError {}
export declare class InputError extends BnwasmError {}
export declare class DivergenceError extends BnwasmError {}
/** Bytes that are not a model bnwasm reads. An ONNX refusal says why in `reason` (docs/interop.md lists them per op). */
export declare class ModelFormatError extends BnwasmError {
  /** Why an importer refused the file, stable: 'group', 'batch-axis', 'data-type', ... */
  readonly reason?: string;
  /** The ONNX op and node at fault, when a node is. */
  readonly op?: string;
  readonly node?: string;
}
export declare class DisposedError extends BnwasmError {}
/** The trainer's worker died (exit or uncaught error); every pending call rejects with it. */
export declare class WorkerError extends BnwasmError {}

export { createTrainer, loadTrainer, Trainer } from './trainer.js';
export type {
  TrainerFitOptions,
  TrainerProgress,
  TrainerHistory,
  BatchNormProgress,
  TrainerCheckpoint,
  TrainerRecomputeOptions,
} from './trainer.js';
