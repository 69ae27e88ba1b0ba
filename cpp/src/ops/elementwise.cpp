// Layers that keep their input's shape and map each value on its own (the
// activations), and flatten, which only reads an image as flat features.
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

// Flatten's buffers are its input's (LayerDef::view): the network never runs it.
class ViewOp : public LayerOp {
 public:
  void forward(const Pass&) override {}
};

}  // namespace

const LayerDef& sigmoid_def();
const LayerDef& tanh_def();
const LayerDef& flatten_def();

std::vector<const LayerDef*> elementwise_defs() {
  return {&relu_def(), &sigmoid_def(), &tanh_def(), &flatten_def()};
}

bool is_relu(const LayerOp* op) { return op->def == &relu_def(); }

const LayerDef& relu_def() {
  static const LayerDef def =
      activation_def<relu_forward, relu_backward>("relu", "the rectifier max(0, x), PyTorch's nn.ReLU");
  return def;
}

const LayerDef& sigmoid_def() {
  static const LayerDef def = activation_def<sigmoid_forward, sigmoid_backward>(
      "sigmoid", "the logistic function 1 / (1 + exp(-x)), PyTorch's nn.Sigmoid");
  return def;
}

const LayerDef& tanh_def() {
  static const LayerDef def =
      activation_def<tanh_forward, tanh_backward>("tanh", "the hyperbolic tangent, PyTorch's nn.Tanh");
  return def;
}

const LayerDef& flatten_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "flatten";
    d.doc = "an image read as its C * H * W flat features, PyTorch's nn.Flatten";
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
