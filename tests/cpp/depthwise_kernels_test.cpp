// Depthwise convolution kernels (bnwasm/depthwise.h): the scalar reference
// against the definition in double precision and against the grouped im2col
// path it replaces; every wasm SIMD variant and the dispatched kernel against
// the scalar reference, bit for bit (they do the same operations in the same
// order), at edge sizes: widths 1 to 17 (below, at and above the vectors of 4
// and tiles of 8), odd heights, strides 1 and 2 with odd sizes, channel
// multipliers 1 and 2, padding 0 and 1, channel counts that leave partial
// steps, and other kernels, strides and dilations.
#include <algorithm>
#include <cmath>
#include <ostream>
#include <string>
#include <vector>

#include "bnwasm/depthwise.h"
#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "bnwasm/parallel.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

// kernel, stride, padding (top, left, bottom, right), dilation; the output from them.
DepthwiseConv make(size_t C, size_t H, size_t W, size_t M, size_t KH, size_t KW, size_t SH,
                   size_t SW, size_t PT, size_t PL, size_t PB, size_t PR, size_t DH = 1,
                   size_t DW = 1) {
  DepthwiseConv s{C, H, W, M, KH, KW, SH, SW, PT, PL, 0, 0};
  s.DH = DH;
  s.DW = DW;
  s.OH = (H + PT + PB - (KH - 1) * DH - 1) / SH + 1;
  s.OW = (W + PL + PR - (KW - 1) * DW - 1) / SW + 1;
  return s;
}

std::string name(const DepthwiseConv& s) {
  return "C " + std::to_string(s.C) + " M " + std::to_string(s.M) + " " + std::to_string(s.H) +
         "x" + std::to_string(s.W) + " k " + std::to_string(s.KH) + "x" + std::to_string(s.KW) +
         " stride " + std::to_string(s.SH) + "," + std::to_string(s.SW) + " pad " +
         std::to_string(s.PT) + "," + std::to_string(s.PL) + " dilation " + std::to_string(s.DH) +
         "," + std::to_string(s.DW) + " -> " + std::to_string(s.OH) + "x" + std::to_string(s.OW);
}

// The edge sizes: 3x3 (MobileNet's) at widths 1 .. 17, heights 1, 2, 3, 5, 7,
// strides 1 and 2, padding 0 and 1, multipliers 1 and 2, 13 channels (the
// channel variants take 8 filters, then 4, then 1 more; at M = 2, three
// steps of 8 and 2 more); then other kernels, strides and dilations.
std::vector<DepthwiseConv> geometries() {
  std::vector<DepthwiseConv> out;
  for (size_t stride : {1, 2})
    for (size_t pad : {0, 1})
      for (size_t M : {1, 2})
        for (size_t H : {1, 2, 3, 5, 7})
          for (size_t W = 1; W <= 17; ++W)
            if (H + 2 * pad >= 3 && W + 2 * pad >= 3)
              out.push_back(make(13, H, W, M, 3, 3, stride, stride, pad, pad, pad, pad));
  const DepthwiseConv more[] = {
      make(4, 9, 9, 1, 5, 5, 1, 1, 2, 2, 2, 2),    // 5x5 'same'
      make(3, 8, 11, 1, 5, 5, 2, 2, 2, 2, 2, 2),   // 5x5 at stride 2
      make(6, 4, 7, 1, 1, 1, 1, 1, 0, 0, 0, 0),    // 1x1
      make(3, 6, 6, 1, 2, 2, 1, 1, 0, 0, 1, 1),    // even kernel, 'same': padding below and right
      make(3, 7, 10, 2, 2, 3, 1, 2, 1, 0, 0, 2),   // 2x3, stride 1 down, 2 across, uneven padding
      make(2, 9, 13, 1, 3, 3, 2, 1, 1, 1, 1, 1),   // stride 2 down, 1 across
      make(2, 7, 9, 1, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2),  // dilation 2 (across channels only)
      make(5, 11, 10, 3, 3, 3, 3, 3, 1, 1, 1, 1),  // stride 3, multiplier 3 (across channels only)
      make(2, 4, 5, 1, 3, 3, 1, 1, 3, 3, 3, 3),    // padding wider than the kernel
      make(9, 16, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1),  // MobileNetV2's first, few channels
      make(7, 16, 16, 1, 3, 3, 2, 2, 1, 1, 1, 1),
      make(7, 2, 2, 1, 3, 3, 2, 2, 1, 1, 1, 1),    // 2x2 -> 1x1
  };
  out.insert(out.end(), std::begin(more), std::end(more));
  return out;
}

struct Data {
  std::vector<float> in, w, dout, init, scale, shift, din0, dw0;
};
Data data(const DepthwiseConv& s, uint64_t seed) {
  Rng rng(seed);
  Data d;
  d.in = rng.uniform_vec(s.C * s.H * s.W, -1, 1);
  d.w = rng.uniform_vec(s.F() * s.K(), -0.5, 0.5);
  d.dout = rng.uniform_vec(s.F() * s.P(), -1, 1);
  d.init = rng.uniform_vec(s.F(), -0.5, 0.5);
  d.scale = rng.uniform_vec(s.F(), 0.5, 2);
  d.shift = rng.uniform_vec(s.F(), -1, 1);
  d.din0 = rng.uniform_vec(s.C * s.H * s.W, -1, 1);
  d.dw0 = rng.uniform_vec(s.F() * s.K(), -1, 1);
  return d;
}

// The epilogues: none, a bias, bias + batch norm, bias + batch norm + ReLU,
// bias + batch norm + relu6 (a clip to [0, 6]), a bias and a clip to
// [-0.3, 0.4] (values clipped on both sides).
constexpr int kEpilogues = 6;
DepthwiseEpilogue epilogue(const Data& d, int e) {
  DepthwiseEpilogue ep;
  if (e >= 1) ep.init = d.init.data();
  if (e >= 2 && e <= 4) {
    ep.scale = d.scale.data();
    ep.shift = d.shift.data();
  }
  ep.relu = e == 3;
  ep.clip = e >= 4;
  ep.lo = e == 4 ? 0.0f : -0.3f;
  ep.hi = e == 4 ? 6.0f : 0.4f;
  return ep;
}

// Whether tap t = i + P - k D reaches an output o in [0, n) at stride S.
bool reaches(long t, size_t S, size_t n, size_t* o) {
  if (t < 0 || t % long(S) != 0 || size_t(t) / S >= n) return false;
  *o = size_t(t) / S;
  return true;
}

// ---- the scalar reference against the definition -------------------------------------

// Forward in double, straight from PyTorch's definition. The kernel's float
// value: at most K products and K + 1 additions, the epilogue's multiply and
// add: within (K + 4) u of the sum of the magnitudes it goes through.
TEST(DepthwiseScalar, ForwardMatchesTheDefinition) {
  uint64_t seed = 100;
  for (const DepthwiseConv& s : geometries()) {
    const Data d = data(s, seed++);
    std::vector<float> out(s.F() * s.P());
    for (int e = 0; e < kEpilogues; ++e) {
      const DepthwiseEpilogue ep = epilogue(d, e);
      f32_dwconv__scalar(out.data(), nullptr, d.in.data(), d.w.data(), ep, s);
      std::vector<double> want(out.size()), tol(out.size());
      for (size_t f = 0; f < s.F(); ++f)
        for (size_t oy = 0; oy < s.OH; ++oy)
          for (size_t ox = 0; ox < s.OW; ++ox) {
            double v = ep.init != nullptr ? ep.init[f] : 0.0, mag = std::fabs(v);
            for (size_t ky = 0; ky < s.KH; ++ky)
              for (size_t kx = 0; kx < s.KW; ++kx) {
                const long y = long(oy * s.SH + ky * s.DH) - long(s.PT);
                const long x = long(ox * s.SW + kx * s.DW) - long(s.PL);
                if (y < 0 || x < 0 || y >= long(s.H) || x >= long(s.W)) continue;
                const double t =
                    double(d.w[f * s.K() + ky * s.KW + kx]) * d.in[((f / s.M) * s.H + y) * s.W + x];
                v += t;
                mag += std::fabs(t);
              }
            if (ep.scale != nullptr) {
              mag = mag * ep.scale[f] + std::fabs(ep.shift[f]);
              v = v * ep.scale[f] + ep.shift[f];
            }
            if (ep.relu) v = std::max(v, 0.0);
            if (ep.clip) v = std::min(std::max(v, double(ep.lo)), double(ep.hi));
            const size_t i = (f * s.OH + oy) * s.OW + ox;
            want[i] = v;
            tol[i] = (s.K() + 4) * kU * mag;
          }
      ASSERT_TRUE(AllNear("forward, epilogue " + std::to_string(e), want, out.data(), tol)) << name(s);
    }
  }
}

// The input gradient as the adjoint of forward, in double: din[c][y][x] +=
// w[f][ky][kx] dout[f][oy][ox] for every tap of every output. Per value, at
// most M K products summed in M runs, each added to din: (K + 2) u per run.
TEST(DepthwiseScalar, InputGradientMatchesTheDefinition) {
  uint64_t seed = 200;
  for (const DepthwiseConv& s : geometries()) {
    const Data d = data(s, seed++);
    std::vector<float> din = d.din0;
    f32_dwconv_dinput__scalar(din.data(), nullptr, d.dout.data(), d.w.data(), s);
    std::vector<double> want(d.din0.begin(), d.din0.end()), mag(want.size());
    for (size_t i = 0; i < want.size(); ++i) mag[i] = std::fabs(want[i]);
    for (size_t f = 0; f < s.F(); ++f)
      for (size_t oy = 0; oy < s.OH; ++oy)
        for (size_t ox = 0; ox < s.OW; ++ox)
          for (size_t ky = 0; ky < s.KH; ++ky)
            for (size_t kx = 0; kx < s.KW; ++kx) {
              const long y = long(oy * s.SH + ky * s.DH) - long(s.PT);
              const long x = long(ox * s.SW + kx * s.DW) - long(s.PL);
              if (y < 0 || x < 0 || y >= long(s.H) || x >= long(s.W)) continue;
              const size_t i = ((f / s.M) * s.H + y) * s.W + x;
              const double t = double(d.w[f * s.K() + ky * s.KW + kx]) * d.dout[(f * s.OH + oy) * s.OW + ox];
              want[i] += t;
              mag[i] += std::fabs(t);
            }
    for (double& m : mag) m *= (s.K() + 2) * s.M * kU;
    ASSERT_TRUE(AllNear("din", want, din.data(), mag)) << name(s);
  }
}

// The weight gradient in double: dw[f][ky][kx] += sum over outputs of
// dout[f][oy][ox] in[c][y][x]. Four float sums of at most ceil(P / 4) terms,
// combined in two levels, then added: (P / 4 + 4) u of the magnitudes.
TEST(DepthwiseScalar, WeightGradientMatchesTheDefinition) {
  uint64_t seed = 300;
  for (const DepthwiseConv& s : geometries()) {
    const Data d = data(s, seed++);
    std::vector<float> dw = d.dw0;
    f32_dwconv_dweight__scalar(dw.data(), nullptr, d.dout.data(), d.in.data(), s);
    std::vector<double> want(d.dw0.begin(), d.dw0.end()), mag(want.size());
    for (size_t i = 0; i < want.size(); ++i) mag[i] = std::fabs(want[i]);
    for (size_t f = 0; f < s.F(); ++f)
      for (size_t oy = 0; oy < s.OH; ++oy)
        for (size_t ox = 0; ox < s.OW; ++ox)
          for (size_t ky = 0; ky < s.KH; ++ky)
            for (size_t kx = 0; kx < s.KW; ++kx) {
              const long y = long(oy * s.SH + ky * s.DH) - long(s.PT);
              const long x = long(ox * s.SW + kx * s.DW) - long(s.PL);
              if (y < 0 || x < 0 || y >= long(s.H) || x >= long(s.W)) continue;
              const size_t i = f * s.K() + ky * s.KW + kx;
              const double t = double(d.dout[(f * s.OH + oy) * s.OW + ox]) * d.in[((f / s.M) * s.H + y) * s.W + x];
              want[i] += t;
              mag[i] += std::fabs(t);
            }
    for (double& m : mag) m *= ((s.P() + 3) / 4 + 4) * kU;
    ASSERT_TRUE(AllNear("dweight", want, dw.data(), mag)) << name(s);
  }
}

// The grouped path it replaces (im2col + packed GEMM per group, or the direct
// kernel, then the epilogue) sums the same products in the same order; the
// clip after it as the clip layer computes it.
TEST(DepthwiseScalar, ForwardEqualsTheGroupedConvolutionBitForBit) {
  uint64_t seed = 400;
  for (const DepthwiseConv& s : geometries()) {
    const Data d = data(s, seed++);
    Conv2dGeometry g{1, s.H, s.W, s.M, s.KH, s.KW, s.SH, s.SW, s.PT, s.PL, s.OH, s.OW};
    g.DH = s.DH;
    g.DW = s.DW;
    std::vector<float> scratch(conv2d_scratch_size(g)), want(s.F() * s.P()), got(want.size());
    for (int e = 0; e < kEpilogues; ++e) {
      const DepthwiseEpilogue ep = epilogue(d, e);
      for (size_t c = 0; c < s.C; ++c) {
        const size_t f = c * s.M;
        const float* init = ep.init != nullptr ? ep.init + f : nullptr;
        if (ep.scale != nullptr)
          conv2d_batchnorm_relu_forward_infer(want.data() + f * s.P(), scratch.data(), d.in.data() + c * s.H * s.W,
                                              d.w.data() + f * s.K(), init, ep.scale + f, ep.shift + f, ep.relu, 1, g);
        else
          conv2d_forward(want.data() + f * s.P(), scratch.data(), d.in.data() + c * s.H * s.W,
                         d.w.data() + f * s.K(), init, 1, g);
      }
      if (ep.clip)
        for (float& v : want) v = std::min(std::max(v, ep.lo), ep.hi);
      f32_dwconv__scalar(got.data(), nullptr, d.in.data(), d.w.data(), ep, s);
      ASSERT_TRUE(BitEqual("epilogue " + std::to_string(e), want.data(), got.data(), got.size())) << name(s);
    }
  }
}

// ---- every variant against the reference, bit for bit -----------------------------------

using ForwardFn = void (*)(float*, float*, const float*, const float*, const DepthwiseEpilogue&,
                           const DepthwiseConv&);
using DinputFn = void (*)(float*, float*, const float*, const float*, const DepthwiseConv&);
using DweightFn = void (*)(float*, float*, const float*, const float*, const DepthwiseConv&);

// Scratch starts as NaN: a variant that relied on a zero it did not write
// would show it. Outputs start at -7, so a value not written shows too.
std::vector<float> nan_scratch(const DepthwiseConv& s) {
  return std::vector<float>(s.scratch_size(), std::nanf(""));
}

// only: the geometries the variant takes (all when null).
void check_forward(ForwardFn fn, bool (*only)(const DepthwiseConv&)) {
  uint64_t seed = 500;
  size_t checked = 0;
  for (const DepthwiseConv& s : geometries()) {
    const Data d = data(s, seed++);
    if (only != nullptr && !only(s)) continue;
    ++checked;
    std::vector<float> want(s.F() * s.P()), got(want.size(), -7.0f), scratch = nan_scratch(s);
    for (int e = 0; e < kEpilogues; ++e) {
      const DepthwiseEpilogue ep = epilogue(d, e);
      f32_dwconv__scalar(want.data(), nullptr, d.in.data(), d.w.data(), ep, s);
      fn(got.data(), scratch.data(), d.in.data(), d.w.data(), ep, s);
      ASSERT_TRUE(BitEqual("epilogue " + std::to_string(e), want.data(), got.data(), got.size())) << name(s);
    }
  }
  EXPECT_GT(checked, size_t(300));
}

void check_dinput(DinputFn fn, bool (*only)(const DepthwiseConv&)) {
  uint64_t seed = 600;
  size_t checked = 0;
  for (const DepthwiseConv& s : geometries()) {
    const Data d = data(s, seed++);
    if (only != nullptr && !only(s)) continue;
    ++checked;
    std::vector<float> want = d.din0, got = d.din0, scratch = nan_scratch(s);
    f32_dwconv_dinput__scalar(want.data(), nullptr, d.dout.data(), d.w.data(), s);
    fn(got.data(), scratch.data(), d.dout.data(), d.w.data(), s);
    ASSERT_TRUE(BitEqual("din", want.data(), got.data(), got.size())) << name(s);
  }
  EXPECT_GT(checked, size_t(300));
}

void check_dweight(DweightFn fn, bool (*only)(const DepthwiseConv&)) {
  uint64_t seed = 700;
  size_t checked = 0;
  for (const DepthwiseConv& s : geometries()) {
    const Data d = data(s, seed++);
    if (only != nullptr && !only(s)) continue;
    ++checked;
    std::vector<float> want = d.dw0, got = d.dw0, scratch = nan_scratch(s);
    f32_dwconv_dweight__scalar(want.data(), nullptr, d.dout.data(), d.in.data(), s);
    fn(got.data(), scratch.data(), d.dout.data(), d.in.data(), s);
    ASSERT_TRUE(BitEqual("dweight", want.data(), got.data(), got.size())) << name(s);
  }
  EXPECT_GT(checked, size_t(300));
}

TEST(DepthwiseDispatch, ForwardMatchesTheReferenceBitForBit) { check_forward(f32_dwconv, nullptr); }
TEST(DepthwiseDispatch, InputGradientMatchesTheReferenceBitForBit) { check_dinput(f32_dwconv_dinput, nullptr); }
TEST(DepthwiseDispatch, WeightGradientMatchesTheReferenceBitForBit) {
  check_dweight(f32_dwconv_dweight, nullptr);
}

#if defined(__wasm_simd128__)
bool width_ok(const DepthwiseConv& s) { return s.width_variants_apply(); }
TEST(DepthwiseWasmSimd, ForwardW8MatchesTheReferenceBitForBit) {
  check_forward(f32_dwconv_w8__wasmsimd, width_ok);
}
TEST(DepthwiseWasmSimd, ForwardC8MatchesTheReferenceBitForBit) {
  check_forward(f32_dwconv_c8__wasmsimd, nullptr);
}
TEST(DepthwiseWasmSimd, InputGradientW8MatchesTheReferenceBitForBit) {
  check_dinput(f32_dwconv_dinput_w8__wasmsimd, width_ok);
}
TEST(DepthwiseWasmSimd, InputGradientC8MatchesTheReferenceBitForBit) {
  check_dinput(f32_dwconv_dinput_c8__wasmsimd, nullptr);
}
TEST(DepthwiseWasmSimd, WeightGradientW4MatchesTheReferenceBitForBit) {
  check_dweight(f32_dwconv_dweight_w4__wasmsimd, width_ok);
}
TEST(DepthwiseWasmSimd, WeightGradientC8MatchesTheReferenceBitForBit) {
  check_dweight(f32_dwconv_dweight_c8__wasmsimd, nullptr);
}
#endif

// ---- the layer functions ------------------------------------------------------------

// Over a batch: forward is the kernel per image; backward sums the images'
// weight gradients in order and equals the kernels called image by image.
TEST(DepthwiseLayer, BatchIsTheKernelsImageByImage) {
  for (const DepthwiseConv& s : {make(5, 7, 9, 1, 3, 3, 1, 1, 1, 1, 1, 1),
                                 make(3, 9, 6, 2, 3, 3, 2, 2, 1, 1, 1, 1),
                                 make(6, 2, 2, 1, 3, 3, 1, 1, 1, 1, 1, 1)}) {
    const size_t B = 3, image = s.C * s.H * s.W, F = s.F(), P = s.P();
    Rng rng(800 + s.C);
    const std::vector<float> in = rng.uniform_vec(B * image, -1, 1), w = rng.uniform_vec(F * s.K(), -0.5, 0.5);
    const std::vector<float> bias = rng.uniform_vec(F, -0.5, 0.5), dout = rng.uniform_vec(B * F * P, -1, 1);
    std::vector<float> scratch(s.scratch_size()), out(B * F * P), want(B * F * P);
    DepthwiseEpilogue ep;
    ep.init = bias.data();
    depthwise_conv2d_forward(out.data(), scratch.data(), in.data(), w.data(), ep, B, s);
    std::vector<float> din(B * image, 0.0f), dw(F * s.K(), 0.0f), db(F, 0.0f);
    depthwise_conv2d_backward(din.data(), dw.data(), db.data(), scratch.data(), dout.data(), in.data(), w.data(),
                              B, s);
    std::vector<float> want_din(B * image, 0.0f), want_dw(F * s.K(), 0.0f), want_db(F, 0.0f);
    for (size_t b = 0; b < B; ++b) {
      f32_dwconv__scalar(want.data() + b * F * P, nullptr, in.data() + b * image, w.data(), ep, s);
      f32_dwconv_dweight__scalar(want_dw.data(), nullptr, dout.data() + b * F * P, in.data() + b * image, s);
      f32_dwconv_dinput__scalar(want_din.data() + b * image, nullptr, dout.data() + b * F * P, w.data(), s);
      for (size_t f = 0; f < F; ++f) {
        float sum = 0.0f;
        for (size_t p = 0; p < P; ++p) sum += dout[(b * F + f) * P + p];
        want_db[f] += sum;
      }
    }
    EXPECT_TRUE(BitEqual("out", want.data(), out.data(), out.size())) << name(s);
    EXPECT_TRUE(BitEqual("din", want_din.data(), din.data(), din.size())) << name(s);
    EXPECT_TRUE(BitEqual("dweight", want_dw.data(), dw.data(), dw.size())) << name(s);
    EXPECT_TRUE(BitEqual("dbias", want_db.data(), db.data(), db.size())) << name(s);
    // Without an input gradient (the first layer) the weight's is the same.
    std::vector<float> dw2(F * s.K(), 0.0f);
    depthwise_conv2d_backward(nullptr, dw2.data(), nullptr, scratch.data(), dout.data(), in.data(), w.data(), B, s);
    EXPECT_TRUE(BitEqual("dweight without din", want_dw.data(), dw2.data(), dw2.size())) << name(s);
  }
}


// Split over the thread pool (pieces of channels, and of images in forward):
// the same bits at 1, 2, 3, 4 and 8 threads, at sizes that make several
// pieces: 96 channels of 8 x 8, and 40 channels of 16 x 16 with two filters
// each at stride 2, a batch of 6.
TEST(DepthwiseLayer, SameBitsAtEveryThreadCount) {
  for (const DepthwiseConv& s : {make(96, 8, 8, 1, 3, 3, 1, 1, 1, 1, 1, 1),
                                 make(40, 16, 16, 2, 3, 3, 2, 2, 1, 1, 1, 1)}) {
    const size_t B = 6, image = s.C * s.H * s.W, F = s.F(), P = s.P();
    Rng rng(900 + s.C);
    const std::vector<float> in = rng.uniform_vec(B * image, -1, 1), w = rng.uniform_vec(F * s.K(), -0.5, 0.5);
    const std::vector<float> bias = rng.uniform_vec(F, -0.5, 0.5), scale = rng.uniform_vec(F, 0.5, 2);
    const std::vector<float> shift = rng.uniform_vec(F, -1, 1), dout = rng.uniform_vec(B * F * P, -1, 1);
    const auto run = [&] {
      std::vector<float> scratch(s.scratch_size()), out(B * F * P), fused(B * F * P);
      std::vector<float> din(B * image, 0.0f), dw(F * s.K(), 0.0f), db(F, 0.0f);
      DepthwiseEpilogue ep;
      ep.init = bias.data();
      depthwise_conv2d_forward(out.data(), scratch.data(), in.data(), w.data(), ep, B, s);
      ep.scale = scale.data();
      ep.shift = shift.data();
      ep.relu = true;
      depthwise_conv2d_forward(fused.data(), scratch.data(), in.data(), w.data(), ep, B, s);
      depthwise_conv2d_backward(din.data(), dw.data(), db.data(), scratch.data(), dout.data(), in.data(),
                                w.data(), B, s);
      std::vector<float> all = out;
      for (const std::vector<float>* v : {&fused, &din, &dw, &db}) all.insert(all.end(), v->begin(), v->end());
      return all;
    };
    set_thread_count(1);
    const std::vector<float> reference = run();
    for (size_t n : {1, 2, 3, 4, 8}) {
      const size_t got_threads = set_thread_count(n);
#if !defined(__EMSCRIPTEN__)
      ASSERT_EQ(got_threads, n) << "threads did not start";
#endif
      (void)got_threads;
      const std::vector<float> got = run();
      EXPECT_TRUE(BitEqual(name(s) + ", " + std::to_string(n) + " threads", reference.data(), got.data(),
                           got.size()));
    }
    set_thread_count(1);
  }
}

}  // namespace
