// A network of layers wired into a graph (each layer takes the outputs of
// earlier ones; the last layer is the output), trained one mini-batch at a
// time and served one example at a time. A network without layers is valid:
// its output is its input (an image's C * H * W values in NCHW order). The network loops over the layers'
// LayerOps (bnwasm/layer_op.h) and never asks which type a layer is: each
// type's registry entry (bnwasm/spec.h) knows its options, shapes and tensors.
//
// Parameters, their gradients and the optimizer's moments live in flat arenas
// with one layout; running statistics live in a separate arena because the
// optimizer never touches them. Nothing allocates per step once the staging
// buffers have grown to the largest batch seen.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/layer_op.h"
#include "bnwasm/parallel.h"
#include "bnwasm/spec.h"
#include "bnwasm/value.h"

namespace bnwasm {

enum class Status : int32_t {
  Ok = 0,
  InvalidConfig = 1,    // a config value is out of range
  NonFiniteInput = 2,   // NaN or Infinity in x or in a target
  LabelOutOfRange = 3,  // a class label outside [0, outputs)
  BatchTooSmall = 4,    // a training batch of fewer than 2 examples under batch norm
  Diverged = 5,         // the step would make loss, parameters or statistics non-finite
  CorruptModel = 6,     // model bytes that do not parse or fail their checksum
  BadArgument = 7,      // a size or index that does not fit the network
};

// Which argument an error is about, so the caller can name it in its own terms.
enum class Argument : int32_t {
  None = 0,
  Input = 1,   // the staged input rows: index counts floats from the first row
  Target = 2,  // the staged labels (index: row) or targets (index: float)
  Spec = 3,    // the config: `where` and `detail` say where and what
};

// What went wrong in the last failing call: the status, the argument and the
// offending element's index and value where there is one, and a message in
// plain words. Input and Target errors complete "<argument>[index] is <value>,
// ..."; Spec errors are "<where>: <message>[, got <detail>]" (the caller shows
// the detail, a Value, in its own language's terms).
struct ErrorInfo {
  Status status = Status::Ok;
  Argument argument = Argument::None;
  std::string message;
  int64_t index = -1;
  double value = 0;
  std::string where;     // Spec: "config", "optimizer", "layers[2]", "layers[2] (b1.add)", ""
  Value detail;          // Spec: the offending value
  bool has_detail = false;
};
// The ErrorInfo of a refused config.
ErrorInfo spec_error(Status status, const SpecFailure& why);

// A named view of one tensor, for getWeights/setWeights.
struct TensorView {
  int32_t layer;
  const char* name;  // weight, bias, gamma, beta, runningMean, runningVariance
  std::vector<int32_t> shape;
  float* data;
  size_t size;
  bool trainable;
};

class Network {
 public:
  static Status create(const NetworkSpec& spec, std::unique_ptr<Network>* out, ErrorInfo* error);
  // A network from its config as a Value (what JS sends): parse_network, then create.
  static Status create(const Value& config, std::unique_ptr<Network>* out, ErrorInfo* error);
  // Parses bytes written by save(); never trusts a length it has not checked.
  static Status load(const uint8_t* bytes, size_t n, std::unique_ptr<Network>* out,
                     ErrorInfo* error);
  // A predict-only copy in which every batch norm that alone consumes a
  // foldable layer (dense, conv2d) and is its only consumer is folded into it
  // (float64): W' = W * gamma / sqrt(var + eps),
  // b' = (b - mean) * gamma / sqrt(var + eps) + beta. Its optimizer is plain SGD.
  std::unique_ptr<Network> folded() const;

  const NetworkSpec& spec() const { return spec_; }
  size_t input_size() const { return static_cast<size_t>(spec_.input_size); }
  size_t output_size() const { return output_size_; }

  // Staging buffers in (wasm) memory that callers write into and read from.
  // Each grows to hold `rows` rows and may move when it grows.
  float* input(size_t rows);     // (rows, input_size)
  int32_t* labels(size_t rows);  // (rows)
  float* targets(size_t rows);   // (rows, output_size)
  float* output(size_t rows);    // (rows, output_size)
  uint32_t* indices(size_t n);   // (n), for shuffled orders

  // Checks the n rows staged in input and labels (or targets): finite inputs,
  // labels in range, finite targets. The same check every call that reads them makes.
  Status check_batch(size_t n);
  // Whether B examples make a training mini-batch: at least 2 under batch
  // norm that normalizes with batch statistics (the variance of one example
  // means nothing), at least 1 otherwise.
  Status check_training_batch(size_t B);
  size_t min_training_batch() const;
  // How every batch norm trains from now on: kConfigured (each as its `mode`
  // option says), kBatchStatistics or kFrozen (layer_op.h): fit's batchNorm option.
  void set_batch_norm(int mode) { batch_norm_ = mode; }
  int batch_norm() const { return batch_norm_; }
  // One optimizer step on the B examples staged in input/labels (or targets).
  // On any failure nothing changes: parameters, running statistics and
  // optimizer state are as before the call. Without layers there is nothing
  // to train: the step computes the loss and counts itself in steps(), as it
  // would with every layer frozen.
  Status train_step(size_t B, double* loss);
  // Inference mode on input row 0 into output row 0: only running statistics,
  // gamma and beta; probabilities for softmax cross-entropy. The same forward
  // pass as predict_batch, on one row.
  Status predict_one();
  // Inference mode on n staged rows; row i equals predict_one on that row.
  Status predict_batch(size_t n);
  // Inference-mode loss (sum over the n rows, not the mean) and correct count.
  Status evaluate(size_t n, double* loss_sum, size_t* correct);
  // A permutation of [0, n) from the network's own seeded generator, into indices(n).
  void shuffle(size_t n);
  // The shuffling generator's state: saved with the model; a caller that
  // resumes mid-epoch restores the state the epoch's permutation came from.
  uint64_t rng_state() const { return rng_state_; }
  void set_rng_state(uint64_t state) { rng_state_ = state; }

  // Inference-mode forward of the n staged rows through the layers up to
  // `layer`; that layer's output, (n, layer_width(layer)), stays at
  // layer_output(layer) until the next call that runs the network.
  Status forward_to(size_t n, int32_t layer);
  const float* layer_output(int32_t layer) const;
  size_t layer_width(int32_t layer) const;
  size_t layer_count() const { return layers_.size(); }
  // A batch-norm layer's channels: the length of its gamma, beta and
  // statistics (its features after a dense layer); 0 for other layers.
  size_t channels(int32_t layer) const;

  // Population statistics: check the count first (population_check), then for
  // each batch-norm layer in order: begin, add the staged rows in as many
  // chunks as needed (they run through the earlier layers in inference mode),
  // end. The layer's running mean and variance become the exact mean and
  // variance of its input over all rows added (float64, Chan's merge; N-1 or
  // N as the layer's runningVariance says). In order, so later layers see the
  // new earlier statistics.
  Status population_check(size_t n);
  Status population_begin(int32_t layer);
  Status population_add(size_t n);
  Status population_end();

  std::vector<TensorView> tensors();
  // Call after writing into tensors() so cached derived values are refreshed.
  void weights_changed();
  uint64_t steps() const { return step_; }
  // Per batch-norm layer: the last training batch's mean and biased
  // variance, (channels) each; null for other layers.
  const float* batch_mean(int32_t layer) const;
  const float* batch_var(int32_t layer) const;
  // Batches folded into a batch-norm layer's running statistics (PyTorch's
  // num_batches_tracked): the t of bias correction and of the cumulative
  // average. -1 / BadArgument for a layer that is not batch norm.
  int64_t batches_tracked(int32_t layer) const;
  Status set_batches_tracked(int32_t layer, uint64_t n);

  std::vector<uint8_t> save() const;
  const ErrorInfo& last_error() const { return error_; }

 private:
  // Where a tensor lives: the parameters the optimizer updates (with their
  // gradients and moments), running statistics, or the parameters of a layer
  // that is not trainable (their gradients go to a buffer nobody reads).
  enum class Arena : uint8_t { Params, Stats, Frozen };
  struct Tensor {
    size_t def;        // index in the layer's LayerDef::tensors
    size_t offset;     // in its arena
    size_t size;
    Arena arena;
    std::vector<int32_t> shape;
  };
  float* tensor_data(const Tensor& x);
  struct Layer {
    std::unique_ptr<LayerOp> op;
    std::vector<int32_t> inputs;     // earlier layers; -1 the network input
    std::vector<int32_t> consumers;  // later layers that take this one's output
    size_t width = 0;                // output values per example
    std::vector<Tensor> tensors;
    size_t cache = 0;                // offset in caches_
    bool view = false;               // shares its input's buffers (LayerDef::view)
    bool grad = false;               // a gradient must reach this layer's output
    float* act = nullptr;            // (rows, width)
    float* dact = nullptr;           // (rows, width), d(loss)/d(output), when grad
    std::vector<float> act_store, dact_store;
    std::vector<const float*> in;    // per call: each input's buffer
    std::vector<float*> din;         // each input's gradient buffer, or null
  };

  explicit Network(const NetworkSpec& spec);
  void init_parameters();
  Status check_inputs(const float* x, size_t rows);
  Status check_targets(size_t rows);
  Status fail(Status s, std::string message, Argument argument = Argument::None,
              int64_t index = -1, double value = 0);
  void ensure_rows(size_t rows);
  // Points views and inputs at this call's buffers (x is the network input).
  void bind(const float* x);
  // A pass over B rows with the network's scratch, version, step and batch-norm mode.
  Pass pass(size_t B, bool train) const;
  // Runs the layers up to `last` (all by default) on x.
  void forward(const float* x, size_t B, bool train, size_t last = ~size_t(0));
  void backward(size_t B);
  bool optimizer_pass(bool write);
  // Runs f(offset, size) for each piece of the Params arena (and so of its
  // gradients and moments) on the pool (see param_pieces_); whether every call
  // returned true.
  template <class F>
  bool all_param_pieces(F&& f) const;
  uint32_t param_peak(const std::vector<float>& x) const;  // f32_abs_peak over the arena
  bool update_is_bounded(float grad_peak, double next[3]) const;
  void measure_bounds();
  bool update_running_statistics(size_t B);
  Statistics* statistics_of(int32_t layer) const;
  // The values the loss and predictions read, (rows, output_size): the last
  // layer's output, or the staged input of a network without layers.
  const float* network_output() const;
  friend struct Serializer;

  NetworkSpec spec_;
  std::vector<Layer> layers_;
  size_t output_size_ = 0;
  size_t rows_ = 0;  // row capacity of the activation buffers

  std::vector<float> params_, grads_, moment1_, moment2_;
  std::vector<float> stats_;
  std::vector<float> frozen_, frozen_grads_;  // parameters of layers with trainable false
  std::vector<float> caches_;
  // The Params arena in pieces that follow the layers' rows (the constructor
  // says how): what clearing the gradients, checking them and the optimizer
  // split it by.
#if BNWASM_THREADS
  struct Piece {
    size_t offset, size;
  };
  std::vector<Piece> param_pieces_;
#endif
  uint64_t step_ = 0;
  uint64_t version_ = 0;  // bumped whenever params_ change
  // Bounds of max |p|, max |m| (SGD: |buf|) and max v after the last update,
  // valid while version_ is bounds_version_ (see update_is_bounded).
  double bounds_[3] = {0, 0, 0};
  uint64_t bounds_version_ = ~uint64_t(0);
  uint64_t rng_state_ = 0;
  int batch_norm_ = 0;  // kConfigured, or how every batch norm trains

  std::vector<float> input_, targets_, output_, loss_grad_, scratch_;
  std::vector<const LayerOp*> chain_;  // forward's fusion candidates
  std::vector<int32_t> labels_;
  std::vector<uint32_t> indices_;
  int32_t pop_layer_ = -1;  // population statistics in progress
  double pop_count_ = 0;
  std::vector<double> pop_mean_, pop_m2_;
  ErrorInfo error_;
};

uint32_t crc32(const uint8_t* data, size_t n);

}  // namespace bnwasm
