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
  const size_t count = static_cast<size_t>(v[kLayerCountField]);
  for (size_t i = 0; i < count; ++i) {
    const double* f = v + layer_field(i, kTypeField);
    if (!is_int_in(f[kTypeField], 0, 4))
      return bad_field(error, layer_field(i, kTypeField), f[kTypeField], "must be a known layer type (0 to 4)");
    const bool dense = static_cast<LayerType>(static_cast<int32_t>(f[kTypeField])) == LayerType::Dense;
    if (dense ? !is_int_in(f[kUnitsField], 1, 1 << 24) : f[kUnitsField] != 0)
      return bad_field(error, layer_field(i, kUnitsField), f[kUnitsField], dense ? kInt24 : "must be 0");
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
  int64_t width = s.input_size;
  int64_t total = 0;
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const LayerSpec& l = s.layers[i];
    if (l.type == LayerType::Dense) {
      if (l.units < 1 || l.units > (1 << 24))
        return bad_field(error, layer_field(i, kUnitsField), l.units,
                         "must be an integer in [1, 16777216]");
      if (!(std::isfinite(l.init_std) && l.init_std > 0))
        return bad_field(error, layer_field(i, kInitStdField), l.init_std, kPositive);
      total += width * l.units;
      // Weights, gradients and two optimizer moments must fit in 32-bit wasm memory.
      if (total > (int64_t(1) << 28))
        return bad_field(error, layer_field(i, kUnitsField), l.units,
                         "gives the network " + std::to_string(total) +
                             " weights, more than the 2^28 limit (268435456)");
      width = l.units;
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
  if (s.loss == LossType::SoftmaxCrossEntropy && width < 2)
    return bad_field(error, kLossField, static_cast<double>(s.loss),
                     "needs at least 2 outputs, the last layer has " + std::to_string(width));
  return Status::Ok;
}

}  // namespace bnwasm
