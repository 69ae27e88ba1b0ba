// batchNorm: per feature of flat inputs (BatchNorm1d), per channel of images
// (BatchNorm2d). Training normalizes with the mini-batch's mean and biased
// variance and folds them into the running averages; inference uses only the
// running averages, gamma and beta.
#include <cmath>
#include <cstring>

#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "ops/ops.h"

namespace bnwasm {
namespace ops {
namespace {

// The layer's tensors, in the order of its entry's `tensors`.
enum { kGamma, kBeta, kRunningMean, kRunningVar, kRawMean, kRawVar };

class BatchNormOp : public LayerOp, public Statistics {
 public:
  BatchNormOp(const LayerSpec& l, const Shape& in)
      : C_(static_cast<size_t>(in.spatial ? in.c : in.size())),
        S_(in.spatial ? static_cast<size_t>(in.h * in.w) : 1),
        momentum_(l.get("momentum")),
        epsilon_(l.get("epsilon")),
        eps_(static_cast<float>(epsilon_)),
        unbiased_(l.get("runningVariance") == 1),
        cumulative_(l.get("statistics") == 1),
        bias_correction_(l.get("biasCorrection") != 0),
        renorm_(l.get("renorm") != 0),
        frozen_(l.get("mode") == 1),
        rmax_(static_cast<float>(l.get("renorm", 1))),
        dmax_(static_cast<float>(l.get("renorm", 2))) {}

  size_t cache_size() const override { return 5 * C_; }  // mean, var, rstd, r, d
  void init(const InitInfo&, uint64_t*) override {
    std::fill_n(t[kGamma], C_, 1.0f);
    std::fill_n(t[kRunningVar], C_, 1.0f);
  }
  void forward(const Pass& p) override {
    float* c = cache;
    if (p.train && frozen(p.batch_norm)) {
      // Training that normalizes as inference does: the running statistics,
      // kept for backward as the mean and rstd it differentiates through.
      for (size_t k = 0; k < C_; ++k) {
        c[k] = t[kRunningMean][k];
        c[2 * C_ + k] = 1.0f / std::sqrt(t[kRunningVar][k] + eps_);
      }
      batchnorm_forward_infer(p.out, p.in[0], t[kGamma], t[kBeta], t[kRunningMean],
                              t[kRunningVar], p.B, C_, S_, eps_);
    } else if (p.train && renorm_) {
      batchnorm_renorm_forward_train(p.out, c, c + C_, c + 2 * C_, c + 3 * C_, c + 4 * C_, p.in[0],
                                     t[kGamma], t[kBeta], t[kRunningMean], t[kRunningVar], p.B, C_,
                                     S_, eps_, rmax_, dmax_);
    } else if (p.train) {
      batchnorm_forward_train(p.out, c, c + C_, c + 2 * C_, p.in[0], t[kGamma], t[kBeta], p.B, C_,
                              S_, eps_);
    } else {
      batchnorm_forward_infer(p.out, p.in[0], t[kGamma], t[kBeta], t[kRunningMean],
                              t[kRunningVar], p.B, C_, S_, eps_);
    }
  }
  void backward(const Pass& p) override {
    const float* c = cache;
    if (frozen(p.batch_norm))
      backward_frozen(p);
    else if (renorm_)
      batchnorm_renorm_backward(p.din[0], dt[kGamma], dt[kBeta], p.dout, p.in[0], t[kGamma], c,
                                c + 2 * C_, c + 3 * C_, c + 4 * C_, p.B, C_, S_);
    else
      batchnorm_backward(p.din[0], dt[kGamma], dt[kBeta], p.dout, p.in[0], t[kGamma], c,
                         c + 2 * C_, p.B, C_, S_);
  }
  Statistics* statistics() override { return this; }

  // y = gamma (x - mean) rstd + beta with mean and rstd constants (the running
  // statistics): dx = dy gamma rstd, dgamma = sum dy xhat, dbeta = sum dy, per
  // channel over the batch and its positions; sums in double, as the batch-
  // statistics backward's.
  void backward_frozen(const Pass& p) {
    const float* mean = cache;
    const float* rstd = cache + 2 * C_;
    for (size_t c = 0; c < C_; ++c) {
      const float k = t[kGamma][c] * rstd[c];
      double sum = 0, sum_xhat = 0;
      for (size_t b = 0; b < p.B; ++b) {
        const size_t at = (b * C_ + c) * S_;
        const float* x = p.in[0] + at;
        const float* dy = p.dout + at;
        for (size_t i = 0; i < S_; ++i) {
          sum += dy[i];
          sum_xhat += static_cast<double>(dy[i]) * ((x[i] - mean[c]) * rstd[c]);
        }
        if (p.din[0] != nullptr)
          for (size_t i = 0; i < S_; ++i) p.din[0][at + i] += k * dy[i];
      }
      dt[kBeta][c] += static_cast<float>(sum);
      dt[kGamma][c] += static_cast<float>(sum_xhat);
    }
  }

  // ---- Statistics ----
  size_t channels() const override { return C_; }
  size_t positions() const override { return S_; }
  bool unbiased() const override { return unbiased_; }
  const float* batch_mean() const override { return cache; }
  const float* batch_var() const override { return cache + C_; }
  bool frozen(int batch_norm) const override {
    return batch_norm == kFrozen || (batch_norm == kConfigured && frozen_);
  }

  bool update_ok(size_t B) const override {
    // A convex combination of finite values is finite, so finite batch
    // statistics (and a finite unbiased rescaling) mean a finite update.
    if (!f32_all_finite(cache, 2 * C_)) return false;
    const size_t m = B * S_;
    const float scale = static_cast<float>(m) / static_cast<float>(m - 1);
    for (size_t k = 0; k < C_; ++k)
      if (!std::isfinite(cache[C_ + k] * scale)) return false;
    return true;
  }
  void update(size_t B) override {
    // m = B * positions values per channel: the unbiased rescaling is m / (m - 1).
    const size_t m = B * S_;
    const float* mean = cache;
    const float* var = cache + C_;
    const uint64_t n = ++tracked;
    float* rmean = t[kRunningMean];
    float* rvar = t[kRunningVar];
    if (cumulative_) {
      // The plain average of the n batch statistics seen so far.
      const double past = static_cast<double>(n - 1) / static_cast<double>(n);
      batchnorm_update_running(rmean, rvar, mean, var, m, C_, past, unbiased_);
    } else if (bias_correction_) {
      batchnorm_update_running(t[kRawMean], t[kRawVar], mean, var, m, C_, momentum_, unbiased_);
      const double inv = 1.0 / (1.0 - pow_int(momentum_, n));
      for (size_t k = 0; k < C_; ++k) {
        rmean[k] = static_cast<float>(t[kRawMean][k] * inv);
        rvar[k] = static_cast<float>(t[kRawVar][k] * inv);
      }
    } else {
      batchnorm_update_running(rmean, rvar, mean, var, m, C_, momentum_, unbiased_);
    }
  }
  void changed() override {
    // With bias correction the uncorrected average is the state training
    // continues from; keep it consistent with running statistics set from outside.
    if (!bias_correction_ || tracked == 0) return;
    const double keep = 1.0 - pow_int(momentum_, tracked);
    for (size_t k = 0; k < C_; ++k) {
      t[kRawMean][k] = static_cast<float>(t[kRunningMean][k] * keep);
      t[kRawVar][k] = static_cast<float>(t[kRunningVar][k] * keep);
    }
  }
  void set(const double* mean, const double* var) override {
    for (size_t c = 0; c < C_; ++c) {
      t[kRunningMean][c] = static_cast<float>(mean[c]);
      t[kRunningVar][c] = static_cast<float>(var[c]);
    }
  }
  void infer_scale_shift(float* scale, float* shift) const override {
    batchnorm_infer_scale_shift(scale, shift, t[kGamma], t[kBeta], t[kRunningMean],
                                t[kRunningVar], C_, eps_);
  }
  void fold_terms(size_t c, double* scale, double* mean, double* beta) const override {
    *scale = static_cast<double>(t[kGamma][c]) /
             std::sqrt(static_cast<double>(t[kRunningVar][c]) + epsilon_);
    *mean = t[kRunningMean][c];
    *beta = t[kBeta][c];
  }

 private:
  size_t C_, S_;
  double momentum_;
  double epsilon_;  // folding works in double with the option's own value
  float eps_;
  bool unbiased_, cumulative_, bias_correction_, renorm_, frozen_;
  float rmax_, dmax_;
};

}  // namespace

const LayerDef& batch_norm_def();

std::vector<const LayerDef*> batch_norm_defs() { return {&batch_norm_def()}; }

const LayerDef& batch_norm_def() {
  static const LayerDef def = [] {
    LayerDef d;
    d.name = "batchNorm";
    d.doc = BNWASM_DOC("batch normalization: per feature (BatchNorm1d) or per channel of an image (BatchNorm2d)");
    OptionDef renorm("renorm", OptionKind::Record, 0);
    renorm.fields = {
        number_option("rMax", 3, 1, kInf, false, false, BNWASM_DOC("the clip of r")),
        number_option("dMax", 5, 0, kInf, false, false, BNWASM_DOC("the clip of d")),
    };
    renorm.doc = BNWASM_DOC("batch renormalization (Ioffe 2017) with these clips; null for plain batch norm");
    d.options = {
        number_option("momentum", 0.9, 0, 1, false, true,
                      BNWASM_DOC("the weight of the past in the running averages (the lecture's beta; PyTorch's momentum 0.1 is 0.9 here)")),
        number_option("epsilon", 1e-5, 0, kInf, true, false, BNWASM_DOC("added to the variance")),
        enum_option("runningVariance", {"biased", "unbiased"}, 1,
                    BNWASM_DOC("the batch variance the running variance averages: m/(m-1) times the biased one, as PyTorch, or the biased one, as Keras")),
        enum_option("statistics", {"ema", "cumulative"}, 0,
                    BNWASM_DOC("an exponentially weighted average, or the plain average of every batch")),
        bool_option("biasCorrection", false, BNWASM_DOC("divides the EMA by 1 - momentum^t, as Adam's moments")),
        renorm,
        enum_option("mode", {"batch", "frozen"}, 0,
                    BNWASM_DOC("how it trains: 'batch' normalizes with the mini-batch's statistics and updates "
                    "the running ones; 'frozen' normalizes with the running statistics and leaves them "
                    "(PyTorch's eval() while fine-tuning, Keras's trainable = False)")),
        trainable_option(),
    };
    d.tensors = {
        {"gamma", false, "weight", "gamma"},
        {"beta", false, "bias", "beta"},
        {"runningMean", true, "running_mean", "moving_mean"},
        {"runningVariance", true, "running_var", "moving_variance"},
        {"rawMean", true, "", "", "biasCorrection", true},
        {"rawVariance", true, "", "", "biasCorrection", true},
    };
    d.check = [](const LayerSpec& l, SpecError* why) {
      if (l.get("statistics") == 1 && l.get("biasCorrection") != 0) {
        why->field = "biasCorrection";
        why->message = "applies to statistics 'ema' only";
        why->value = Value::boolean(true);
        return false;
      }
      return true;
    };
    d.shape = [](const LayerSpec&, const Shape* in, size_t, Shape* out, SpecError*) {
      *out = in[0];
      return true;
    };
    d.tensor_shape = [](size_t, const LayerSpec&, const Shape* in, const Shape&) {
      return std::vector<int64_t>{in[0].spatial ? in[0].c : in[0].size()};
    };
    d.make = [](const LayerSpec& l, const Shape* in, size_t, const Shape&) -> std::unique_ptr<LayerOp> {
      return std::make_unique<BatchNormOp>(l, in[0]);
    };
    return finish(d);
  }();
  return def;
}

}  // namespace ops
}  // namespace bnwasm
