// Winograd F(2x2, 3x3) inference convolution (kernels.h): the weight
// transform against its definition, the scalar kernel against a double
// precision convolution within a rounding-error bound, its epilogue and pool
// against the separate steps, every variant against the scalar one bit for
// bit, and the layer (padding, batch of images) against the kernel.
#include <cmath>
#include <string>
#include <vector>

#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

// G (4x3), B^T (4x4), A^T (2x4): Lavin and Gray's F(2x2, 3x3).
const double kG[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
const double kBT[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
const double kAT[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

struct Case {
  const char* name;
  size_t C, H, W, F, PT, PL, PB, PR;
};
// Output sizes odd and even (a last tile half outside, which the pool drops),
// rows of tiles that are one vector, two, or two and a half (the 4-tile
// block), filter counts that are not a multiple of 4, one input channel,
// valid and 'same' and uneven padding, the Fashion-MNIST CNN's two layers.
const Case kCases[] = {
    {"one_tile", 2, 4, 4, 1, 0, 0, 0, 0},
    {"odd_7x9_f5", 3, 7, 9, 5, 1, 1, 1, 1},
    {"w12_f7", 2, 4, 12, 7, 1, 1, 1, 1},
    {"valid_8x15", 4, 10, 17, 6, 0, 0, 0, 0},
    {"tw15_two_vectors", 2, 9, 30, 4, 1, 1, 1, 1},
    {"tw11_half_block", 5, 6, 21, 3, 1, 1, 1, 1},
    {"uneven_padding", 3, 5, 6, 4, 2, 0, 2, 0},
    {"one_channel", 1, 28, 28, 16, 1, 1, 1, 1},
    {"fashion_conv2", 16, 14, 14, 32, 1, 1, 1, 1},
};

struct Problem {
  Conv2dGeometry g;
  Winograd23Conv s;
  std::vector<float> image, w, x, u, bias, scale, shift;
};

Problem make_problem(const Case& k, bool pool, uint64_t seed) {
  Problem p;
  const size_t OH = k.H + k.PT + k.PB - 2, OW = k.W + k.PL + k.PR - 2;
  p.g = {k.C, k.H, k.W, k.F, 3, 3, 1, 1, k.PT, k.PL, OH, OW};
  p.s = Winograd23Conv::of(k.F, k.C, OH, OW, pool);
  Rng rng(seed);
  p.image = rng.uniform_vec(k.C * k.H * k.W, -1, 1);
  p.w = rng.uniform_vec(k.F * k.C * 9, -0.5, 0.5);
  p.bias = rng.uniform_vec(k.F, -0.5, 0.5);
  p.scale = rng.uniform_vec(k.F, -2, 2);  // negative scales too: the pool must not assume order
  p.shift = rng.uniform_vec(k.F, -1, 1);
  // The padded image from its definition (kernels.h): the input at row
  // PT, column PL, zeros around it.
  const size_t HP = p.s.HP(), WP = p.s.WP();
  p.x.assign(p.s.input_size(), 0.0f);
  for (size_t c = 0; c < k.C; ++c)
    for (size_t y = 0; y < k.H; ++y)
      for (size_t xc = 0; xc < k.W; ++xc)
        p.x[(c * HP + y + k.PT) * WP + xc + k.PL] = p.image[(c * k.H + y) * k.W + xc];
  p.u.resize(f32_winograd23_weight_size(k.F, k.C));
  f32_winograd23_weights(p.u.data(), p.w.data(), k.F, k.C);
  return p;
}

// Out elements: (F, OH, OW), or (F, OH / 2, OW / 2) pooled.
size_t out_size(const Winograd23Conv& s) {
  return s.pool ? s.F * (s.OH / 2) * (s.OW / 2) : s.F * s.OH * s.OW;
}

// The kernel into an output with a guard band after it: nothing past the
// output may be written.
::testing::AssertionResult run(decltype(&f32_conv3x3_winograd23__scalar) f, std::vector<float>* out,
                               const Problem& p, const ConvEpilogue& ep) {
  const size_t n = out_size(p.s), guard = 64;
  std::vector<float> buf(n + guard, -7.0f), v(p.s.v_size());
  f(buf.data(), p.x.data(), p.u.data(), v.data(), ep, p.s);
  for (size_t i = n; i < n + guard; ++i)
    if (buf[i] != -7.0f)
      return ::testing::AssertionFailure() << "wrote past the output at " << i - n;
  out->assign(buf.begin(), buf.begin() + n);
  return ::testing::AssertionSuccess();
}

ConvEpilogue epilogue(const Problem& p, int e) {
  ConvEpilogue ep;
  if (e >= 1) ep.init = p.bias.data();
  if (e >= 2) {
    ep.scale = p.scale.data();
    ep.shift = p.shift.data();
  }
  ep.relu = e == 3;
  return ep;
}

TEST(Winograd, WeightTransformIsGgGtRoundedOnce) {
  Rng rng(4100);
  for (const size_t F : {1, 4, 6}) {
    const size_t C = 3, FP = (F + 3) / 4 * 4;
    const std::vector<float> w = rng.uniform_vec(F * C * 9, -2, 2);
    std::vector<float> u(f32_winograd23_weight_size(F, C), -7.0f);
    f32_winograd23_weights(u.data(), w.data(), F, C);
    for (size_t f = 0; f < FP; ++f)
      for (size_t c = 0; c < C; ++c)
        for (size_t i = 0; i < 4; ++i)
          for (size_t j = 0; j < 4; ++j) {
            double t = 0;  // (G g G^T)[i][j], in double: exact for these float inputs
            if (f < F)
              for (size_t a = 0; a < 3; ++a)
                for (size_t b = 0; b < 3; ++b) t += kG[i][a] * w[((f * C + c) * 3 + a) * 3 + b] * kG[j][b];
            const float got = u[(((i * 4 + j) * (FP / 4) + f / 4) * C + c) * 4 + f % 4];
            ASSERT_EQ(got, static_cast<float>(t)) << "filter " << f << ", channel " << c << ", (" << i
                                                  << ", " << j << ")";
          }
  }
}

// Each output against the convolution in double. Rounding: the weight
// transform once (u), the input transform twice (two additions per value),
// the sum over C channels C + 1 times (a product, then additions from 0), the
// output transform four times (two additions down, two across): k = C + 8
// roundings on the path of each term, so with the terms' magnitudes taken
// through the transforms in absolute value,
//   |y~ - y| <= gamma_k * |A^T| ( sum_c |G||g||G^T| . |B^T||d||B| ) |A|,
// gamma_k = k u / (1 - k u) (Higham, Accuracy and Stability, ch. 3).
TEST(Winograd, ScalarKernelWithinTheRoundingBound) {
  for (const Case& k : kCases) {
    const Problem p = make_problem(k, false, 4200 + k.C * 7 + k.F);
    std::vector<float> out;
    ASSERT_TRUE(run(f32_conv3x3_winograd23__scalar, &out, p, ConvEpilogue{})) << k.name;
    const size_t HP = p.s.HP(), WP = p.s.WP(), OH = p.s.OH, OW = p.s.OW;
    const double kk = static_cast<double>(k.C + 8), gamma = kk * kU / (1 - kk * kU);
    double worst = 0;  // the largest error as a share of its bound: printed, to see the bound is not vacuous
    for (size_t f = 0; f < k.F; ++f)
      for (size_t oy = 0; oy < OH; ++oy)
        for (size_t ox = 0; ox < OW; ++ox) {
          double want = 0;
          for (size_t c = 0; c < k.C; ++c)
            for (size_t ky = 0; ky < 3; ++ky)
              for (size_t kx = 0; kx < 3; ++kx)
                want += double(p.w[((f * k.C + c) * 3 + ky) * 3 + kx]) *
                        p.x[(c * HP + oy + ky) * WP + ox + kx];
          // The magnitude through the transforms, for the tile holding (oy, ox).
          const size_t ty = oy / 2, tx = ox / 2, a = oy % 2, b = ox % 2;
          double mag = 0;
          for (size_t i = 0; i < 4; ++i)
            for (size_t j = 0; j < 4; ++j) {
              const double coef = std::fabs(kAT[a][i]) * std::fabs(kAT[b][j]);
              if (coef == 0) continue;
              for (size_t c = 0; c < k.C; ++c) {
                double ua = 0, va = 0;
                for (size_t r = 0; r < 3; ++r)
                  for (size_t q = 0; q < 3; ++q)
                    ua += std::fabs(kG[i][r] * p.w[((f * k.C + c) * 3 + r) * 3 + q] * kG[j][q]);
                for (size_t r = 0; r < 4; ++r)
                  for (size_t q = 0; q < 4; ++q)
                    va += std::fabs(kBT[i][r] * p.x[(c * HP + 2 * ty + r) * WP + 2 * tx + q] * kBT[j][q]);
                mag += coef * ua * va;
              }
            }
          const double tol = gamma * mag;
          const float got = out[(f * OH + oy) * OW + ox];
          ASSERT_TRUE(Near(std::string(k.name) + " (" + std::to_string(f) + ", " +
                               std::to_string(oy) + ", " + std::to_string(ox) + ")",
                           want, got, tol));
          if (tol > 0) worst = std::max(worst, std::fabs(got - want) / tol);
        }
    std::printf("  %-18s worst error %.3f of the bound\n", k.name, worst);
  }
}

// The epilogue is v = init + y, v * scale + shift, v > 0 ? v : 0, as the
// direct kernel's; the pool takes the first maximum of each 2x2 window in
// reading order, as f32_maxpool2x2 does: both equal those steps after an
// unfused call, bit for bit.
TEST(Winograd, EpilogueAndPoolEqualTheStepsInTurn) {
  for (const Case& k : kCases) {
    const Problem plain = make_problem(k, false, 4300 + k.F);
    std::vector<float> y;
    ASSERT_TRUE(run(f32_conv3x3_winograd23__scalar, &y, plain, ConvEpilogue{})) << k.name;
    for (int e = 0; e < 4; ++e) {
      const ConvEpilogue ep = epilogue(plain, e);
      std::vector<float> want = y;
      const size_t P = plain.s.OH * plain.s.OW;
      for (size_t f = 0; f < k.F; ++f)
        for (size_t i = 0; i < P; ++i) {
          float& v = want[f * P + i];
          v = (ep.init != nullptr ? ep.init[f] : 0.0f) + v;
          if (ep.scale != nullptr) v = v * ep.scale[f] + ep.shift[f];
          if (ep.relu) v = v > 0.0f ? v : 0.0f;
        }
      std::vector<float> got;
      ASSERT_TRUE(run(f32_conv3x3_winograd23__scalar, &got, plain, ep));
      EXPECT_TRUE(BitEqual(std::string(k.name) + " epilogue " + std::to_string(e), want.data(),
                           got.data(), got.size()));
      if (plain.s.OH < 2 || plain.s.OW < 2) continue;
      Problem pooled = plain;
      pooled.s.pool = true;
      const size_t PH = plain.s.OH / 2, PW = plain.s.OW / 2;
      std::vector<float> want_pool(k.F * PH * PW);
      f32_maxpool2x2__scalar(want_pool.data(), want.data(), k.F, plain.s.OH, plain.s.OW, PH, PW);
      ASSERT_TRUE(run(f32_conv3x3_winograd23__scalar, &got, pooled, ep));
      EXPECT_TRUE(BitEqual(std::string(k.name) + " pooled, epilogue " + std::to_string(e),
                           want_pool.data(), got.data(), got.size()));
    }
  }
}

void check_variant(decltype(&f32_conv3x3_winograd23__scalar) f) {
  for (const Case& k : kCases)
    for (const bool pool : {false, true}) {
      if (pool && (k.H + k.PT + k.PB < 4 || k.W + k.PL + k.PR < 4)) continue;
      const Problem p = make_problem(k, pool, 4400 + k.F * 3 + pool);
      for (int e = 0; e < 4; ++e) {
        const ConvEpilogue ep = epilogue(p, e);
        std::vector<float> want, got;
        ASSERT_TRUE(run(f32_conv3x3_winograd23__scalar, &want, p, ep));
        ASSERT_TRUE(run(f, &got, p, ep)) << k.name;
        EXPECT_TRUE(BitEqual(std::string(k.name) + (pool ? " pooled" : "") + " epilogue " +
                                 std::to_string(e),
                             want.data(), got.data(), got.size()));
      }
    }
}

TEST(Winograd, DispatchEqualsScalarBitForBit) { check_variant(f32_conv3x3_winograd23); }
#if defined(__wasm_simd128__)
TEST(Winograd, WasmSimdEqualsScalarBitForBit) {
  check_variant(f32_conv3x3_winograd23_4x8__wasmsimd);
}
#endif

// The layer pads each image of a batch into its scratch and calls the
// kernel: the same bits as the kernel on the padded image built above.
TEST(Winograd, LayerPadsEachImageAsTheKernelExpects) {
  for (const Case& k : kCases)
    for (const bool pool : {false, true}) {
      if (pool && (k.H + k.PT + k.PB < 4 || k.W + k.PL + k.PR < 4)) continue;
      const size_t B = 3;
      std::vector<Problem> ps;
      std::vector<float> in;
      for (size_t b = 0; b < B; ++b) {
        ps.push_back(make_problem(k, pool, 4500 + b));
        in.insert(in.end(), ps.back().image.begin(), ps.back().image.end());
      }
      const Problem& p0 = ps[0];  // one weight for the batch: the first problem's
      std::vector<float> scratch(conv2d_scratch_size(p0.g)), got(B * out_size(p0.s));
      conv2d_winograd_forward_infer(got.data(), scratch.data(), in.data(), p0.u.data(),
                                    p0.bias.data(), p0.scale.data(), p0.shift.data(), true, pool, B,
                                    p0.g);
      for (size_t b = 0; b < B; ++b) {
        Problem p = ps[b];
        p.u = p0.u;
        std::vector<float> want;
        ConvEpilogue ep = epilogue(p0, 3);
        ASSERT_TRUE(run(f32_conv3x3_winograd23, &want, p, ep));
        EXPECT_TRUE(BitEqual(std::string(k.name) + " image " + std::to_string(b), want.data(),
                             got.data() + b * want.size(), want.size()));
      }
    }
}

}  // namespace
