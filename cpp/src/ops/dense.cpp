// dense: out = in * weight^T + bias (PyTorch's nn.Linear). An image input is
// read as its flat C * H * W values.
#include "bnwasm/kernels.h"
#include "ops/ops.h"

namespace bnwasm {
namespace ops {
namespace {

class DenseOp : public LayerOp {
 public:
  DenseOp(const LayerSpec& l, size_t in, size_t out) : spec_(l), in_(in), out_(out) {
    wt_.resize(f32_packed_size(in, out));
#if !defined(BNWASM_DENSE_ONLY)
    scale_.resize(out);
    shift_.resize(out);
#endif
  }
  void init(const InitInfo& info, uint64_t* rng) override {
    init_weights(t[0], in_ * out_, in_, out_, spec_, info, rng);
  }
  size_t scratch_size(size_t rows) const override {
    return std::max(f32_packed_size(rows, in_), f32_packed_size(out_, in_));
  }
  void forward(const Pass& p) override {
    pack(p);
    dense_forward(p.out, p.in[0], wt_.data(), bias(), p.B, in_, out_);
  }
#if !defined(BNWASM_DENSE_ONLY)
  // The dense-only module (its download has a size bound: issue 18) runs
  // these layers one after another; the same bits either way.
  //
  // Inference: a batch norm, then a ReLU after it, or a ReLU alone, stored by
  // the GEMM itself (no pass of their own over the output, no job of their own
  // for the threads).
  size_t fusion(const LayerOp* const* next, size_t n) const override {
    size_t span = n > 0 && next[0]->statistics() != nullptr ? 1 : 0;
    if (n > span && is_relu(next[span])) ++span;
    return span;
  }
  void forward_fused(const Pass& p, const LayerOp* const* next, size_t count) override {
    const Statistics* bn = count > 0 ? next[0]->statistics() : nullptr;
    // Computed here with batchnorm_forward_infer's expressions: cheaper than tracking changes.
    if (bn != nullptr) bn->infer_scale_shift(scale_.data(), shift_.data());
    const bool relu = is_relu(next[count - 1]);
    pack(p);
    dense_batchnorm_relu_forward_infer(p.out, p.in[0], wt_.data(), bias(), bn != nullptr ? scale_.data() : nullptr,
                                       bn != nullptr ? shift_.data() : nullptr, relu, p.B, in_, out_);
  }
#endif
  void backward(const Pass& p) override {
    dense_backward(p.din[0], dt[0], t.size() > 1 ? dt[1] : nullptr, p.scratch, p.dout, p.in[0],
                   t[0], p.B, in_, out_);
  }

 private:
  const float* bias() const { return t.size() > 1 ? t[1] : nullptr; }
  // The transposed weight, packed for the GEMM, is kept until a parameter changes.
  void pack(const Pass& p) {
    if (wt_version_ == p.version) return;
    f32_pack_t_x8(wt_.data(), t[0], in_, out_);
    wt_version_ = p.version;
  }
  LayerSpec spec_;
  size_t in_, out_;
#if !defined(BNWASM_DENSE_ONLY)
  std::vector<float> scale_, shift_;  // a fused batch norm's, as inference applies it
#endif
  std::vector<float> wt_;  // weight^T (in, out), packed in panels
  uint64_t wt_version_ = ~uint64_t(0);
};

}  // namespace

const LayerDef& dense_def();

std::vector<const LayerDef*> dense_defs() { return {&dense_def()}; }

const LayerDef& dense_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "dense";
    d.doc = BNWASM_DOC("a fully connected layer, PyTorch's nn.Linear; an image input is read as its flat values");
    d.options = {int_option("units", kRequired, 1, kMaxUnits, BNWASM_DOC("output features"))};
    for (const OptionDef& o : weight_options()) d.options.push_back(o);
    d.foldable = true;
    d.tensors = {{"weight", false, "weight", "kernel"},
                 {"bias", false, "bias", "bias", "useBias"}};
    d.shape = [](const LayerSpec& l, const Shape*, size_t, Shape* out, SpecError*) {
      *out = Shape{l.get_int("units"), 1, 1, false};
      return true;
    };
    d.tensor_shape = [](size_t k, const LayerSpec& l, const Shape* in, const Shape&) {
      const int64_t units = l.get_int("units");
      return k == 0 ? std::vector<int64_t>{units, in[0].size()} : std::vector<int64_t>{units};
    };
    d.macs = [](const LayerSpec& l, const Shape* in, const Shape&) {
      return in[0].size() * l.get_int("units");
    };
    d.make = [](const LayerSpec& l, const Shape* in, size_t, const Shape& out) -> std::unique_ptr<LayerOp> {
      return std::make_unique<DenseOp>(l, static_cast<size_t>(in[0].size()), static_cast<size_t>(out.size()));
    };
    return finish(d);
  }();
  return def;
}

}  // namespace ops
}  // namespace bnwasm
