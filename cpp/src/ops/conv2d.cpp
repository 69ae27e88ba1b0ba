// conv2d: PyTorch's nn.Conv2d on NCHW images, with groups (depthwise when
// groups equals the input channels) and dilation. Inference runs a batch norm,
// ReLU and 2x2 max pool that follow it in the same pass (fusion); a depthwise
// conv a batch norm and a ReLU or clip (relu6).
#include <algorithm>

#include "bnwasm/depthwise.h"
#include "bnwasm/kernels.h"
#include "ops/ops.h"

namespace bnwasm {
namespace ops {
namespace {

// The zeros around an input of h x w: explicit, or 'same' / 'sameLower' (ONNX's
// SAME_UPPER / SAME_LOWER: the output is ceil(input / stride), the padding that
// takes split in two, the odd one below and right, or above and left). At
// stride 1, 'same' is PyTorch's padding='same'.
struct Pads {
  int64_t top, left, bottom, right;
};
int64_t effective(const LayerSpec& l, size_t k) {  // a dilated kernel's extent
  return (l.get_int("kernelSize", k) - 1) * l.get_int("dilation", k) + 1;
}
Pads pads_of(const LayerSpec& l, const Shape& in) {
  const PadMode mode = static_cast<PadMode>(l.get_int("padding"));
  if (mode == PadMode::Explicit)
    return {l.get_int("padding", 1), l.get_int("padding", 2), l.get_int("padding", 3), l.get_int("padding", 4)};
  int64_t total[2];
  const int64_t size[2] = {in.h, in.w};
  for (size_t k = 0; k < 2; ++k) {
    const int64_t s = l.get_int("stride", k), out = (size[k] + s - 1) / s;
    total[k] = std::max<int64_t>((out - 1) * s + effective(l, k) - size[k], 0);
  }
  const bool lower = mode == PadMode::SameLower;
  const int64_t th = lower ? total[0] - total[0] / 2 : total[0] / 2;
  const int64_t tw = lower ? total[1] - total[1] / 2 : total[1] / 2;
  return {th, tw, total[0] - th, total[1] - tw};
}

// The geometry of one group: its C / groups input channels and F / groups filters.
Conv2dGeometry geometry(const LayerSpec& l, const Shape& in, const Shape& out) {
  const Pads p = pads_of(l, in);
  const size_t groups = size_t(l.get_int("groups"));
  Conv2dGeometry g{size_t(in.c) / groups,
                   size_t(in.h),
                   size_t(in.w),
                   size_t(l.get_int("filters")) / groups,
                   size_t(l.get_int("kernelSize", 0)),
                   size_t(l.get_int("kernelSize", 1)),
                   size_t(l.get_int("stride", 0)),
                   size_t(l.get_int("stride", 1)),
                   size_t(p.top),
                   size_t(p.left),
                   size_t(out.h),
                   size_t(out.w)};
  g.DH = size_t(l.get_int("dilation", 0));
  g.DW = size_t(l.get_int("dilation", 1));
  return g;
}

// Groups run one after another, each a convolution of its own: group k of
// image b reads channels [k C', (k + 1) C') and writes filters [k F', (k + 1) F').
// A depthwise convolution (one input channel per group) has kernels of its own.
class Conv2dOp : public LayerOp {
 public:
  Conv2dOp(const LayerSpec& l, const Shape& in, const Shape& out)
      : spec_(l), g_(geometry(l, in, out)), groups_(size_t(l.get_int("groups"))),
        scale_(g_.F * groups_), shift_(g_.F * groups_),
        dw_{groups_, g_.H, g_.W, g_.F, g_.KH, g_.KW, g_.SH, g_.SW, g_.PT, g_.PL, g_.OH, g_.OW, g_.DH, g_.DW} {
    if (rows()) taps_ = conv2d_live_taps(g_);
  }

  void init(const InitInfo& info, uint64_t* rng) override {
    // A filter sees K = C' * KH * KW inputs; fan_out = F * KH * KW, the fans
    // PyTorch and Keras use (PyTorch counts every filter in fan_out, groups or not).
    init_weights(t[0], F() * g_.K(), g_.K(), F() * g_.KH * g_.KW, spec_, info, rng);
  }
  size_t scratch_size(size_t) const override {
    if (depthwise()) return dw_.scratch_size();
    return std::max(conv2d_scratch_size(g_), rows() ? conv2d_rows_scratch_size(g_, taps_.size()) : 0);
  }
  void forward(const Pass& p) override {
    if (!p.train) return forward_fused(p, nullptr, 0);
    if (rows()) return forward_rows(p, epilogue<ConvEpilogue>(nullptr));
    if (depthwise())
      return depthwise_conv2d_forward(p.out, p.scratch, p.in[0], t[0], epilogue<DepthwiseEpilogue>(nullptr), p.B, dw_);
    if (groups_ == 1) return conv2d_forward(p.out, p.scratch, p.in[0], t[0], bias(), p.B, g_);
    for (size_t b = 0; b < p.B; ++b)
      for (size_t k = 0; k < groups_; ++k)
        conv2d_forward(out_of(p.out, b, k), p.scratch, in_of(p.in[0], b, k), weight_of(t[0], k),
                       bias() != nullptr ? bias() + k * g_.F : nullptr, 1, g_);
  }
  void backward(const Pass& p) override {
    float* dbias = t.size() > 1 ? dt[1] : nullptr;
    if (depthwise())
      return depthwise_conv2d_backward(p.din[0], dt[0], dbias, p.scratch, p.dout, p.in[0], t[0], p.B, dw_);
    if (groups_ == 1)
      return conv2d_backward(p.din[0], dt[0], dbias, p.scratch, p.dout, p.in[0], t[0], p.B, g_);
    for (size_t b = 0; b < p.B; ++b)
      for (size_t k = 0; k < groups_; ++k)
        conv2d_backward(p.din[0] != nullptr ? in_of(p.din[0], b, k) : nullptr, weight_of(dt[0], k),
                        dbias != nullptr ? dbias + k * g_.F : nullptr, p.scratch,
                        out_of(p.dout, b, k), in_of(p.in[0], b, k), weight_of(t[0], k), 1, g_);
  }

  // A batch norm, then a ReLU after it; then, when the conv goes through
  // Winograd, a 2x2 max pool at stride 2 (a tile's 2x2 outputs are one window).
  size_t fusion(const LayerOp* const* next, size_t n) const override {
    size_t span = 0;
    if (n > 0 && next[0]->statistics() != nullptr) {
      span = 1;
      if (n > 1 && is_relu(next[1])) span = 2;
    }
    if (groups_ == 1 && conv2d_winograd_applies(g_) && n > span && is_max_pool_2x2_stride_2(next[span])) ++span;
    // A depthwise conv also takes a clip (relu6) after its batch norm, and
    // either activation without one (a batch norm folded into its bias).
    if (depthwise() && span < 2 && n > span && (is_relu(next[span]) || is_clip(next[span], nullptr, nullptr)))
      ++span;
    return span;
  }
  void forward_fused(const Pass& p, const LayerOp* const* next, size_t count) override {
    const Statistics* bn = count > 0 ? next[0]->statistics() : nullptr;
    const bool relu = bn != nullptr && count > 1 && is_relu(next[1]);
    const bool pool = count > 0 && is_max_pool_2x2_stride_2(next[count - 1]);
    // The batch norm's scale and shift are F values, computed here with the
    // expressions batchnorm_forward_infer uses: cheaper than tracking changes.
    if (bn != nullptr) bn->infer_scale_shift(scale_.data(), shift_.data());
    if (depthwise()) {
      auto ep = epilogue<DepthwiseEpilogue>(bn);
      const size_t act = bn != nullptr ? 1 : 0;  // the activation's place, when fused
      if (count > act) {
        ep.relu = is_relu(next[act]);
        ep.clip = is_clip(next[act], &ep.lo, &ep.hi);
      }
      return depthwise_conv2d_forward(p.out, p.scratch, p.in[0], t[0], ep, p.B, dw_);
    }
    if (rows()) {
      auto ep = epilogue<ConvEpilogue>(bn);
      ep.relu = relu;
      return forward_rows(p, ep);
    }
    if (conv2d_winograd_applies(g_) && wino_version_ != p.version) {
      // The transformed weights, group by group, are kept until a parameter changes.
      const size_t size = f32_winograd23_weight_size(g_.F, g_.C);
      wino_.resize(size * groups_);
      for (size_t k = 0; k < groups_; ++k) f32_winograd23_weights(wino_.data() + k * size, weight_of(t[0], k), g_.F, g_.C);
      wino_version_ = p.version;
    }
    const size_t images = groups_ == 1 ? p.B : 1;
    for (size_t b = 0; b < (groups_ == 1 ? 1 : p.B); ++b)
      for (size_t k = 0; k < groups_; ++k) {
        const float* scale = bn != nullptr ? scale_.data() + k * g_.F : nullptr;
        const float* shift = bn != nullptr ? shift_.data() + k * g_.F : nullptr;
        const float* in = in_of(p.in[0], b, k);
        const float* bias_k = bias() != nullptr ? bias() + k * g_.F : nullptr;
        float* out = pool ? p.out : out_of(p.out, b, k);  // a pool is fused at groups 1 only
        if (conv2d_winograd_applies(g_))
          conv2d_winograd_forward_infer(out, p.scratch, in, wino_.data() + k * f32_winograd23_weight_size(g_.F, g_.C),
                                        bias_k, scale, shift, relu, pool, images, g_);
        else if (bn == nullptr)
          conv2d_forward(out, p.scratch, in, weight_of(t[0], k), bias_k, images, g_);
        else
          conv2d_batchnorm_relu_forward_infer(out, p.scratch, in, weight_of(t[0], k), bias_k, scale, shift, relu,
                                              images, g_);
      }
  }

 private:
  size_t F() const { return g_.F * groups_; }
  bool depthwise() const { return groups_ > 1 && g_.C == 1; }
  // Few output positions (conv2d_rows_applies): the same bits as conv2d_forward, fewer
  // weights read. Groups of their own keep the general path.
  bool rows() const { return groups_ == 1 && conv2d_rows_applies(g_); }
  void forward_rows(const Pass& p, const ConvEpilogue& ep) {
    // The live taps' weights, transposed and packed, are kept until a parameter changes.
    if (rows_version_ != p.version) {
      rows_w_.resize(f32_packed_size(g_.C * taps_.size(), g_.F));
      conv2d_rows_weights(rows_w_.data(), t[0], taps_, g_);
      rows_version_ = p.version;
    }
    conv2d_rows_forward(p.out, p.scratch, p.in[0], rows_w_.data(), taps_, ep, p.B, g_);
  }
  const float* bias() const { return t.size() > 1 ? t[1] : nullptr; }
  // The bias first, then the batch norm folded in by forward_fused when there is one.
  template <typename Epilogue>
  Epilogue epilogue(const Statistics* bn) const {
    Epilogue ep;
    ep.init = bias();
    if (bn != nullptr) {
      ep.scale = scale_.data();
      ep.shift = shift_.data();
    }
    return ep;
  }
  // Group k of image b: its input channels, its output filters, its weights.
  template <typename T>
  T* in_of(T* x, size_t b, size_t k) const { return x + (b * groups_ + k) * g_.C * g_.H * g_.W; }
  template <typename T>
  T* out_of(T* y, size_t b, size_t k) const { return y + (b * groups_ + k) * g_.F * g_.P(); }
  template <typename T>
  T* weight_of(T* w, size_t k) const { return w + k * g_.F * g_.K(); }

  LayerSpec spec_;
  Conv2dGeometry g_;  // one group's
  size_t groups_;
  std::vector<float> scale_, shift_;  // a following batch norm folded for inference
  std::vector<float> wino_;           // the Winograd weights (f32_winograd23_weights), per group
  uint64_t wino_version_ = ~uint64_t(0);
  std::vector<uint32_t> taps_;  // the live taps, when rows()
  std::vector<float> rows_w_;   // their weights for conv2d_rows_forward (conv2d_rows_weights)
  uint64_t rows_version_ = ~uint64_t(0);
  DepthwiseConv dw_;  // the whole layer's, when depthwise()
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
    d.doc = BNWASM_DOC("a 2-D convolution over an image, PyTorch's nn.Conv2d, with groups and dilation");
    d.options = {
        int_option("filters", kRequired, 1, kMaxUnits, BNWASM_DOC("output channels")),
        size_option("kernelSize", kRequired, 1, BNWASM_DOC("[height, width], or one number for both")),
        size_option("stride", 1, 1, BNWASM_DOC("[height, width], or one number for both")),
        padding_option("padding",
                       BNWASM_DOC("zeros around the input: a number or [height, width] for both sides, "
                       "[top, left, bottom, right], 'valid' (none), or 'same' / 'sameLower' (the output "
                       "ceil(input / stride), the odd zero below and right, or above and left; at stride "
                       "1 'same' is PyTorch's)")),
        size_option("dilation", 1, 1, BNWASM_DOC("the spacing of the kernel's taps, [height, width] or one number")),
        int_option("groups", 1, 1, kMaxUnits,
                   BNWASM_DOC("channel groups, each convolved on its own: the input channels and filters both "
                   "divide by it; groups = input channels is a depthwise convolution")),
    };
    for (const OptionDef& o : weight_options()) d.options.push_back(o);
    d.foldable = true;
    d.tensors = {{"weight", false, "weight", "kernel"},
                 {"bias", false, "bias", "bias", "useBias"}};
    d.shape = [](const LayerSpec& l, const Shape* in, size_t, Shape* out, SpecError* why) {
      if (!needs_image(l, in[0], why)) return false;
      const int64_t groups = l.get_int("groups"), filters = l.get_int("filters");
      if (in[0].c % groups != 0 || filters % groups != 0) {
        why->field = "groups";
        why->message = "must divide the input's " + std::to_string(in[0].c) + " channels and the " +
                       std::to_string(filters) + " filters";
        why->value = Value::number(static_cast<double>(groups));
        return false;
      }
      const Pads p = pads_of(l, in[0]);
      const int64_t h = in[0].h + p.top + p.bottom, w = in[0].w + p.left + p.right;
      const int64_t kh = effective(l, 0), kw = effective(l, 1);
      const bool dilated = l.get_int("dilation", 0) != 1 || l.get_int("dilation", 1) != 1;
      const std::string input =
          dims(in[0].h, in[0].w) + " input" +
          (h != in[0].h || w != in[0].w ? " with padding (" + dims(h, w) + ")" : "") +
          (dilated ? " (the dilated kernel spans " + dims(kh, kw) + ")" : "");
      if (kh > h) return *why = at_most("kernelSize[0]", dilated ? (h - 1) / l.get_int("dilation", 0) + 1 : h, "the height of its " + input, l.get_int("kernelSize", 0)), false;
      if (kw > w) return *why = at_most("kernelSize[1]", dilated ? (w - 1) / l.get_int("dilation", 1) + 1 : w, "the width of its " + input, l.get_int("kernelSize", 1)), false;
      *out = Shape{filters, (h - kh) / l.get_int("stride", 0) + 1, (w - kw) / l.get_int("stride", 1) + 1, true};
      // Its im2col matrix (C' * KH * KW, OH * OW) is scratch memory, one group of one image at a time.
      const int64_t im2col = in[0].c / groups * l.get_int("kernelSize", 0) * l.get_int("kernelSize", 1) * out->h * out->w;
      if (im2col > (int64_t(1) << 26)) {
        why->field = "kernelSize[0]";
        why->message = "gives an im2col matrix of " + std::to_string(im2col) +
                       " values per image, more than the 2^26 limit";
        why->value = Value::number(static_cast<double>(l.get_int("kernelSize", 0)));
        return false;
      }
      return true;
    };
    d.tensor_shape = [](size_t k, const LayerSpec& l, const Shape* in, const Shape&) {
      const int64_t f = l.get_int("filters");
      return k == 0 ? std::vector<int64_t>{f, in[0].c / l.get_int("groups"), l.get_int("kernelSize", 0), l.get_int("kernelSize", 1)}
                    : std::vector<int64_t>{f};
    };
    d.macs = [](const LayerSpec& l, const Shape* in, const Shape& out) {
      return out.size() * (in[0].c / l.get_int("groups")) * l.get_int("kernelSize", 0) * l.get_int("kernelSize", 1);
    };
    d.facts = [](const LayerSpec& l, const Shape* in, const Shape&, Value* info) {
      const Pads p = pads_of(l, in[0]);
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
