// Types of the worker API (trainer.js). index.d.ts re-exports them.
import type { Checkpoint, Evaluation, FitOptions, History, Network, NetworkConfig, NormalizedNetworkConfig, Targets } from './index.js';

/** Per batch-norm layer in a progress message: the tracked units' statistics. */
export interface BatchNormProgress {
  /** Index of the batch-norm layer in config.layers. */
  layer: number;
  /** The tracked units (see TrainerFitOptions.trackUnits). */
  units: Int32Array;
  /** The latest mini-batch's mean of each tracked unit (the step of this message). */
  batchMean: Float32Array;
  /** The latest mini-batch's biased variance, the one it was normalized with. */
  batchVariance: Float32Array;
  /** The running averages after that mini-batch. */
  runningMean: Float32Array;
  runningVariance: Float32Array;
  /**
   * Every sample since the previous message, oldest first (the last one is the fields above).
   * Flat: batchMean[j * units.length + u] is unit units[u] at step[j]. Mini-batches are sampled
   * while the sampling costs under 5% of the training time, and always at progress time.
   */
  history: {
    step: Int32Array;
    batchMean: Float32Array;
    batchVariance: Float32Array;
    runningMean: Float32Array;
    runningVariance: Float32Array;
  };
}

export interface TrainerProgress {
  /** Epoch of this fit, from 0. */
  epoch: number;
  /** Mini-batches of this epoch done. */
  batch: number;
  batchesPerEpoch: number;
  /** The network's optimizer steps so far (over all fits). */
  step: number;
  /** Examples trained in this fit so far. */
  examplesSeen: number;
  /** Mean mini-batch loss since the previous progress message. */
  loss: number;
  /** Classification: inference-mode accuracy on the latest 256 training examples. */
  accuracy?: number;
  /** Over the last 2 s of training (pauses excluded). */
  examplesPerSecond: number;
  /** A validation result new since the previous message; step is when it was scored. */
  validation?: Evaluation & { step: number };
  batchNorm: BatchNormProgress[];
}

/** Network.fit's options, less the per-step callbacks (they would have to cross to the worker). */
export interface TrainerFitOptions extends Omit<FitOptions, 'onBatchEnd' | 'onEpochEnd'> {
  /**
   * Move the arrays' buffers to the worker instead of copying them once; the caller's arrays
   * become empty. Arrays on a SharedArrayBuffer are always shared, never copied. @default false
   */
  transfer?: boolean;
}

/** The one checkpoint format: a Network.fit checkpoint resumes in a trainer and the other way round. */
export type TrainerCheckpoint = Checkpoint;

export interface TrainerRecomputeOptions {
  /** Rows per pass into the core. @default 1024 */
  batchSize?: number;
  /** At most every progressInterval ms, and once at the end. */
  onProgress?: (p: { layer: number; examplesDone: number; examplesTotal: number }) => void;
  /** @default 100 */
  progressInterval?: number;
  /** Move x's buffer to the worker instead of copying it. @default false */
  transfer?: boolean;
}

export type TrainerHistory = History;

/** A Network that lives in a worker (a module Web Worker, or a Node worker_threads Worker). */
export declare class Trainer {
  private constructor();
  readonly config: NormalizedNetworkConfig;
  readonly inputSize: number;
  /** The threads the worker trains on: 1 is the single-thread module (configure()'s `threads`). */
  readonly threads: number;
  readonly outputSize: number;
  /** True after terminate() or a worker failure. */
  readonly terminated: boolean;
  /** One fit at a time: a second concurrent call rejects with code BNWASM_BUSY. */
  fit(x: Float32Array, y: Targets, options?: TrainerFitOptions): Promise<TrainerHistory>;
  /** Holds the running fit after its current mini-batch; resolves once it has stopped. */
  pause(): Promise<{ step: number }>;
  resume(): Promise<{ step: number }>;
  /** A main-thread Network with the worker's current state. The caller disposes it. */
  snapshot(): Promise<Network>;
  /** The worker network's save() bytes. */
  save(): Promise<Uint8Array>;
  /** Single-example inference inside the worker. */
  predict(x: Float32Array): Promise<Float32Array>;
  /**
   * Batch inference inside the worker, on its threads: row i is predict(row i). During a fit
   * it runs between two mini-batches.
   */
  predictBatch(xs: Float32Array, options?: { transfer?: boolean }): Promise<Float32Array>;
  evaluate(xs: Float32Array, ys: Targets, options?: { transfer?: boolean }): Promise<Evaluation>;
  /**
   * Network.recomputeStatistics in the worker: every batch norm's running statistics become the
   * exact ones of its input over x. Rejects with code BNWASM_BUSY while a fit runs.
   */
  recomputeStatistics(x: Float32Array, options?: TrainerRecomputeOptions): Promise<void>;
  /** Stops the worker; pending and later calls reject with DisposedError. */
  terminate(): void;
}


/** Spawns a worker, loads the wasm there and builds the network. Rejects with ConfigError for a bad config. */
export declare function createTrainer(config: NetworkConfig): Promise<Trainer>;
/**
 * A trainer whose network is loaded in a new worker from save() bytes (a Network's, a trainer's,
 * or a checkpoint's). Rejects with ModelFormatError for damaged bytes.
 */
export declare function loadTrainer(bytes: Uint8Array | ArrayBuffer): Promise<Trainer>;
