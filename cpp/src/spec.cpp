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

// The shape a layer makes of its input shape; false (and why) when it cannot.
bool next_shape(const LayerSpec& l, const Shape& in, Shape* out, const std::string& at,
                std::string* why) {
  const bool conv = l.type == LayerType::Conv2d;
  const bool pool = l.type == LayerType::MaxPool2d || l.type == LayerType::AvgPool2d;
  if ((conv || pool || l.type == LayerType::GlobalAvgPool) && !in.spatial) {
    *why = at +
           " needs an image input [channels, height, width] (set inputShape, and put no "
           "dense, flatten or globalAvgPool layer before it), got " +
           std::to_string(in.c) + " flat features";
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
      if (l.kernel_h > h || l.kernel_w > w) {
        *why =
            at + ".kernelSize " + dims(l.kernel_h, l.kernel_w) + " is larger than its " +
            dims(in.h, in.w) + " input" +
            (p.top + p.bottom + p.left + p.right > 0 ? " with padding (" + dims(h, w) + ")" : "");
        return false;
      }
      *out = Shape{l.units, (h - l.kernel_h) / l.stride_h + 1, (w - l.kernel_w) / l.stride_w + 1,
                   true};
      return true;
    }
    case LayerType::MaxPool2d:
    case LayerType::AvgPool2d:
      if (l.kernel_h > in.h || l.kernel_w > in.w) {
        *why = at + ".poolSize " + dims(l.kernel_h, l.kernel_w) + " leaves nothing of its " +
               dims(in.h, in.w) + " input";
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
  std::string unused;
  for (const LayerSpec& l : s.layers) {
    next_shape(l, cur, &cur, "", &unused);
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

Status decode_spec(const double* v, size_t n, NetworkSpec* out, std::string* why) {
  if (n < kSpecHeader) {
    *why = "spec has " + std::to_string(n) + " values, at least " + std::to_string(kSpecHeader) +
           " expected";
    return Status::InvalidConfig;
  }
  if (!is_int_in(v[11], 1, 10000) || n != kSpecHeader + kLayerFields * static_cast<size_t>(v[11])) {
    *why = "spec length does not match its layer count";
    return Status::InvalidConfig;
  }
  if (!is_int_in(v[0], 1, 1 << 24) || !is_int_in(v[1], 0, 1) || !is_int_in(v[2], 0, 4294967295.0) ||
      !is_int_in(v[3], 0, 1) || !is_flag(v[6]) || !is_int_in(v[12], 0, 1 << 24) ||
      !is_int_in(v[13], 0, 1 << 24) || !is_int_in(v[14], 0, 1 << 24)) {
    *why = "spec header holds an invalid input size, loss, seed or optimizer type";
    return Status::InvalidConfig;
  }
  NetworkSpec s;
  s.input_size = static_cast<int32_t>(v[0]);
  s.loss = static_cast<LossType>(static_cast<int32_t>(v[1]));
  s.seed = static_cast<uint32_t>(v[2]);
  s.optimizer.type = static_cast<OptimizerType>(static_cast<int32_t>(v[3]));
  s.optimizer.learning_rate = v[4];
  s.optimizer.momentum = v[5];
  s.optimizer.nesterov = v[6] != 0.0;
  s.optimizer.beta1 = v[7];
  s.optimizer.beta2 = v[8];
  s.optimizer.epsilon = v[9];
  s.optimizer.weight_decay = v[10];
  s.input_channels = static_cast<int32_t>(v[12]);
  s.input_height = static_cast<int32_t>(v[13]);
  s.input_width = static_cast<int32_t>(v[14]);
  const size_t count = static_cast<size_t>(v[11]);
  for (size_t i = 0; i < count; ++i) {
    const double* f = v + kSpecHeader + i * kLayerFields;
    if (!is_int_in(f[0], 0, 9) || !is_int_in(f[1], 0, 1 << 24) || !is_flag(f[2]) ||
        !is_int_in(f[3], 0, 3) || !is_flag(f[7]) || !is_flag(f[8]) || !is_flag(f[9]) ||
        !is_int_in(f[12], 0, 1 << 16) || !is_int_in(f[13], 0, 1 << 16) ||
        !is_int_in(f[14], 0, 1 << 16) || !is_int_in(f[15], 0, 1 << 16) ||
        !is_int_in(f[16], 0, 1 << 16) || !is_int_in(f[17], 0, 1 << 16) || !is_flag(f[18])) {
      *why = "layers[" + std::to_string(i) + "] holds an invalid type, size or flag";
      return Status::InvalidConfig;
    }
    LayerSpec l;
    l.type = static_cast<LayerType>(static_cast<int32_t>(f[0]));
    l.units = static_cast<int32_t>(f[1]);
    l.use_bias = f[2] != 0.0;
    l.init = static_cast<Init>(static_cast<int32_t>(f[3]));
    l.init_std = f[4];
    l.momentum = f[5];
    l.epsilon = f[6];
    l.unbiased_variance = f[7] != 0.0;
    l.cumulative = f[8] != 0.0;
    l.bias_correction = f[9] != 0.0;
    l.renorm_rmax = f[10];
    l.renorm_dmax = f[11];
    l.kernel_h = static_cast<int32_t>(f[12]);
    l.kernel_w = static_cast<int32_t>(f[13]);
    l.stride_h = static_cast<int32_t>(f[14]);
    l.stride_w = static_cast<int32_t>(f[15]);
    l.pad_h = static_cast<int32_t>(f[16]);
    l.pad_w = static_cast<int32_t>(f[17]);
    l.same_padding = f[18] != 0.0;
    s.layers.push_back(l);
  }
  const Status st = validate_spec(s, why);
  if (st == Status::Ok) *out = s;
  return st;
}

Status validate_spec(const NetworkSpec& s, std::string* why) {
  auto bad = [why](std::string message) {
    *why = std::move(message);
    return Status::InvalidConfig;
  };
  if (s.input_size < 1) return bad("inputSize must be a positive integer");
  const bool image = s.input_height != 0 || s.input_width != 0 || s.input_channels != 0;
  if (image &&
      (s.input_channels < 1 || s.input_height < 1 || s.input_width < 1 ||
       static_cast<int64_t>(s.input_channels) * s.input_height * s.input_width != s.input_size))
    return bad("inputShape must be 3 positive integers whose product is inputSize");
  if (s.layers.empty()) return bad("layers must hold at least one layer");
  const OptimizerSpec& o = s.optimizer;
  if (!std::isfinite(o.learning_rate) || o.learning_rate <= 0)
    return bad("optimizer.learningRate must be a finite number > 0");
  if (!std::isfinite(o.weight_decay) || o.weight_decay < 0)
    return bad("optimizer.weightDecay must be a finite number >= 0");
  if (o.type == OptimizerType::Sgd && !(o.momentum >= 0 && o.momentum < 1))
    return bad("optimizer.momentum must be in [0, 1)");
  if (o.type == OptimizerType::Sgd && o.nesterov && o.momentum == 0)
    return bad("optimizer.nesterov needs momentum > 0");
  if (o.type == OptimizerType::Adam &&
      !(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1))
    return bad("optimizer.beta1 and beta2 must be in [0, 1)");
  if (o.type == OptimizerType::Adam && !(std::isfinite(o.epsilon) && o.epsilon > 0))
    return bad("optimizer.epsilon must be a finite number > 0");
  Shape shape = input_shape(s);
  int64_t total = 0;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerSpec& l = s.layers[i];
    const std::string at = "layers[" + std::to_string(i) + "]";
    if (l.type == LayerType::Dense || l.type == LayerType::Conv2d) {
      if (l.units < 1)
        return bad(at + (l.type == LayerType::Dense ? ".units" : ".filters") +
                   " must be a positive integer");
      if (l.init == Init::Normal && !(std::isfinite(l.init_std) && l.init_std > 0))
        return bad(at + ".initStd must be a finite number > 0");
    }
    if (l.type == LayerType::Conv2d || l.type == LayerType::MaxPool2d ||
        l.type == LayerType::AvgPool2d) {
      if (l.kernel_h < 1 || l.kernel_w < 1 || l.stride_h < 1 || l.stride_w < 1)
        return bad(at + ": kernel or pool size and stride must be positive integers");
      if (l.same_padding && (l.stride_h != 1 || l.stride_w != 1))
        return bad(at + ": padding 'same' needs stride 1 (as in PyTorch)");
    }
    const Shape in = shape;
    std::string why_shape;
    if (!next_shape(l, in, &shape, at, &why_shape)) return bad(why_shape);
    if (shape.size() > (1 << 24)) return bad(at + " outputs more than 2^24 values per example");
    if (l.type == LayerType::Dense) {
      total += in.size() * l.units;
    } else if (l.type == LayerType::Conv2d) {
      total += in.c * l.kernel_h * l.kernel_w * l.units;
      // Its im2col matrix (C * KH * KW, OH * OW) is scratch memory, one image at a time.
      if (in.c * l.kernel_h * l.kernel_w * shape.h * shape.w > (int64_t(1) << 26))
        return bad(at + ": the im2col matrix of one image would exceed 2^26 values");
    } else if (l.type == LayerType::BatchNorm) {
      if (!(l.momentum >= 0 && l.momentum < 1)) return bad(at + ".momentum must be in [0, 1)");
      if (!(std::isfinite(l.epsilon) && l.epsilon > 0))
        return bad(at + ".epsilon must be a finite number > 0");
      if (l.cumulative && l.bias_correction)
        return bad(at + ": biasCorrection applies to statistics 'ema' only");
      const bool renorm = l.renorm_rmax != 0 || l.renorm_dmax != 0;
      if (renorm && !(std::isfinite(l.renorm_rmax) && l.renorm_rmax >= 1 &&
                      std::isfinite(l.renorm_dmax) && l.renorm_dmax >= 0))
        return bad(at + ".renorm needs rMax >= 1 and dMax >= 0, both finite");
    }
    if (total > (int64_t(1) << 28)) return bad("the network has more than 2^28 weights");
  }
  return Status::Ok;
}

}  // namespace bnwasm
