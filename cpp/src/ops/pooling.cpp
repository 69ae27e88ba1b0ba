// Pooling over windows of an image (maxPool2d, avgPool2d: PyTorch's
// nn.MaxPool2d and nn.AvgPool2d, with padding and ceil_mode) and over whole
// channels (globalAvgPool, globalMaxPool: nn.AdaptiveAvg/MaxPool2d(1) then a
// flatten). Windows inside the image go through the kernels of layers.cpp
// (SIMD for the 2x2 max); windows that reach into padding or past the image
// (ceilMode) through the loops here.
#include <algorithm>
#include <limits>

#include "ops/ops.h"

namespace bnwasm {
namespace ops {
namespace {

// The zeros (or, for max, the nothing) around the input: explicit, or 'same' /
// 'sameLower' as a conv's (ONNX's SAME_UPPER / SAME_LOWER).
struct Pads {
  int64_t top, left, bottom, right;
};
Pads pads_of(const LayerSpec& l, const Shape& in) {
  const PadMode mode = static_cast<PadMode>(l.get_int("padding"));
  if (mode == PadMode::Explicit)
    return {l.get_int("padding", 1), l.get_int("padding", 2), l.get_int("padding", 3), l.get_int("padding", 4)};
  int64_t total[2];
  const int64_t size[2] = {in.h, in.w};
  for (size_t k = 0; k < 2; ++k) {
    const int64_t s = l.get_int("stride", k), out = (size[k] + s - 1) / s;
    total[k] = std::max<int64_t>((out - 1) * s + l.get_int("poolSize", k) - size[k], 0);
  }
  const bool lower = mode == PadMode::SameLower;
  const int64_t th = lower ? total[0] - total[0] / 2 : total[0] / 2;
  const int64_t tw = lower ? total[1] - total[1] / 2 : total[1] / 2;
  return {th, tw, total[0] - th, total[1] - tw};
}

// Windows along one axis: floor((n + pads - k) / s) + 1, or with ceilMode the
// ceiling, less a last window that would start in the padding past the input
// (PyTorch's rule).
int64_t windows(int64_t n, int64_t before, int64_t after, int64_t k, int64_t s, bool ceil) {
  const int64_t span = n + before + after - k;
  int64_t out = (ceil ? (span + s - 1) / s : span / s) + 1;
  if (ceil && (out - 1) * s >= n + before) --out;
  return out;
}

// A window at (oy, ox): rows [y0, y1) and columns [x0, x1) of the input (clipped
// to it), and the size PyTorch's count_include_pad divides by (the window
// clipped to the padded input, not to the input).
struct Window {
  int64_t y0, y1, x0, x1, padded;
};
struct PaddedPool {
  size_t C, H, W, KH, KW, SH, SW, OH, OW;
  int64_t top, left, bottom, right;
  Window at(size_t oy, size_t ox) const {
    int64_t y0 = int64_t(oy * SH) - top, x0 = int64_t(ox * SW) - left;
    int64_t y1 = std::min(y0 + int64_t(KH), int64_t(H) + bottom), x1 = std::min(x0 + int64_t(KW), int64_t(W) + right);
    const int64_t padded = (y1 - y0) * (x1 - x0);
    return {std::max<int64_t>(y0, 0), std::min<int64_t>(y1, H), std::max<int64_t>(x0, 0), std::min<int64_t>(x1, W), padded};
  }
};

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

PaddedPool padded(const LayerSpec& l, const Shape& in, const Shape& out) {
  const Pads p = pads_of(l, in);
  return {size_t(in.c), size_t(in.h), size_t(in.w), size_t(l.get_int("poolSize", 0)), size_t(l.get_int("poolSize", 1)),
          size_t(l.get_int("stride", 0)), size_t(l.get_int("stride", 1)), size_t(out.h), size_t(out.w),
          p.top, p.left, p.bottom, p.right};
}

// Whether every window lies inside the input: then layers.cpp's kernels apply.
bool all_inside(const PaddedPool& q) {
  return q.top == 0 && q.left == 0 && (q.OH - 1) * q.SH + q.KH <= q.H && (q.OW - 1) * q.SW + q.KW <= q.W;
}

class MaxPool2dOp : public LayerOp {
 public:
  MaxPool2dOp(const Pool2dGeometry& g, const PaddedPool& q) : g_(g), q_(q), inside_(all_inside(q)) {}
  void reserve(size_t rows) override { argmax_.resize(rows * g_.C * g_.OH * g_.OW); }
  void forward(const Pass& p) override {
    // Training keeps each window's winner for backward; inference needs none.
    if (inside_) return maxpool2d_forward(p.out, p.train ? argmax_.data() : nullptr, p.in[0], p.B, g_);
    // Padding adds nothing to a maximum: each window's maximum over its part of
    // the input, the first in reading order winning, as the kernel's.
    for (size_t plane = 0; plane < p.B * q_.C; ++plane) {
      const float* x = p.in[0] + plane * q_.H * q_.W;
      for (size_t oy = 0; oy < q_.OH; ++oy)
        for (size_t ox = 0; ox < q_.OW; ++ox) {
          const Window w = q_.at(oy, ox);
          float best = -std::numeric_limits<float>::infinity();
          int64_t where = w.y0 * int64_t(q_.W) + w.x0;
          for (int64_t y = w.y0; y < w.y1; ++y)
            for (int64_t c = w.x0; c < w.x1; ++c)
              if (x[y * q_.W + c] > best) {
                best = x[y * q_.W + c];
                where = y * q_.W + c;
              }
          const size_t o = (plane * q_.OH + oy) * q_.OW + ox;
          p.out[o] = best;
          if (p.train) argmax_[o] = static_cast<int32_t>(where);
        }
    }
  }
  void backward(const Pass& p) override {
    // The argmax indices are offsets within a channel either way.
    if (p.din[0] != nullptr) maxpool2d_backward(p.din[0], p.dout, argmax_.data(), p.B, g_);
  }
  const Pool2dGeometry& geometry() const { return g_; }
  bool inside() const { return inside_; }

 private:
  Pool2dGeometry g_;
  PaddedPool q_;
  bool inside_;
  std::vector<int32_t> argmax_;  // (rows, C, OH, OW)
};

class AvgPool2dOp : public LayerOp {
 public:
  AvgPool2dOp(const Pool2dGeometry& g, const PaddedPool& q, bool count_pad)
      : g_(g), q_(q), inside_(all_inside(q)), count_pad_(count_pad) {}
  void forward(const Pass& p) override {
    if (inside_) return avgpool2d_forward(p.out, p.in[0], p.B, g_);
    for (size_t plane = 0; plane < p.B * q_.C; ++plane) {
      const float* x = p.in[0] + plane * q_.H * q_.W;
      for (size_t oy = 0; oy < q_.OH; ++oy)
        for (size_t ox = 0; ox < q_.OW; ++ox) {
          const Window w = q_.at(oy, ox);
          float sum = 0.0f;
          for (int64_t y = w.y0; y < w.y1; ++y)
            for (int64_t c = w.x0; c < w.x1; ++c) sum += x[y * q_.W + c];
          p.out[(plane * q_.OH + oy) * q_.OW + ox] = sum / static_cast<float>(divisor(w));
        }
    }
  }
  void backward(const Pass& p) override {
    float* din = p.din[0];
    if (din == nullptr) return;
    if (inside_) return avgpool2d_backward(din, p.dout, p.B, g_);
    for (size_t plane = 0; plane < p.B * q_.C; ++plane) {
      float* dx = din + plane * q_.H * q_.W;
      for (size_t oy = 0; oy < q_.OH; ++oy)
        for (size_t ox = 0; ox < q_.OW; ++ox) {
          const Window w = q_.at(oy, ox);
          const float v = p.dout[(plane * q_.OH + oy) * q_.OW + ox] / static_cast<float>(divisor(w));
          for (int64_t y = w.y0; y < w.y1; ++y)
            for (int64_t c = w.x0; c < w.x1; ++c) dx[y * q_.W + c] += v;
        }
    }
  }

 private:
  // count_include_pad counts the padding a window covers; without it only the input.
  int64_t divisor(const Window& w) const { return count_pad_ ? w.padded : std::max<int64_t>((w.y1 - w.y0) * (w.x1 - w.x0), 1); }
  Pool2dGeometry g_;
  PaddedPool q_;
  bool inside_, count_pad_;
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

SpecError window_error(size_t k, int64_t limit, const Shape& in, bool padded, int64_t value) {
  SpecError e;
  e.field = "poolSize[" + std::to_string(k) + "]";
  e.message = "must be at most " + std::to_string(limit) + ", the " + (k == 0 ? "height" : "width") +
              " of its " + dims(in.h, in.w) + " input" + (padded ? " with padding" : "") + " (else it leaves nothing)";
  e.value = Value::number(static_cast<double>(value));
  return e;
}

LayerDef pool_def(const char* name, const char* doc,
                  std::unique_ptr<LayerOp> (*make)(const LayerSpec&, const Shape*, size_t, const Shape&)) {
  LayerDef d;
  d.name = name;
  d.doc = doc;
  d.options = {
      size_option("poolSize", kRequired, 1, BNWASM_DOC("the window, [height, width] or one number for both")),
      size_option("stride", kRequired, 1, BNWASM_DOC("[height, width], or one number for both"), "poolSize"),
      padding_option("padding",
                     BNWASM_DOC("around the input, as a conv's: a number, [height, width], [top, left, bottom, "
                     "right], 'valid', 'same' or 'sameLower' (a maximum ignores it; an average counts it "
                     "or not, countIncludePad)")),
      bool_option("ceilMode", false, BNWASM_DOC("rounds the number of windows up, as PyTorch's ceil_mode (a last window "
                                     "that would start past the input is left out)")),
  };
  d.shape = [](const LayerSpec& l, const Shape* in, size_t, Shape* out, SpecError* why) {
    if (!needs_image(l, in[0], why)) return false;
    const Pads p = pads_of(l, in[0]);
    const int64_t h = in[0].h + p.top + p.bottom, w = in[0].w + p.left + p.right;
    const int64_t kh = l.get_int("poolSize", 0), kw = l.get_int("poolSize", 1);
    const bool any = p.top + p.left + p.bottom + p.right > 0;
    if (kh > h) return *why = window_error(0, h, in[0], any, kh), false;
    if (kw > w) return *why = window_error(1, w, in[0], any, kw), false;
    const bool ceil = l.get("ceilMode") != 0;
    *out = Shape{in[0].c, windows(in[0].h, p.top, p.bottom, kh, l.get_int("stride", 0), ceil),
                 windows(in[0].w, p.left, p.right, kw, l.get_int("stride", 1), ceil), true};
    return true;
  };
  d.facts = [](const LayerSpec& l, const Shape* in, const Shape&, Value* info) {
    const Pads p = pads_of(l, in[0]);
    Value pads = Value::array();  // ONNX's order: [top, left, bottom, right]
    for (int64_t v : {p.top, p.left, p.bottom, p.right}) pads.push(Value::number(static_cast<double>(v)));
    info->set("pads", pads);
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
  if (op->def != &max_pool2d_def()) return false;
  const auto* pool = static_cast<const MaxPool2dOp*>(op);
  return pool->inside() && pool->geometry().two_by_two_stride_two();
}

const LayerDef& max_pool2d_def() {
  static const LayerDef def = pool_def(
      "maxPool2d", BNWASM_DOC("the maximum of each window, PyTorch's nn.MaxPool2d"),
      [](const LayerSpec& l, const Shape* in, size_t, const Shape& out) -> std::unique_ptr<LayerOp> {
        return std::make_unique<MaxPool2dOp>(geometry(l, in[0], out), padded(l, in[0], out));
      });
  return def;
}

const LayerDef& avg_pool2d_def() {
  static const LayerDef def = [] {
    LayerDef d = pool_def(
        "avgPool2d", BNWASM_DOC("the mean of each window, PyTorch's nn.AvgPool2d"),
        [](const LayerSpec& l, const Shape* in, size_t, const Shape& out) -> std::unique_ptr<LayerOp> {
          return std::make_unique<AvgPool2dOp>(geometry(l, in[0], out), padded(l, in[0], out), l.get("countIncludePad") != 0);
        });
    d.options.push_back(bool_option("countIncludePad", true,
                                    BNWASM_DOC("divides by the window's size, padding included (PyTorch's default), "
                                    "or by the input values under it (ONNX's default)")));
    return finish(d);
  }();
  return def;
}

const LayerDef& global_avg_pool_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "globalAvgPool";
    d.doc = BNWASM_DOC("the mean of each channel: [C, H, W] to C features (nn.AdaptiveAvgPool2d(1) and a flatten)");
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
    d.doc = BNWASM_DOC("the maximum of each channel: [C, H, W] to C features (nn.AdaptiveMaxPool2d(1) and a flatten)");
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
