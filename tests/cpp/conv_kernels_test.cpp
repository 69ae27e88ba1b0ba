// The kernels behind convolution and per-channel batch norm, each variant
// (scalar reference, the dispatched one, wasm SIMD128) against double
// precision and against the scalar reference, at edge sizes: runs of S values
// below, at and above the SIMD widths (4 and 8), odd image widths, stride 2,
// 'same' padding and 1x1 kernels.
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

const size_t kS[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 49, 196};
const size_t kB[] = {1, 2, 3, 8};
const size_t kC[] = {1, 3};

std::string at(size_t B, size_t C, size_t S) {
  return "B " + std::to_string(B) + ", C " + std::to_string(C) + ", S " + std::to_string(S);
}

// Per channel an offset, so the mean is not ~0 and the two passes matter.
std::vector<float> channel_input(size_t B, size_t C, size_t S, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> offset(C);
  for (double& o : offset) o = rng.uniform(-3, 3);
  std::vector<float> in(B * C * S);
  for (size_t b = 0; b < B; ++b)
    for (size_t c = 0; c < C; ++c)
      for (size_t i = 0; i < S; ++i)
        in[(b * C + c) * S + i] = static_cast<float>(offset[c] + rng.normal());
  return in;
}

using ChanMeanVarFn = void (*)(float*, float*, const float*, size_t, size_t, size_t);

// Mean: float sums of S values ((S - 1) u of their absolute sum each, however
// the lanes split them: every partial sum has at most S - 1 additions), the
// runs in double, one rounding at the end: (S + 2) u * sum|x| / m. Variance
// about the kernel's own mean (see ColMeanVarAccurate in kernels_test.cpp):
// (S + 6) u * V.
void check_chanmeanvar(ChanMeanVarFn f) {
  uint64_t seed = 5000;
  for (size_t B : kB)
    for (size_t C : kC)
      for (size_t S : kS) {
        const std::vector<float> in = channel_input(B, C, S, seed++);
        std::vector<float> mean(C), var(C);
        f(mean.data(), var.data(), in.data(), B, C, S);
        const double m = static_cast<double>(B * S);
        std::vector<double> em(C, 0), tm(C, 0), ev(C, 0), tv(C);
        for (size_t b = 0; b < B; ++b)
          for (size_t c = 0; c < C; ++c)
            for (size_t i = 0; i < S; ++i) {
              em[c] += in[(b * C + c) * S + i];
              tm[c] += std::fabs(in[(b * C + c) * S + i]);
            }
        for (size_t c = 0; c < C; ++c) {
          em[c] /= m;
          tm[c] = (S + 2) * kU * tm[c] / m;
        }
        for (size_t b = 0; b < B; ++b)
          for (size_t c = 0; c < C; ++c)
            for (size_t i = 0; i < S; ++i) {
              const double d = double(in[(b * C + c) * S + i]) - mean[c];
              ev[c] += d * d;
            }
        for (size_t c = 0; c < C; ++c) {
          ev[c] /= m;
          tv[c] = (S + 6) * kU * ev[c];
        }
        ASSERT_TRUE(AllNear("mean", em, mean.data(), tm)) << at(B, C, S);
        ASSERT_TRUE(AllNear("var (about the kernel's own mean)", ev, var.data(), tv))
            << at(B, C, S);
      }
}

TEST(ConvKernelsScalar, ChanMeanVarMatchesDouble) { check_chanmeanvar(f32_chanmeanvar__scalar); }
TEST(ConvKernelsDispatch, ChanMeanVarMatchesDouble) { check_chanmeanvar(f32_chanmeanvar); }

using ChanDsumsFn = void (*)(double*, double*, const float*, const float*, const float*, size_t,
                             size_t, size_t, size_t);

// Each run: S products (x - mean) * dy with two roundings each, summed in
// float: (S + 2) u of the absolute sum; the runs in double. Channels taken as
// a block [1, C) of a wider tensor (stride (C + 1) * S) check the stride.
void check_chandsums(ChanDsumsFn f) {
  uint64_t seed = 6000;
  for (size_t B : kB)
    for (size_t C : kC)
      for (size_t S : kS) {
        const size_t W = C + 1;  // the tensor has one more channel, before the block
        const std::vector<float> in = channel_input(B, W, S, seed++);
        Rng rng(seed++);
        const std::vector<float> dout = rng.uniform_vec(B * W * S, -1, 1);
        const std::vector<float> mean = rng.uniform_vec(W, -3, 3);
        std::vector<double> sum_dy(C), sum_xc(C);
        f(sum_dy.data(), sum_xc.data(), dout.data() + S, in.data() + S, mean.data() + 1, B, C, S,
          W * S);
        std::vector<double> e1(C, 0), e2(C, 0), t1(C, 0), t2(C, 0);
        for (size_t b = 0; b < B; ++b)
          for (size_t c = 0; c < C; ++c)
            for (size_t i = 0; i < S; ++i) {
              const size_t k = (b * W + c + 1) * S + i;
              const double xc = double(in[k]) - mean[c + 1];
              e1[c] += dout[k];
              t1[c] += std::fabs(dout[k]);
              e2[c] += dout[k] * xc;
              t2[c] += std::fabs(dout[k] * xc);
            }
        for (size_t c = 0; c < C; ++c) {
          t1[c] *= (S + 2) * kU;
          t2[c] *= (S + 2) * kU;
        }
        ASSERT_TRUE(AllNear("sum dy", e1, sum_dy.data(), t1)) << at(B, C, S);
        ASSERT_TRUE(AllNear("sum dy (x - mean)", e2, sum_xc.data(), t2)) << at(B, C, S);
      }
}

TEST(ConvKernelsScalar, ChanDsumsMatchesDouble) { check_chandsums(f32_chandsums__scalar); }
TEST(ConvKernelsDispatch, ChanDsumsMatchesDouble) { check_chandsums(f32_chandsums); }

#if defined(__wasm_simd128__)
TEST(ConvKernelsWasmSimd, ChanMeanVarMatchesDouble) {
  check_chanmeanvar(f32_chanmeanvar__wasmsimd);
}
TEST(ConvKernelsWasmSimd, ChanDsumsMatchesDouble) { check_chandsums(f32_chandsums__wasmsimd); }
#endif

// ---- convolution: im2col + the packed GEMM, against the scalar GEMM ----------------

struct Geometry {
  const char* name;
  Conv2dGeometry g;
};
void PrintTo(const Geometry& c, std::ostream* os) { *os << c.name; }

Conv2dGeometry make(size_t C, size_t H, size_t W, size_t F, size_t KH, size_t KW, size_t SH,
                    size_t SW, size_t PT, size_t PL, size_t PB, size_t PR) {
  return {
      C, H, W, F, KH, KW, SH, SW, PT, PL, (H + PT + PB - KH) / SH + 1, (W + PL + PR - KW) / SW + 1};
}

// Filter counts and output positions below, at and above the 4-row tiles and
// 8-column panels; odd widths; stride 2; 'same' with odd and even kernels; 1x1.
const Geometry kGeometries[] = {
    {"k3_same_odd", make(3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, 1)},
    {"k3_stride2_pad1", make(2, 9, 7, 8, 3, 3, 2, 2, 1, 1, 1, 1)},
    {"k2_same_even", make(2, 6, 5, 3, 2, 2, 1, 1, 0, 0, 1, 1)},
    {"k1_pointwise", make(7, 5, 3, 9, 1, 1, 1, 1, 0, 0, 0, 0)},
    {"k1_stride2", make(3, 5, 7, 4, 1, 1, 2, 2, 0, 0, 0, 0)},
    {"k5_valid", make(1, 9, 9, 16, 5, 5, 1, 1, 0, 0, 0, 0)},
    {"one_position", make(4, 3, 3, 6, 3, 3, 1, 1, 0, 0, 0, 0)},
    {"fashion_conv2", make(16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1)},
    // The direct path's edges: 12, 24 and 48 output positions (whole 4- and
    // 8-column tiles of its one long row), rows stepping 2 with columns
    // stepping 1 (tiles row by row: 13 columns, a partial 8-wide tail), filter counts
    // that are not a multiple of 4, the first Fashion-MNIST layer.
    {"w4_f1", make(2, 3, 4, 1, 1, 1, 1, 1, 0, 0, 0, 0)},
    {"w8_k3_valid", make(1, 5, 10, 6, 3, 3, 1, 1, 0, 0, 0, 0)},
    {"w12_same_f7", make(3, 4, 12, 7, 3, 3, 1, 1, 1, 1, 1, 1)},
    {"stride2x1_same", make(2, 9, 13, 6, 3, 3, 2, 1, 1, 1, 1, 1)},
    {"fashion_conv1", make(1, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 1)},
};

class ConvKernels : public ::testing::TestWithParam<Geometry> {};

// conv2d_backward's group of `count` images from b0, as the reference builds it: their
// columns side by side in col (K, N) and their dout in dy (F, N). Returns N.
size_t gather_group(std::vector<float>& col, std::vector<float>& dy, const std::vector<float>& in,
                    const std::vector<float>& dout, size_t b0, size_t count, const Conv2dGeometry& g) {
  const size_t P = g.P(), image = g.C * g.H * g.W, N = count * P;
  for (size_t j = 0; j < count; ++j) {
    im2col(col.data() + j * P, in.data() + (b0 + j) * image, g, N);
    for (size_t f = 0; f < g.F; ++f)
      for (size_t p = 0; p < P; ++p) dy[f * N + j * P + p] = dout[((b0 + j) * g.F + f) * P + p];
  }
  return N;
}

// The layer (dispatched GEMM: SIMD under wasm) against the same steps through
// the scalar GEMM: every GEMM variant accumulates each element in the same
// order (kernels.h), so they agree bit for bit.
TEST_P(ConvKernels, ForwardAndBackwardMatchTheScalarGemmBitForBit) {
  const Conv2dGeometry& g = GetParam().g;
  const size_t B = 3, K = g.K(), P = g.P(), image = g.C * g.H * g.W;
  Rng rng(7000 + g.C * 31 + g.F);
  const std::vector<float> in = rng.uniform_vec(B * image, -1, 1);
  const std::vector<float> weight = rng.uniform_vec(g.F * K, -0.5, 0.5);
  const std::vector<float> bias = rng.uniform_vec(g.F, -0.5, 0.5);
  const std::vector<float> dout = rng.uniform_vec(B * g.F * P, -1, 1);

  std::vector<float> scratch(conv2d_scratch_size(g)), out(B * g.F * P);
  conv2d_forward(out.data(), scratch.data(), in.data(), weight.data(), bias.data(), B, g);
  std::vector<float> din(B * image, 0.0f), dweight(g.F * K, 0.0f), dbias(g.F, 0.0f);
  conv2d_backward(din.data(), dweight.data(), dbias.data(), scratch.data(), dout.data(), in.data(),
                  weight.data(), B, g);

  // The forward pass image by image; the backward pass in conv2d_backward's groups of
  // conv2d_backward_images images, their columns side by side (N = n P).
  const size_t n = std::min(conv2d_backward_images(g), B), N_max = n * P;
  std::vector<float> col(K * N_max), dcol(K * N_max), dy(g.F * N_max);
  std::vector<float> packed(std::max(
      {f32_packed_size(K, N_max), f32_packed_size(N_max, K), f32_packed_size(g.F, N_max)}));
  std::vector<float> ref_out(B * g.F * P), ref_din(B * image, 0.0f), ref_dw(g.F * K, 0.0f);
  for (size_t b = 0; b < B; ++b) {
    im2col(col.data(), in.data() + b * image, g);
    float* o = ref_out.data() + b * g.F * P;
    for (size_t f = 0; f < g.F; ++f)
      for (size_t p = 0; p < P; ++p) o[f * P + p] = bias[f];
    f32_pack_x8(packed.data(), col.data(), K, P);
    f32_gemm_packed__scalar(o, weight.data(), packed.data(), g.F, P, K);
  }
  for (size_t b0 = 0; b0 < B; b0 += n) {
    const size_t count = std::min(n, B - b0), N = gather_group(col, dy, in, dout, b0, count, g);
    f32_pack_t_x8__scalar(packed.data(), col.data(), N, K);
    f32_gemm_packed__scalar(ref_dw.data(), dy.data(), packed.data(), g.F, K, N);
    f32_pack_x8(packed.data(), dy.data(), g.F, N);
    std::fill(dcol.begin(), dcol.end(), 0.0f);
    f32_gemm_tn_packed__scalar(dcol.data(), weight.data(), packed.data(), K, N, g.F);
    for (size_t j = 0; j < count; ++j) col2im_add(ref_din.data() + (b0 + j) * image, dcol.data() + j * P, g, N);
  }
  EXPECT_TRUE(BitEqual("out", ref_out.data(), out.data(), out.size()));
  EXPECT_TRUE(BitEqual("dweight", ref_dw.data(), dweight.data(), dweight.size()));
  // The pointwise path skips im2col and col2im: its din is the GEMM's own sum,
  // added once, which equals adding dcol onto zeros.
  EXPECT_TRUE(BitEqual("din", ref_din.data(), din.data(), din.size()));
}

// im2col against its definition, and col2im as its adjoint: <col2im(v), u> = <v, im2col(u)>.
TEST_P(ConvKernels, Im2colFollowsItsDefinitionAndCol2imIsItsAdjoint) {
  const Conv2dGeometry& g = GetParam().g;
  const size_t K = g.K(), P = g.P(), image = g.C * g.H * g.W;
  Rng rng(8000 + g.F);
  const std::vector<float> u = rng.uniform_vec(image, -1, 1), v = rng.uniform_vec(K * P, -1, 1);
  std::vector<float> col(K * P);
  im2col(col.data(), u.data(), g);
  for (size_t c = 0, k = 0; c < g.C; ++c)
    for (size_t ky = 0; ky < g.KH; ++ky)
      for (size_t kx = 0; kx < g.KW; ++kx, ++k)
        for (size_t oy = 0; oy < g.OH; ++oy)
          for (size_t ox = 0; ox < g.OW; ++ox) {
            const long y = long(oy * g.SH + ky) - long(g.PT), x = long(ox * g.SW + kx) - long(g.PL);
            const bool inside = y >= 0 && x >= 0 && y < long(g.H) && x < long(g.W);
            const float want = inside ? u[(c * g.H + y) * g.W + x] : 0.0f;
            ASSERT_EQ(col[k * P + oy * g.OW + ox], want)
                << "col[" << k << ", " << oy << ", " << ox << "]";
          }
  std::vector<float> back(image, 0.0f);
  col2im_add(back.data(), v.data(), g);
  double lhs = 0, rhs = 0, scale = 0;
  for (size_t i = 0; i < image; ++i) {
    lhs += double(back[i]) * u[i];
    scale += std::fabs(double(back[i]) * u[i]);
  }
  for (size_t i = 0; i < K * P; ++i) rhs += double(v[i]) * col[i];
  // back[i] sums at most KH * KW values in float.
  EXPECT_TRUE(Near("<col2im(v), u> vs <v, im2col(u)>", rhs, lhs, (g.KH * g.KW + 1) * kU * scale));
}

// A convolution's columns are activations, and an activation may be infinite (an
// overflow that a clip after the next layer hides from the loss). The weight gradient
// then holds 0 * Inf = NaN wherever dout is zero at an output that reads it, as the
// IEEE sum (and PyTorch) has it. The four-row GEMM skips terms where four rows of its
// a are zero: exact for finite b, but here it made those NaNs finite, and only when
// it ran outside a pool task (one thread), so the same step was refused on several
// threads and taken on one. Every variant must give NaN exactly where the scalar
// reference does. (Natively the dispatched GEMM is the scalar one; the wasm build is
// where it could fail.)
TEST(ConvKernelsNonFinite, AnInfiniteInputGivesNaNWeightGradientsWhereDoutIsZero) {
  // Fashion-MNIST's second convolution; two images, so the GEMM's b has 2 x 196 columns.
  const Conv2dGeometry g = make(16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 1);
  const size_t B = 2, K = g.K(), P = g.P(), image = g.C * g.H * g.W;
  Rng rng(9100);
  std::vector<float> in = rng.uniform_vec(B * image, -1, 1);
  const std::vector<float> weight = rng.uniform_vec(g.F * K, -0.5, 0.5);
  std::vector<float> dout = rng.uniform_vec(B * g.F * P, -1, 1);
  // Channel 3 of image 0 is infinite at (7, 7); dout is 0 for every filter on output
  // rows 5 to 9 of image 0 (70 of the 392 columns: enough for the GEMM to skip them),
  // which hold every output that reads (7, 7).
  in[(3 * g.H + 7) * g.W + 7] = INFINITY;
  for (size_t f = 0; f < g.F; ++f)
    for (size_t p = 5 * g.OW; p < 10 * g.OW; ++p) dout[f * P + p] = 0.0f;

  std::vector<float> scratch(conv2d_scratch_size(g));
  std::vector<float> din(B * image, 0.0f), dweight(g.F * K, 0.0f);
  conv2d_backward(din.data(), dweight.data(), nullptr, scratch.data(), dout.data(), in.data(),
                  weight.data(), B, g);

  // The reference: conv2d_backward's groups through the scalar GEMM, which adds every term.
  const size_t n = std::min(conv2d_backward_images(g), B), N_max = n * P;
  std::vector<float> col(K * N_max), dy(g.F * N_max), packed(f32_packed_size(N_max, K));
  std::vector<float> ref(g.F * K, 0.0f);
  for (size_t b0 = 0; b0 < B; b0 += n) {
    const size_t count = std::min(n, B - b0), N = gather_group(col, dy, in, dout, b0, count, g);
    f32_pack_t_x8__scalar(packed.data(), col.data(), N, K);
    f32_gemm_packed__scalar(ref.data(), dy.data(), packed.data(), g.F, K, N);
  }
  // Channel 3's nine taps, for every filter, are NaN; every other weight gradient is
  // finite and the same bits. (NaN's own bits are not compared: wasm leaves them open.)
  size_t nans = 0;
  for (size_t i = 0; i < dweight.size(); ++i) {
    const bool expect_nan = (i % K) / (g.KH * g.KW) == 3;
    ASSERT_EQ(std::isnan(ref[i]), expect_nan) << "reference at " << i;
    ASSERT_EQ(std::isnan(dweight[i]), expect_nan) << "dweight at " << i << ": " << dweight[i];
    if (!expect_nan) ASSERT_TRUE(BitEqual("dweight at " + std::to_string(i), &ref[i], &dweight[i], 1));
    nans += expect_nan;
  }
  EXPECT_EQ(nans, g.F * g.KH * g.KW);
}

// The forward pass's GEMM (im2col path: stride 2) has the weights as its a and the
// columns as its b: a zero weight shared by four filters times an infinite input is NaN.
TEST(ConvKernelsNonFinite, AnInfiniteInputGivesNaNOutputsThroughZeroWeights) {
  const Conv2dGeometry g = make(16, 20, 20, 8, 3, 3, 2, 2, 1, 1, 1, 1);  // 10 x 10 outputs
  const size_t B = 2, K = g.K(), P = g.P(), image = g.C * g.H * g.W;
  Rng rng(9200);
  std::vector<float> in = rng.uniform_vec(B * image, -1, 1);
  std::vector<float> weight = rng.uniform_vec(g.F * K, -0.5, 0.5);
  // Channels 0 to 3 have zero weights in every filter (36 of the 144 terms); channel 2
  // of image 1 is infinite at (7, 7).
  for (size_t f = 0; f < g.F; ++f) std::fill_n(weight.data() + f * K, 4 * g.KH * g.KW, 0.0f);
  in[image + (2 * g.H + 7) * g.W + 7] = INFINITY;
  std::vector<float> scratch(conv2d_scratch_size(g)), out(B * g.F * P);
  conv2d_forward(out.data(), scratch.data(), in.data(), weight.data(), nullptr, B, g);

  std::vector<float> col(K * P), packed(f32_packed_size(K, P)), ref(B * g.F * P, 0.0f);
  for (size_t b = 0; b < B; ++b) {
    im2col(col.data(), in.data() + b * image, g);
    f32_pack_x8(packed.data(), col.data(), K, P);
    f32_gemm_packed__scalar(ref.data() + b * g.F * P, weight.data(), packed.data(), g.F, P, K);
  }
  // (7, 7) is read by the outputs (oy, ox) with 2 oy - 1 + ky = 7 for some tap: oy 3 and 4
  // (ky 2 and 0), the same for ox: 4 positions, in every filter.
  size_t nans = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(std::isnan(out[i]), std::isnan(ref[i])) << "output " << i << ": " << out[i];
    if (!std::isnan(ref[i])) ASSERT_TRUE(BitEqual("output " + std::to_string(i), &ref[i], &out[i], 1));
    nans += std::isnan(ref[i]);
  }
  EXPECT_EQ(nans, g.F * 4);
}

// ---- direct convolution and the fused inference epilogue ------------------------------

// The reference: im2col + the scalar packed GEMM from init, then the
// epilogue's steps as separate passes (batchnorm_forward_infer's
// v * scale + shift, relu_forward's v > 0 ? v : 0).
std::vector<float> reference_conv(const std::vector<float>& image, const std::vector<float>& w,
                                  const ConvEpilogue& ep, const Conv2dGeometry& g) {
  const size_t K = g.K(), P = g.P();
  std::vector<float> col(K * P), packed(f32_packed_size(K, P)), out(g.F * P);
  im2col(col.data(), image.data(), g);
  for (size_t f = 0; f < g.F; ++f)
    for (size_t p = 0; p < P; ++p) out[f * P + p] = ep.init != nullptr ? ep.init[f] : 0.0f;
  f32_pack_x8(packed.data(), col.data(), K, P);
  f32_gemm_packed__scalar(out.data(), w.data(), packed.data(), g.F, P, K);
  for (size_t f = 0; f < g.F; ++f)
    for (size_t p = 0; p < P; ++p) {
      float& v = out[f * P + p];
      if (ep.scale != nullptr) v = v * ep.scale[f] + ep.shift[f];
      if (ep.relu) v = v > 0.0f ? v : 0.0f;
    }
  return out;
}

using ConvDirectFn = void (*)(float*, const float*, const float*, const ConvEpilogue&,
                              const PaddedConv&);

// A direct-convolution variant on shifted copies built from their definition
// (kernels.h), against reference_conv, bit for bit, with each epilogue: none,
// a bias, batch norm, batch norm + ReLU. Stride 1 goes as one long row, as the
// layer passes it; stride 2 row by row.
void check_conv_direct(ConvDirectFn f, const Conv2dGeometry& g) {
  if (g.SW != 1) return;  // the direct path is for stride 1 in width
  const size_t K = g.K(), P = g.P(), HP = (g.OH - 1) * g.SH + g.KH;
  const PaddedConv s = g.SH == 1 ? PaddedConv{g.F, g.C, g.KH, g.KW, HP, g.OW, 1, 1, P}
                                 : PaddedConv{g.F, g.C, g.KH, g.KW, HP, g.OW, g.SH, g.OH, g.OW};
  Rng rng(9000 + g.C * 17 + g.F);
  const std::vector<float> image = rng.uniform_vec(g.C * g.H * g.W, -1, 1);
  const std::vector<float> w = rng.uniform_vec(g.F * K, -0.5, 0.5);
  const std::vector<float> bias = rng.uniform_vec(g.F, -0.5, 0.5);
  const std::vector<float> scale = rng.uniform_vec(g.F, 0.5, 2), shift = rng.uniform_vec(g.F, -1, 1);
  // NaN in the slack: a kernel that let slack reach a stored value would show it.
  std::vector<float> x(s.input_size(), std::nanf(""));
  for (size_t c = 0; c < g.C; ++c)
    for (size_t kx = 0; kx < g.KW; ++kx)
      for (size_t yy = 0; yy < HP; ++yy)
        for (size_t ox = 0; ox < g.OW; ++ox) {
          const long y = long(yy) - long(g.PT), xc = long(ox + kx) - long(g.PL);
          const bool inside = y >= 0 && xc >= 0 && y < long(g.H) && xc < long(g.W);
          x[((c * g.KW + kx) * HP + yy) * g.OW + ox] =
              inside ? image[(c * g.H + y) * g.W + xc] : 0.0f;
        }
  std::vector<float> wp(f32_packed_rows_x4_size(g.F, K));
  f32_pack_rows_x4(wp.data(), w.data(), g.F, K);
  ConvEpilogue eps[4];
  eps[1].init = bias.data();
  eps[2].init = bias.data();
  eps[2].scale = scale.data();
  eps[2].shift = shift.data();
  eps[3] = eps[2];
  eps[3].relu = true;
  for (int e = 0; e < 4; ++e) {
    const std::vector<float> want = reference_conv(image, w, eps[e], g);
    std::vector<float> out(g.F * P, -7.0f);
    f(out.data(), x.data(), wp.data(), eps[e], s);
    EXPECT_TRUE(BitEqual("epilogue " + std::to_string(e), want.data(), out.data(), out.size()));
  }
}

TEST_P(ConvKernels, DirectScalarMatchesIm2colGemmBitForBit) {
  check_conv_direct(f32_conv_direct__scalar, GetParam().g);
}
TEST_P(ConvKernels, DirectDispatchMatchesIm2colGemmBitForBit) {
  check_conv_direct(f32_conv_direct, GetParam().g);
}
#if defined(__wasm_simd128__)
TEST_P(ConvKernels, DirectWasmSimdMatchesIm2colGemmBitForBit) {
  check_conv_direct(f32_conv_direct_4x8__wasmsimd, GetParam().g);
}
#endif

// The fused inference layer (either path: direct, or im2col for stride 2 in
// width) equals conv2d_forward, batchnorm_forward_infer, relu_forward in turn.
TEST_P(ConvKernels, FusedInferenceEqualsTheLayersInTurn) {
  const Conv2dGeometry& g = GetParam().g;
  const size_t B = 2, P = g.P(), image = g.C * g.H * g.W;
  Rng rng(9500 + g.F);
  const std::vector<float> in = rng.uniform_vec(B * image, -1, 1);
  const std::vector<float> weight = rng.uniform_vec(g.F * g.K(), -0.5, 0.5);
  const std::vector<float> bias = rng.uniform_vec(g.F, -0.5, 0.5);
  const std::vector<float> gamma = rng.uniform_vec(g.F, 0.5, 2), beta = rng.uniform_vec(g.F, -1, 1);
  const std::vector<float> rmean = rng.uniform_vec(g.F, -0.5, 0.5);
  const std::vector<float> rvar = rng.uniform_vec(g.F, 0.1, 2);
  std::vector<float> scratch(conv2d_scratch_size(g)), want(B * g.F * P), got(B * g.F * P);
  std::vector<float> scale(g.F), shift(g.F);
  batchnorm_infer_scale_shift(scale.data(), shift.data(), gamma.data(), beta.data(), rmean.data(),
                              rvar.data(), g.F, 1e-5f);
  for (const bool relu : {false, true}) {
    conv2d_forward(want.data(), scratch.data(), in.data(), weight.data(), bias.data(), B, g);
    batchnorm_forward_infer(want.data(), want.data(), gamma.data(), beta.data(), rmean.data(),
                            rvar.data(), B, g.F, P, 1e-5f);
    if (relu) relu_forward(want.data(), want.data(), want.size());
    conv2d_batchnorm_relu_forward_infer(got.data(), scratch.data(), in.data(), weight.data(),
                                        bias.data(), scale.data(), shift.data(), relu, B, g);
    EXPECT_TRUE(BitEqual(relu ? "with ReLU" : "without ReLU", want.data(), got.data(), got.size()));
  }
}

INSTANTIATE_TEST_SUITE_P(Conv, ConvKernels, ::testing::ValuesIn(kGeometries),
                         [](const ::testing::TestParamInfo<Geometry>& p) { return p.param.name; });

}  // namespace

namespace {

// ---- 2x2 max pool at stride 2 (inference) ------------------------------------------

using MaxPoolFn = void (*)(float*, const float*, size_t, size_t, size_t, size_t, size_t);

// Against maxpool2d_forward with argmax (the training path, scalar loops),
// bit for bit, at widths below, at and above the SIMD kernel's four windows,
// odd sizes (the last row and column dropped), with ties of equal values and
// of -0 and +0 (the first in reading order must win).
void check_maxpool2x2(MaxPoolFn f) {
  for (size_t H : {2, 3, 5, 8, 28})
    for (size_t W : {2, 3, 7, 8, 9, 10, 16, 17, 28}) {
      const size_t planes = 3, OH = H / 2, OW = W / 2;
      Rng rng(9900 + H * 31 + W);
      std::vector<float> in(planes * H * W);
      for (float& v : in) {
        const double u = rng.uniform(0, 1);
        v = u < 0.15 ? 0.0f : u < 0.3 ? -0.0f : u < 0.4 ? 1.0f : static_cast<float>(rng.normal());
      }
      const Pool2dGeometry g{planes, H, W, 2, 2, 2, 2, OH, OW};
      std::vector<float> want(planes * OH * OW), got(planes * OH * OW, -7.0f);
      std::vector<int32_t> argmax(want.size());
      maxpool2d_forward(want.data(), argmax.data(), in.data(), 1, g);
      f(got.data(), in.data(), planes, H, W, OH, OW);
      EXPECT_TRUE(BitEqual("H " + std::to_string(H) + ", W " + std::to_string(W), want.data(),
                           got.data(), got.size()));
    }
}

TEST(ConvKernelsScalar, MaxPool2x2MatchesTheLayerBitForBit) {
  check_maxpool2x2(f32_maxpool2x2__scalar);
}
TEST(ConvKernelsDispatch, MaxPool2x2MatchesTheLayerBitForBit) { check_maxpool2x2(f32_maxpool2x2); }
#if defined(__wasm_simd128__)
TEST(ConvKernelsWasmSimd, MaxPool2x2MatchesTheLayerBitForBit) {
  check_maxpool2x2(f32_maxpool2x2__wasmsimd);
}
#endif

}  // namespace
