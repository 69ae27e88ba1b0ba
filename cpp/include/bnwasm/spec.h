// How a network is described: the registry of layer types (one LayerDef per
// type: its options with their defaults and ranges, how many inputs it takes,
// its shape function, its tensors and how PyTorch and TF.js name them, and the
// factory of the object that runs it), and a NetworkSpec: the layers, each a
// type plus the values of that type's options, wired into a graph by their
// inputs. Everything else (validation, the model file, the schema JS reads,
// the shapes interop asks for) loops over this registry.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bnwasm/value.h"

// A layer type's or option's one-line doc, for the schema the README and index.d.ts are made
// from (scripts/docs/options.mjs). The dense build (BNWASM_DENSE_ONLY) leaves the text out: its
// schema lists types only, and the facade reads the full build's.
#ifdef BNWASM_DENSE_ONLY
#define BNWASM_DOC(text) ""
#else
#define BNWASM_DOC(text) text
#endif

namespace bnwasm {

// The shape of one example between layers: an image (C, H, W) in NCHW order,
// or flat features (C values, H = W = 1, spatial false).
struct Shape {
  int64_t c = 0, h = 1, w = 1;
  bool spatial = false;
  int64_t size() const { return c * h * w; }
};

enum class OptionKind : uint8_t {
  Int,      // an integer in [min, max]
  Number,   // a finite number in the range min, max (each end open or closed)
  Bool,     // true or false
  Enum,     // one of `names`, stored as its index
  Size,     // a number or [height, width] of integers in [min, max]
  Padding,  // 'same', 'sameLower', 'valid', a number, [height, width] or [top, left, bottom, right]
  Record,   // null, or an object of the Number options in `fields`
};

// One option of a layer or optimizer type.
struct OptionDef {
  OptionDef(const char* n, OptionKind k, double f) : name(n), kind(k), fallback(f) {}
  const char* name;
  OptionKind kind;
  double fallback;  // the default; kRequired when the option must be given
  double min = 0, max = 0;
  bool above = false;  // Number: min itself is out of range
  bool below = false;  // Number: max itself is out of range
  std::vector<const char*> names;       // Enum: the values; the stored number is the index
  const char* fallback_from = nullptr;  // Size: the default is this other option's value
  std::vector<OptionDef> fields;        // Record: its Number fields (with their defaults)
  const char* doc = "";                 // one line, for the README and index.d.ts
};
// The fallback of an option without a default.
extern const double kRequired;
// Option builders, one per kind (Size and Padding values are at most 65536).
OptionDef int_option(const char* name, double fallback, double min, double max, const char* doc);
OptionDef number_option(const char* name, double fallback, double min, double max, bool above,
                        bool below, const char* doc);
OptionDef bool_option(const char* name, bool fallback, const char* doc);
OptionDef enum_option(const char* name, std::vector<const char*> names, size_t fallback,
                      const char* doc);
OptionDef size_option(const char* name, double fallback, double min, const char* doc,
                      const char* fallback_from = nullptr);
OptionDef padding_option(const char* name, const char* doc);
// Doubles an option takes in LayerSpec::values.
size_t option_width(const OptionDef& o);
// Padding's stored mode: explicit sizes, or 'same' / 'sameLower' (ONNX's SAME_UPPER and
// SAME_LOWER: the output ceil(input / stride), the odd zero below and right, or above and
// left; at stride 1 'same' is PyTorch's padding='same').
enum class PadMode : int32_t { Explicit = 0, Same = 1, SameLower = 2 };

// Why a spec is refused: the option (or field) at fault, what it must be, and the value it has.
struct SpecError {
  std::string field;    // "momentum", "kernelSize[0]", "inputs[1]"; "" for the layer as a whole
  std::string message;  // completes "<field> ..."
  Value value;          // the offending value, named in the error ("got ...")
  bool has_value = true;
  std::string within;   // a record the field is inside: ".renorm"
};

struct LayerSpec;
class LayerOp;

// One tensor a layer type may have, and how PyTorch's state_dict and TF.js name it.
struct TensorDef {
  const char* name;        // weight, bias, gamma, beta, runningMean, runningVariance
  bool statistic;          // running statistics: not trained, kept in their own arena
  const char* torch;       // nn.Linear/Conv2d/BatchNorm: weight, bias, running_mean, running_var
  const char* tfjs;        // kernel, bias, gamma, beta, moving_mean, moving_variance
  const char* when = nullptr;  // a Bool option without which the layer lacks it (useBias)
  bool hidden = false;     // internal state saved with the model but not a user tensor
};

struct LayerDef {
  const char* name;  // "dense"
  const char* doc;   // one line
  std::vector<OptionDef> options;
  uint32_t min_inputs = 1, max_inputs = 1;
  // A layer whose output is its one input read another way (flatten): the
  // network hands the input's buffers on instead of running it.
  bool view = false;
  // A layer whose parameters make each output channel an affine function of
  // weight rows and a bias (dense, conv2d): a batch norm right after it folds in.
  bool foldable = false;
  std::vector<TensorDef> tensors;
  // Checks between options, beyond each option's own range (false: why).
  bool (*check)(const LayerSpec& l, SpecError* why) = nullptr;
  // The output shape for these input shapes (false: why).
  bool (*shape)(const LayerSpec& l, const Shape* in, size_t n, Shape* out, SpecError* why) = nullptr;
  // The dimensions of tensor k of `tensors` (one that is present).
  std::vector<int64_t> (*tensor_shape)(size_t k, const LayerSpec& l, const Shape* in,
                                       const Shape& out) = nullptr;
  // Multiply-adds of one example's forward pass (what FLOP counts are made of).
  int64_t (*macs)(const LayerSpec& l, const Shape* in, const Shape& out) = nullptr;
  // Facts of a layer that converters need and should not work out again (a
  // conv's padding on each side), added to its entry in layers_value.
  void (*facts)(const LayerSpec& l, const Shape* in, const Shape& out, Value* info) = nullptr;
  // The object that runs a layer of this type with these shapes.
  std::unique_ptr<LayerOp> (*make)(const LayerSpec& l, const Shape* in, size_t n,
                                   const Shape& out) = nullptr;

  size_t width = 0;             // doubles of all options in LayerSpec::values
  std::vector<size_t> offsets;  // where each option's doubles start
  int option(const char* name) const;  // index in options, or -1
};

// Every layer type of this build, in a fixed order (the order of the docs and
// of error messages).
const std::vector<const LayerDef*>& layer_defs();
// The types this build leaves out (the dense build's convolution and pooling
// types; none in the full build), so a config that names one is told so.
const std::vector<const char*>& left_out_layer_types();
const LayerDef* find_layer_def(const std::string& name);

// One layer of a network: its type, its option values, its name and its inputs.
struct LayerSpec {
  const LayerDef* def = nullptr;
  std::string name;                      // "" when the config gives none
  std::vector<std::string> input_names;  // as written; empty: the previous layer
  std::vector<int32_t> inputs;           // resolved: earlier layers, -1 the network input
  std::vector<double> values;            // def->options in order, option_width(o) each

  // A layer of this type with every option at its default.
  static LayerSpec of(const LayerDef* def);
  static LayerSpec of(const char* type);
  double get(const char* option, size_t k = 0) const;
  int64_t get_int(const char* option, size_t k = 0) const {
    return static_cast<int64_t>(get(option, k));
  }
  LayerSpec& set(const char* option, double v, size_t k = 0);
  bool has(const char* option) const { return def->option(option) >= 0; }
};

enum class LossType : int32_t { SoftmaxCrossEntropy = 0, MeanSquaredError = 1 };
enum class OptimizerType : int32_t { Sgd = 0, Adam = 1 };
// Auto picks He uniform for a dense or conv layer whose next activation is ReLU,
// Glorot uniform otherwise; Normal draws N(0, init_std^2).
enum class Init : int32_t { Auto = 0, HeUniform = 1, GlorotUniform = 2, Normal = 3 };

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

// Why a network spec is refused: where ("config", "optimizer", "layers[2]",
// "layers[2] (block1.add)") and the SpecError.
struct SpecFailure {
  std::string where;
  SpecError error;
};

// A NetworkSpec from its description as a Value (a config as JS writes it, or
// as a model file stores it): every name, type and range checked, defaults
// filled in, inputs resolved, shapes checked. False and why otherwise.
bool parse_network(const Value& config, NetworkSpec* out, SpecFailure* why);
// Checks a NetworkSpec built in C++ (tests, folding) as parse_network checks a
// config (it reads the spec's Value), and resolves its inputs into `out`.
bool validate_network(const NetworkSpec& spec, NetworkSpec* out, SpecFailure* why);
// The description of a valid spec with every option written out: what
// parse_network reads back to the same spec.
Value network_value(const NetworkSpec& spec);
// Every layer type's and optimizer's options, defaults, ranges and tensors: the schema JS reads.
Value schema_value();

// The network's input shape and each layer's output shape, for a valid spec.
Shape input_shape(const NetworkSpec& spec);
std::vector<Shape> layer_shapes(const NetworkSpec& spec);
// The input shapes of layer i (its producers' outputs), given layer_shapes.
std::vector<Shape> input_shapes(const NetworkSpec& spec, const std::vector<Shape>& shapes,
                                size_t i);
// Per layer: its index, type, name, inputs, input and output shapes, tensors
// (name, shape, PyTorch and TF.js names, trainable) and multiply-adds.
Value layers_value(const NetworkSpec& spec);

// Model files of formats 1 and 2 stored the spec as a flat vector of doubles,
// one fixed record of fields per layer (cpp/src/legacy_spec.cpp has the layout).
bool decode_legacy_spec(const double* v, size_t n, uint32_t format, NetworkSpec* out,
                        SpecFailure* why);

}  // namespace bnwasm
