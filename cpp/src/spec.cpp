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

}  // namespace

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
      !is_int_in(v[3], 0, 1) || !is_flag(v[6])) {
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
  const size_t count = static_cast<size_t>(v[11]);
  for (size_t i = 0; i < count; ++i) {
    const double* f = v + kSpecHeader + i * kLayerFields;
    if (!is_int_in(f[0], 0, 4) || !is_int_in(f[1], 0, 1 << 24) || !is_flag(f[2]) ||
        !is_int_in(f[3], 0, 3) || !is_flag(f[7]) || !is_flag(f[8]) || !is_flag(f[9])) {
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
  int64_t width = s.input_size;
  int64_t total = 0;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerSpec& l = s.layers[i];
    const std::string at = "layers[" + std::to_string(i) + "]";
    if (l.type == LayerType::Dense) {
      if (l.units < 1) return bad(at + ".units must be a positive integer");
      if (l.init == Init::Normal && !(std::isfinite(l.init_std) && l.init_std > 0))
        return bad(at + ".initStd must be a finite number > 0");
      total += width * l.units;
      width = l.units;
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
