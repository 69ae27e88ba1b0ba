// Layers that join the outputs of several earlier layers: add (their sum, a
// residual connection) and concat (side by side along the channels).
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

// Each example's output is its inputs' values one after another: for images
// their channels (all H x W), for flat inputs their features.
class ConcatOp : public LayerOp {
 public:
  ConcatOp(std::vector<size_t> widths, size_t width) : widths_(std::move(widths)), width_(width) {}
  void forward(const Pass& p) override {
    for (size_t b = 0; b < p.B; ++b) {
      float* o = p.out + b * width_;
      for (size_t k = 0; k < widths_.size(); ++k) {
        std::memcpy(o, p.in[k] + b * widths_[k], widths_[k] * sizeof(float));
        o += widths_[k];
      }
    }
  }
  void backward(const Pass& p) override {
    for (size_t b = 0; b < p.B; ++b) {
      const float* g = p.dout + b * width_;
      for (size_t k = 0; k < widths_.size(); ++k) {
        if (float* d = p.din[k]) {
          d += b * widths_[k];
          for (size_t i = 0; i < widths_[k]; ++i) d[i] += g[i];
        }
        g += widths_[k];
      }
    }
  }

 private:
  std::vector<size_t> widths_;
  size_t width_;
};

}  // namespace

const LayerDef& add_def();
const LayerDef& concat_def();

std::vector<const LayerDef*> merge_defs() { return {&add_def(), &concat_def()}; }

const LayerDef& add_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "add";
    d.doc = BNWASM_DOC("the sum of two or more inputs of the same shape: a residual connection");
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

const LayerDef& concat_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "concat";
    d.doc = BNWASM_DOC("two or more inputs side by side along the channels (images of one height and width) or features");
    d.min_inputs = 2;
    d.max_inputs = 64;
    d.shape = [](const LayerSpec& l, const Shape* in, size_t n, Shape* out, SpecError* why) {
      *out = in[0];
      for (size_t k = 1; k < n; ++k) {
        if (in[k].spatial != in[0].spatial || in[k].h != in[0].h || in[k].w != in[0].w) {
          *why = input_error(l, k, "has shape " + shape_text(in[k]) + ", inputs[0] has " +
                                       shape_text(in[0]) +
                                       "; concat needs images of one height and width, or flat features");
          return false;
        }
        out->c += in[k].c;
      }
      return true;
    };
    d.make = [](const LayerSpec&, const Shape* in, size_t n, const Shape& out) -> std::unique_ptr<LayerOp> {
      std::vector<size_t> widths;
      for (size_t k = 0; k < n; ++k) widths.push_back(static_cast<size_t>(in[k].size()));
      return std::make_unique<ConcatOp>(std::move(widths), static_cast<size_t>(out.size()));
    };
    return finish(d);
  }();
  return def;
}

}  // namespace ops
}  // namespace bnwasm
