#include "bnwasm/network.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>

#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"

namespace bnwasm {
namespace {

// splitmix64: one 64-bit word of state, so a saved model resumes its stream.
uint64_t next_u64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// Uniform in [0, 1) with 53 random bits.
double next_uniform(uint64_t* state) { return (next_u64(state) >> 11) * 0x1.0p-53; }

size_t first_non_finite(const float* x, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return n;
}

}  // namespace

Network::Network(const NetworkSpec& spec) : spec_(spec) {
  size_t width = static_cast<size_t>(spec.input_size);
  size_t nparams = 0, nstats = 0, ncache = 0, nscratch = 0;
  bool params_before = false;
  max_width_ = width;
  const std::vector<Shape> shapes = layer_shapes(spec);
  Shape shape = input_shape(spec);
  for (size_t i = 0; i < spec.layers.size(); ++i) {
    const LayerSpec& ls = spec.layers[i];
    const Shape& next = shapes[i];
    Layer l;
    l.type = ls.type;
    l.in = width;
    l.out = static_cast<size_t>(next.size());
    l.needs_din = params_before;
    if (ls.type == LayerType::Conv2d) {
      const Padding p = conv_padding(ls);
      l.conv = Conv2dGeometry{size_t(shape.c),     size_t(shape.h),     size_t(shape.w),
                              size_t(ls.units),    size_t(ls.kernel_h), size_t(ls.kernel_w),
                              size_t(ls.stride_h), size_t(ls.stride_w), size_t(p.top),
                              size_t(p.left),      size_t(next.h),      size_t(next.w)};
      l.w = nparams;
      nparams += l.conv.F * l.conv.K();
      if (ls.use_bias) {
        l.b = nparams;
        nparams += l.conv.F;
      }
      nscratch = std::max(nscratch, conv2d_scratch_size(l.conv));
      params_before = true;
    } else if (ls.type == LayerType::MaxPool2d || ls.type == LayerType::AvgPool2d) {
      l.pool = Pool2dGeometry{size_t(shape.c),     size_t(shape.h),     size_t(shape.w),
                              size_t(ls.kernel_h), size_t(ls.kernel_w), size_t(ls.stride_h),
                              size_t(ls.stride_w), size_t(next.h),      size_t(next.w)};
    } else if (ls.type == LayerType::GlobalAvgPool) {
      l.channels = static_cast<size_t>(shape.c);
      l.positions = static_cast<size_t>(shape.h * shape.w);
    } else if (ls.type == LayerType::Dense) {
      l.out = static_cast<size_t>(ls.units);
      l.w = nparams;
      nparams += l.out * l.in;
      if (ls.use_bias) {
        l.b = nparams;
        nparams += l.out;
      }
      l.wt.resize(f32_packed_size(l.in, l.out));
      params_before = true;
    } else if (ls.type == LayerType::BatchNorm) {
      // Per channel over the positions of an image, per feature otherwise.
      const size_t C = static_cast<size_t>(shape.spatial ? shape.c : shape.size());
      l.channels = C;
      l.positions = shape.spatial ? static_cast<size_t>(shape.h * shape.w) : 1;
      l.gamma = nparams;
      l.beta = nparams + C;
      nparams += 2 * C;
      l.rmean = nstats;
      l.rvar = nstats + C;
      nstats += 2 * C;
      if (ls.bias_correction) {
        l.raw_mean = nstats;
        l.raw_var = nstats + C;
        nstats += 2 * C;
      }
      l.cache = ncache;
      ncache += 5 * C;
      params_before = true;
    }
    shape = next;
    width = l.out;
    max_width_ = std::max(max_width_, width);
    layers_.push_back(std::move(l));
  }
  output_size_ = width;
  params_.assign(nparams, 0.0f);
  grads_.assign(nparams, 0.0f);
  moment1_.assign(nparams, 0.0f);
  if (spec.optimizer.type == OptimizerType::Adam) moment2_.assign(nparams, 0.0f);
  stats_.assign(nstats, 0.0f);
  caches_.assign(ncache, 0.0f);
  one_a_.assign(max_width_, 0.0f);
  one_b_.assign(max_width_, 0.0f);
  conv_scratch_.assign(nscratch, 0.0f);
  size_t nchannels = 0;
  for (const Layer& l : layers_)
    if (l.type == LayerType::Conv2d) nchannels = std::max(nchannels, l.conv.F);
  bn_scale_.assign(nchannels, 0.0f);
  bn_shift_.assign(nchannels, 0.0f);
  rng_state_ = spec.seed;
}

Status Network::create(const NetworkSpec& spec, std::unique_ptr<Network>* out, ErrorInfo* error) {
  const Status st = validate_spec(spec, error);
  if (st != Status::Ok) return st;
  std::unique_ptr<Network> net(new Network(spec));
  net->init_parameters();
  *out = std::move(net);
  return Status::Ok;
}

void Network::init_parameters() {
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    const LayerSpec& ls = spec_.layers[i];
    if (l.type == LayerType::Dense || l.type == LayerType::Conv2d) {
      Init init = ls.init;
      if (init == Init::Auto) {
        // The activation this layer feeds, looking past batch norm.
        size_t j = i + 1;
        while (j < layers_.size() && layers_[j].type == LayerType::BatchNorm) ++j;
        const bool relu = j < layers_.size() && layers_[j].type == LayerType::Relu;
        init = relu ? Init::HeUniform : Init::GlorotUniform;
      }
      float* w = params_.data() + l.w;
      // A conv filter sees K = C * KH * KW inputs and each input feeds
      // F * KH * KW outputs: the fans PyTorch and Keras use.
      const bool conv = l.type == LayerType::Conv2d;
      const size_t fan_in = conv ? l.conv.K() : l.in;
      const size_t fan_out = conv ? l.conv.F * l.conv.KH * l.conv.KW : l.out;
      const size_t n = conv ? l.conv.F * l.conv.K() : l.in * l.out;
      if (init == Init::Normal) {
        for (size_t k = 0; k < n; ++k) {
          // Box-Muller; 1 - u keeps the log's argument in (0, 1].
          const double u1 = 1.0 - next_uniform(&rng_state_), u2 = next_uniform(&rng_state_);
          w[k] = static_cast<float>(ls.init_std * std::sqrt(-2.0 * std::log(u1)) *
                                    std::cos(6.283185307179586 * u2));
        }
      } else {
        const double fan = init == Init::HeUniform ? static_cast<double>(fan_in)
                                                   : 0.5 * static_cast<double>(fan_in + fan_out);
        const double limit = std::sqrt(init == Init::HeUniform ? 6.0 / fan : 3.0 / fan);
        for (size_t k = 0; k < n; ++k)
          w[k] = static_cast<float>((2.0 * next_uniform(&rng_state_) - 1.0) * limit);
      }
    } else if (l.type == LayerType::BatchNorm) {
      std::fill_n(params_.data() + l.gamma, l.channels, 1.0f);
      std::fill_n(stats_.data() + l.rvar, l.channels, 1.0f);
    }
  }
  ++version_;
}

Status Network::fail(Status s, std::string message, Argument argument, int64_t index,
                     double value) {
  error_.status = s;
  error_.argument = argument;
  error_.message = std::move(message);
  error_.index = index;
  error_.value = value;
  return s;
}

// ---- staging buffers ------------------------------------------------------------

float* Network::input(size_t rows) {
  if (input_.size() < rows * input_size()) input_.resize(rows * input_size());
  return input_.data();
}
int32_t* Network::labels(size_t rows) {
  if (labels_.size() < rows) labels_.resize(rows);
  return labels_.data();
}
float* Network::targets(size_t rows) {
  if (targets_.size() < rows * output_size_) targets_.resize(rows * output_size_);
  return targets_.data();
}
float* Network::output(size_t rows) {
  if (output_.size() < rows * output_size_) output_.resize(rows * output_size_);
  return output_.data();
}
uint32_t* Network::indices(size_t n) {
  if (indices_.size() < n) indices_.resize(n);
  return indices_.data();
}

void Network::ensure_rows(size_t rows) {
  if (rows <= rows_) return;
  size_t scratch = 0;
  for (Layer& l : layers_) {
    l.act.resize(rows * l.out);
    if (l.type == LayerType::MaxPool2d) l.argmax.resize(rows * l.out);
    if (l.type == LayerType::Dense)
      scratch = std::max({scratch, f32_packed_size(rows, l.in), f32_packed_size(l.out, l.in)});
  }
  dbuf_a_.resize(rows * max_width_);
  dbuf_b_.resize(rows * max_width_);
  scratch_.resize(scratch);
  rows_ = rows;
}

void Network::shuffle(size_t n) {
  uint32_t* idx = indices(n);
  for (size_t i = 0; i < n; ++i) idx[i] = static_cast<uint32_t>(i);
  for (size_t i = n; i > 1; --i) {  // Fisher-Yates
    const size_t j = static_cast<size_t>(next_uniform(&rng_state_) * static_cast<double>(i));
    std::swap(idx[i - 1], idx[j]);
  }
}

// ---- forward and backward ----------------------------------------------------------

void Network::refresh_packed_weights() {
  for (Layer& l : layers_)
    if (l.type == LayerType::Dense && l.wt_version != version_) {
      f32_pack_t_x8(l.wt.data(), params_.data() + l.w, l.in, l.out);
      l.wt_version = version_;
    }
}

size_t Network::conv_span(size_t i, size_t last) const {
  auto is = [&](size_t j, LayerType t) {
    return j <= last && j < layers_.size() && layers_[j].type == t;
  };
  size_t span = 1;
  if (is(i + 1, LayerType::BatchNorm)) {
    span = 2;
    if (is(i + 2, LayerType::Relu)) span = 3;
  }
  if (conv2d_winograd_applies(layers_[i].conv) && is(i + span, LayerType::MaxPool2d) &&
      layers_[i + span].pool.two_by_two_stride_two())
    ++span;
  return span;
}

void Network::conv_forward_infer(float* out, const float* in, size_t B, size_t i, size_t span) {
  Layer& l = layers_[i];
  const float* weight = params_.data() + l.w;
  const float* bias = spec_.layers[i].use_bias ? params_.data() + l.b : nullptr;
  const bool pool = layers_[i + span - 1].type == LayerType::MaxPool2d;
  const bool bn = span > 1 && layers_[i + 1].type == LayerType::BatchNorm;
  const bool relu = bn && span > 2 && layers_[i + 2].type == LayerType::Relu;
  if (bn) {
    // The batch norm's scale and shift are F values, computed here with the
    // expressions batchnorm_forward_infer uses: cheaper than tracking changes.
    const Layer& n = layers_[i + 1];
    batchnorm_infer_scale_shift(bn_scale_.data(), bn_shift_.data(), params_.data() + n.gamma,
                                params_.data() + n.beta, stats_.data() + n.rmean,
                                stats_.data() + n.rvar, n.channels,
                                static_cast<float>(spec_.layers[i + 1].epsilon));
  }
  const float* scale = bn ? bn_scale_.data() : nullptr;
  const float* shift = bn ? bn_shift_.data() : nullptr;
  if (conv2d_winograd_applies(l.conv)) {
    // The transformed weight is kept until the weights change.
    if (l.wino_version != version_) {
      l.wino.resize(f32_winograd23_weight_size(l.conv.F, l.conv.C));
      f32_winograd23_weights(l.wino.data(), weight, l.conv.F, l.conv.C);
      l.wino_version = version_;
    }
    conv2d_winograd_forward_infer(out, conv_scratch_.data(), in, l.wino.data(), bias, scale, shift,
                                  relu, pool, B, l.conv);
    return;
  }
  if (!bn) {
    conv2d_forward(out, conv_scratch_.data(), in, weight, bias, B, l.conv);
    return;
  }
  conv2d_batchnorm_relu_forward_infer(out, conv_scratch_.data(), in, weight, bias, scale, shift,
                                      relu, B, l.conv);
}

void Network::forward(const float* x, size_t B, bool train, size_t last) {
  refresh_packed_weights();
  const float* cur = x;
  for (size_t i = 0; i < layers_.size() && i <= last; ++i) {
    Layer& l = layers_[i];
    const LayerSpec& ls = spec_.layers[i];
    float* out = l.act.data();
    const size_t n = B * l.out;
    if (!train && l.type == LayerType::Conv2d) {
      // Inference writes only the last layer's output (the one callers read):
      // a conv, its batch norm and ReLU go in one pass into the last one's.
      const size_t span = conv_span(i, last);
      i += span - 1;
      conv_forward_infer(layers_[i].act.data(), cur, B, i + 1 - span, span);
      cur = layers_[i].act.data();
      continue;
    }
    switch (l.type) {
      case LayerType::Dense:
        dense_forward(out, cur, l.wt.data(), ls.use_bias ? params_.data() + l.b : nullptr, B, l.in,
                      l.out);
        break;
      case LayerType::Conv2d:
        conv2d_forward(out, conv_scratch_.data(), cur, params_.data() + l.w,
                       ls.use_bias ? params_.data() + l.b : nullptr, B, l.conv);
        break;
      case LayerType::BatchNorm: {
        const float* gamma = params_.data() + l.gamma;
        const float* beta = params_.data() + l.beta;
        float* c = caches_.data() + l.cache;
        const size_t C = l.channels, S = l.positions;
        if (train && ls.renorm_rmax > 0) {
          batchnorm_renorm_forward_train(out, c, c + C, c + 2 * C, c + 3 * C, c + 4 * C, cur, gamma,
                                         beta, stats_.data() + l.rmean, stats_.data() + l.rvar, B,
                                         C, S, static_cast<float>(ls.epsilon),
                                         static_cast<float>(ls.renorm_rmax),
                                         static_cast<float>(ls.renorm_dmax));
        } else if (train) {
          batchnorm_forward_train(out, c, c + C, c + 2 * C, cur, gamma, beta, B, C, S,
                                  static_cast<float>(ls.epsilon));
        } else {
          batchnorm_forward_infer(out, cur, gamma, beta, stats_.data() + l.rmean,
                                  stats_.data() + l.rvar, B, C, S, static_cast<float>(ls.epsilon));
        }
        break;
      }
      case LayerType::MaxPool2d:
        maxpool2d_forward(out, train ? l.argmax.data() : nullptr, cur, B, l.pool);
        break;
      case LayerType::AvgPool2d:
        avgpool2d_forward(out, cur, B, l.pool);
        break;
      case LayerType::GlobalAvgPool:
        global_avgpool_forward(out, cur, B, l.channels, l.positions);
        break;
      case LayerType::Flatten:
        std::memcpy(out, cur, n * sizeof(float));
        break;
      case LayerType::Relu:
        relu_forward(out, cur, n);
        break;
      case LayerType::Sigmoid:
        sigmoid_forward(out, cur, n);
        break;
      case LayerType::Tanh:
        tanh_forward(out, cur, n);
        break;
    }
    cur = out;
  }
}

void Network::backward(size_t B) {
  // dbuf_a_ holds d(loss)/d(output of the last layer).
  float* dout = dbuf_a_.data();
  float* din_buf = dbuf_b_.data();
  for (size_t i = layers_.size(); i-- > 0;) {
    Layer& l = layers_[i];
    const float* in = i == 0 ? input_.data() : layers_[i - 1].act.data();
    float* din = nullptr;
    if (l.needs_din) {
      din = din_buf;
      std::memset(din, 0, B * l.in * sizeof(float));
    }
    switch (l.type) {
      case LayerType::Dense:
        dense_backward(din, grads_.data() + l.w,
                       spec_.layers[i].use_bias ? grads_.data() + l.b : nullptr, scratch_.data(),
                       dout, in, params_.data() + l.w, B, l.in, l.out);
        break;
      case LayerType::Conv2d:
        conv2d_backward(din, grads_.data() + l.w,
                        spec_.layers[i].use_bias ? grads_.data() + l.b : nullptr,
                        conv_scratch_.data(), dout, in, params_.data() + l.w, B, l.conv);
        break;
      case LayerType::BatchNorm: {
        const float* c = caches_.data() + l.cache;
        const size_t C = l.channels, S = l.positions;
        if (spec_.layers[i].renorm_rmax > 0)
          batchnorm_renorm_backward(din, grads_.data() + l.gamma, grads_.data() + l.beta, dout, in,
                                    params_.data() + l.gamma, c, c + 2 * C, c + 3 * C, c + 4 * C, B,
                                    C, S);
        else
          batchnorm_backward(din, grads_.data() + l.gamma, grads_.data() + l.beta, dout, in,
                             params_.data() + l.gamma, c, c + 2 * C, B, C, S);
        break;
      }
      case LayerType::MaxPool2d:
        if (din) maxpool2d_backward(din, dout, l.argmax.data(), B, l.pool);
        break;
      case LayerType::AvgPool2d:
        if (din) avgpool2d_backward(din, dout, B, l.pool);
        break;
      case LayerType::GlobalAvgPool:
        if (din) global_avgpool_backward(din, dout, B, l.channels, l.positions);
        break;
      case LayerType::Flatten:
        if (din)
          for (size_t k = 0; k < B * l.out; ++k) din[k] += dout[k];
        break;
      case LayerType::Relu:
        if (din) relu_backward(din, dout, l.act.data(), B * l.out);
        break;
      case LayerType::Sigmoid:
        if (din) sigmoid_backward(din, dout, l.act.data(), B * l.out);
        break;
      case LayerType::Tanh:
        if (din) tanh_backward(din, dout, l.act.data(), B * l.out);
        break;
    }
    if (din == nullptr) break;  // no earlier layer has parameters
    std::swap(dout, din_buf);
  }
}

// ---- optimizer ----------------------------------------------------------------------------

namespace {

// One pass of the update over every parameter. With Write false it only
// checks that every new value would be finite, so a step that would diverge is
// refused before anything is written.
template <bool Write>
bool sgd_pass(float* p, float* buf, const float* g, size_t n, const OptimizerSpec& o) {
  return f32_sgd(p, buf, g, n, static_cast<float>(o.learning_rate), static_cast<float>(o.momentum),
                 static_cast<float>(o.weight_decay), o.nesterov, Write);
}

template <bool Write>
bool adam_pass(float* p, float* m, float* v, const float* g, size_t n, const OptimizerSpec& o,
               uint64_t t) {
  // torch.optim.Adam: step_size = lr / (1 - beta1^t);
  // denom = sqrt(v) / sqrt(1 - beta2^t) + eps; p -= step_size * m / denom.
  const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
  const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
  const float step_size = static_cast<float>(o.learning_rate / bc1);
  const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(bc2));
  const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
  // 1 - beta in double, then rounded: 1.0f - 0.999f would carry 0.999f's
  // rounding error (1.3e-5 relative) into every update.
  const float c1 = static_cast<float>(1.0 - o.beta1), c2 = static_cast<float>(1.0 - o.beta2);
  const float eps = static_cast<float>(o.epsilon), wd = static_cast<float>(o.weight_decay);
  return f32_adam(p, m, v, g, n, b1, b2, c1, c2, step_size, inv_sqrt_bc2, eps, wd, Write);
}

}  // namespace

void Network::optimizer_step() {
  const OptimizerSpec& o = spec_.optimizer;
  const size_t n = params_.size();
  if (o.type == OptimizerType::Sgd)
    sgd_pass<true>(params_.data(), moment1_.data(), grads_.data(), n, o);
  else
    adam_pass<true>(params_.data(), moment1_.data(), moment2_.data(), grads_.data(), n, o,
                    step_ + 1);
}

bool Network::update_running_statistics(size_t B) {
  // Check first: a convex combination of finite values is finite, so finite
  // batch statistics (and a finite unbiased rescaling) mean a finite update.
  for (const Layer& l : layers_) {
    if (l.type != LayerType::BatchNorm) continue;
    const float* c = caches_.data() + l.cache;
    if (!f32_all_finite(c, 2 * l.channels)) return false;
    const size_t m = B * l.positions;
    const float scale = static_cast<float>(m) / static_cast<float>(m - 1);
    for (size_t k = 0; k < l.channels; ++k)
      if (!std::isfinite(c[l.channels + k] * scale)) return false;
  }
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    if (l.type != LayerType::BatchNorm) continue;
    const LayerSpec& ls = spec_.layers[i];
    // m = B * positions values per channel: the unbiased rescaling is m / (m - 1).
    const size_t C = l.channels, m = B * l.positions;
    const float* mean = caches_.data() + l.cache;
    const float* var = mean + C;
    const uint64_t t = ++l.tracked;
    float* rmean = stats_.data() + l.rmean;
    float* rvar = stats_.data() + l.rvar;
    if (ls.cumulative) {
      // The plain average of the t batch statistics seen so far.
      const double past = static_cast<double>(t - 1) / static_cast<double>(t);
      batchnorm_update_running(rmean, rvar, mean, var, m, C, past, ls.unbiased_variance);
    } else if (ls.bias_correction) {
      float* raw_mean = stats_.data() + l.raw_mean;
      float* raw_var = stats_.data() + l.raw_var;
      batchnorm_update_running(raw_mean, raw_var, mean, var, m, C, ls.momentum,
                               ls.unbiased_variance);
      const double inv = 1.0 / (1.0 - std::pow(ls.momentum, static_cast<double>(t)));
      for (size_t k = 0; k < C; ++k) {
        rmean[k] = static_cast<float>(raw_mean[k] * inv);
        rvar[k] = static_cast<float>(raw_var[k] * inv);
      }
    } else {
      batchnorm_update_running(rmean, rvar, mean, var, m, C, ls.momentum, ls.unbiased_variance);
    }
  }
  return true;
}

// ---- public operations ------------------------------------------------------------------------

Status Network::check_inputs(const float* x, size_t rows) {
  const size_t n = rows * input_size();
  if (f32_all_finite(x, n)) return Status::Ok;
  const size_t i = first_non_finite(x, n);
  return fail(Status::NonFiniteInput, "expected a finite number", Argument::Input,
              static_cast<int64_t>(i), x[i]);
}

// The staged labels (in range) or targets (finite) of n rows.
Status Network::check_targets(size_t n) {
  if (spec_.loss == LossType::SoftmaxCrossEntropy) {
    if (labels_.size() < n) return fail(Status::BadArgument, "fewer labels staged than rows");
    for (size_t i = 0; i < n; ++i)
      if (labels_[i] < 0 || static_cast<size_t>(labels_[i]) >= output_size_)
        return fail(Status::LabelOutOfRange,
                    "labels must be integers in [0, " + std::to_string(output_size_) + ")",
                    Argument::Target, static_cast<int64_t>(i), labels_[i]);
    return Status::Ok;
  }
  const size_t count = n * output_size_;
  if (targets_.size() < count) return fail(Status::BadArgument, "fewer targets staged than rows");
  if (f32_all_finite(targets_.data(), count)) return Status::Ok;
  const size_t i = first_non_finite(targets_.data(), count);
  return fail(Status::NonFiniteInput, "expected a finite number", Argument::Target,
              static_cast<int64_t>(i), targets_[i]);
}

Status Network::check_batch(size_t n) {
  if (input_.size() < n * input_size()) return fail(Status::BadArgument, "fewer rows staged than n");
  if (Status s = check_inputs(input_.data(), n); s != Status::Ok) return s;
  return check_targets(n);
}

Status Network::train_step(size_t B, double* loss) {
  bool has_bn = false;
  for (const Layer& l : layers_) has_bn = has_bn || l.type == LayerType::BatchNorm;
  if (B < 1 || (has_bn && B < 2))
    return fail(Status::BatchTooSmall,
                "a training mini-batch needs at least 2 examples (batch norm's variance over one "
                "example is meaningless), got " +
                    std::to_string(B),
                Argument::None, -1, static_cast<double>(B));
  if (Status s = check_batch(B); s != Status::Ok) return s;

  ensure_rows(B);
  forward(input_.data(), B, true);
  const float* logits = layers_.back().act.data();
  const double l =
      spec_.loss == LossType::SoftmaxCrossEntropy
          ? softmax_crossentropy_forward_backward(dbuf_a_.data(), logits, labels_.data(), B,
                                                  output_size_)
          : mse_forward_backward(dbuf_a_.data(), logits, targets_.data(), B, output_size_);
  const char* advice = "; nothing was changed. Try a lower learning rate.";
  if (!std::isfinite(l))
    return fail(Status::Diverged, std::string("the training loss is ") +
                                      (std::isnan(l) ? "NaN" : "Infinity") + advice);
  // memset, not std::fill: at -Oz the latter stays a scalar loop over every gradient.
  std::memset(grads_.data(), 0, grads_.size() * sizeof(float));
  backward(B);
  if (!f32_all_finite(grads_.data(), grads_.size()))
    return fail(Status::Diverged, std::string("a gradient is not finite") + advice);
  // Both checks run before either writes, so a refused step changes nothing.
  const OptimizerSpec& o = spec_.optimizer;
  const bool params_ok =
      o.type == OptimizerType::Sgd
          ? sgd_pass<false>(params_.data(), moment1_.data(), grads_.data(), params_.size(), o)
          : adam_pass<false>(params_.data(), moment1_.data(), moment2_.data(), grads_.data(),
                             params_.size(), o, step_ + 1);
  if (!params_ok)
    return fail(Status::Diverged,
                std::string("the update would make a parameter non-finite") + advice);
  if (!update_running_statistics(B))
    return fail(Status::Diverged,
                std::string("a batch-norm statistic of this batch is not finite") + advice);
  optimizer_step();
  ++step_;
  ++version_;
  *loss = l;
  return Status::Ok;
}

Status Network::predict_one() {
  const float* x = input(1);
  if (Status s = check_inputs(x, 1); s != Status::Ok) return s;
  refresh_packed_weights();
  // Ping-pong between two buffers; dense goes through the same kernel as
  // predict_batch with one row, so row i of a batch equals predict_one bit for bit.
  float* cur = one_a_.data();
  float* other = one_b_.data();
  std::memcpy(cur, x, input_size() * sizeof(float));
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    const LayerSpec& ls = spec_.layers[i];
    switch (l.type) {
      case LayerType::Dense:
        dense_forward(other, cur, l.wt.data(), ls.use_bias ? params_.data() + l.b : nullptr, 1,
                      l.in, l.out);
        std::swap(cur, other);
        break;
      case LayerType::Conv2d: {
        const size_t span = conv_span(i, layers_.size() - 1);
        conv_forward_infer(other, cur, 1, i, span);
        i += span - 1;
        std::swap(cur, other);
        break;
      }
      case LayerType::BatchNorm:
        batchnorm_forward_infer(cur, cur, params_.data() + l.gamma, params_.data() + l.beta,
                                stats_.data() + l.rmean, stats_.data() + l.rvar, 1, l.channels,
                                l.positions, static_cast<float>(ls.epsilon));
        break;
      case LayerType::MaxPool2d:
        maxpool2d_forward(other, nullptr, cur, 1, l.pool);
        std::swap(cur, other);
        break;
      case LayerType::AvgPool2d:
        avgpool2d_forward(other, cur, 1, l.pool);
        std::swap(cur, other);
        break;
      case LayerType::GlobalAvgPool:
        global_avgpool_forward(other, cur, 1, l.channels, l.positions);
        std::swap(cur, other);
        break;
      case LayerType::Flatten:
        break;  // the same values, read as flat features
      case LayerType::Relu:
        relu_forward(cur, cur, l.out);
        break;
      case LayerType::Sigmoid:
        sigmoid_forward(cur, cur, l.out);
        break;
      case LayerType::Tanh:
        tanh_forward(cur, cur, l.out);
        break;
    }
  }
  float* y = output(1);
  if (spec_.loss == LossType::SoftmaxCrossEntropy)
    softmax_forward(y, cur, 1, output_size_);
  else
    std::memcpy(y, cur, output_size_ * sizeof(float));
  return Status::Ok;
}

Status Network::predict_batch(size_t n) {
  if (n == 0) return Status::Ok;
  if (input_.size() < n * input_size())
    return fail(Status::BadArgument, "fewer rows staged than n");
  if (Status s = check_inputs(input_.data(), n); s != Status::Ok) return s;
  ensure_rows(n);
  forward(input_.data(), n, false);
  float* y = output(n);
  if (spec_.loss == LossType::SoftmaxCrossEntropy)
    softmax_forward(y, layers_.back().act.data(), n, output_size_);
  else
    std::memcpy(y, layers_.back().act.data(), n * output_size_ * sizeof(float));
  return Status::Ok;
}

Status Network::evaluate(size_t n, double* loss_sum, size_t* correct) {
  *loss_sum = 0;
  *correct = 0;
  if (n == 0) return Status::Ok;
  if (Status s = check_batch(n); s != Status::Ok) return s;
  ensure_rows(n);
  forward(input_.data(), n, false);
  const float* z = layers_.back().act.data();
  if (spec_.loss == LossType::SoftmaxCrossEntropy)
    *loss_sum = softmax_crossentropy_forward(correct, z, labels_.data(), n, output_size_) * n;
  else
    *loss_sum = mse_forward(z, targets_.data(), n, output_size_) * n;
  return Status::Ok;
}

std::vector<TensorView> Network::tensors() {
  std::vector<TensorView> out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    const int32_t li = static_cast<int32_t>(i);
    if (l.type == LayerType::Dense) {
      const int32_t in = static_cast<int32_t>(l.in), o = static_cast<int32_t>(l.out);
      out.push_back({li, "weight", {o, in}, params_.data() + l.w, l.out * l.in, true});
      if (spec_.layers[i].use_bias)
        out.push_back({li, "bias", {o}, params_.data() + l.b, l.out, true});
    } else if (l.type == LayerType::Conv2d) {
      const Conv2dGeometry& g = l.conv;
      const int32_t f = static_cast<int32_t>(g.F);
      out.push_back(
          {li,
           "weight",
           {f, static_cast<int32_t>(g.C), static_cast<int32_t>(g.KH), static_cast<int32_t>(g.KW)},
           params_.data() + l.w,
           g.F * g.K(),
           true});
      if (spec_.layers[i].use_bias)
        out.push_back({li, "bias", {f}, params_.data() + l.b, g.F, true});
    } else if (l.type == LayerType::BatchNorm) {
      const int32_t c = static_cast<int32_t>(l.channels);
      out.push_back({li, "gamma", {c}, params_.data() + l.gamma, l.channels, true});
      out.push_back({li, "beta", {c}, params_.data() + l.beta, l.channels, true});
      out.push_back({li, "runningMean", {c}, stats_.data() + l.rmean, l.channels, false});
      out.push_back({li, "runningVariance", {c}, stats_.data() + l.rvar, l.channels, false});
    }
  }
  return out;
}

void Network::weights_changed() {
  ++version_;
  // With bias correction the uncorrected average is the state that training
  // continues from; keep it consistent with running statistics set from outside.
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& l = layers_[i];
    if (l.type != LayerType::BatchNorm || !spec_.layers[i].bias_correction || l.tracked == 0)
      continue;
    const double keep = 1.0 - std::pow(spec_.layers[i].momentum, static_cast<double>(l.tracked));
    for (size_t k = 0; k < l.channels; ++k) {
      stats_[l.raw_mean + k] = static_cast<float>(stats_[l.rmean + k] * keep);
      stats_[l.raw_var + k] = static_cast<float>(stats_[l.rvar + k] * keep);
    }
  }
}

Status Network::forward_to(size_t n, int32_t layer) {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size())
    return fail(Status::BadArgument, "layer " + std::to_string(layer) + " does not exist");
  if (n == 0) return fail(Status::BadArgument, "no rows to run");
  if (input_.size() < n * input_size())
    return fail(Status::BadArgument, "fewer rows staged than n");
  if (Status s = check_inputs(input_.data(), n); s != Status::Ok) return s;
  ensure_rows(n);
  forward(input_.data(), n, false, static_cast<size_t>(layer));
  return Status::Ok;
}

const float* Network::layer_output(int32_t layer) const {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size()) return nullptr;
  return layers_[layer].act.data();
}

size_t Network::layer_width(int32_t layer) const {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size()) return 0;
  return layers_[layer].out;
}

size_t Network::channels(int32_t layer) const {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size() ||
      layers_[layer].type != LayerType::BatchNorm)
    return 0;
  return layers_[layer].channels;
}

Status Network::population_begin(int32_t layer) {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size() ||
      layers_[layer].type != LayerType::BatchNorm)
    return fail(Status::BadArgument,
                "layer " + std::to_string(layer) + " is not a batch-norm layer");
  pop_layer_ = layer;
  pop_count_ = 0;
  pop_mean_.assign(layers_[layer].channels, 0.0);
  pop_m2_.assign(layers_[layer].channels, 0.0);
  return Status::Ok;
}

Status Network::population_add(size_t n) {
  if (pop_layer_ < 0) return fail(Status::BadArgument, "population_begin was not called");
  if (n == 0) return Status::Ok;
  if (input_.size() < n * input_size())
    return fail(Status::BadArgument, "fewer rows staged than n");
  if (Status s = check_inputs(input_.data(), n); s != Status::Ok) return s;
  const float* in = input_.data();
  if (pop_layer_ > 0) {
    ensure_rows(n);
    forward(input_.data(), n, false, static_cast<size_t>(pop_layer_ - 1));
    in = layers_[pop_layer_ - 1].act.data();
  }
  // This chunk's mean and sum of squared deviations in float64, two passes,
  // then Chan et al.'s pairwise merge into the running totals.
  // Channel c of row b is the run of S values at (b * C + c) * S.
  const size_t C = layers_[pop_layer_].channels, S = layers_[pop_layer_].positions;
  const double nb = static_cast<double>(n * S);
  for (size_t c = 0; c < C; ++c) {
    double sum = 0;
    for (size_t b = 0; b < n; ++b)
      for (size_t i = 0; i < S; ++i) sum += in[(b * C + c) * S + i];
    const double mb = sum / nb;
    double m2b = 0;
    for (size_t b = 0; b < n; ++b)
      for (size_t i = 0; i < S; ++i) {
        const double dv = in[(b * C + c) * S + i] - mb;
        m2b += dv * dv;
      }
    const double na = pop_count_, total = na + nb;
    const double delta = mb - pop_mean_[c];
    pop_mean_[c] += delta * nb / total;
    pop_m2_[c] += m2b + delta * delta * na * nb / total;
  }
  pop_count_ += nb;
  return Status::Ok;
}

Status Network::population_end() {
  if (pop_layer_ < 0) return fail(Status::BadArgument, "population_begin was not called");
  Layer& l = layers_[pop_layer_];
  const bool unbiased = spec_.layers[pop_layer_].unbiased_variance;
  const int32_t layer = pop_layer_;
  pop_layer_ = -1;
  if (pop_count_ < (unbiased ? 2 : 1))
    return fail(Status::BatchTooSmall, "population statistics need at least " +
                                           std::string(unbiased ? "2 examples" : "1 example") +
                                           " for layer " + std::to_string(layer));
  const double denom = unbiased ? pop_count_ - 1 : pop_count_;
  for (size_t c = 0; c < l.channels; ++c) {
    stats_[l.rmean + c] = static_cast<float>(pop_mean_[c]);
    stats_[l.rvar + c] = static_cast<float>(pop_m2_[c] / denom);
  }
  weights_changed();
  return Status::Ok;
}

const float* Network::batch_mean(int32_t layer) const {
  if (layer < 0 || static_cast<size_t>(layer) >= layers_.size() ||
      layers_[layer].type != LayerType::BatchNorm)
    return nullptr;
  return caches_.data() + layers_[layer].cache;
}
const float* Network::batch_var(int32_t layer) const {
  const float* m = batch_mean(layer);
  return m == nullptr ? nullptr : m + layers_[layer].channels;
}

std::unique_ptr<Network> Network::folded() const {
  NetworkSpec spec = spec_;
  spec.optimizer = OptimizerSpec();
  spec.optimizer.type = OptimizerType::Sgd;
  spec.optimizer.learning_rate = 0.01;
  spec.layers.clear();
  std::vector<size_t> source;  // the layer of this network each new layer comes from
  std::vector<bool> folds;     // whether that layer absorbs the batch norm after it
  for (size_t i = 0; i < layers_.size(); ++i) {
    LayerSpec ls = spec_.layers[i];
    const bool fold = (ls.type == LayerType::Dense || ls.type == LayerType::Conv2d) &&
                      i + 1 < layers_.size() && layers_[i + 1].type == LayerType::BatchNorm;
    if (fold) ls.use_bias = true;
    spec.layers.push_back(ls);
    source.push_back(i);
    folds.push_back(fold);
    if (fold) ++i;
  }
  std::unique_ptr<Network> net(new Network(spec));
  for (size_t j = 0; j < net->layers_.size(); ++j) {
    const size_t i = source[j];
    const Layer& from = layers_[i];
    Layer& to = net->layers_[j];
    const float* p = params_.data();
    float* q = net->params_.data();
    if (from.type == LayerType::Dense || from.type == LayerType::Conv2d) {
      // A conv weight (F, C, KH, KW) folds like a dense one (units, in): per output
      // unit or filter, over the weights that feed it.
      const bool conv = from.type == LayerType::Conv2d;
      const size_t units = conv ? from.conv.F : from.out;
      const size_t fan_in = conv ? from.conv.K() : from.in;
      const float* bias = spec_.layers[i].use_bias ? p + from.b : nullptr;
      if (!folds[j]) {
        std::copy_n(p + from.w, units * fan_in, q + to.w);
        if (bias != nullptr) std::copy_n(bias, units, q + to.b);
        continue;
      }
      const Layer& bn = layers_[i + 1];  // bn.channels == units
      const double eps = spec_.layers[i + 1].epsilon;
      for (size_t u = 0; u < units; ++u) {
        const double scale = static_cast<double>(p[bn.gamma + u]) /
                             std::sqrt(static_cast<double>(stats_[bn.rvar + u]) + eps);
        for (size_t k = 0; k < fan_in; ++k)
          q[to.w + u * fan_in + k] = static_cast<float>(p[from.w + u * fan_in + k] * scale);
        const double b = bias != nullptr ? bias[u] : 0.0;
        q[to.b + u] = static_cast<float>((b - stats_[bn.rmean + u]) * scale + p[bn.beta + u]);
      }
    } else if (from.type == LayerType::BatchNorm) {
      std::copy_n(p + from.gamma, 2 * from.channels, q + to.gamma);  // gamma, then beta
      std::copy_n(stats_.data() + from.rmean, 2 * from.channels, net->stats_.data() + to.rmean);
      if (spec_.layers[i].bias_correction)
        std::copy_n(stats_.data() + from.raw_mean, 2 * from.channels,
                    net->stats_.data() + to.raw_mean);
      to.tracked = from.tracked;
    }
  }
  ++net->version_;
  return net;
}

int64_t Network::batches_tracked(int32_t layer) const {
  if (batch_mean(layer) == nullptr) return -1;
  return static_cast<int64_t>(layers_[layer].tracked);
}
Status Network::set_batches_tracked(int32_t layer, uint64_t n) {
  if (batch_mean(layer) == nullptr)
    return fail(Status::BadArgument, "layer " + std::to_string(layer) + " is not batch norm");
  layers_[layer].tracked = n;
  weights_changed();  // bias correction's uncorrected average depends on the count
  return Status::Ok;
}

}  // namespace bnwasm
