// A feed-forward network of dense, convolution, batch-norm, pooling and
// activation layers, trained
// one mini-batch at a time and served one example at a time.
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

#include "bnwasm/layers.h"

namespace bnwasm {

enum class Status : int32_t {
  Ok = 0,
  InvalidConfig = 1,    // a spec value is out of range
  NonFiniteInput = 2,   // NaN or Infinity in x or in a target
  LabelOutOfRange = 3,  // a class label outside [0, outputs)
  BatchTooSmall = 4,    // a training batch of fewer than 2 examples
  Diverged = 5,         // the step would make loss, parameters or statistics non-finite
  CorruptModel = 6,     // model bytes that do not parse or fail their checksum
  BadArgument = 7,      // a size or name that does not fit the network
};

// Which argument an error is about, so the caller can name it in its own terms.
enum class Argument : int32_t {
  None = 0,
  Input = 1,   // the staged input rows: index counts floats from the first row
  Target = 2,  // the staged labels (index: row) or targets (index: float)
  Spec = 3,    // the flat spec vector: index is the position of the offending value
};

// What went wrong in the last failing call: the status, the argument and the
// offending element's index and value where there is one, and a message in plain
// words that completes "<argument>[index] is <value>, ..." (or, for Spec errors,
// "<field> ...") without naming the argument itself.
struct ErrorInfo {
  Status status = Status::Ok;
  Argument argument = Argument::None;
  std::string message;
  int64_t index = -1;
  double value = 0;
};

enum class LayerType : int32_t {
  Dense = 0,
  BatchNorm = 1,
  Relu = 2,
  Sigmoid = 3,
  Tanh = 4,
  Conv2d = 5,
  MaxPool2d = 6,
  AvgPool2d = 7,
  GlobalAvgPool = 8,
  Flatten = 9,
};
enum class LossType : int32_t { SoftmaxCrossEntropy = 0, MeanSquaredError = 1 };
enum class OptimizerType : int32_t { Sgd = 0, Adam = 1 };
// Auto picks He uniform for a dense or conv layer whose next activation is ReLU,
// Glorot uniform otherwise; Normal draws N(0, init_std^2).
enum class Init : int32_t { Auto = 0, HeUniform = 1, GlorotUniform = 2, Normal = 3 };

struct LayerSpec {
  LayerType type = LayerType::Relu;
  // dense (units) and conv2d (units = filters)
  int32_t units = 0;
  bool use_bias = true;
  Init init = Init::Auto;
  double init_std = 0.01;
  // batchNorm
  double momentum = 0.9;  // weight of the past in the running average
  double epsilon = 1e-5;
  bool unbiased_variance = true;  // running variance from the m/(m-1) batch variance
  bool cumulative = false;        // plain average over all batches instead of the EMA
  bool bias_correction = false;   // EMA from zero weight, divided by 1 - momentum^t
  double renorm_rmax = 0;         // batch renormalization when > 0 (>= 1): clip of r
  double renorm_dmax = 0;         // clip of d (>= 0)
  // conv2d (kernel) and pooling (window)
  int32_t kernel_h = 0, kernel_w = 0;
  int32_t stride_h = 1, stride_w = 1;
  int32_t pad_h = 0, pad_w = 0;  // conv2d: zeros on each side
  bool same_padding = false;     // conv2d, stride 1: output as large as the input
};

// The shape of one example between layers: an image (C, H, W) in NCHW order,
// or flat features (C values, H = W = 1, spatial false).
struct Shape {
  int64_t c = 0, h = 1, w = 1;
  bool spatial = false;
  int64_t size() const { return c * h * w; }
};
// Padding of a conv2d layer on an input of height h and width w: 'same'
// pads k - 1 in total, the odd one below and right (PyTorch's padding='same').
struct Padding {
  int64_t top, bottom, left, right;
};
Padding conv_padding(const LayerSpec& l);

struct OptimizerSpec {
  OptimizerType type = OptimizerType::Adam;
  double learning_rate = 1e-3;
  double momentum = 0;      // sgd
  bool nesterov = false;    // sgd
  double beta1 = 0.9;       // adam
  double beta2 = 0.999;     // adam
  double epsilon = 1e-8;    // adam
  double weight_decay = 0;  // L2 added to the gradient, as torch.optim does
};

struct NetworkSpec {
  int32_t input_size = 0;  // values per example (channels * height * width for images)
  // inputShape [channels, height, width]; 0 for flat inputs of input_size features
  int32_t input_channels = 0, input_height = 0, input_width = 0;
  std::vector<LayerSpec> layers;
  LossType loss = LossType::SoftmaxCrossEntropy;
  OptimizerSpec optimizer;
  uint32_t seed = 1;
};

// The flat form of a spec: a vector of doubles, passed by the JS facade and
// stored in model files. Layout (version 2):
//   [0] input_size [1] loss [2] seed [3] optimizer type [4] learning_rate
//   [5] momentum [6] nesterov [7] beta1 [8] beta2 [9] epsilon [10] weight_decay
//   [11] layer count [12] input_channels [13] input_height [14] input_width,
//   then kLayerFields values per layer:
//   type, units, use_bias, init, init_std, momentum, epsilon, unbiased_variance,
//   cumulative, bias_correction, renorm_rmax, renorm_dmax, kernel_h, kernel_w,
//   stride_h, stride_w, pad_h, pad_w, same_padding.
// Version 1 (model files of format 1) had a 12-value header and the first 12
// layer fields; upgrade_spec_v1 turns it into version 2.
constexpr size_t kSpecHeader = 15;
constexpr size_t kLayerFields = 19;
constexpr size_t kSpecHeaderV1 = 12;
constexpr size_t kLayerFieldsV1 = 12;
// Positions in the flat spec: header fields, and fields within one layer's block.
enum SpecField : size_t {
  kInputSizeField = 0, kLossField, kSeedField, kOptimizerField, kLearningRateField,
  kOptimizerMomentumField, kNesterovField, kBeta1Field, kBeta2Field, kAdamEpsilonField,
  kWeightDecayField, kLayerCountField, kInputChannelsField, kInputHeightField,
  kInputWidthField,
};
enum LayerField : size_t {
  kTypeField = 0, kUnitsField, kUseBiasField, kInitField, kInitStdField, kMomentumField,
  kEpsilonField, kUnbiasedField, kCumulativeField, kBiasCorrectionField, kRenormRmaxField,
  kRenormDmaxField, kKernelHField, kKernelWField, kStrideHField, kStrideWField, kPadHField,
  kPadWField, kSamePaddingField,
};
static_assert(kInputWidthField + 1 == kSpecHeader, "SpecField covers the header");
static_assert(kSamePaddingField + 1 == kLayerFields, "LayerField covers a layer's block");
inline size_t layer_field(size_t layer, LayerField f) {
  return kSpecHeader + layer * kLayerFields + f;
}
std::vector<double> upgrade_spec_v1(const double* v, size_t n);
std::vector<double> encode_spec(const NetworkSpec& spec);
// Checks every value; on failure returns InvalidConfig and fills `error` with
// argument Spec, the position of the first offending value, that value, and
// what it must be.
Status decode_spec(const double* v, size_t n, NetworkSpec* spec, ErrorInfo* error);
Status validate_spec(const NetworkSpec& spec, ErrorInfo* error);
// The shape of the network's input and of each layer's output, for a spec
// that validate_spec accepted.
Shape input_shape(const NetworkSpec& spec);
std::vector<Shape> layer_shapes(const NetworkSpec& spec);

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
  // Parses bytes written by save(); never trusts a length it has not checked.
  static Status load(const uint8_t* bytes, size_t n, std::unique_ptr<Network>* out,
                     ErrorInfo* error);
  // A predict-only copy in which every batch norm that follows a dense layer is
  // folded into it (float64): W' = W * gamma / sqrt(var + eps),
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
  // One optimizer step on the B examples staged in input/labels (or targets).
  // On any failure nothing changes: parameters, running statistics and
  // optimizer state are as before the call.
  Status train_step(size_t B, double* loss);
  // Inference mode on input row 0 into output row 0: only running statistics,
  // gamma and beta; probabilities for softmax cross-entropy.
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

  // Inference-mode forward of the n staged rows through layers [0, layer];
  // that layer's output, (n, layer_width(layer)), stays at layer_output(layer)
  // until the next call that runs the network.
  Status forward_to(size_t n, int32_t layer);
  const float* layer_output(int32_t layer) const;
  size_t layer_width(int32_t layer) const;
  size_t layer_count() const { return layers_.size(); }
  // A batch-norm layer's channels: the length of its gamma, beta and
  // statistics (its features after a dense layer); 0 for other layers.
  size_t channels(int32_t layer) const;

  // Population statistics for one batch-norm layer: begin, add the staged rows
  // in as many chunks as needed (they run through the earlier layers in
  // inference mode), end. The layer's running mean and variance become the
  // exact mean and variance of its input over all rows added (float64, Chan's
  // merge; N-1 or N as the layer's unbiased_variance says). Call for each
  // batch-norm layer in order so later layers see the new earlier statistics.
  Status population_begin(int32_t layer);
  Status population_add(size_t n);
  Status population_end();

  std::vector<TensorView> tensors();
  // Call after writing into tensors() so cached derived values are refreshed.
  void weights_changed();
  uint64_t steps() const { return step_; }
  // Per batch-norm layer (in layer order): the last training batch's mean and
  // biased variance, (channels) each.
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
  struct Layer {
    LayerType type;
    size_t in = 0, out = 0;      // values per example
    size_t channels = 0;         // batch norm: C channels of S positions,
    size_t positions = 1;        // S = 1 after a dense layer; globalAvgPool: C, S of its input
    Conv2dGeometry conv{};       // conv2d
    Pool2dGeometry pool{};       // maxPool2d, avgPool2d
    size_t w = 0, b = 0;         // params: weight (dense (out, in), conv (F, C, KH, KW)), bias
    size_t gamma = 0, beta = 0;  // params: batch norm
    size_t rmean = 0, rvar = 0;  // stats: running mean and variance
    size_t raw_mean = 0, raw_var = 0;  // stats: uncorrected EMA (bias_correction)
    size_t cache = 0;                  // caches: mean, var, rstd, r, d (5 * channels)
    uint64_t tracked = 0;              // batches folded into the running statistics
    bool needs_din = false;            // some earlier layer has parameters
    std::vector<float> act;            // (rows, out)
    std::vector<int32_t> argmax;       // max pool: (rows, out), training only
    std::vector<float> wt;             // dense: weight^T (in, out), packed in panels
    uint64_t wt_version = ~uint64_t(0);
    std::vector<float> wino;  // conv2d 3x3 stride 1: the Winograd weight (f32_winograd23_weights)
    uint64_t wino_version = ~uint64_t(0);
  };

  explicit Network(const NetworkSpec& spec);
  void init_parameters();
  Status check_inputs(const float* x, size_t rows);
  Status check_targets(size_t rows);
  Status fail(Status s, std::string message, Argument argument = Argument::None,
              int64_t index = -1, double value = 0);
  void ensure_rows(size_t rows);
  // Runs layers [0, last] (all by default) on x.
  void forward(const float* x, size_t B, bool train, size_t last = ~size_t(0));
  // Inference from conv layer i: how many layers, up to last, run as one pass
  // (1: the conv alone; 2: a batch norm follows; 3: and a ReLU after that;
  // then a 2x2 max pool at stride 2, when the conv goes through Winograd).
  size_t conv_span(size_t i, size_t last) const;
  // Runs those `span` layers on B images of in into out.
  void conv_forward_infer(float* out, const float* in, size_t B, size_t i, size_t span);
  void backward(size_t B);
  void optimizer_step();
  bool update_running_statistics(size_t B);
  void refresh_packed_weights();
  friend struct Serializer;

  NetworkSpec spec_;
  std::vector<Layer> layers_;
  size_t output_size_ = 0;
  size_t max_width_ = 0;
  size_t rows_ = 0;  // row capacity of the activation buffers

  std::vector<float> params_, grads_, moment1_, moment2_;
  std::vector<float> stats_;
  std::vector<float> caches_;
  uint64_t step_ = 0;
  uint64_t version_ = 0;  // bumped whenever params_ change
  uint64_t rng_state_ = 0;

  std::vector<float> input_, targets_, output_, dbuf_a_, dbuf_b_, scratch_;
  std::vector<int32_t> labels_;
  std::vector<uint32_t> indices_;
  std::vector<float> one_a_, one_b_;  // single-example ping-pong buffers
  std::vector<float> conv_scratch_;   // im2col and packed operands, one image at a time
  std::vector<float> bn_scale_, bn_shift_;  // a conv's batch norm folded for inference
  int32_t pop_layer_ = -1;            // population statistics in progress
  double pop_count_ = 0;
  std::vector<double> pop_mean_, pop_m2_;
  ErrorInfo error_;
};

uint32_t crc32(const uint8_t* data, size_t n);

}  // namespace bnwasm
