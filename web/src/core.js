// The core's C exports (cpp/bindings/exports.cpp) as the calls the facade makes, one line
// each. A Handle owns one core network (dispose() in network.js frees it); the functions
// below it take the module. Pointers are byte offsets into wasm memory; Value bytes cross
// through the core's argument buffer (bn_arg) and result buffer (bn_result).
import { decodeValue } from './value.js';

// Copies the n bytes the last call left at bn_result() and frees them there.
function take(mod, n) {
  const p = mod._bn_result();
  const bytes = mod.HEAPU8.slice(p, p + n);
  mod._bn_release();
  return bytes;
}

// Writes bytes into the core's argument buffer (the call that reads them frees it).
function put(mod, bytes) {
  // bn_arg may grow the memory, so HEAPU8 is read after it: in `mod.HEAPU8.set(bytes,
  // mod._bn_arg(n))` JavaScript reads the view first, and a grown memory leaves it too short.
  const p = mod._bn_arg(bytes.length);
  mod.HEAPU8.set(bytes, p);
  return bytes.length;
}

const handle = (mod, p) => (p === 0 ? null : new Handle(mod, p));

/** A network from a config's Value bytes, or null (then lastError()). @internal */
export const create = (mod, bytes) => handle(mod, mod._bn_create(put(mod, bytes)));
/** A network from save() bytes, or null (then lastError()). @internal */
export const load = (mod, bytes) => handle(mod, mod._bn_load(put(mod, bytes)));
/** {config, layers} as Value bytes for a config's Value bytes, or null (then lastError()). @internal */
export function describe(mod, bytes) {
  const n = mod._bn_describe(put(mod, bytes));
  return n === 0 ? null : take(mod, n);
}
/** The registry as Value bytes. @internal */
export const schema = (mod) => take(mod, mod._bn_schema());
/** Why the last create, load or describe failed: {status, argument, index, value, message, where, detail}. @internal */
export const lastError = (mod) => decodeValue(take(mod, mod._bn_last_error()));
/** Bytes malloc has handed out and not taken back. @internal */
export const heapAllocated = (mod) => mod._bn_heap_allocated();
/** Sets the threads of the threaded module's pool; returns the count it runs with. @internal */
export const setThreadCount = (mod, n) => mod._bn_set_thread_count(n);

/** One core network. @internal */
export class Handle {
  #m;
  #p;
  #tensors = null;
  constructor(mod, p) {
    this.#m = mod;
    this.#p = p;
  }
  isDeleted() { return this.#p === 0; }
  delete() { this.#m._bn_free(this.#p); this.#p = 0; }

  input(rows) { return this.#m._bn_input(this.#p, rows); }
  labels(rows) { return this.#m._bn_labels(this.#p, rows); }
  targets(rows) { return this.#m._bn_targets(this.#p, rows); }
  output(rows) { return this.#m._bn_output(this.#p, rows); }
  indices(n) { return this.#m._bn_indices(this.#p, n); }
  check(rows) { return this.#m._bn_check(this.#p, rows); }
  train(rows) { return this.#m._bn_train(this.#p, rows); }
  trainLoss() { return this.#m._bn_train_loss(this.#p); }
  checkTrainingBatch(rows) { return this.#m._bn_check_training_batch(this.#p, rows); }
  minTrainingBatch() { return this.#m._bn_min_training_batch(this.#p); }
  setBatchNorm(mode) { this.#m._bn_set_batch_norm(this.#p, mode); }
  batchNorm() { return this.#m._bn_batch_norm(this.#p); }
  predictOne() { return this.#m._bn_predict_one(this.#p); }
  predictBatch(rows) { return this.#m._bn_predict_batch(this.#p, rows); }
  evaluate(rows) { return this.#m._bn_evaluate(this.#p, rows); }
  evalLossSum() { return this.#m._bn_eval_loss_sum(this.#p); }
  evalCorrect() { return this.#m._bn_eval_correct(this.#p); }
  shuffle(n) { this.#m._bn_shuffle(this.#p, n); }
  // The shuffling generator's 64-bit state as 16 hex digits (a JS number holds only 53 bits).
  rngState() {
    const half = (high) => (this.#m._bn_rng_state(this.#p, high) >>> 0).toString(16).padStart(8, '0');
    return half(1) + half(0);
  }
  setRngState(hex) {
    this.#m._bn_set_rng_state(this.#p, parseInt(hex.slice(0, 8), 16), parseInt(hex.slice(8), 16));
  }
  steps() { return this.#m._bn_steps(this.#p); }
  inputSize() { return this.#m._bn_input_size(this.#p); }
  outputSize() { return this.#m._bn_output_size(this.#p); }
  weightsChanged() { this.#m._bn_weights_changed(this.#p); }
  /** Every tensor, [{layer, name, data (a byte offset), size, shape}]: fixed for the network's life. */
  tensors() { return (this.#tensors ??= decodeValue(take(this.#m, this.#m._bn_tensors(this.#p)))); }
  forwardTo(rows, layer) { return this.#m._bn_forward_to(this.#p, rows, layer); }
  layerOutput(layer) { return this.#m._bn_layer_output(this.#p, layer); }
  layerWidth(layer) { return this.#m._bn_layer_width(this.#p, layer); }
  channels(layer) { return this.#m._bn_channels(this.#p, layer); }
  populationCheck(rows) { return this.#m._bn_population_check(this.#p, rows); }
  populationBegin(layer) { return this.#m._bn_population_begin(this.#p, layer); }
  populationAdd(rows) { return this.#m._bn_population_add(this.#p, rows); }
  populationEnd() { return this.#m._bn_population_end(this.#p); }
  batchMean(layer) { return this.#m._bn_batch_mean(this.#p, layer); }
  batchVar(layer) { return this.#m._bn_batch_var(this.#p, layer); }
  batchesTracked(layer) { return this.#m._bn_batches_tracked(this.#p, layer); }
  setBatchesTracked(layer, n) { return this.#m._bn_set_batches_tracked(this.#p, layer, n); }
  config() { return take(this.#m, this.#m._bn_config(this.#p)); }
  layers() { return take(this.#m, this.#m._bn_layers(this.#p)); }
  // save() bytes, copied out of wasm memory.
  save() {
    const n = this.#m._bn_save(this.#p);
    const p = this.#m._bn_saved(this.#p);
    const bytes = this.#m.HEAPU8.slice(p, p + n);
    this.#m._bn_release_saved(this.#p);
    return bytes;
  }
  error() { return decodeValue(take(this.#m, this.#m._bn_error(this.#p))); }
  folded() { return handle(this.#m, this.#m._bn_folded(this.#p)); }
}
