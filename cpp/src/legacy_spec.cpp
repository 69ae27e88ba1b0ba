// The spec of model files of formats 1 and 2 (bnwasm 0.1): a flat vector of
// doubles, a header then one fixed record of fields per layer whatever its
// type. It is read here into the config it stood for, which parse_network
// then checks like any other.
//
// Format 2 header: [0] input_size [1] loss [2] seed [3] optimizer type
//   [4] learning_rate [5] momentum [6] nesterov [7] beta1 [8] beta2 [9] epsilon
//   [10] weight_decay [11] layer count [12] input channels [13] height [14] width.
// Format 2 layer record (19 values): type, units, use_bias, init, init_std,
//   momentum, epsilon, unbiased_variance, cumulative, bias_correction,
//   renorm_rmax, renorm_dmax, kernel_h, kernel_w, stride_h, stride_w, pad_h,
//   pad_w, same_padding. Layer types: dense, batchNorm, relu, sigmoid, tanh,
//   conv2d, maxPool2d, avgPool2d, globalAvgPool, flatten (0 to 9).
// Format 1: the first 12 header values and the first 12 layer fields (no
// images).
#include <algorithm>
#include <string>

#include "bnwasm/spec.h"

namespace bnwasm {
namespace {

const char* const kTypes[] = {"dense",     "batchNorm", "relu",          "sigmoid", "tanh",
                              "conv2d",    "maxPool2d", "avgPool2d", "globalAvgPool", "flatten"};
const char* const kLosses[] = {"softmaxCrossEntropy", "meanSquaredError"};
const char* const kInits[] = {"auto", "heUniform", "glorotUniform", "normal"};

// An enum's name, or the stored number itself when it names none (parse_network refuses it).
Value name_of(const char* const* names, size_t n, double v) {
  if (v >= 0 && v < static_cast<double>(n) && v == static_cast<double>(static_cast<size_t>(v)))
    return Value::string(names[static_cast<size_t>(v)]);
  return Value::number(v);
}

// A stored flag as a boolean, or the number when it is neither 0 nor 1.
Value flag(double v) { return v == 0 || v == 1 ? Value::boolean(v == 1) : Value::number(v); }

Value pair(double a, double b) {
  Value p = Value::array();
  p.push(Value::number(a));
  p.push(Value::number(b));
  return p;
}

Value layer_value(const double* f, bool images) {
  Value l = Value::object();
  const Value type = name_of(kTypes, 10, f[0]);
  l.set("type", type);
  if (!type.is_string()) return l;
  const std::string t = type.as_string();
  if (t == "dense" || t == "conv2d") {
    l.set(t == "dense" ? "units" : "filters", Value::number(f[1]));
    if (t == "conv2d") {
      l.set("kernelSize", pair(f[12], f[13]));
      l.set("stride", pair(f[14], f[15]));
      l.set("padding", f[18] == 1 ? Value::string("same") : pair(f[16], f[17]));
    }
    l.set("useBias", flag(f[2]));
    l.set("init", name_of(kInits, 4, f[3]));
    l.set("initStd", Value::number(f[4]));
  } else if (t == "batchNorm") {
    const char* const variance[] = {"biased", "unbiased"};
    const char* const statistics[] = {"ema", "cumulative"};
    l.set("momentum", Value::number(f[5]));
    l.set("epsilon", Value::number(f[6]));
    l.set("runningVariance", name_of(variance, 2, f[7]));
    l.set("statistics", name_of(statistics, 2, f[8]));
    l.set("biasCorrection", flag(f[9]));
    if (f[10] > 0) {
      Value renorm = Value::object();
      renorm.set("rMax", Value::number(f[10]));
      renorm.set("dMax", Value::number(f[11]));
      l.set("renorm", renorm);
    } else {
      l.set("renorm", Value::null());
    }
  } else if (images && (t == "maxPool2d" || t == "avgPool2d")) {
    l.set("poolSize", pair(f[12], f[13]));
    l.set("stride", pair(f[14], f[15]));
  }
  return l;
}

}  // namespace

bool decode_legacy_spec(const double* v, size_t n, uint32_t format, NetworkSpec* out,
                        SpecFailure* why) {
  const size_t header = format == 1 ? 12 : 15, fields = format == 1 ? 12 : 19;
  const double count = n >= header ? v[11] : -1;
  if (n < header || !(count >= 1 && count <= 10000) ||
      n != header + fields * static_cast<size_t>(count)) {
    why->where = "config";
    why->error.field = "layers";
    why->error.message = "the stored spec's length does not match its layer count";
    why->error.has_value = false;
    return false;
  }
  Value c = Value::object();
  const bool images = format >= 2 && (v[12] != 0 || v[13] != 0 || v[14] != 0);
  if (images) {
    Value shape = Value::array();
    for (size_t k = 12; k < 15; ++k) shape.push(Value::number(v[k]));
    c.set("inputShape", shape);
  }
  c.set("inputSize", Value::number(v[0]));
  Value layers = Value::array();
  std::vector<double> record(19, 0.0);
  for (size_t i = 0; i < static_cast<size_t>(count); ++i) {
    const double* f = v + header + i * fields;
    // Format 1's records lack the image fields: their defaults.
    std::copy(f, f + fields, record.begin());
    if (format == 1) std::copy_n(std::vector<double>{0, 0, 1, 1, 0, 0, 0}.begin(), 7, record.begin() + 12);
    layers.push(layer_value(record.data(), images));
  }
  c.set("layers", layers);
  c.set("loss", name_of(kLosses, 2, v[1]));
  c.set("seed", Value::number(v[2]));
  Value optimizer = Value::object();
  const char* const optimizers[] = {"sgd", "adam"};
  const Value type = name_of(optimizers, 2, v[3]);
  optimizer.set("type", type);
  optimizer.set("learningRate", Value::number(v[4]));
  if (type.is_string() && type.as_string() == "sgd") {
    optimizer.set("momentum", Value::number(v[5]));
    optimizer.set("nesterov", flag(v[6]));
  } else {
    optimizer.set("beta1", Value::number(v[7]));
    optimizer.set("beta2", Value::number(v[8]));
    optimizer.set("epsilon", Value::number(v[9]));
  }
  optimizer.set("weightDecay", Value::number(v[10]));
  c.set("optimizer", optimizer);
  return parse_network(c, out, why);
}

}  // namespace bnwasm
