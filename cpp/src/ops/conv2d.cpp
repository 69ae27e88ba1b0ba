// conv2d: PyTorch's nn.Conv2d on NCHW images. Inference runs a batch norm,
// ReLU and 2x2 max pool that follow it in the same pass (fusion).
#include <algorithm>

#include "bnwasm/kernels.h"
#include "ops/ops.h"

namespace bnwasm {
namespace ops {
namespace {

// The zeros around the input: PyTorch's 'same' (stride 1) pads kernel - 1 in
// all, the odd one below and right.
struct Pads {
  int64_t top, left, bottom, right;
};
Pads pads_of(const LayerSpec& l) {
  if (static_cast<PadMode>(l.get_int("padding")) == PadMode::Same) {
    const int64_t th = l.get_int("kernelSize", 0) - 1, tw = l.get_int("kernelSize", 1) - 1;
    return {th / 2, tw / 2, th - th / 2, tw - tw / 2};
  }
  return {l.get_int("padding", 1), l.get_int("padding", 2), l.get_int("padding", 3),
          l.get_int("padding", 4)};
}

Conv2dGeometry geometry(const LayerSpec& l, const Shape& in, const Shape& out) {
  const Pads p = pads_of(l);
  return Conv2dGeometry{size_t(in.c),
                        size_t(in.h),
                        size_t(in.w),
                        size_t(l.get_int("filters")),
                        size_t(l.get_int("kernelSize", 0)),
                        size_t(l.get_int("kernelSize", 1)),
                        size_t(l.get_int("stride", 0)),
                        size_t(l.get_int("stride", 1)),
                        size_t(p.top),
                        size_t(p.left),
                        size_t(out.h),
                        size_t(out.w)};
}

class Conv2dOp : public LayerOp {
 public:
  Conv2dOp(const LayerSpec& l, const Shape& in, const Shape& out)
      : spec_(l), g_(geometry(l, in, out)), scale_(g_.F), shift_(g_.F) {}

  void init(const InitInfo& info, uint64_t* rng) override {
    // A filter sees K = C * KH * KW inputs and each input feeds F * KH * KW
    // outputs: the fans PyTorch and Keras use.
    init_weights(t[0], g_.F * g_.K(), g_.K(), g_.F * g_.KH * g_.KW, spec_, info, rng);
  }
  size_t scratch_size(size_t) const override { return conv2d_scratch_size(g_); }
  void forward(const Pass& p) override {
    if (p.train)
      conv2d_forward(p.out, p.scratch, p.in[0], t[0], bias(), p.B, g_);
    else
      forward_fused(p, nullptr, 0);
  }
  void backward(const Pass& p) override {
    conv2d_backward(p.din[0], dt[0], t.size() > 1 ? dt[1] : nullptr, p.scratch, p.dout, p.in[0],
                    t[0], p.B, g_);
  }

  // A batch norm, then a ReLU after it; then, when the conv goes through
  // Winograd, a 2x2 max pool at stride 2 (a tile's 2x2 outputs are one window).
  size_t fusion(const LayerOp* const* next, size_t n) const override {
    size_t span = 0;
    if (n > 0 && next[0]->statistics() != nullptr) {
      span = 1;
      if (n > 1 && is_relu(next[1])) span = 2;
    }
    if (conv2d_winograd_applies(g_) && n > span && is_max_pool_2x2_stride_2(next[span])) ++span;
    return span;
  }
  void forward_fused(const Pass& p, const LayerOp* const* next, size_t count) override {
    const Statistics* bn = count > 0 ? next[0]->statistics() : nullptr;
    const bool relu = bn != nullptr && count > 1 && is_relu(next[1]);
    const bool pool = count > 0 && is_max_pool_2x2_stride_2(next[count - 1]);
    // The batch norm's scale and shift are F values, computed here with the
    // expressions batchnorm_forward_infer uses: cheaper than tracking changes.
    if (bn != nullptr) bn->infer_scale_shift(scale_.data(), shift_.data());
    const float* scale = bn != nullptr ? scale_.data() : nullptr;
    const float* shift = bn != nullptr ? shift_.data() : nullptr;
    if (conv2d_winograd_applies(g_)) {
      // The transformed weight is kept until a parameter changes.
      if (wino_version_ != p.version) {
        wino_.resize(f32_winograd23_weight_size(g_.F, g_.C));
        f32_winograd23_weights(wino_.data(), t[0], g_.F, g_.C);
        wino_version_ = p.version;
      }
      conv2d_winograd_forward_infer(p.out, p.scratch, p.in[0], wino_.data(), bias(), scale, shift,
                                    relu, pool, p.B, g_);
    } else if (bn == nullptr) {
      conv2d_forward(p.out, p.scratch, p.in[0], t[0], bias(), p.B, g_);
    } else {
      conv2d_batchnorm_relu_forward_infer(p.out, p.scratch, p.in[0], t[0], bias(), scale, shift,
                                          relu, p.B, g_);
    }
  }

 private:
  const float* bias() const { return t.size() > 1 ? t[1] : nullptr; }
  LayerSpec spec_;
  Conv2dGeometry g_;
  std::vector<float> scale_, shift_;  // a following batch norm folded for inference
  std::vector<float> wino_;           // the Winograd weight (f32_winograd23_weights)
  uint64_t wino_version_ = ~uint64_t(0);
};

SpecError at_most(const char* field, int64_t limit, const std::string& what, int64_t value) {
  SpecError e;
  e.field = field;
  e.message = "must be at most " + std::to_string(limit) + ", " + what;
  e.value = Value::number(static_cast<double>(value));
  return e;
}

}  // namespace

const LayerDef& conv2d_def();

std::vector<const LayerDef*> conv_defs() { return {&conv2d_def()}; }

const LayerDef& conv2d_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "conv2d";
    d.doc = "a 2-D convolution over an image, PyTorch's nn.Conv2d";
    d.options = {
        int_option("filters", kRequired, 1, kMaxUnits, "output channels"),
        size_option("kernelSize", kRequired, 1, "[height, width], or one number for both"),
        size_option("stride", 1, 1, "[height, width], or one number for both"),
        padding_option("padding",
                       "zeros around the input: a number or [height, width] for both sides, "
                       "[top, left, bottom, right], or 'same' (stride 1: the output as large as the input)"),
    };
    for (const OptionDef& o : weight_options()) d.options.push_back(o);
    d.foldable = true;
    d.tensors = {{"weight", false, "weight", "kernel"},
                 {"bias", false, "bias", "bias", "useBias"}};
    d.check = [](const LayerSpec& l, SpecError* why) {
      if (static_cast<PadMode>(l.get_int("padding")) != PadMode::Same) return true;
      for (size_t k = 0; k < 2; ++k)
        if (l.get_int("stride", k) != 1) {
          why->field = "stride[" + std::to_string(k) + "]";
          why->message = "must be 1 with padding 'same' (as in PyTorch)";
          why->value = Value::number(l.get("stride", k));
          return false;
        }
      return true;
    };
    d.shape = [](const LayerSpec& l, const Shape* in, size_t, Shape* out, SpecError* why) {
      if (!needs_image(l, in[0], why)) return false;
      const Pads p = pads_of(l);
      const int64_t h = in[0].h + p.top + p.bottom, w = in[0].w + p.left + p.right;
      const int64_t kh = l.get_int("kernelSize", 0), kw = l.get_int("kernelSize", 1);
      const std::string input =
          dims(in[0].h, in[0].w) + " input" +
          (h != in[0].h || w != in[0].w ? " with padding (" + dims(h, w) + ")" : "");
      if (kh > h) return *why = at_most("kernelSize[0]", h, "the height of its " + input, kh), false;
      if (kw > w) return *why = at_most("kernelSize[1]", w, "the width of its " + input, kw), false;
      *out = Shape{l.get_int("filters"), (h - kh) / l.get_int("stride", 0) + 1,
                   (w - kw) / l.get_int("stride", 1) + 1, true};
      // Its im2col matrix (C * KH * KW, OH * OW) is scratch memory, one image at a time.
      const int64_t im2col = in[0].c * kh * kw * out->h * out->w;
      if (im2col > (int64_t(1) << 26)) {
        why->field = "kernelSize[0]";
        why->message = "gives an im2col matrix of " + std::to_string(im2col) +
                       " values per image, more than the 2^26 limit";
        why->value = Value::number(static_cast<double>(kh));
        return false;
      }
      return true;
    };
    d.tensor_shape = [](size_t k, const LayerSpec& l, const Shape* in, const Shape&) {
      const int64_t f = l.get_int("filters");
      return k == 0 ? std::vector<int64_t>{f, in[0].c, l.get_int("kernelSize", 0), l.get_int("kernelSize", 1)}
                    : std::vector<int64_t>{f};
    };
    d.macs = [](const LayerSpec& l, const Shape* in, const Shape& out) {
      return out.size() * in[0].c * l.get_int("kernelSize", 0) * l.get_int("kernelSize", 1);
    };
    d.facts = [](const LayerSpec& l, const Shape*, const Shape&, Value* info) {
      const Pads p = pads_of(l);
      Value pads = Value::array();  // ONNX's order: [top, left, bottom, right]
      for (int64_t v : {p.top, p.left, p.bottom, p.right}) pads.push(Value::number(static_cast<double>(v)));
      info->set("pads", pads);
    };
    d.make = [](const LayerSpec& l, const Shape* in, size_t, const Shape& out) -> std::unique_ptr<LayerOp> {
      return std::make_unique<Conv2dOp>(l, in[0], out);
    };
    return finish(d);
  }();
  return def;
}

}  // namespace ops
}  // namespace bnwasm
