// Pooling over windows of an image (maxPool2d, avgPool2d: PyTorch's
// nn.MaxPool2d and nn.AvgPool2d without padding) and over whole channels
// (globalAvgPool: nn.AdaptiveAvgPool2d(1) then a flatten).
#include "ops/ops.h"

namespace bnwasm {
namespace ops {
namespace {

Pool2dGeometry geometry(const LayerSpec& l, const Shape& in, const Shape& out) {
  return Pool2dGeometry{size_t(in.c),
                        size_t(in.h),
                        size_t(in.w),
                        size_t(l.get_int("poolSize", 0)),
                        size_t(l.get_int("poolSize", 1)),
                        size_t(l.get_int("stride", 0)),
                        size_t(l.get_int("stride", 1)),
                        size_t(out.h),
                        size_t(out.w)};
}

class MaxPool2dOp : public LayerOp {
 public:
  explicit MaxPool2dOp(const Pool2dGeometry& g) : g_(g) {}
  void reserve(size_t rows) override { argmax_.resize(rows * g_.C * g_.OH * g_.OW); }
  void forward(const Pass& p) override {
    // Training keeps each window's winner for backward; inference needs none.
    maxpool2d_forward(p.out, p.train ? argmax_.data() : nullptr, p.in[0], p.B, g_);
  }
  void backward(const Pass& p) override {
    if (p.din[0] != nullptr) maxpool2d_backward(p.din[0], p.dout, argmax_.data(), p.B, g_);
  }
  const Pool2dGeometry& geometry() const { return g_; }

 private:
  Pool2dGeometry g_;
  std::vector<int32_t> argmax_;  // (rows, C, OH, OW)
};

class AvgPool2dOp : public LayerOp {
 public:
  explicit AvgPool2dOp(const Pool2dGeometry& g) : g_(g) {}
  void forward(const Pass& p) override { avgpool2d_forward(p.out, p.in[0], p.B, g_); }
  void backward(const Pass& p) override {
    if (p.din[0] != nullptr) avgpool2d_backward(p.din[0], p.dout, p.B, g_);
  }

 private:
  Pool2dGeometry g_;
};

class GlobalAvgPoolOp : public LayerOp {
 public:
  GlobalAvgPoolOp(size_t C, size_t S) : C_(C), S_(S) {}
  void forward(const Pass& p) override { global_avgpool_forward(p.out, p.in[0], p.B, C_, S_); }
  void backward(const Pass& p) override {
    if (p.din[0] != nullptr) global_avgpool_backward(p.din[0], p.dout, p.B, C_, S_);
  }

 private:
  size_t C_, S_;
};

// The maximum of each channel; training keeps where it was for backward.
class GlobalMaxPoolOp : public LayerOp {
 public:
  GlobalMaxPoolOp(size_t C, size_t S) : C_(C), S_(S) {}
  void reserve(size_t rows) override { argmax_.resize(rows * C_); }
  void forward(const Pass& p) override {
    for (size_t plane = 0; plane < p.B * C_; ++plane) {
      const float* x = p.in[0] + plane * S_;
      size_t best = 0;  // the first maximum wins, as in max pooling
      for (size_t i = 1; i < S_; ++i)
        if (x[i] > x[best]) best = i;
      p.out[plane] = x[best];
      if (p.train) argmax_[plane] = static_cast<int32_t>(best);
    }
  }
  void backward(const Pass& p) override {
    if (p.din[0] == nullptr) return;
    for (size_t plane = 0; plane < p.B * C_; ++plane) p.din[0][plane * S_ + argmax_[plane]] += p.dout[plane];
  }

 private:
  size_t C_, S_;
  std::vector<int32_t> argmax_;  // (rows, C)
};

SpecError window_error(size_t k, int64_t limit, const Shape& in, int64_t value) {
  SpecError e;
  e.field = "poolSize[" + std::to_string(k) + "]";
  e.message = "must be at most " + std::to_string(limit) + ", the " + (k == 0 ? "height" : "width") +
              " of its " + dims(in.h, in.w) + " input (else it leaves nothing)";
  e.value = Value::number(static_cast<double>(value));
  return e;
}

LayerDef pool_def(const char* name, const char* doc,
                  std::unique_ptr<LayerOp> (*make)(const LayerSpec&, const Shape*, size_t, const Shape&)) {
  LayerDef d;
  d.name = name;
  d.doc = doc;
  d.options = {
      size_option("poolSize", kRequired, 1, "the window, [height, width] or one number for both"),
      size_option("stride", kRequired, 1, "[height, width], or one number for both", "poolSize"),
  };
  d.shape = [](const LayerSpec& l, const Shape* in, size_t, Shape* out, SpecError* why) {
    if (!needs_image(l, in[0], why)) return false;
    const int64_t kh = l.get_int("poolSize", 0), kw = l.get_int("poolSize", 1);
    if (kh > in[0].h) return *why = window_error(0, in[0].h, in[0], kh), false;
    if (kw > in[0].w) return *why = window_error(1, in[0].w, in[0], kw), false;
    *out = Shape{in[0].c, (in[0].h - kh) / l.get_int("stride", 0) + 1,
                 (in[0].w - kw) / l.get_int("stride", 1) + 1, true};
    return true;
  };
  d.make = make;
  return finish(d);
}

}  // namespace

const LayerDef& avg_pool2d_def();
const LayerDef& global_avg_pool_def();
const LayerDef& global_max_pool_def();

std::vector<const LayerDef*> pooling_defs() {
  return {&max_pool2d_def(), &avg_pool2d_def(), &global_avg_pool_def(), &global_max_pool_def()};
}

bool is_max_pool_2x2_stride_2(const LayerOp* op) {
  return op->def == &max_pool2d_def() &&
         static_cast<const MaxPool2dOp*>(op)->geometry().two_by_two_stride_two();
}

const LayerDef& max_pool2d_def() {
  static const LayerDef def = pool_def(
      "maxPool2d", "the maximum of each window, PyTorch's nn.MaxPool2d",
      [](const LayerSpec& l, const Shape* in, size_t, const Shape& out) -> std::unique_ptr<LayerOp> {
        return std::make_unique<MaxPool2dOp>(geometry(l, in[0], out));
      });
  return def;
}

const LayerDef& avg_pool2d_def() {
  static const LayerDef def = pool_def(
      "avgPool2d", "the mean of each window, PyTorch's nn.AvgPool2d",
      [](const LayerSpec& l, const Shape* in, size_t, const Shape& out) -> std::unique_ptr<LayerOp> {
        return std::make_unique<AvgPool2dOp>(geometry(l, in[0], out));
      });
  return def;
}

const LayerDef& global_avg_pool_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "globalAvgPool";
    d.doc = "the mean of each channel: [C, H, W] to C features (nn.AdaptiveAvgPool2d(1) and a flatten)";
    d.shape = [](const LayerSpec& l, const Shape* in, size_t, Shape* out, SpecError* why) {
      if (!needs_image(l, in[0], why)) return false;
      *out = Shape{in[0].c, 1, 1, false};
      return true;
    };
    d.make = [](const LayerSpec&, const Shape* in, size_t, const Shape&) -> std::unique_ptr<LayerOp> {
      return std::make_unique<GlobalAvgPoolOp>(size_t(in[0].c), size_t(in[0].h * in[0].w));
    };
    return finish(d);
  }();
  return def;
}

const LayerDef& global_max_pool_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "globalMaxPool";
    d.doc = "the maximum of each channel: [C, H, W] to C features (nn.AdaptiveMaxPool2d(1) and a flatten)";
    d.shape = [](const LayerSpec& l, const Shape* in, size_t, Shape* out, SpecError* why) {
      if (!needs_image(l, in[0], why)) return false;
      *out = Shape{in[0].c, 1, 1, false};
      return true;
    };
    d.make = [](const LayerSpec&, const Shape* in, size_t, const Shape&) -> std::unique_ptr<LayerOp> {
      return std::make_unique<GlobalMaxPoolOp>(size_t(in[0].c), size_t(in[0].h * in[0].w));
    };
    return finish(d);
  }();
  return def;
}

}  // namespace ops
}  // namespace bnwasm
