// Layers that keep their input's shape and map each value on its own (the
// activations), and flatten, which only reads an image as flat features.
#include <algorithm>

#include "ops/ops.h"

namespace bnwasm {
namespace ops {
namespace {

using Kernel = void (*)(float* out, const float* in, size_t n);
using Backward = void (*)(float* din, const float* dout, const float* out, size_t n);

// An activation whose backward needs only its own output (ReLU, sigmoid, tanh).
class ActivationOp : public LayerOp {
 public:
  ActivationOp(size_t width, Kernel forward, Backward backward)
      : width_(width), forward_(forward), backward_(backward) {}
  void forward(const Pass& p) override { forward_(p.out, p.in[0], p.B * width_); }
  void backward(const Pass& p) override {
    if (p.din[0] != nullptr) backward_(p.din[0], p.dout, p.out, p.B * width_);
  }

 private:
  size_t width_;
  Kernel forward_;
  Backward backward_;
};

bool same_shape(const LayerSpec&, const Shape* in, size_t, Shape* out, SpecError*) {
  *out = in[0];
  return true;
}

template <Kernel F, Backward B>
std::unique_ptr<LayerOp> make_activation(const LayerSpec&, const Shape* in, size_t, const Shape&) {
  return std::make_unique<ActivationOp>(static_cast<size_t>(in[0].size()), F, B);
}

template <Kernel F, Backward B>
LayerDef activation_def(const char* name, const char* doc) {
  LayerDef d;
  d.name = name;
  d.doc = doc;
  d.shape = same_shape;
  d.make = make_activation<F, B>;
  return finish(d);
}

// clip: min(max(x, lo), hi); relu6 is clip to [0, 6]. Backward passes the
// gradient where the output lies strictly inside (lo, hi), where the output is
// the input (PyTorch's hardtanh).
class ClipOp : public LayerOp {
 public:
  ClipOp(size_t width, float lo, float hi) : width_(width), lo_(lo), hi_(hi) {}
  float lo() const { return lo_; }
  float hi() const { return hi_; }
  void forward(const Pass& p) override {
    const size_t n = p.B * width_;
    for (size_t i = 0; i < n; ++i) p.out[i] = std::min(std::max(p.in[0][i], lo_), hi_);
  }
  void backward(const Pass& p) override {
    float* din = p.din[0];
    if (din == nullptr) return;
    const size_t n = p.B * width_;
    for (size_t i = 0; i < n; ++i)
      if (p.out[i] > lo_ && p.out[i] < hi_) din[i] += p.dout[i];
  }

 private:
  size_t width_;
  float lo_, hi_;
};

// dropout: in training each value is kept with probability 1 - rate and scaled
// by 1 / (1 - rate) (PyTorch's inverted dropout); at inference it is the
// identity. Whether a value is kept is a hash of the network's seed, the step,
// the layer and the value's place in the batch: the same draw in forward and
// backward, the same for any thread count, nothing to save with the model.
class DropoutOp : public LayerOp {
 public:
  DropoutOp(size_t width, double rate) : width_(width), rate_(rate), scale_(static_cast<float>(1.0 / (1.0 - rate))) {}
  void forward(const Pass& p) override {
    const size_t n = p.B * width_;
    if (!p.train) {
      std::copy_n(p.in[0], n, p.out);
      return;
    }
    for (size_t i = 0; i < n; ++i) p.out[i] = keep(p, i) ? p.in[0][i] * scale_ : 0.0f;
  }
  void backward(const Pass& p) override {
    float* din = p.din[0];
    if (din == nullptr) return;
    const size_t n = p.B * width_;
    for (size_t i = 0; i < n; ++i)
      if (keep(p, i)) din[i] += p.dout[i] * scale_;
  }

 private:
  bool keep(const Pass& p, size_t i) const {
    uint64_t key = (static_cast<uint64_t>(p.seed) * 0x9E3779B97F4A7C15ull) ^
                   ((p.step + 1) * 0xBF58476D1CE4E5B9ull) ^ ((index + 1) * 0x94D049BB133111EBull) ^ i;
    return next_uniform(&key) >= rate_;
  }
  size_t width_;
  double rate_;
  float scale_;
};

// Flatten's buffers are its input's (LayerDef::view): the network never runs it.
class ViewOp : public LayerOp {
 public:
  void forward(const Pass&) override {}
};

}  // namespace

const LayerDef& sigmoid_def();
const LayerDef& tanh_def();
const LayerDef& flatten_def();
const LayerDef& relu6_def();
const LayerDef& clip_def();
const LayerDef& dropout_def();

std::vector<const LayerDef*> elementwise_defs() {
  return {&relu_def(), &sigmoid_def(), &tanh_def(), &flatten_def(), &relu6_def(), &clip_def(), &dropout_def()};
}

bool is_relu(const LayerOp* op) { return op->def == &relu_def(); }
bool is_clip(const LayerOp* op, float* lo, float* hi) {
  if (op->def != &relu6_def() && op->def != &clip_def()) return false;
  const auto* clip = static_cast<const ClipOp*>(op);
  if (lo != nullptr) *lo = clip->lo();
  if (hi != nullptr) *hi = clip->hi();
  return true;
}

const LayerDef& relu_def() {
  static const LayerDef def =
      activation_def<relu_forward, relu_backward>("relu", BNWASM_DOC("the rectifier max(0, x), PyTorch's nn.ReLU"));
  return def;
}

const LayerDef& sigmoid_def() {
  static const LayerDef def = activation_def<sigmoid_forward, sigmoid_backward>(
      "sigmoid", BNWASM_DOC("the logistic function 1 / (1 + exp(-x)), PyTorch's nn.Sigmoid"));
  return def;
}

const LayerDef& tanh_def() {
  static const LayerDef def =
      activation_def<tanh_forward, tanh_backward>("tanh", BNWASM_DOC("the hyperbolic tangent, PyTorch's nn.Tanh"));
  return def;
}

const LayerDef& relu6_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "relu6";
    d.doc = BNWASM_DOC("min(max(0, x), 6), PyTorch's nn.ReLU6 (MobileNet's activation)");
    d.shape = same_shape;
    d.make = [](const LayerSpec&, const Shape* in, size_t, const Shape&) -> std::unique_ptr<LayerOp> {
      return std::make_unique<ClipOp>(static_cast<size_t>(in[0].size()), 0.0f, 6.0f);
    };
    return finish(d);
  }();
  return def;
}

const LayerDef& clip_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "clip";
    d.doc = BNWASM_DOC("min(max(x, min), max), PyTorch's nn.Hardtanh and ONNX's Clip");
    d.options = {number_option("min", kRequired, -kInf, kInf, false, false, BNWASM_DOC("the lower bound")),
                 number_option("max", kRequired, -kInf, kInf, false, false, BNWASM_DOC("the upper bound, above min"))};
    d.check = [](const LayerSpec& l, SpecError* why) {
      if (l.get("max") > l.get("min")) return true;
      why->field = "max";
      why->message = "must be above min";
      why->value = Value::number(l.get("max"));
      return false;
    };
    d.shape = same_shape;
    d.make = [](const LayerSpec& l, const Shape* in, size_t, const Shape&) -> std::unique_ptr<LayerOp> {
      return std::make_unique<ClipOp>(static_cast<size_t>(in[0].size()), static_cast<float>(l.get("min")),
                                      static_cast<float>(l.get("max")));
    };
    return finish(d);
  }();
  return def;
}

const LayerDef& dropout_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "dropout";
    d.doc = BNWASM_DOC("in training, each value dropped with probability rate and the rest scaled by 1 / (1 - rate); the identity at inference");
    d.options = {number_option("rate", 0.5, 0, 1, false, true, BNWASM_DOC("the probability of dropping a value"))};
    d.shape = same_shape;
    d.make = [](const LayerSpec& l, const Shape* in, size_t, const Shape&) -> std::unique_ptr<LayerOp> {
      return std::make_unique<DropoutOp>(static_cast<size_t>(in[0].size()), l.get("rate"));
    };
    return finish(d);
  }();
  return def;
}

const LayerDef& flatten_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "flatten";
    d.doc = BNWASM_DOC("an image read as its C * H * W flat features, PyTorch's nn.Flatten");
    d.view = true;
    d.shape = [](const LayerSpec&, const Shape* in, size_t, Shape* out, SpecError*) {
      *out = Shape{in[0].size(), 1, 1, false};
      return true;
    };
    d.make = [](const LayerSpec&, const Shape*, size_t, const Shape&) -> std::unique_ptr<LayerOp> {
      return std::make_unique<ViewOp>();
    };
    return finish(d);
  }();
  return def;
}

}  // namespace ops
}  // namespace bnwasm
