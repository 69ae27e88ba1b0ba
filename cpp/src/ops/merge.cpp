// Layers that join the outputs of several earlier layers: add (their sum, a
// residual connection).
#include <cstring>

#include "ops/ops.h"

namespace bnwasm {
namespace ops {
namespace {

std::string shape_text(const Shape& s) {
  return s.spatial ? "[" + std::to_string(s.c) + ", " + std::to_string(s.h) + ", " +
                         std::to_string(s.w) + "]"
                   : "[" + std::to_string(s.c) + "]";
}

SpecError input_error(const LayerSpec& l, size_t k, const std::string& message) {
  SpecError e;
  e.field = "inputs[" + std::to_string(k) + "]";
  e.message = message;
  e.value = Value::string(l.input_names.empty() ? "" : l.input_names[k]);
  return e;
}

class AddOp : public LayerOp {
 public:
  AddOp(size_t n, size_t width) : n_(n), width_(width) {}
  void forward(const Pass& p) override {
    // out = in[0] + in[1] + ..., summed in input order.
    const size_t count = p.B * width_;
    std::memcpy(p.out, p.in[0], count * sizeof(float));
    for (size_t k = 1; k < n_; ++k) {
      const float* x = p.in[k];
      for (size_t i = 0; i < count; ++i) p.out[i] += x[i];
    }
  }
  void backward(const Pass& p) override {
    const size_t count = p.B * width_;
    for (size_t k = 0; k < n_; ++k) {
      float* d = p.din[k];
      if (d != nullptr)
        for (size_t i = 0; i < count; ++i) d[i] += p.dout[i];
    }
  }

 private:
  size_t n_, width_;
};

}  // namespace

const LayerDef& add_def();

std::vector<const LayerDef*> merge_defs() { return {&add_def()}; }

const LayerDef& add_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "add";
    d.doc = "the sum of two or more inputs of the same shape: a residual connection";
    d.min_inputs = 2;
    d.max_inputs = 64;
    d.shape = [](const LayerSpec& l, const Shape* in, size_t n, Shape* out, SpecError* why) {
      for (size_t k = 1; k < n; ++k)
        if (in[k].c != in[0].c || in[k].h != in[0].h || in[k].w != in[0].w ||
            in[k].spatial != in[0].spatial) {
          *why = input_error(l, k, "has shape " + shape_text(in[k]) + ", inputs[0] has " +
                                       shape_text(in[0]) + "; add needs inputs of one shape");
          return false;
        }
      *out = in[0];
      return true;
    };
    d.make = [](const LayerSpec&, const Shape* in, size_t n, const Shape&) -> std::unique_ptr<LayerOp> {
      return std::make_unique<AddOp>(n, static_cast<size_t>(in[0].size()));
    };
    return finish(d);
  }();
  return def;
}

}  // namespace ops
}  // namespace bnwasm
