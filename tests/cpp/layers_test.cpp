// Layer functions: finite-difference gradient checks for every backward,
// backward accumulating (+=) into its outputs, and batch-norm properties.
// (how the gradient checks are built and why their tolerance holds: gradcheck.h)
#include "bnwasm/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "bnwasm/kernels.h"
#include "gradcheck.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

// ---- dense ----------------------------------------------------------------------

struct DenseFixture {
  size_t B = 3, C = 5, OC = 4;
  std::vector<float> in, weight, bias, r;
  explicit DenseFixture(uint64_t seed) {
    Rng rng(seed);
    in = rng.uniform_vec(B * C, -1, 1);
    weight = rng.uniform_vec(OC * C, -0.5, 0.5);
    bias = rng.uniform_vec(OC, -0.5, 0.5);
    r = rng.uniform_vec(B * OC, -1, 1);
  }
  std::vector<float> forward(bool with_bias = true) const {
    // The layer takes weight^T (C, OC) in packed panels, packed from weight (OC, C).
    std::vector<float> wt(f32_packed_size(C, OC)), out(B * OC);
    f32_pack_t_x8(wt.data(), weight.data(), C, OC);
    dense_forward(out.data(), in.data(), wt.data(), with_bias ? bias.data() : nullptr, B, C, OC);
    return out;
  }
  double loss() const { return dot(forward(), r); }
  // One backward call accumulating into the given gradients (null: not wanted).
  void backward(float* din, float* dweight, float* dbias) const {
    std::vector<float> scratch(std::max(f32_packed_size(B, C), f32_packed_size(OC, C)));
    dense_backward(din, dweight, dbias, scratch.data(), r.data(), in.data(), weight.data(), B, C,
                   OC);
  }
};

TEST(Dense, ForwardMatchesDoubleLoop) {
  DenseFixture f(1);
  for (bool with_bias : {true, false}) {
    const std::vector<float> out = f.forward(with_bias);
    std::vector<double> expected(f.B * f.OC), tol(f.B * f.OC);
    for (size_t b = 0; b < f.B; ++b)
      for (size_t o = 0; o < f.OC; ++o) {
        double s = with_bias ? f.bias[o] : 0.0, abs_sum = std::fabs(s);
        for (size_t c = 0; c < f.C; ++c) {
          const double t = static_cast<double>(f.in[b * f.C + c]) * f.weight[o * f.C + c];
          s += t;
          abs_sum += std::fabs(t);
        }
        expected[b * f.OC + o] = s;
        tol[b * f.OC + o] = (f.C + 2) * kU * abs_sum;  // recursive summation bound
      }
    EXPECT_TRUE(AllNear("out", expected, out.data(), tol)) << (with_bias ? "bias" : "no bias");
  }
}

TEST(Dense, GradientsMatchFiniteDifferences) {
  DenseFixture f(2);
  std::vector<float> din(f.B * f.C, 0.0f), dweight(f.OC * f.C, 0.0f), dbias(f.OC, 0.0f);
  f.backward(din.data(), dweight.data(), dbias.data());
  const double scale = abs_dot(f.forward(), f.r);
  auto loss = [&f] { return f.loss(); };
  EXPECT_TRUE(GradientMatches("din", numeric_gradient(loss, f.in.data(), f.in.size()), din, scale));
  EXPECT_TRUE(GradientMatches("dweight", numeric_gradient(loss, f.weight.data(), f.weight.size()),
                              dweight, scale));
  EXPECT_TRUE(
      GradientMatches("dbias", numeric_gradient(loss, f.bias.data(), f.bias.size()), dbias, scale));
}

TEST(Dense, BackwardAccumulates) {
  DenseFixture f(3);
  std::vector<float> din(f.B * f.C, 0.0f), dweight(f.OC * f.C, 0.0f), dbias(f.OC, 0.0f);
  f.backward(din.data(), dweight.data(), dbias.data());
  const std::vector<float> din1 = din, dweight1 = dweight, dbias1 = dbias;
  f.backward(din.data(), dweight.data(), dbias.data());
  // The packed gemms sum each element in a register from 0 and then add it
  // to c (kernels.h), so the second call adds the same value again: exactly 2v.
  EXPECT_TRUE(Doubled("din", din1, din, 0.0));
  EXPECT_TRUE(Doubled("dweight", dweight1, dweight, 0.0));
  EXPECT_TRUE(Doubled("dbias", dbias1, dbias, 0.0));
}

TEST(Dense, NullInputGradientAndBiasAreSkipped) {
  DenseFixture f(4);
  std::vector<float> din(f.B * f.C, 0.0f), dweight(f.OC * f.C, 0.0f), dbias(f.OC, 0.0f);
  f.backward(din.data(), dweight.data(), dbias.data());
  std::vector<float> dweight_only(f.OC * f.C, 0.0f);
  f.backward(nullptr, dweight_only.data(), nullptr);
  // dweight does not depend on whether din or dbias were asked for.
  EXPECT_TRUE(BitEqual("dweight", dweight.data(), dweight_only.data(), dweight.size()));
}

// ---- batch norm ---------------------------------------------------------------------

struct BatchNormFixture {
  size_t B, C;
  float eps;
  std::vector<float> in, gamma, beta, r;
  BatchNormFixture(size_t B_, size_t C_, float eps_, uint64_t seed) : B(B_), C(C_), eps(eps_) {
    Rng rng(seed);
    // A different offset and spread per feature, the spread exact: normal
    // draws standardized over the batch. With an accidental spread much below
    // 1 (two nearly equal values at B = 2) the step h would no longer be small
    // next to the scale on which the normalization bends, and the finite
    // differences would measure their own truncation error.
    in.resize(B * C);
    for (size_t c = 0; c < C; ++c) {
      const double offset = rng.uniform(-2, 2), spread = rng.uniform(0.5, 2);
      std::vector<double> z(B);
      double m = 0, v = 0;
      for (double& x : z) m += (x = rng.normal());
      m /= B;
      for (double x : z) v += (x - m) * (x - m);
      const double sd = std::sqrt(v / B);
      for (size_t b = 0; b < B; ++b)
        in[b * C + c] = static_cast<float>(offset + spread * (z[b] - m) / sd);
    }
    gamma = rng.uniform_vec(C, 0.5, 1.5);
    beta = rng.uniform_vec(C, -0.5, 0.5);
    r = rng.uniform_vec(B * C, -1, 1);
  }
  struct Result {
    std::vector<float> out, mean, var, rstd;
  };
  Result forward() const {
    Result res{std::vector<float>(B * C), std::vector<float>(C), std::vector<float>(C),
               std::vector<float>(C)};
    batchnorm_forward_train(res.out.data(), res.mean.data(), res.var.data(), res.rstd.data(),
                            in.data(), gamma.data(), beta.data(), B, C, eps);
    return res;
  }
  double loss() const { return dot(forward().out, r); }
  void backward(float* din, float* dgamma, float* dbeta) const {
    const Result res = forward();
    batchnorm_backward(din, dgamma, dbeta, r.data(), in.data(), gamma.data(), res.mean.data(),
                       res.rstd.data(), B, C);
  }
  // Batch mean and biased variance of feature c, in double.
  void stats(size_t c, double* mean, double* var) const {
    double m = 0, v = 0;
    for (size_t b = 0; b < B; ++b) m += in[b * C + c];
    m /= B;
    for (size_t b = 0; b < B; ++b) v += (in[b * C + c] - m) * (in[b * C + c] - m);
    *mean = m;
    *var = v / B;
  }
};

// C = 70 also crosses the 64-feature blocks the layer functions walk in.
class BatchNormSizes : public ::testing::TestWithParam<std::pair<size_t, size_t>> {};

TEST_P(BatchNormSizes, GradientsMatchFiniteDifferences) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 1e-5f, 10 + B + C);
  std::vector<float> din(B * C, 0.0f), dgamma(C, 0.0f), dbeta(C, 0.0f);
  f.backward(din.data(), dgamma.data(), dbeta.data());
  const double scale = abs_dot(f.forward().out, f.r);
  auto loss = [&f] { return f.loss(); };
  EXPECT_TRUE(GradientMatches("din", numeric_gradient(loss, f.in.data(), f.in.size()), din, scale));
  EXPECT_TRUE(GradientMatches("dgamma", numeric_gradient(loss, f.gamma.data(), C), dgamma, scale));
  EXPECT_TRUE(GradientMatches("dbeta", numeric_gradient(loss, f.beta.data(), C), dbeta, scale));
}

TEST_P(BatchNormSizes, BackwardAccumulates) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 1e-5f, 20 + B + C);
  std::vector<float> din(B * C, 0.0f), dgamma(C, 0.0f), dbeta(C, 0.0f);
  f.backward(din.data(), dgamma.data(), dbeta.data());
  const std::vector<float> din1 = din, dgamma1 = dgamma, dbeta1 = dbeta;
  f.backward(din.data(), dgamma.data(), dbeta.data());
  // Each element adds one finished value onto the same value: exactly 2v.
  EXPECT_TRUE(Doubled("din", din1, din, 0.0));
  EXPECT_TRUE(Doubled("dgamma", dgamma1, dgamma, 0.0));
  EXPECT_TRUE(Doubled("dbeta", dbeta1, dbeta, 0.0));
}

TEST_P(BatchNormSizes, NullInputGradientIsSkipped) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 1e-5f, 30 + B + C);
  std::vector<float> din(B * C, 0.0f), dgamma(C, 0.0f), dbeta(C, 0.0f);
  f.backward(din.data(), dgamma.data(), dbeta.data());
  std::vector<float> dgamma2(C, 0.0f), dbeta2(C, 0.0f);
  f.backward(nullptr, dgamma2.data(), dbeta2.data());
  EXPECT_TRUE(BitEqual("dgamma", dgamma.data(), dgamma2.data(), C));
  EXPECT_TRUE(BitEqual("dbeta", dbeta.data(), dbeta2.data(), C));
}

// Training output with gamma = 1, beta = 0: per feature mean 0 and biased
// variance v / (v + eps), i.e. 1 up to eps. The caches hold the batch mean,
// biased variance and 1 / sqrt(var + eps).
TEST_P(BatchNormSizes, TrainOutputIsStandardized) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 1e-5f, 40 + B + C);
  std::fill(f.gamma.begin(), f.gamma.end(), 1.0f);
  std::fill(f.beta.begin(), f.beta.end(), 0.0f);
  const BatchNormFixture::Result res = f.forward();
  std::vector<double> mean(C), var(C), rstd(C), mean_tol(C), var_tol(C), rstd_tol(C);
  std::vector<double> out_mean(C), out_var(C), out_var_expected(C), out_mean_tol(C), out_var_tol(C);
  for (size_t c = 0; c < C; ++c) {
    f.stats(c, &mean[c], &var[c]);
    rstd[c] = 1.0 / std::sqrt(var[c] + f.eps);
    double max_abs = 0;
    for (size_t b = 0; b < B; ++b) max_abs = std::max(max_abs, std::fabs(double(f.in[b * C + c])));
    // The kernel bounds (kernels_test): mean (B + 3) u * max|x|; the variance
    // (B + 6) u relative plus the squared mean error.
    mean_tol[c] = (B + 3) * kU * max_abs;
    var_tol[c] = (B + 6) * kU * var[c] + mean_tol[c] * mean_tol[c];
    // rstd: half the variance's relative error, plus add, sqrt and divide.
    rstd_tol[c] = ((B + 6) / 2.0 + 4) * kU * rstd[c];
    for (size_t b = 0; b < B; ++b) out_mean[c] += res.out[b * C + c];
    out_mean[c] /= B;
    for (size_t b = 0; b < B; ++b)
      out_var[c] += (res.out[b * C + c] - out_mean[c]) * (res.out[b * C + c] - out_mean[c]);
    out_var[c] /= B;
    out_var_expected[c] = var[c] / (var[c] + f.eps);
    // Each output x * scale + shift rounds by ~2 u of |x * scale| + |shift|,
    // and shift inherits the mean's error times scale: (B + 8) u * rstd * (max|x| + |mean|).
    out_mean_tol[c] = (B + 8) * kU * rstd[c] * (max_abs + std::fabs(mean[c]));
    // The variance of the outputs is rstd^2 var: twice rstd's relative error
    // (B + 6 + 6) u; plus each output's own rounding e_b <= 2 u * rstd *
    // (|x_b| + |mean|), which moves a variance s^2 by <= 2 s max|e| + max|e|^2.
    const double e = 2 * kU * rstd[c] * (max_abs + std::fabs(mean[c]));
    out_var_tol[c] =
        (B + 12) * kU * out_var_expected[c] + 2 * std::sqrt(out_var_expected[c]) * e + e * e;
  }
  EXPECT_TRUE(AllNear("cached mean", mean, res.mean.data(), mean_tol));
  EXPECT_TRUE(AllNear("cached var", var, res.var.data(), var_tol));
  EXPECT_TRUE(AllNear("cached rstd", rstd, res.rstd.data(), rstd_tol));
  EXPECT_TRUE(AllNear("output mean", std::vector<double>(C, 0.0), out_mean.data(), out_mean_tol));
  EXPECT_TRUE(AllNear("output variance (expected: v / (v + eps))", out_var_expected, out_var.data(),
                      out_var_tol));
}

// With gamma and beta, and an eps large enough to matter: output mean beta,
// standard deviation gamma * sqrt(v / (v + eps)).
TEST_P(BatchNormSizes, TrainOutputHasMeanBetaAndStdGamma) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 0.5f, 50 + B + C);
  const BatchNormFixture::Result res = f.forward();
  std::vector<double> out_mean(C, 0.0), out_std(C, 0.0), beta(C), std_expected(C), mean_tol(C),
      std_tol(C);
  for (size_t c = 0; c < C; ++c) {
    double mean, var, max_abs = 0;
    f.stats(c, &mean, &var);
    for (size_t b = 0; b < B; ++b) max_abs = std::max(max_abs, std::fabs(double(f.in[b * C + c])));
    for (size_t b = 0; b < B; ++b) out_mean[c] += res.out[b * C + c];
    out_mean[c] /= B;
    for (size_t b = 0; b < B; ++b)
      out_std[c] += (res.out[b * C + c] - out_mean[c]) * (res.out[b * C + c] - out_mean[c]);
    out_std[c] = std::sqrt(out_std[c] / B);
    beta[c] = f.beta[c];
    std_expected[c] = f.gamma[c] * std::sqrt(var / (var + f.eps));
    const double rstd = 1.0 / std::sqrt(var + f.eps);
    // As in TrainOutputIsStandardized, scaled by gamma, plus beta's rounding
    // in the shift. The standard deviation: half the variance's relative
    // error plus gamma * rstd's rounding, (B + 14) / 2 u; plus the rms of the
    // outputs' own rounding, <= 2 u (|x * scale| + |mean * scale| + |beta|).
    const double scale = f.gamma[c] * rstd;
    mean_tol[c] = (B + 8) * kU * (scale * (max_abs + std::fabs(mean)) + std::fabs(f.beta[c]));
    std_tol[c] = (B + 14) / 2.0 * kU * std_expected[c] +
                 2 * kU * (scale * (max_abs + std::fabs(mean)) + std::fabs(f.beta[c]));
  }
  EXPECT_TRUE(AllNear("output mean (expected: beta)", beta, out_mean.data(), mean_tol));
  EXPECT_TRUE(AllNear("output std (expected: gamma * sqrt(v / (v + eps)))", std_expected,
                      out_std.data(), std_tol));
}

// Inference mode reads only the running statistics: the output is the closed
// form (x - rm) / sqrt(rv + eps) * gamma + beta, and each row is the same
// whatever else is in the batch.
TEST_P(BatchNormSizes, InferenceUsesOnlyRunningStatistics) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 1e-3f, 60 + B + C);
  Rng rng(70 + B + C);
  // Running statistics far from this batch's own, so using the batch's would show.
  const std::vector<float> rm = rng.uniform_vec(C, -3, 3);
  const std::vector<float> rv = rng.uniform_vec(C, 0.2, 5);
  std::vector<float> out(B * C);
  batchnorm_forward_infer(out.data(), f.in.data(), f.gamma.data(), f.beta.data(), rm.data(),
                          rv.data(), B, C, f.eps);
  std::vector<double> expected(B * C), tol(B * C);
  for (size_t b = 0; b < B; ++b)
    for (size_t c = 0; c < C; ++c) {
      const double scale = f.gamma[c] / std::sqrt(static_cast<double>(rv[c]) + f.eps);
      const double x = f.in[b * C + c];
      expected[b * C + c] = (x - rm[c]) * scale + f.beta[c];
      // scale = gamma / sqrt(rv + eps) carries 3 u (add, sqrt, divide);
      // shift = beta - rm * scale and x * scale + shift round twice each.
      tol[b * C + c] =
          6 * kU * (std::fabs(x) + std::fabs(rm[c])) * scale + 2 * kU * std::fabs(f.beta[c]);
    }
  EXPECT_TRUE(AllNear("out", expected, out.data(), tol));
  for (size_t b = 0; b < B; ++b) {
    std::vector<float> row(C);
    batchnorm_forward_infer(row.data(), f.in.data() + b * C, f.gamma.data(), f.beta.data(),
                            rm.data(), rv.data(), 1, C, f.eps);
    EXPECT_TRUE(BitEqual("row " + std::to_string(b) + " alone vs in the batch", out.data() + b * C,
                         row.data(), C));
  }
}

INSTANTIATE_TEST_SUITE_P(
    BatchNorm, BatchNormSizes,
    ::testing::Values(std::make_pair(size_t(2), size_t(3)), std::make_pair(size_t(6), size_t(5)),
                      std::make_pair(size_t(16), size_t(7)), std::make_pair(size_t(5), size_t(70))),
    [](const ::testing::TestParamInfo<std::pair<size_t, size_t>>& p) {
      return "B" + std::to_string(p.param.first) + "_C" + std::to_string(p.param.second);
    });

// ---- batch renormalization -----------------------------------------------------------------

struct RenormResult {
  std::vector<float> out, mean, var, rstd, r, d;
};

RenormResult renorm_forward(const BatchNormFixture& f, const std::vector<float>& rm,
                            const std::vector<float>& rv, float rmax, float dmax) {
  const size_t B = f.B, C = f.C;
  RenormResult res{std::vector<float>(B * C), std::vector<float>(C), std::vector<float>(C),
                   std::vector<float>(C),     std::vector<float>(C), std::vector<float>(C)};
  batchnorm_renorm_forward_train(res.out.data(), res.mean.data(), res.var.data(), res.rstd.data(),
                                 res.r.data(), res.d.data(), f.in.data(), f.gamma.data(),
                                 f.beta.data(), rm.data(), rv.data(), B, C, f.eps, rmax, dmax);
  return res;
}

// rmax = 1, dmax = 0 makes r = 1 and d = 0: plain batch norm, bit for bit,
// forward and backward.
TEST_P(BatchNormSizes, RenormWithNoCorrectionIsPlainBatchNorm) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 1e-5f, 90 + B + C);
  Rng rng(91 + B + C);
  const std::vector<float> rm = rng.uniform_vec(C, -3, 3), rv = rng.uniform_vec(C, 0.2, 5);
  const BatchNormFixture::Result plain = f.forward();
  const RenormResult re = renorm_forward(f, rm, rv, 1.0f, 0.0f);
  EXPECT_TRUE(BitEqual("out", plain.out.data(), re.out.data(), B * C));
  EXPECT_TRUE(AllNear("r", std::vector<double>(C, 1.0), re.r.data(), 0.0));
  EXPECT_TRUE(AllNear("d", std::vector<double>(C, 0.0), re.d.data(), 0.0));
  std::vector<float> din(B * C, 0.0f), dgamma(C, 0.0f), dbeta(C, 0.0f);
  f.backward(din.data(), dgamma.data(), dbeta.data());
  std::vector<float> rdin(B * C, 0.0f), rdgamma(C, 0.0f), rdbeta(C, 0.0f);
  batchnorm_renorm_backward(rdin.data(), rdgamma.data(), rdbeta.data(), f.r.data(), f.in.data(),
                            f.gamma.data(), re.mean.data(), re.rstd.data(), re.r.data(),
                            re.d.data(), B, C);
  EXPECT_TRUE(BitEqual("din", din.data(), rdin.data(), B * C));
  EXPECT_TRUE(BitEqual("dgamma", dgamma.data(), rdgamma.data(), C));
  EXPECT_TRUE(BitEqual("dbeta", dbeta.data(), rdbeta.data(), C));
}

// Unclipped, r * xhat + d = (x - running_mean) / sqrt(running_var + eps): the
// training output is the inference closed form of the running statistics.
TEST_P(BatchNormSizes, RenormUnclippedEqualsRunningStatisticsForm) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 1e-3f, 100 + B + C);
  Rng rng(101 + B + C);
  const std::vector<float> rm = rng.uniform_vec(C, -3, 3), rv = rng.uniform_vec(C, 0.2, 5);
  const RenormResult re = renorm_forward(f, rm, rv, 1e6f, 1e6f);
  std::vector<double> expected(B * C), tol(B * C);
  for (size_t c = 0; c < C; ++c) {
    double mean, var, max_abs = 0;
    f.stats(c, &mean, &var);
    for (size_t b = 0; b < B; ++b) max_abs = std::max(max_abs, std::fabs(double(f.in[b * C + c])));
    const double sigma = std::sqrt(double(rv[c]) + f.eps);
    const double scale = f.gamma[c] / sigma;
    for (size_t b = 0; b < B; ++b) {
      expected[b * C + c] = (f.in[b * C + c] - rm[c]) * scale + f.beta[c];
      // The float path goes through the batch statistics: rstd and r carry
      // (B + 6) / 2 + 4 u each, d and the shift the mean's (B + 3) u max|x|
      // over sigma; a few more roundings in the products: (B + 16) u of
      // every magnitude involved.
      tol[b * C + c] =
          (B + 16) * kU *
          (scale * (max_abs + std::fabs(mean) + std::fabs(rm[c])) + std::fabs(f.beta[c]));
    }
  }
  EXPECT_TRUE(AllNear("out", expected, re.out.data(), tol));
}

// Clipped r and d are constants of the input (a small move of x leaves them
// at the bound), which is exactly what the backward assumes, so finite
// differences check it. Running statistics are chosen so that the unclipped
// r is 3 or 1/3 and the unclipped d is +-2, against rmax = 1.5, dmax = 0.5.
TEST_P(BatchNormSizes, RenormClippedGradientsMatchFiniteDifferences) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 1e-5f, 110 + B + C);
  std::vector<float> rm(C), rv(C);
  for (size_t c = 0; c < C; ++c) {
    double mean, var;
    f.stats(c, &mean, &var);
    const double sigma_r = std::sqrt(var + f.eps) * (c % 2 == 0 ? 3.0 : 1.0 / 3.0);
    rv[c] = static_cast<float>(sigma_r * sigma_r - f.eps);
    rm[c] = static_cast<float>(mean + (c % 3 == 0 ? 2.0 : -2.0) * sigma_r);
  }
  const float rmax = 1.5f, dmax = 0.5f;
  const RenormResult re = renorm_forward(f, rm, rv, rmax, dmax);
  for (size_t c = 0; c < C; ++c) {
    ASSERT_EQ(re.r[c], c % 2 == 0 ? 1.0f / rmax : rmax) << "feature " << c << ": r not clipped";
    ASSERT_EQ(re.d[c], c % 3 == 0 ? -dmax : dmax) << "feature " << c << ": d not clipped";
  }
  std::vector<float> din(B * C, 0.0f), dgamma(C, 0.0f), dbeta(C, 0.0f);
  batchnorm_renorm_backward(din.data(), dgamma.data(), dbeta.data(), f.r.data(), f.in.data(),
                            f.gamma.data(), re.mean.data(), re.rstd.data(), re.r.data(),
                            re.d.data(), B, C);
  const double scale = abs_dot(re.out, f.r);
  auto loss = [&] { return dot(renorm_forward(f, rm, rv, rmax, dmax).out, f.r); };
  EXPECT_TRUE(GradientMatches("din", numeric_gradient(loss, f.in.data(), f.in.size()), din, scale));
  EXPECT_TRUE(GradientMatches("dgamma", numeric_gradient(loss, f.gamma.data(), C), dgamma, scale));
  EXPECT_TRUE(GradientMatches("dbeta", numeric_gradient(loss, f.beta.data(), C), dbeta, scale));
}

TEST_P(BatchNormSizes, RenormBackwardAccumulates) {
  const size_t B = GetParam().first, C = GetParam().second;
  BatchNormFixture f(B, C, 1e-5f, 120 + B + C);
  Rng rng(121 + B + C);
  const std::vector<float> rm = rng.uniform_vec(C, -3, 3), rv = rng.uniform_vec(C, 0.2, 5);
  const RenormResult re = renorm_forward(f, rm, rv, 2.0f, 1.0f);
  std::vector<float> din(B * C, 0.0f), dgamma(C, 0.0f), dbeta(C, 0.0f);
  auto backward = [&] {
    batchnorm_renorm_backward(din.data(), dgamma.data(), dbeta.data(), f.r.data(), f.in.data(),
                              f.gamma.data(), re.mean.data(), re.rstd.data(), re.r.data(),
                              re.d.data(), B, C);
  };
  backward();
  const std::vector<float> din1 = din, dgamma1 = dgamma, dbeta1 = dbeta;
  backward();
  EXPECT_TRUE(Doubled("din", din1, din, 0.0));  // one finished value added: exact
  EXPECT_TRUE(Doubled("dgamma", dgamma1, dgamma, 0.0));
  EXPECT_TRUE(Doubled("dbeta", dbeta1, dbeta, 0.0));
}

// running = m * running + (1 - m) * batch, so with the same batch statistics s
// every step, from r0: r_k = m^k r0 + (1 - m^k) s. `unbiased` feeds the
// variance as var * B / (B - 1).
TEST(BatchNormRunning, EmaMatchesClosedFormAfterKSteps) {
  const size_t C = 4, B = 5, K = 20;
  Rng rng(80);
  const std::vector<float> mean = rng.uniform_vec(C, -2, 2), var = rng.uniform_vec(C, 0.1, 4);
  const std::vector<float> r0_mean = rng.uniform_vec(C, -2, 2), r0_var = rng.uniform_vec(C, 0.1, 4);
  for (double m : {0.0, 0.5, 0.9, 0.99})
    for (bool unbiased : {false, true}) {
      std::vector<float> rmean = r0_mean, rvar = r0_var;
      const double corr = unbiased ? double(B) / double(B - 1) : 1.0;
      for (size_t k = 1; k <= K; ++k) {
        batchnorm_update_running(rmean.data(), rvar.data(), mean.data(), var.data(), B, C, m,
                                 unbiased);
        std::vector<double> em(C), ev(C), tm(C), tv(C);
        const double mk = std::pow(m, double(k));
        for (size_t c = 0; c < C; ++c) {
          em[c] = mk * r0_mean[c] + (1 - mk) * mean[c];
          ev[c] = mk * r0_var[c] + (1 - mk) * var[c] * corr;
          // Each step computes in double and rounds once to float (u of the
          // running value); old rounding errors only shrink (times m). So
          // after k steps at most k u * max(|r0|, |s|).
          tm[c] = k * kU * std::max(std::fabs(double(r0_mean[c])), std::fabs(double(mean[c])));
          tv[c] = k * kU * std::max(double(r0_var[c]), var[c] * corr);
        }
        const std::string at = "m=" + fmt(m) + (unbiased ? " unbiased" : " biased") + " after " +
                               std::to_string(k) + " steps";
        ASSERT_TRUE(AllNear("running mean", em, rmean.data(), tm)) << at;
        ASSERT_TRUE(AllNear("running var", ev, rvar.data(), tv)) << at;
      }
    }
}

// past_weight = (n - 1) / n makes the running value the plain mean of the n
// batch statistics seen.
TEST(BatchNormRunning, CumulativeWeightGivesPlainMean) {
  const size_t C = 3, B = 4, K = 12;
  Rng rng(81);
  std::vector<float> rmean(C, 0.0f), rvar(C, 1.0f);
  std::vector<double> sum_mean(C, 0.0), sum_var(C, 0.0);
  for (size_t n = 1; n <= K; ++n) {
    const std::vector<float> mean = rng.uniform_vec(C, -2, 2), var = rng.uniform_vec(C, 0.1, 4);
    batchnorm_update_running(rmean.data(), rvar.data(), mean.data(), var.data(), B, C,
                             double(n - 1) / double(n), true);
    std::vector<double> em(C), ev(C);
    for (size_t c = 0; c < C; ++c) {
      sum_mean[c] += mean[c];
      sum_var[c] += var[c] * double(B) / double(B - 1);
      em[c] = sum_mean[c] / n;
      ev[c] = sum_var[c] / n;
    }
    // One float rounding per step of values <= 4 * 4/3: n * u * 6.
    ASSERT_TRUE(AllNear("running mean", em, rmean.data(), n * kU * 6)) << "after " << n << " steps";
    ASSERT_TRUE(AllNear("running var", ev, rvar.data(), n * kU * 6)) << "after " << n << " steps";
  }
}

// ---- activations ----------------------------------------------------------------------

using Forward = void (*)(float*, const float*, size_t);
using Backward = void (*)(float*, const float*, const float*, size_t);

struct Activation {
  const char* name;
  Forward forward;
  Backward backward;
  double (*exact)(double);
};

void PrintTo(const Activation& a, std::ostream* os) { *os << a.name; }

class Activations : public ::testing::TestWithParam<Activation> {};

std::vector<float> activation_input(size_t n, uint64_t seed) {
  // |x| in [0.1, 3]: away from ReLU's kink by more than h, within the range
  // where sigmoid and tanh have slopes worth checking.
  Rng rng(seed);
  std::vector<float> x(n);
  for (float& v : x) v = static_cast<float>((rng.uniform() < 0.5 ? -1 : 1) * rng.uniform(0.1, 3));
  return x;
}

TEST_P(Activations, ForwardMatchesDouble) {
  const Activation a = GetParam();
  const size_t n = 37;
  const std::vector<float> in = activation_input(n, 90);
  std::vector<float> out(n);
  a.forward(out.data(), in.data(), n);
  std::vector<double> expected(n), tol(n);
  for (size_t i = 0; i < n; ++i) {
    expected[i] = a.exact(in[i]);
    // libm's float exp/tanh are within a few ulp; sigmoid adds a divide and an add.
    tol[i] = 8 * kU * std::fabs(expected[i]);
  }
  EXPECT_TRUE(AllNear(a.name, expected, out.data(), tol));
}

TEST_P(Activations, GradientMatchesFiniteDifferences) {
  const Activation a = GetParam();
  const size_t n = 23;
  std::vector<float> in = activation_input(n, 91);
  Rng rng(92);
  const std::vector<float> r = rng.uniform_vec(n, -1, 1);
  std::vector<float> out(n), din(n, 0.0f);
  auto loss = [&] {
    a.forward(out.data(), in.data(), n);
    return dot(out, r);
  };
  loss();
  const double scale = abs_dot(out, r);
  a.backward(din.data(), r.data(), out.data(), n);
  EXPECT_TRUE(GradientMatches(std::string("din of ") + a.name, numeric_gradient(loss, in.data(), n),
                              din, scale));
}

TEST_P(Activations, BackwardAccumulates) {
  const Activation a = GetParam();
  const size_t n = 23;
  const std::vector<float> in = activation_input(n, 93);
  Rng rng(94);
  const std::vector<float> r = rng.uniform_vec(n, -1, 1);
  std::vector<float> out(n), din(n, 0.0f);
  a.forward(out.data(), in.data(), n);
  a.backward(din.data(), r.data(), out.data(), n);
  const std::vector<float> first = din;
  a.backward(din.data(), r.data(), out.data(), n);
  EXPECT_TRUE(Doubled(a.name, first, din, 0.0));  // one finished value added: exact
}

INSTANTIATE_TEST_SUITE_P(
    Layers, Activations,
    ::testing::Values(
        Activation{"relu", relu_forward, relu_backward, [](double x) { return x > 0 ? x : 0.0; }},
        Activation{"sigmoid", sigmoid_forward, sigmoid_backward,
                   [](double x) { return 1.0 / (1.0 + std::exp(-x)); }},
        Activation{"tanh", tanh_forward, tanh_backward, [](double x) { return std::tanh(x); }}),
    [](const ::testing::TestParamInfo<Activation>& p) { return std::string(p.param.name); });

TEST(Sigmoid, SaturatesWithoutOverflow) {
  const float in[] = {-200.0f, -90.0f, 90.0f, 200.0f};
  float out[4];
  sigmoid_forward(out, in, 4);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(std::isfinite(out[i])) << "index " << i;
    EXPECT_GE(out[i], 0.0f) << "index " << i;
    EXPECT_LE(out[i], 1.0f) << "index " << i;
  }
  EXPECT_EQ(out[3], 1.0f);
  EXPECT_LT(out[0], 1e-30f);
}

// ---- losses --------------------------------------------------------------------------------

struct CrossEntropyFixture {
  size_t B = 4, K = 5;
  std::vector<float> logits;
  std::vector<int32_t> labels = {0, 3, 4, 2};
  explicit CrossEntropyFixture(uint64_t seed) { logits = Rng(seed).uniform_vec(B * K, -3, 3); }
  // The mean over the batch of logsumexp(z) - z[label], in double.
  double exact_loss() const {
    double total = 0;
    for (size_t b = 0; b < B; ++b) {
      double zmax = -INFINITY, sum = 0;
      for (size_t k = 0; k < K; ++k) zmax = std::max(zmax, double(logits[b * K + k]));
      for (size_t k = 0; k < K; ++k) sum += std::exp(logits[b * K + k] - zmax);
      total += std::log(sum) + zmax - logits[b * K + labels[b]];
    }
    return total / B;
  }
};

TEST(SoftmaxCrossEntropy, LossMatchesDouble) {
  CrossEntropyFixture f(100);
  std::vector<float> dlogits(f.B * f.K);
  const double loss = softmax_crossentropy_forward_backward(dlogits.data(), f.logits.data(),
                                                            f.labels.data(), f.B, f.K);
  // Per row: K float exps (< 1 ulp each) summed, sum in [1, K]: (K + 1) u
  // relative, which log turns into absolute; log's own rounding of a value
  // <= log K < 2 adds 2 u. zmax and z[label] enter exactly in double.
  EXPECT_TRUE(Near("training loss", f.exact_loss(), loss, (f.K + 4) * kU));
  size_t correct = 0;
  const double eval_loss =
      softmax_crossentropy_forward(&correct, f.logits.data(), f.labels.data(), f.B, f.K);
  // Evaluation sums in double; only z - zmax is rounded to float: 2 u * 6 per row.
  EXPECT_TRUE(Near("evaluation loss", f.exact_loss(), eval_loss, 12 * kU));
  size_t expected_correct = 0;
  for (size_t b = 0; b < f.B; ++b) {
    const float* z = f.logits.data() + b * f.K;
    expected_correct += size_t(std::max_element(z, z + f.K) - z) == size_t(f.labels[b]);
  }
  EXPECT_EQ(correct, expected_correct);
}

TEST(SoftmaxCrossEntropy, GradientMatchesFiniteDifferences) {
  CrossEntropyFixture f(101);
  std::vector<float> dlogits(f.B * f.K), scratch(f.B * f.K);
  softmax_crossentropy_forward_backward(dlogits.data(), f.logits.data(), f.labels.data(), f.B, f.K);
  auto loss = [&] {
    return softmax_crossentropy_forward_backward(scratch.data(), f.logits.data(), f.labels.data(),
                                                 f.B, f.K);
  };
  // The loss itself is the scalar: its float32 rounding is (K + 4) u (see
  // LossMatchesDouble), playing the part of 4 u * sum|out R|.
  const double scale = (f.K + 4) / 4.0;
  EXPECT_TRUE(GradientMatches("dlogits", numeric_gradient(loss, f.logits.data(), f.logits.size()),
                              dlogits, scale));
}

TEST(SoftmaxCrossEntropy, GradientIsWrittenNotAdded) {
  CrossEntropyFixture f(102);
  std::vector<float> clean(f.B * f.K, 0.0f), dirty(f.B * f.K, 123.0f);
  softmax_crossentropy_forward_backward(clean.data(), f.logits.data(), f.labels.data(), f.B, f.K);
  softmax_crossentropy_forward_backward(dirty.data(), f.logits.data(), f.labels.data(), f.B, f.K);
  EXPECT_TRUE(BitEqual("dlogits", clean.data(), dirty.data(), clean.size()));
}

TEST(SoftmaxCrossEntropy, LargeLogitsStayFinite) {
  const float logits[] = {1000.0f, -1000.0f, 0.0f, -1000.0f, 1000.0f, 999.0f};
  const int32_t labels[] = {1, 2};
  float dlogits[6];
  const double loss = softmax_crossentropy_forward_backward(dlogits, logits, labels, 2, 3);
  // Row 0: logsumexp = 1000 (+e^-1000), loss 2000; row 1: 1000 + log(1 + e^-1) - 999.
  const double expected = (2000.0 + (1.0 + std::log1p(std::exp(-1.0)))) / 2;
  // Row 0's sum is exactly 1 (log 0); row 1's sum 1 + e^-1 rounds twice and
  // its log once: 3 u per row, halved by the mean.
  EXPECT_TRUE(Near("loss", expected, loss, 2 * kU));
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(std::isfinite(dlogits[i])) << "index " << i;
}

TEST(Mse, LossMatchesDoubleAndGradientIsWritten) {
  const size_t B = 3, K = 4;
  Rng rng(110);
  const std::vector<float> out = rng.uniform_vec(B * K, -2, 2),
                           target = rng.uniform_vec(B * K, -2, 2);
  std::vector<float> dout(B * K, 55.0f);  // garbage: the loss writes, not adds
  const double loss = mse_forward_backward(dout.data(), out.data(), target.data(), B, K);
  double exact = 0;
  std::vector<double> dexact(B * K);
  for (size_t i = 0; i < B * K; ++i) {
    const double d = double(out[i]) - target[i];
    exact += d * d;
    dexact[i] = 2 * d / (B * K);
  }
  exact /= B * K;
  // out - target is rounded once in float (u relative), squared in double: 2 u.
  EXPECT_TRUE(Near("training loss", exact, loss, 2 * kU * exact));
  // Evaluation differences floats in double, exactly: only double rounding.
  EXPECT_TRUE(
      Near("evaluation loss", exact, mse_forward(out.data(), target.data(), B, K), 1e-15 * exact));
  // dout = fl(2/n) * fl(out - target): three roundings.
  std::vector<double> tol(B * K);
  for (size_t i = 0; i < B * K; ++i) tol[i] = 3 * kU * std::fabs(dexact[i]);
  EXPECT_TRUE(AllNear("dout", dexact, dout.data(), tol));
}

TEST(Mse, GradientMatchesFiniteDifferences) {
  const size_t B = 3, K = 4;
  Rng rng(111);
  std::vector<float> out = rng.uniform_vec(B * K, -2, 2);
  const std::vector<float> target = rng.uniform_vec(B * K, -2, 2);
  std::vector<float> dout(B * K), scratch(B * K);
  const double loss0 = mse_forward_backward(dout.data(), out.data(), target.data(), B, K);
  auto loss = [&] { return mse_forward_backward(scratch.data(), out.data(), target.data(), B, K); };
  // The loss rounds by ~2 u of itself (LossMatchesDouble).
  EXPECT_TRUE(GradientMatches("dout", numeric_gradient(loss, out.data(), out.size()), dout, loss0));
}

TEST(Softmax, RowsMatchDoubleAndSumToOne) {
  const size_t B = 3, K = 7;
  std::vector<float> in = Rng(120).uniform_vec(B * K, -5, 5);
  in[0] = 500.0f;  // large logits must not overflow
  in[K] = -500.0f;
  std::vector<float> out(B * K);
  softmax_forward(out.data(), in.data(), B, K);
  std::vector<double> expected(B * K), tol(B * K);
  for (size_t b = 0; b < B; ++b) {
    double zmax = -INFINITY, sum = 0;
    for (size_t k = 0; k < K; ++k) zmax = std::max(zmax, double(in[b * K + k]));
    for (size_t k = 0; k < K; ++k) sum += std::exp(in[b * K + k] - zmax);
    for (size_t k = 0; k < K; ++k) {
      expected[b * K + k] = std::exp(in[b * K + k] - zmax) / sum;
      // float exp (a few u), a sum of K terms, a reciprocal and a multiply.
      tol[b * K + k] = (K + 8) * kU * expected[b * K + k] + 1e-45;
    }
  }
  EXPECT_TRUE(AllNear("softmax", expected, out.data(), tol));
  // Aliasing in and out is allowed.
  std::vector<float> in_place = in;
  softmax_forward(in_place.data(), in_place.data(), B, K);
  EXPECT_TRUE(BitEqual("softmax in place", out.data(), in_place.data(), out.size()));
}

}  // namespace
