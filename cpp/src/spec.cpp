// The flat (vector of doubles) form of a NetworkSpec, and its validation.
#include <cmath>
#include <string>

#include "bnwasm/network.h"

namespace bnwasm {
namespace {

bool is_int_in(double v, double lo, double hi) {
  return std::isfinite(v) && v == std::floor(v) && v >= lo && v <= hi;
}
bool is_flag(double v) { return v == 0.0 || v == 1.0; }

std::string dims(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

// Why a layer does not fit its input: the layer's field at fault, its value, and a message
// that completes "<field> ...".
struct ShapeError {
  LayerField field = kTypeField;
  double value = 0;
  std::string message;
};

// The shape a layer makes of its input shape; false (and why) when it cannot.
bool next_shape(const LayerSpec& l, const Shape& in, Shape* out, ShapeError* why) {
  const bool conv = l.type == LayerType::Conv2d;
  const bool pool = l.type == LayerType::MaxPool2d || l.type == LayerType::AvgPool2d;
  if ((conv || pool || l.type == LayerType::GlobalAvgPool) && !in.spatial) {
    *why = {kTypeField, static_cast<double>(l.type),
            "needs an image input [channels, height, width] (set inputShape, and put no "
            "dense, flatten or globalAvgPool layer before it), not " +
                std::to_string(in.c) + " flat features"};
    return false;
  }
  *out = in;
  switch (l.type) {
    case LayerType::Dense:
      *out = Shape{l.units, 1, 1, false};
      return true;
    case LayerType::Flatten:
      *out = Shape{in.size(), 1, 1, false};
      return true;
    case LayerType::GlobalAvgPool:
      *out = Shape{in.c, 1, 1, false};
      return true;
    case LayerType::Conv2d: {
      const Padding p = conv_padding(l);
      const int64_t h = in.h + p.top + p.bottom, w = in.w + p.left + p.right;
      const std::string input =
          dims(in.h, in.w) + " input" +
          (p.top + p.bottom + p.left + p.right > 0 ? " with padding (" + dims(h, w) + ")" : "");
      if (l.kernel_h > h) {
        *why = {kKernelHField, static_cast<double>(l.kernel_h),
                "must be at most " + std::to_string(h) + ", the height of its " + input};
        return false;
      }
      if (l.kernel_w > w) {
        *why = {kKernelWField, static_cast<double>(l.kernel_w),
                "must be at most " + std::to_string(w) + ", the width of its " + input};
        return false;
      }
      *out = Shape{l.units, (h - l.kernel_h) / l.stride_h + 1, (w - l.kernel_w) / l.stride_w + 1,
                   true};
      return true;
    }
    case LayerType::MaxPool2d:
    case LayerType::AvgPool2d:
      if (l.kernel_h > in.h) {
        *why = {kKernelHField, static_cast<double>(l.kernel_h),
                "must be at most " + std::to_string(in.h) + ", the height of its " +
                    dims(in.h, in.w) + " input (else it leaves nothing)"};
        return false;
      }
      if (l.kernel_w > in.w) {
        *why = {kKernelWField, static_cast<double>(l.kernel_w),
                "must be at most " + std::to_string(in.w) + ", the width of its " +
                    dims(in.h, in.w) + " input (else it leaves nothing)"};
        return false;
      }
      *out = Shape{in.c, (in.h - l.kernel_h) / l.stride_h + 1, (in.w - l.kernel_w) / l.stride_w + 1,
                   true};
      return true;
    default:
      return true;  // batch norm and activations keep the shape
  }
}

}  // namespace

Padding conv_padding(const LayerSpec& l) {
  if (!l.same_padding) return {l.pad_h, l.pad_h, l.pad_w, l.pad_w};
  const int64_t th = l.kernel_h - 1, tw = l.kernel_w - 1;
  return {th / 2, th - th / 2, tw / 2, tw - tw / 2};
}

Shape input_shape(const NetworkSpec& s) {
  if (s.input_height == 0) return Shape{s.input_size, 1, 1, false};
  return Shape{s.input_channels, s.input_height, s.input_width, true};
}

std::vector<Shape> layer_shapes(const NetworkSpec& s) {
  std::vector<Shape> shapes;
  Shape cur = input_shape(s);
  ShapeError unused;
  for (const LayerSpec& l : s.layers) {
    next_shape(l, cur, &cur, &unused);
    shapes.push_back(cur);
  }
  return shapes;
}

std::vector<double> upgrade_spec_v1(const double* v, size_t n) {
  // Header: insert a flat input shape (0, 0, 0) after the layer count; each
  // layer: append the conv and pooling fields' defaults.
  std::vector<double> out;
  if (n < kSpecHeaderV1 || (n - kSpecHeaderV1) % kLayerFieldsV1 != 0) return out;
  out.assign(v, v + kSpecHeaderV1);
  out.insert(out.end(), {0, 0, 0});
  for (size_t i = kSpecHeaderV1; i < n; i += kLayerFieldsV1) {
    out.insert(out.end(), v + i, v + i + kLayerFieldsV1);
    out.insert(out.end(), {0, 0, 1, 1, 0, 0, 0});
  }
  return out;
}

std::vector<double> encode_spec(const NetworkSpec& s) {
  std::vector<double> v = {
      static_cast<double>(s.input_size),
      static_cast<double>(s.loss),
      static_cast<double>(s.seed),
      static_cast<double>(s.optimizer.type),
      s.optimizer.learning_rate,
      s.optimizer.momentum,
      s.optimizer.nesterov ? 1.0 : 0.0,
      s.optimizer.beta1,
      s.optimizer.beta2,
      s.optimizer.epsilon,
      s.optimizer.weight_decay,
      static_cast<double>(s.layers.size()),
      static_cast<double>(s.input_channels),
      static_cast<double>(s.input_height),
      static_cast<double>(s.input_width),
  };
  for (const LayerSpec& l : s.layers) {
    const double fields[kLayerFields] = {
        static_cast<double>(l.type),
        static_cast<double>(l.units),
        l.use_bias ? 1.0 : 0.0,
        static_cast<double>(l.init),
        l.init_std,
        l.momentum,
        l.epsilon,
        l.unbiased_variance ? 1.0 : 0.0,
        l.cumulative ? 1.0 : 0.0,
        l.bias_correction ? 1.0 : 0.0,
        l.renorm_rmax,
        l.renorm_dmax,
        static_cast<double>(l.kernel_h),
        static_cast<double>(l.kernel_w),
        static_cast<double>(l.stride_h),
        static_cast<double>(l.stride_w),
        static_cast<double>(l.pad_h),
        static_cast<double>(l.pad_w),
        l.same_padding ? 1.0 : 0.0,
    };
    v.insert(v.end(), fields, fields + kLayerFields);
  }
  return v;
}

namespace {

// Records a spec error: the position of the offending value, the value, and what it must be.
Status bad_field(ErrorInfo* error, size_t index, double value, std::string message) {
  error->status = Status::InvalidConfig;
  error->argument = Argument::Spec;
  error->index = static_cast<int64_t>(index);
  error->value = value;
  error->message = std::move(message);
  return Status::InvalidConfig;
}

}  // namespace

Status decode_spec(const double* v, size_t n, NetworkSpec* out, ErrorInfo* error) {
  if (n < kSpecHeader)
    return bad_field(error, 0, static_cast<double>(n),
                     "spec must hold at least " + std::to_string(kSpecHeader) + " values");
  if (!is_int_in(v[kLayerCountField], 1, 10000) ||
      n != kSpecHeader + kLayerFields * static_cast<size_t>(v[kLayerCountField]))
    return bad_field(error, kLayerCountField, v[kLayerCountField],
                     "must be an integer in [1, 10000] that matches the spec's length");
  const char* const kInt24 = "must be an integer in [1, 16777216]";
  const char* const kInt16 = "must be an integer in [1, 65536]";
  // inputShape: all 0 (flat features) or the image's channels, height and width.
  const bool image = v[kInputChannelsField] != 0 || v[kInputHeightField] != 0 || v[kInputWidthField] != 0;
  for (SpecField f : {kInputChannelsField, kInputHeightField, kInputWidthField})
    if (image ? !is_int_in(v[f], 1, 1 << 24) : v[f] != 0) return bad_field(error, f, v[f], kInt24);
  if (!is_int_in(v[kInputSizeField], 1, 1 << 24))
    return bad_field(error, kInputSizeField, v[kInputSizeField], kInt24);
  if (!is_int_in(v[kLossField], 0, 1))
    return bad_field(error, kLossField, v[kLossField], "must be a known loss (0 or 1)");
  if (!is_int_in(v[kSeedField], 0, 4294967295.0))
    return bad_field(error, kSeedField, v[kSeedField], "must be an integer in [0, 4294967295]");
  if (!is_int_in(v[kOptimizerField], 0, 1))
    return bad_field(error, kOptimizerField, v[kOptimizerField], "must be a known optimizer (0 or 1)");
  if (!is_flag(v[kNesterovField]))
    return bad_field(error, kNesterovField, v[kNesterovField], "must be true or false");
  NetworkSpec s;
  s.input_size = static_cast<int32_t>(v[kInputSizeField]);
  s.loss = static_cast<LossType>(static_cast<int32_t>(v[kLossField]));
  s.seed = static_cast<uint32_t>(v[kSeedField]);
  s.optimizer.type = static_cast<OptimizerType>(static_cast<int32_t>(v[kOptimizerField]));
  s.optimizer.learning_rate = v[kLearningRateField];
  s.optimizer.momentum = v[kOptimizerMomentumField];
  s.optimizer.nesterov = v[kNesterovField] != 0.0;
  s.optimizer.beta1 = v[kBeta1Field];
  s.optimizer.beta2 = v[kBeta2Field];
  s.optimizer.epsilon = v[kAdamEpsilonField];
  s.optimizer.weight_decay = v[kWeightDecayField];
  s.input_channels = static_cast<int32_t>(v[kInputChannelsField]);
  s.input_height = static_cast<int32_t>(v[kInputHeightField]);
  s.input_width = static_cast<int32_t>(v[kInputWidthField]);
  const size_t count = static_cast<size_t>(v[kLayerCountField]);
  for (size_t i = 0; i < count; ++i) {
    const double* f = v + layer_field(i, kTypeField);
    if (!is_int_in(f[kTypeField], 0, 9))
      return bad_field(error, layer_field(i, kTypeField), f[kTypeField], "must be a known layer type (0 to 9)");
    const LayerType type = static_cast<LayerType>(static_cast<int32_t>(f[kTypeField]));
    const bool dense = type == LayerType::Dense || type == LayerType::Conv2d;  // units: filters
    if (dense ? !is_int_in(f[kUnitsField], 1, 1 << 24) : f[kUnitsField] != 0)
      return bad_field(error, layer_field(i, kUnitsField), f[kUnitsField], dense ? kInt24 : "must be 0");
    // Kernel (or pool) size and stride: >= 1 for a conv or pool layer, else unused.
    const bool windowed =
        type == LayerType::Conv2d || type == LayerType::MaxPool2d || type == LayerType::AvgPool2d;
    for (LayerField g : {kKernelHField, kKernelWField, kStrideHField, kStrideWField})
      if (!is_int_in(f[g], windowed ? 1 : 0, 1 << 16))
        return bad_field(error, layer_field(i, g), f[g],
                         windowed ? kInt16 : "must be an integer in [0, 65536]");
    for (LayerField g : {kPadHField, kPadWField})
      if (!is_int_in(f[g], 0, 1 << 16))
        return bad_field(error, layer_field(i, g), f[g], "must be an integer in [0, 65536]");
    if (!is_flag(f[kSamePaddingField]))
      return bad_field(error, layer_field(i, kSamePaddingField), f[kSamePaddingField], "must be true or false");
    if (!is_int_in(f[kInitField], 0, 3))
      return bad_field(error, layer_field(i, kInitField), f[kInitField], "must be a known init (0 to 3)");
    for (LayerField flag : {kUseBiasField, kUnbiasedField, kCumulativeField, kBiasCorrectionField})
      if (!is_flag(f[flag])) return bad_field(error, layer_field(i, flag), f[flag], "must be true or false");
    LayerSpec l;
    l.type = static_cast<LayerType>(static_cast<int32_t>(f[kTypeField]));
    l.units = static_cast<int32_t>(f[kUnitsField]);
    l.use_bias = f[kUseBiasField] != 0.0;
    l.init = static_cast<Init>(static_cast<int32_t>(f[kInitField]));
    l.init_std = f[kInitStdField];
    l.momentum = f[kMomentumField];
    l.epsilon = f[kEpsilonField];
    l.unbiased_variance = f[kUnbiasedField] != 0.0;
    l.cumulative = f[kCumulativeField] != 0.0;
    l.bias_correction = f[kBiasCorrectionField] != 0.0;
    l.renorm_rmax = f[kRenormRmaxField];
    l.renorm_dmax = f[kRenormDmaxField];
    l.kernel_h = static_cast<int32_t>(f[kKernelHField]);
    l.kernel_w = static_cast<int32_t>(f[kKernelWField]);
    l.stride_h = static_cast<int32_t>(f[kStrideHField]);
    l.stride_w = static_cast<int32_t>(f[kStrideWField]);
    l.pad_h = static_cast<int32_t>(f[kPadHField]);
    l.pad_w = static_cast<int32_t>(f[kPadWField]);
    l.same_padding = f[kSamePaddingField] != 0.0;
    s.layers.push_back(l);
  }
  const Status st = validate_spec(s, error);
  if (st == Status::Ok) *out = s;
  return st;
}

Status validate_spec(const NetworkSpec& s, ErrorInfo* error) {
  const char* const kUnit = "must be a finite number in [0, 1)";
  const char* const kPositive = "must be a finite number > 0";
  const char* const kNonNegative = "must be a finite number >= 0";
  if (s.input_size < 1 || s.input_size > (1 << 24))
    return bad_field(error, kInputSizeField, s.input_size, "must be an integer in [1, 16777216]");
  const bool image = s.input_height != 0 || s.input_width != 0 || s.input_channels != 0;
  if (image) {
    const int32_t dims[3] = {s.input_channels, s.input_height, s.input_width};
    for (size_t k = 0; k < 3; ++k)
      if (dims[k] < 1 || dims[k] > (1 << 24))
        return bad_field(error, kInputChannelsField + k, dims[k], "must be an integer in [1, 16777216]");
    const int64_t product = static_cast<int64_t>(s.input_channels) * s.input_height * s.input_width;
    if (product != s.input_size)
      return bad_field(error, kInputSizeField, s.input_size,
                       "must be the product of inputShape, " + std::to_string(product));
  }
  if (s.layers.empty())
    return bad_field(error, kLayerCountField, 0, "must be an integer in [1, 10000]");
  const OptimizerSpec& o = s.optimizer;
  // A learning rate of 0 is allowed: training then only refreshes the batch-norm statistics.
  if (!(std::isfinite(o.learning_rate) && o.learning_rate >= 0))
    return bad_field(error, kLearningRateField, o.learning_rate, kNonNegative);
  if (!(std::isfinite(o.weight_decay) && o.weight_decay >= 0))
    return bad_field(error, kWeightDecayField, o.weight_decay, kNonNegative);
  if (o.type == OptimizerType::Sgd) {
    if (!(o.momentum >= 0 && o.momentum < 1))
      return bad_field(error, kOptimizerMomentumField, o.momentum, kUnit);
    if (o.nesterov && o.momentum == 0)
      return bad_field(error, kNesterovField, 1, "needs momentum > 0");
  } else {
    if (!(o.beta1 >= 0 && o.beta1 < 1)) return bad_field(error, kBeta1Field, o.beta1, kUnit);
    if (!(o.beta2 >= 0 && o.beta2 < 1)) return bad_field(error, kBeta2Field, o.beta2, kUnit);
    if (!(std::isfinite(o.epsilon) && o.epsilon > 0))
      return bad_field(error, kAdamEpsilonField, o.epsilon, kPositive);
  }
  Shape shape = input_shape(s);
  int64_t total = 0;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerSpec& l = s.layers[i];
    const bool conv = l.type == LayerType::Conv2d;
    const bool windowed =
        conv || l.type == LayerType::MaxPool2d || l.type == LayerType::AvgPool2d;
    if (l.type == LayerType::Dense || conv) {
      if (l.units < 1 || l.units > (1 << 24))
        return bad_field(error, layer_field(i, kUnitsField), l.units,
                         "must be an integer in [1, 16777216]");
      if (!(std::isfinite(l.init_std) && l.init_std > 0))
        return bad_field(error, layer_field(i, kInitStdField), l.init_std, kPositive);
    }
    if (windowed) {
      const int32_t window[4] = {l.kernel_h, l.kernel_w, l.stride_h, l.stride_w};
      for (size_t k = 0; k < 4; ++k)
        if (window[k] < 1 || window[k] > (1 << 16))
          return bad_field(error, layer_field(i, static_cast<LayerField>(kKernelHField + k)),
                           window[k], "must be an integer in [1, 65536]");
      if (l.same_padding && l.stride_h != 1)
        return bad_field(error, layer_field(i, kStrideHField), l.stride_h,
                         "must be 1 with padding 'same' (as in PyTorch)");
      if (l.same_padding && l.stride_w != 1)
        return bad_field(error, layer_field(i, kStrideWField), l.stride_w,
                         "must be 1 with padding 'same' (as in PyTorch)");
    }
    const Shape in = shape;
    ShapeError why;
    if (!next_shape(l, in, &shape, &why))
      return bad_field(error, layer_field(i, why.field), why.value, why.message);
    if (shape.size() > (1 << 24))
      return bad_field(error, layer_field(i, kTypeField), static_cast<double>(l.type),
                       "outputs " + std::to_string(shape.size()) +
                           " values per example, more than the 2^24 limit");
    if (l.type == LayerType::Dense || conv) {
      total += l.type == LayerType::Dense ? in.size() * l.units
                                          : in.c * l.kernel_h * l.kernel_w * l.units;
      // Weights, gradients and two optimizer moments must fit in 32-bit wasm memory.
      if (total > (int64_t(1) << 28))
        return bad_field(error, layer_field(i, kUnitsField), l.units,
                         "gives the network " + std::to_string(total) +
                             " weights, more than the 2^28 limit (268435456)");
    }
    if (conv) {
      // Its im2col matrix (C * KH * KW, OH * OW) is scratch memory, one image at a time.
      const int64_t im2col = in.c * l.kernel_h * l.kernel_w * shape.h * shape.w;
      if (im2col > (int64_t(1) << 26))
        return bad_field(error, layer_field(i, kKernelHField), l.kernel_h,
                         "gives an im2col matrix of " + std::to_string(im2col) +
                             " values per image, more than the 2^26 limit");
    } else if (l.type == LayerType::BatchNorm) {
      if (!(l.momentum >= 0 && l.momentum < 1))
        return bad_field(error, layer_field(i, kMomentumField), l.momentum, kUnit);
      if (!(std::isfinite(l.epsilon) && l.epsilon > 0))
        return bad_field(error, layer_field(i, kEpsilonField), l.epsilon, kPositive);
      if (l.cumulative && l.bias_correction)
        return bad_field(error, layer_field(i, kBiasCorrectionField), 1,
                         "applies to statistics 'ema' only");
      const bool renorm = l.renorm_rmax != 0 || l.renorm_dmax != 0;
      if (renorm && !(std::isfinite(l.renorm_rmax) && l.renorm_rmax >= 1))
        return bad_field(error, layer_field(i, kRenormRmaxField), l.renorm_rmax,
                         "must be a finite number >= 1");
      if (renorm && !(std::isfinite(l.renorm_dmax) && l.renorm_dmax >= 0))
        return bad_field(error, layer_field(i, kRenormDmaxField), l.renorm_dmax, kNonNegative);
    }
  }
  if (s.loss == LossType::SoftmaxCrossEntropy && shape.size() < 2)
    return bad_field(error, kLossField, static_cast<double>(s.loss),
                     "needs at least 2 outputs, the last layer has " + std::to_string(shape.size()));
  return Status::Ok;
}

}  // namespace bnwasm
