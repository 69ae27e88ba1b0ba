// Convolution, per-channel batch norm and pooling: forward against direct
// double loops, backward against finite differences (gradcheck.h explains the
// tolerance). Every gradient buffer starts at 0.5, not 0, and the check
// subtracts 0.5: a backward that overwrote instead of adding would be off by 0.5.
#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "gradcheck.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

constexpr float kPrefill = 0.5f;

std::vector<float> prefilled(size_t n) { return std::vector<float>(n, kPrefill); }
std::vector<float> minus_prefill(const std::vector<float>& g) {
  std::vector<float> out(g.size());
  for (size_t i = 0; i < g.size(); ++i) out[i] = g[i] - kPrefill;
  return out;
}

// ---- conv2d ---------------------------------------------------------------------

struct ConvCase {
  const char* name;
  size_t B, C, H, W, F, KH, KW, SH, SW, PT, PL, PB, PR;  // PB, PR: padding below and right
  bool bias;
  size_t DH = 1, DW = 1;  // dilation
};

void PrintTo(const ConvCase& c, std::ostream* os) { *os << c.name; }

Conv2dGeometry geometry(const ConvCase& c) {
  Conv2dGeometry g{c.C, c.H, c.W, c.F, c.KH, c.KW, c.SH, c.SW, c.PT, c.PL, 0, 0};
  g.DH = c.DH;
  g.DW = c.DW;
  g.OH = (c.H + c.PT + c.PB - (c.KH - 1) * c.DH - 1) / c.SH + 1;
  g.OW = (c.W + c.PL + c.PR - (c.KW - 1) * c.DW - 1) / c.SW + 1;
  return g;
}

// Odd widths, stride 2, 'same' (odd kernel: equal padding; even kernel: one
// more below and right, as PyTorch pads), 1x1 pointwise and strided 1x1, a
// kernel as large as the input, and enough filters and positions to cross the
// GEMM's 8-column panels and 4-row tiles.
const ConvCase kConvCases[] = {
    {"k3_same", 2, 2, 5, 7, 3, 3, 3, 1, 1, 1, 1, 1, 1, true},
    {"k3_valid_nobias", 2, 3, 6, 5, 4, 3, 3, 1, 1, 0, 0, 0, 0, false},
    {"k3_stride2_pad1", 2, 2, 7, 6, 5, 3, 3, 2, 2, 1, 1, 1, 1, true},
    {"k2x3_same_even", 2, 2, 5, 6, 3, 2, 3, 1, 1, 0, 1, 1, 1, true},
    {"k4_same_even", 1, 1, 6, 5, 2, 4, 4, 1, 1, 1, 1, 2, 2, true},
    {"pointwise", 3, 4, 3, 5, 9, 1, 1, 1, 1, 0, 0, 0, 0, true},
    {"pointwise_stride2", 2, 3, 5, 5, 2, 1, 1, 2, 2, 0, 0, 0, 0, false},
    {"kernel_fills_input", 2, 2, 3, 4, 3, 3, 4, 1, 1, 0, 0, 0, 0, true},
    {"stride2x1_pad0x2", 2, 1, 6, 4, 6, 3, 2, 2, 1, 0, 2, 0, 2, true},
    // Dilation (im2col and the packed GEMM): taps 2 and 3 apart, with padding and stride,
    // and padding unequal on the two sides.
    {"k3_dilation2_same", 2, 2, 7, 6, 3, 3, 3, 1, 1, 2, 2, 2, 2, true, 2, 2},
    {"k2x3_dilation3x2_stride2", 2, 3, 9, 8, 4, 2, 3, 2, 2, 1, 0, 0, 1, false, 3, 2},
    {"k3_asymmetric_pads", 2, 2, 5, 6, 3, 3, 3, 1, 1, 2, 0, 0, 1, true},
};

class Conv2dCases : public ::testing::TestWithParam<ConvCase> {};

struct ConvFixture {
  ConvCase c;
  Conv2dGeometry g;
  std::vector<float> in, weight, bias, r;
  explicit ConvFixture(const ConvCase& cc, uint64_t seed) : c(cc), g(geometry(cc)) {
    Rng rng(seed);
    in = rng.uniform_vec(c.B * c.C * c.H * c.W, -1, 1);
    weight = rng.uniform_vec(c.F * g.K(), -0.5, 0.5);
    bias = rng.uniform_vec(c.F, -0.5, 0.5);
    r = rng.uniform_vec(c.B * c.F * g.P(), -1, 1);
  }
  std::vector<float> forward() const {
    std::vector<float> out(c.B * c.F * g.P()), scratch(conv2d_scratch_size(g));
    conv2d_forward(out.data(), scratch.data(), in.data(), weight.data(),
                   c.bias ? bias.data() : nullptr, c.B, g);
    return out;
  }
  double loss() const { return dot(forward(), r); }
};

TEST_P(Conv2dCases, ForwardMatchesDoubleLoop) {
  ConvFixture f(GetParam(), 1);
  const ConvCase& c = f.c;
  const Conv2dGeometry& g = f.g;
  const std::vector<float> out = f.forward();
  std::vector<double> expected(out.size()), tol(out.size());
  for (size_t b = 0; b < c.B; ++b)
    for (size_t o = 0; o < c.F; ++o)
      for (size_t oy = 0; oy < g.OH; ++oy)
        for (size_t ox = 0; ox < g.OW; ++ox) {
          double s = c.bias ? f.bias[o] : 0.0, abs_sum = std::fabs(s);
          for (size_t ch = 0; ch < c.C; ++ch)
            for (size_t ky = 0; ky < c.KH; ++ky)
              for (size_t kx = 0; kx < c.KW; ++kx) {
                const long y = long(oy * c.SH + ky * c.DH) - long(c.PT);
                const long x = long(ox * c.SW + kx * c.DW) - long(c.PL);
                if (y < 0 || x < 0 || y >= long(c.H) || x >= long(c.W)) continue;
                const double t = double(f.in[((b * c.C + ch) * c.H + y) * c.W + x]) *
                                 f.weight[((o * c.C + ch) * c.KH + ky) * c.KW + kx];
                s += t;
                abs_sum += std::fabs(t);
              }
          const size_t i = ((b * c.F + o) * g.OH + oy) * g.OW + ox;
          expected[i] = s;
          tol[i] = (g.K() + 2) * kU * abs_sum;  // recursive summation bound
        }
  EXPECT_TRUE(AllNear("out", expected, out.data(), tol));
}

TEST_P(Conv2dCases, GradientsMatchFiniteDifferences) {
  ConvFixture f(GetParam(), 2);
  const ConvCase& c = f.c;
  std::vector<float> din = prefilled(f.in.size()), dweight = prefilled(f.weight.size()),
                     dbias = prefilled(c.F), scratch(conv2d_scratch_size(f.g));
  conv2d_backward(din.data(), dweight.data(), c.bias ? dbias.data() : nullptr, scratch.data(),
                  f.r.data(), f.in.data(), f.weight.data(), c.B, f.g);
  const double scale = abs_dot(f.forward(), f.r);
  auto loss = [&f] { return f.loss(); };
  EXPECT_TRUE(GradientMatches("din", numeric_gradient(loss, f.in.data(), f.in.size()),
                              minus_prefill(din), scale));
  EXPECT_TRUE(GradientMatches("dweight", numeric_gradient(loss, f.weight.data(), f.weight.size()),
                              minus_prefill(dweight), scale));
  if (c.bias)
    EXPECT_TRUE(GradientMatches("dbias", numeric_gradient(loss, f.bias.data(), c.F),
                                minus_prefill(dbias), scale));
  else
    EXPECT_TRUE(AllNear("dbias untouched", std::vector<double>(c.F, kPrefill), dbias.data(), 0.0));
}

// The first layer needs no input gradient: null din changes nothing else.
TEST_P(Conv2dCases, NullInputGradientIsSkipped) {
  ConvFixture f(GetParam(), 3);
  std::vector<float> scratch(conv2d_scratch_size(f.g));
  std::vector<float> din(f.in.size(), 0.0f), dw1(f.weight.size(), 0.0f), dw2 = dw1;
  conv2d_backward(din.data(), dw1.data(), nullptr, scratch.data(), f.r.data(), f.in.data(),
                  f.weight.data(), f.c.B, f.g);
  conv2d_backward(nullptr, dw2.data(), nullptr, scratch.data(), f.r.data(), f.in.data(),
                  f.weight.data(), f.c.B, f.g);
  EXPECT_TRUE(BitEqual("dweight", dw1.data(), dw2.data(), dw1.size()));
}

// One image through the layer equals that image's slice of the batch, bit for bit:
// the network's predict (one example) and predictBatch rely on it.
TEST_P(Conv2dCases, OneImageEqualsItsRowOfTheBatch) {
  ConvFixture f(GetParam(), 4);
  const std::vector<float> batch = f.forward();
  const size_t in_size = f.c.C * f.c.H * f.c.W, out_size = f.c.F * f.g.P();
  std::vector<float> scratch(conv2d_scratch_size(f.g)), one(out_size);
  for (size_t b = 0; b < f.c.B; ++b) {
    conv2d_forward(one.data(), scratch.data(), f.in.data() + b * in_size, f.weight.data(),
                   f.c.bias ? f.bias.data() : nullptr, 1, f.g);
    EXPECT_TRUE(
        BitEqual("image " + std::to_string(b), batch.data() + b * out_size, one.data(), out_size));
  }
}

INSTANTIATE_TEST_SUITE_P(Conv2d, Conv2dCases, ::testing::ValuesIn(kConvCases),
                         [](const ::testing::TestParamInfo<ConvCase>& p) { return p.param.name; });

// ---- conv2d at few output positions (inference) ------------------------------------

// The rows path (conv2d_rows_forward) against the general one: the same
// sums over the same terms in the same order, less the taps that only ever meet
// padding, so the same bits. Batches of 70, 17 and 7 cross its 64-row chunks.
struct RowsCase {
  ConvCase conv;
  std::vector<uint32_t> live;  // the taps expected to read the input
};

void PrintTo(const RowsCase& r, std::ostream* os) { *os << r.conv.name; }

const RowsCase kRowsCases[] = {
    {{"k3_pad1_on_1x1", 70, 5, 1, 1, 13, 3, 3, 1, 1, 1, 1, 1, 1, true}, {4}},
    {{"k3_stride2_pad1_on_2x2", 3, 3, 2, 2, 9, 3, 3, 2, 2, 1, 1, 1, 1, false}, {4, 5, 7, 8}},
    {{"k3_pad1_on_2x2", 17, 4, 2, 2, 11, 3, 3, 1, 1, 1, 1, 1, 1, true}, {0, 1, 2, 3, 4, 5, 6, 7, 8}},
    {{"pointwise_on_2x2", 17, 9, 2, 2, 10, 1, 1, 1, 1, 0, 0, 0, 0, true}, {0}},
    {{"pointwise_stride2_on_2x2", 5, 6, 2, 2, 8, 1, 1, 2, 2, 0, 0, 0, 0, false}, {0}},
    {{"k3_dilation2_pad2_on_2x2", 2, 3, 2, 2, 7, 3, 3, 1, 1, 2, 2, 2, 2, true, 2, 2}, {4}},
    {{"k3_valid_on_3x3", 2, 2, 3, 3, 5, 3, 3, 1, 1, 0, 0, 0, 0, true}, {0, 1, 2, 3, 4, 5, 6, 7, 8}},
    {{"k3_pad1_on_4x4", 17, 3, 4, 4, 9, 3, 3, 1, 1, 1, 1, 1, 1, true}, {0, 1, 2, 3, 4, 5, 6, 7, 8}},
    {{"pointwise_on_3x5", 7, 6, 3, 5, 12, 1, 1, 1, 1, 0, 0, 0, 0, false}, {0}},
};

class Conv2dRowsCases : public ::testing::TestWithParam<RowsCase> {};

TEST_P(Conv2dRowsCases, EqualsTheGeneralPathBitForBit) {
  ConvFixture f(GetParam().conv, 5);
  const ConvCase& c = f.c;
  ASSERT_TRUE(conv2d_rows_applies(f.g));
  const std::vector<uint32_t> taps = conv2d_live_taps(f.g);
  EXPECT_EQ(taps, GetParam().live);
  Rng rng(6);
  const std::vector<float> scale = rng.uniform_vec(c.F, 0.5, 1.5), shift = rng.uniform_vec(c.F, -0.5, 0.5);
  std::vector<float> packed(f32_packed_size(c.C * taps.size(), c.F));
  conv2d_rows_weights(packed.data(), f.weight.data(), taps, f.g);
  std::vector<float> rows_scratch(conv2d_rows_scratch_size(f.g, taps.size()));
  std::vector<float> scratch(conv2d_scratch_size(f.g));
  for (const bool bn : {false, true})
    for (const size_t B : {size_t(1), c.B}) {
      ConvEpilogue ep;
      ep.init = c.bias ? f.bias.data() : nullptr;
      std::vector<float> expected(B * c.F * f.g.P()), out(expected.size(), -7.0f);
      if (bn) {
        ep.scale = scale.data();
        ep.shift = shift.data();
        ep.relu = true;
        conv2d_batchnorm_relu_forward_infer(expected.data(), scratch.data(), f.in.data(), f.weight.data(), ep.init,
                                            ep.scale, ep.shift, true, B, f.g);
      } else {
        conv2d_forward(expected.data(), scratch.data(), f.in.data(), f.weight.data(), ep.init, B, f.g);
      }
      conv2d_rows_forward(out.data(), rows_scratch.data(), f.in.data(), packed.data(), taps, ep, B, f.g);
      EXPECT_TRUE(BitEqual(std::string(bn ? "batch norm and ReLU, " : "plain, ") + std::to_string(B) + " images",
                           expected.data(), out.data(), out.size()));
    }
}

TEST(Conv2dRows, AppliesAtSixteenOutputPositionsOrFewer) {
  Conv2dGeometry g{8, 5, 5, 8, 3, 3, 1, 1, 1, 1, 5, 5};
  EXPECT_FALSE(conv2d_rows_applies(g));  // 25 positions: the general path (Winograd here)
  EXPECT_TRUE(conv2d_winograd_applies(g));
  g.H = g.W = g.OH = g.OW = 4;
  EXPECT_TRUE(conv2d_rows_applies(g));
  EXPECT_FALSE(conv2d_winograd_applies(g));
}

INSTANTIATE_TEST_SUITE_P(Conv2dRows, Conv2dRowsCases, ::testing::ValuesIn(kRowsCases),
                         [](const ::testing::TestParamInfo<RowsCase>& p) { return p.param.conv.name; });

// ---- batch norm per channel -------------------------------------------------------

struct SpatialBatchNormFixture {
  size_t B, C, S;
  float eps;
  std::vector<float> in, gamma, beta, r;
  SpatialBatchNormFixture(size_t B_, size_t C_, size_t S_, float eps_, uint64_t seed)
      : B(B_), C(C_), S(S_), eps(eps_) {
    Rng rng(seed);
    // Per channel an offset and an exact spread over its B * S values (see
    // BatchNormFixture in layers_test.cpp for why the spread is standardized).
    in.resize(B * C * S);
    for (size_t c = 0; c < C; ++c) {
      const double offset = rng.uniform(-2, 2), spread = rng.uniform(0.5, 2);
      std::vector<double> z(B * S);
      double m = 0, v = 0;
      for (double& x : z) m += (x = rng.normal());
      m /= z.size();
      for (double x : z) v += (x - m) * (x - m);
      const double sd = std::sqrt(v / z.size());
      for (size_t b = 0; b < B; ++b)
        for (size_t s = 0; s < S; ++s)
          at(b, c, s) = static_cast<float>(offset + spread * (z[b * S + s] - m) / sd);
    }
    gamma = rng.uniform_vec(C, 0.5, 1.5);
    beta = rng.uniform_vec(C, -0.5, 0.5);
    r = rng.uniform_vec(B * C * S, -1, 1);
  }
  float& at(size_t b, size_t c, size_t s) { return in[(b * C + c) * S + s]; }
  struct Result {
    std::vector<float> out, mean, var, rstd, rr, d;
  };
  // Plain batch norm, or renorm with these running statistics and clips.
  Result forward(const float* rm = nullptr, const float* rv = nullptr, float rmax = 0,
                 float dmax = 0) const {
    Result res{std::vector<float>(B * C * S), std::vector<float>(C), std::vector<float>(C),
               std::vector<float>(C),         std::vector<float>(C), std::vector<float>(C)};
    if (rm == nullptr)
      batchnorm_forward_train(res.out.data(), res.mean.data(), res.var.data(), res.rstd.data(),
                              in.data(), gamma.data(), beta.data(), B, C, S, eps);
    else
      batchnorm_renorm_forward_train(res.out.data(), res.mean.data(), res.var.data(),
                                     res.rstd.data(), res.rr.data(), res.d.data(), in.data(),
                                     gamma.data(), beta.data(), rm, rv, B, C, S, eps, rmax, dmax);
    return res;
  }
};

struct BnSize {
  size_t B, C, S;
};
void PrintTo(const BnSize& z, std::ostream* os) { *os << z.B << "x" << z.C << "x" << z.S; }
class SpatialBatchNormSizes : public ::testing::TestWithParam<BnSize> {};

TEST_P(SpatialBatchNormSizes, GradientsMatchFiniteDifferences) {
  const BnSize z = GetParam();
  SpatialBatchNormFixture f(z.B, z.C, z.S, 1e-5f, 10 + z.B + z.C + z.S);
  const auto res = f.forward();
  std::vector<float> din = prefilled(f.in.size()), dgamma = prefilled(z.C), dbeta = prefilled(z.C);
  batchnorm_backward(din.data(), dgamma.data(), dbeta.data(), f.r.data(), f.in.data(),
                     f.gamma.data(), res.mean.data(), res.rstd.data(), z.B, z.C, z.S);
  const double scale = abs_dot(res.out, f.r);
  auto loss = [&f] { return dot(f.forward().out, f.r); };
  EXPECT_TRUE(GradientMatches("din", numeric_gradient(loss, f.in.data(), f.in.size()),
                              minus_prefill(din), scale));
  EXPECT_TRUE(GradientMatches("dgamma", numeric_gradient(loss, f.gamma.data(), z.C),
                              minus_prefill(dgamma), scale));
  EXPECT_TRUE(GradientMatches("dbeta", numeric_gradient(loss, f.beta.data(), z.C),
                              minus_prefill(dbeta), scale));
}

// Renorm with r and d inside their clips (so they depend on the batch, and
// backward treats them as constants, as Ioffe 2017 prescribes): the finite
// differences hold r and d fixed by using clips that make them the same
// constants at +-h, i.e. rmax = r, dmax = |d| exactly as measured.
TEST_P(SpatialBatchNormSizes, RenormGradientsMatchFiniteDifferences) {
  const BnSize z = GetParam();
  SpatialBatchNormFixture f(z.B, z.C, z.S, 1e-5f, 20 + z.B + z.C + z.S);
  Rng rng(21 + z.C);
  // Running statistics that clip r and d at every channel: the clipped values
  // are constants, so the finite differences see exactly what backward assumes.
  const std::vector<float> rm = rng.uniform_vec(z.C, 3, 4), rv = rng.uniform_vec(z.C, 20, 30);
  const float rmax = 1.5f, dmax = 0.1f;
  const auto res = f.forward(rm.data(), rv.data(), rmax, dmax);
  for (size_t c = 0; c < z.C; ++c) {
    ASSERT_EQ(res.rr[c], 1.0f / rmax) << "channel " << c << " r is not clipped";
    ASSERT_EQ(std::fabs(res.d[c]), dmax) << "channel " << c << " d is not clipped";
  }
  std::vector<float> din = prefilled(f.in.size()), dgamma = prefilled(z.C), dbeta = prefilled(z.C);
  batchnorm_renorm_backward(din.data(), dgamma.data(), dbeta.data(), f.r.data(), f.in.data(),
                            f.gamma.data(), res.mean.data(), res.rstd.data(), res.rr.data(),
                            res.d.data(), z.B, z.C, z.S);
  const double scale = abs_dot(res.out, f.r);
  auto loss = [&] { return dot(f.forward(rm.data(), rv.data(), rmax, dmax).out, f.r); };
  EXPECT_TRUE(GradientMatches("din", numeric_gradient(loss, f.in.data(), f.in.size()),
                              minus_prefill(din), scale));
  EXPECT_TRUE(GradientMatches("dgamma", numeric_gradient(loss, f.gamma.data(), z.C),
                              minus_prefill(dgamma), scale));
  EXPECT_TRUE(GradientMatches("dbeta", numeric_gradient(loss, f.beta.data(), z.C),
                              minus_prefill(dbeta), scale));
}

// Mean and biased variance per channel over all B * S values (BatchNorm2d),
// and the output's closed form (x - mean) / sqrt(var + eps) * gamma + beta.
TEST_P(SpatialBatchNormSizes, StatisticsArePerChannelOverBatchAndPositions) {
  const BnSize z = GetParam();
  SpatialBatchNormFixture f(z.B, z.C, z.S, 1e-3f, 30 + z.B + z.C + z.S);
  const auto res = f.forward();
  const size_t m = z.B * z.S;
  std::vector<double> mean(z.C), var(z.C), mean_tol(z.C), var_tol(z.C);
  std::vector<double> expected(f.in.size()), tol(f.in.size());
  for (size_t c = 0; c < z.C; ++c) {
    double s = 0, max_abs = 0;
    for (size_t b = 0; b < z.B; ++b)
      for (size_t i = 0; i < z.S; ++i) {
        s += f.at(b, c, i);
        max_abs = std::max(max_abs, std::fabs(double(f.at(b, c, i))));
      }
    mean[c] = s / m;
    double q = 0;
    for (size_t b = 0; b < z.B; ++b)
      for (size_t i = 0; i < z.S; ++i) q += (f.at(b, c, i) - mean[c]) * (f.at(b, c, i) - mean[c]);
    var[c] = q / m;
    // Float sums of S values per run (S u), the runs in double: (S + 3) u.
    mean_tol[c] = (z.S + 3) * kU * max_abs;
    var_tol[c] =
        (z.S + 6) * kU * var[c] + 2 * mean_tol[c] * std::sqrt(var[c]) + mean_tol[c] * mean_tol[c];
    const double rstd = 1.0 / std::sqrt(var[c] + f.eps);
    for (size_t b = 0; b < z.B; ++b)
      for (size_t i = 0; i < z.S; ++i) {
        const size_t k = (b * z.C + c) * z.S + i;
        const double x = f.in[k];
        expected[k] = (x - mean[c]) * rstd * f.gamma[c] + f.beta[c];
        // rstd carries the variance's relative error / 2 plus 3 u; the shift
        // the mean's error times scale; the output two roundings.
        const double scale = f.gamma[c] * rstd;
        tol[k] = ((z.S + 6) / 2.0 + 8) * kU * scale * (std::fabs(x) + std::fabs(mean[c])) +
                 scale * mean_tol[c] + 4 * kU * std::fabs(f.beta[c]) +
                 scale * std::fabs(x - mean[c]) * var_tol[c] / var[c];
      }
  }
  EXPECT_TRUE(AllNear("mean", mean, res.mean.data(), mean_tol));
  EXPECT_TRUE(AllNear("var", var, res.var.data(), var_tol));
  EXPECT_TRUE(AllNear("out", expected, res.out.data(), tol));
}

// Inference: only the running statistics, one example equal to its row.
TEST_P(SpatialBatchNormSizes, InferenceUsesOnlyRunningStatistics) {
  const BnSize z = GetParam();
  SpatialBatchNormFixture f(z.B, z.C, z.S, 1e-3f, 40 + z.B + z.C + z.S);
  Rng rng(41);
  const std::vector<float> rm = rng.uniform_vec(z.C, -3, 3), rv = rng.uniform_vec(z.C, 0.2, 5);
  std::vector<float> out(f.in.size());
  batchnorm_forward_infer(out.data(), f.in.data(), f.gamma.data(), f.beta.data(), rm.data(),
                          rv.data(), z.B, z.C, z.S, f.eps);
  std::vector<double> expected(out.size()), tol(out.size());
  for (size_t k = 0; k < out.size(); ++k) {
    const size_t c = (k / z.S) % z.C;
    const double scale = f.gamma[c] / std::sqrt(double(rv[c]) + f.eps), x = f.in[k];
    expected[k] = (x - rm[c]) * scale + f.beta[c];
    tol[k] = 6 * kU * (std::fabs(x) + std::fabs(rm[c])) * scale + 2 * kU * std::fabs(f.beta[c]);
  }
  EXPECT_TRUE(AllNear("out", expected, out.data(), tol));
  const size_t row = z.C * z.S;
  std::vector<float> one(row);
  for (size_t b = 0; b < z.B; ++b) {
    batchnorm_forward_infer(one.data(), f.in.data() + b * row, f.gamma.data(), f.beta.data(),
                            rm.data(), rv.data(), 1, z.C, z.S, f.eps);
    EXPECT_TRUE(BitEqual("example " + std::to_string(b), out.data() + b * row, one.data(), row));
  }
}

// m = B * S enters the running variance's unbiased rescaling: m / (m - 1).
TEST(SpatialBatchNorm, RunningVarianceUsesAllPositions) {
  SpatialBatchNormFixture f(2, 3, 5, 1e-5f, 50);
  const auto res = f.forward();
  std::vector<float> rm(3, 0.0f), rv(3, 1.0f);
  batchnorm_update_running(rm.data(), rv.data(), res.mean.data(), res.var.data(), 2 * 5, 3, 0.9,
                           true);
  std::vector<double> em(3), ev(3), tol_m(3), tol_v(3);
  for (size_t c = 0; c < 3; ++c) {
    em[c] = 0.1 * res.mean[c];
    ev[c] = 0.9 + 0.1 * res.var[c] * 10.0 / 9.0;
    tol_m[c] = 3 * kU * std::fabs(em[c]);
    tol_v[c] = 4 * kU * ev[c];
  }
  EXPECT_TRUE(AllNear("running mean", em, rm.data(), tol_m));
  EXPECT_TRUE(AllNear("running variance (expected: m = B * S = 10)", ev, rv.data(), tol_v));
}

INSTANTIATE_TEST_SUITE_P(SpatialBatchNorm, SpatialBatchNormSizes,
                         ::testing::Values(BnSize{2, 3, 4}, BnSize{3, 2, 9}, BnSize{1, 4, 6},
                                           BnSize{2, 70, 2}),
                         [](const ::testing::TestParamInfo<BnSize>& p) {
                           return "B" + std::to_string(p.param.B) + "_C" +
                                  std::to_string(p.param.C) + "_S" + std::to_string(p.param.S);
                         });

// ---- pooling ------------------------------------------------------------------------

struct PoolCase {
  const char* name;
  size_t B, C, H, W, KH, KW, SH, SW;
};
void PrintTo(const PoolCase& p, std::ostream* os) { *os << p.name; }
Pool2dGeometry pool_geometry(const PoolCase& p) {
  return {p.C, p.H, p.W, p.KH, p.KW, p.SH, p.SW, (p.H - p.KH) / p.SH + 1, (p.W - p.KW) / p.SW + 1};
}
// Even and odd sizes (an odd size drops its last row and column), overlapping
// windows (stride < size), rectangular windows, a window the size of the input.
const PoolCase kPoolCases[] = {
    {"k2", 2, 3, 4, 6, 2, 2, 2, 2},         {"k2_odd", 2, 2, 5, 7, 2, 2, 2, 2},
    {"k3_stride2", 1, 2, 7, 7, 3, 3, 2, 2}, {"k2x3", 2, 1, 4, 6, 2, 3, 2, 3},
    {"whole", 2, 2, 3, 5, 3, 5, 3, 5},      {"k3_stride1", 1, 1, 4, 5, 3, 3, 1, 1},
};
class Pool2dCases : public ::testing::TestWithParam<PoolCase> {};

// Distinct values at least 0.05 apart (more than 2 h), so moving one by +-h
// never changes which element of a window is the maximum.
std::vector<float> distinct_values(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(0.05 * (double(i) - 0.5 * double(n)));
  for (size_t i = n; i > 1; --i) std::swap(v[i - 1], v[size_t(rng.uniform() * i)]);
  return v;
}

TEST_P(Pool2dCases, MaxForwardAndGradient) {
  const PoolCase p = GetParam();
  const Pool2dGeometry g = pool_geometry(p);
  const size_t n_in = p.B * p.C * p.H * p.W, n_out = p.B * p.C * g.OH * g.OW;
  std::vector<float> in = distinct_values(n_in, 1);
  Rng rng(2);
  const std::vector<float> r = rng.uniform_vec(n_out, -1, 1);
  auto forward = [&](std::vector<int32_t>* argmax) {
    std::vector<float> out(n_out);
    maxpool2d_forward(out.data(), argmax ? argmax->data() : nullptr, in.data(), p.B, g);
    return out;
  };
  std::vector<int32_t> argmax(n_out);
  const std::vector<float> out = forward(&argmax);
  std::vector<double> expected(n_out);
  for (size_t plane = 0, k = 0; plane < p.B * p.C; ++plane)
    for (size_t oy = 0; oy < g.OH; ++oy)
      for (size_t ox = 0; ox < g.OW; ++ox, ++k) {
        double best = -INFINITY;
        for (size_t ky = 0; ky < p.KH; ++ky)
          for (size_t kx = 0; kx < p.KW; ++kx)
            best =
                std::max(best, double(in[(plane * p.H + oy * p.SH + ky) * p.W + ox * p.SW + kx]));
        expected[k] = best;
      }
  EXPECT_TRUE(AllNear("out", expected, out.data(), 0.0));
  EXPECT_TRUE(BitEqual("inference (no argmax)", out.data(), forward(nullptr).data(), n_out));
  std::vector<float> din = prefilled(n_in);
  maxpool2d_backward(din.data(), r.data(), argmax.data(), p.B, g);
  auto loss = [&] { return dot(forward(nullptr), r); };
  EXPECT_TRUE(GradientMatches("din", numeric_gradient(loss, in.data(), n_in), minus_prefill(din),
                              abs_dot(out, r)));
}

TEST_P(Pool2dCases, AvgForwardAndGradient) {
  const PoolCase p = GetParam();
  const Pool2dGeometry g = pool_geometry(p);
  const size_t n_in = p.B * p.C * p.H * p.W, n_out = p.B * p.C * g.OH * g.OW;
  Rng rng(3);
  std::vector<float> in = rng.uniform_vec(n_in, -1, 1);
  const std::vector<float> r = rng.uniform_vec(n_out, -1, 1);
  auto forward = [&] {
    std::vector<float> out(n_out);
    avgpool2d_forward(out.data(), in.data(), p.B, g);
    return out;
  };
  const std::vector<float> out = forward();
  std::vector<double> expected(n_out), tol(n_out);
  const size_t window = p.KH * p.KW;
  for (size_t plane = 0, k = 0; plane < p.B * p.C; ++plane)
    for (size_t oy = 0; oy < g.OH; ++oy)
      for (size_t ox = 0; ox < g.OW; ++ox, ++k) {
        double s = 0, abs_sum = 0;
        for (size_t ky = 0; ky < p.KH; ++ky)
          for (size_t kx = 0; kx < p.KW; ++kx) {
            const double v = in[(plane * p.H + oy * p.SH + ky) * p.W + ox * p.SW + kx];
            s += v;
            abs_sum += std::fabs(v);
          }
        expected[k] = s / window;
        tol[k] = (window + 2) * kU * abs_sum / window;
      }
  EXPECT_TRUE(AllNear("out", expected, out.data(), tol));
  std::vector<float> din = prefilled(n_in);
  avgpool2d_backward(din.data(), r.data(), p.B, g);
  auto loss = [&] { return dot(forward(), r); };
  EXPECT_TRUE(GradientMatches("din", numeric_gradient(loss, in.data(), n_in), minus_prefill(din),
                              abs_dot(out, r)));
}

INSTANTIATE_TEST_SUITE_P(Pool2d, Pool2dCases, ::testing::ValuesIn(kPoolCases),
                         [](const ::testing::TestParamInfo<PoolCase>& p) { return p.param.name; });

TEST(GlobalAvgPool, ForwardAndGradient) {
  const size_t B = 2, C = 3, S = 7;
  Rng rng(4);
  std::vector<float> in = rng.uniform_vec(B * C * S, -1, 1);
  const std::vector<float> r = rng.uniform_vec(B * C, -1, 1);
  auto forward = [&] {
    std::vector<float> out(B * C);
    global_avgpool_forward(out.data(), in.data(), B, C, S);
    return out;
  };
  const std::vector<float> out = forward();
  std::vector<double> expected(B * C), tol(B * C);
  for (size_t k = 0; k < B * C; ++k) {
    double s = 0, abs_sum = 0;
    for (size_t i = 0; i < S; ++i) {
      s += in[k * S + i];
      abs_sum += std::fabs(in[k * S + i]);
    }
    expected[k] = s / S;
    tol[k] = (S + 2) * kU * abs_sum / S;
  }
  EXPECT_TRUE(AllNear("out", expected, out.data(), tol));
  std::vector<float> din = prefilled(B * C * S);
  global_avgpool_backward(din.data(), r.data(), B, C, S);
  auto loss = [&] { return dot(forward(), r); };
  EXPECT_TRUE(GradientMatches("din", numeric_gradient(loss, in.data(), in.size()),
                              minus_prefill(din), abs_dot(out, r)));
}

}  // namespace
