// The list of layer types, and what their entries share.
#include <cmath>

#include "bnwasm/fdlibm.h"
#include "ops/ops.h"

namespace bnwasm {

uint64_t next_u64(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double next_uniform(uint64_t* state) { return (next_u64(state) >> 11) * 0x1.0p-53; }

// BNWASM_DENSE_ONLY is the dense build (bnwasm-dense.wasm): without the
// convolution and pooling families, the linker leaves their layers and kernels
// out of the download. The web facade asks that build which types it has.
const std::vector<const LayerDef*>& layer_defs() {
  // The order of the docs and of "type must be one of ..." messages.
  static const std::vector<const LayerDef*> defs = [] {
    std::vector<const LayerDef*> all;
    for (auto family : {ops::dense_defs, ops::batch_norm_defs, ops::elementwise_defs,
#ifndef BNWASM_DENSE_ONLY
                        ops::conv_defs, ops::pooling_defs,
#endif
                        ops::merge_defs})
      for (const LayerDef* d : family()) all.push_back(d);
    return all;
  }();
  return defs;
}

const std::vector<const char*>& left_out_layer_types() {
#ifdef BNWASM_DENSE_ONLY
  // The names of conv_defs() and pooling_defs() (tests/js/variants.test.js
  // checks them against the full build's registry).
  static const std::vector<const char*> names = {"conv2d", "maxPool2d", "avgPool2d",
                                                 "globalAvgPool", "globalMaxPool"};
#else
  static const std::vector<const char*> names;
#endif
  return names;
}

namespace ops {

LayerDef finish(LayerDef d) {
  d.offsets.clear();
  d.width = 0;
  for (const OptionDef& o : d.options) {
    d.offsets.push_back(d.width);
    d.width += option_width(o);
  }
  return d;
}

OptionDef trainable_option() {
  return bool_option("trainable", true,
                     BNWASM_DOC("false keeps its parameters as they are while training (gradients still flow through it)"));
}

std::vector<OptionDef> weight_options() {
  return {
      bool_option("useBias", true, BNWASM_DOC("adds a bias (leave it out before a batch norm: beta takes its role)")),
      enum_option("init", {"auto", "heUniform", "glorotUniform", "normal"}, 0,
                  BNWASM_DOC("the initial weights: 'auto' is He uniform before a ReLU, Glorot uniform otherwise")),
      number_option("initStd", 0.01, 0, kInf, true, false,
                    BNWASM_DOC("the standard deviation of init 'normal'")),
      trainable_option(),
  };
}

void init_weights(float* w, size_t n, size_t fan_in, size_t fan_out, const LayerSpec& l,
                  const InitInfo& info, uint64_t* rng) {
  Init init = static_cast<Init>(l.get_int("init"));
  if (init == Init::Auto) init = info.activation == &relu_def() ? Init::HeUniform : Init::GlorotUniform;
  if (init == Init::Normal) {
    const double sd = l.get("initStd");
    for (size_t k = 0; k < n; ++k) {
      // Box-Muller; 1 - u keeps the log's argument in (0, 1].
      const double u1 = 1.0 - next_uniform(rng), u2 = next_uniform(rng);
      w[k] = static_cast<float>(sd * std::sqrt(-2.0 * fdlibm_log(u1)) *
                                fdlibm_cos(6.283185307179586 * u2));
    }
    return;
  }
  const double fan = init == Init::HeUniform ? static_cast<double>(fan_in)
                                             : 0.5 * static_cast<double>(fan_in + fan_out);
  const double limit = std::sqrt(init == Init::HeUniform ? 6.0 / fan : 3.0 / fan);
  for (size_t k = 0; k < n; ++k)
    w[k] = static_cast<float>((2.0 * next_uniform(rng) - 1.0) * limit);
}

std::string dims(int64_t h, int64_t w) { return std::to_string(h) + "x" + std::to_string(w); }

bool needs_image(const LayerSpec& l, const Shape& in, SpecError* why) {
  if (in.spatial) return true;
  why->field = "type";
  why->message =
      "needs an image input [channels, height, width] (set inputShape, and put no dense, "
      "flatten or globalAvgPool layer before it), not " +
      std::to_string(in.c) + " flat features";
  why->value = Value::string(l.def->name);
  return false;
}

}  // namespace ops
}  // namespace bnwasm
