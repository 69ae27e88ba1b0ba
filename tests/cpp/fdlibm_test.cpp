// fdlibm_log, fdlibm_exp and fdlibm_cos (bnwasm/fdlibm.h) against the C library's log, exp and
// cos (glibc natively, musl in the wasm build), in units in the last place: both are within 1 ulp
// of the exact value, so they differ by at most 1 ulp where one rounds up and the other down.
// Then what the core does with them: the Box-Muller draws of init 'normal', rounded to float,
// are the C library's in every case tried.
#include "bnwasm/fdlibm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace bnwasm;

namespace {

// Distance in ulps between two finite doubles of the same sign.
int64_t ulps(double a, double b) {
  int64_t ia, ib;
  std::memcpy(&ia, &a, sizeof a);
  std::memcpy(&ib, &b, sizeof b);
  return ia > ib ? ia - ib : ib - ia;
}

// Deterministic doubles in [0, 1) (splitmix64, as the core's generator).
struct Draws {
  uint64_t state = 0x5eed;
  double next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return ((z ^ (z >> 31)) >> 11) * 0x1.0p-53;
  }
};

template <typename F, typename G>
void ExpectWithinOneUlp(const char* name, F ours, G libc, const std::vector<double>& xs) {
  int64_t worst = 0;
  double at = 0;
  for (double x : xs) {
    const double a = ours(x), b = libc(x);
    if (a == b) continue;
    if (std::signbit(a) != std::signbit(b) || !std::isfinite(a) || !std::isfinite(b)) {
      ADD_FAILURE() << name << "(" << x << "): " << a << " against the C library's " << b;
      return;
    }
    if (ulps(a, b) > worst) worst = ulps(a, b), at = x;
  }
  EXPECT_LE(worst, 1) << name << ": " << worst << " ulps at x = " << at;
}

}  // namespace

TEST(Fdlibm, LogIsWithinOneUlp) {
  Draws d;
  std::vector<double> xs = {1.0, 2.0, 0.5, 1e-300, 4.9e-324, 1e300, 1.0 + 0x1p-52, 1.0 - 0x1p-53,
                            M_SQRT2, M_SQRT1_2, 2.718281828459045};
  for (int i = 0; i < 200000; ++i) xs.push_back(1.0 - d.next());  // Box-Muller's (0, 1]
  for (int i = 0; i < 200000; ++i) xs.push_back(1.0 + 1000 * d.next());  // sums of exps, >= 1
  for (int i = 0; i < 100000; ++i) xs.push_back(std::ldexp(0.5 + 0.5 * d.next(), static_cast<int>(2000 * d.next()) - 1000));
  ExpectWithinOneUlp("log", fdlibm_log, [](double x) { return std::log(x); }, xs);
  EXPECT_EQ(fdlibm_log(1.0), 0.0);
  EXPECT_EQ(fdlibm_log(0.0), -INFINITY);
  EXPECT_TRUE(std::isnan(fdlibm_log(-1.0)));
  EXPECT_EQ(fdlibm_log(INFINITY), INFINITY);
}

TEST(Fdlibm, ExpIsWithinOneUlp) {
  Draws d;
  std::vector<double> xs = {0.0, -0.0, 1.0, -1.0, 0.5 * M_LN2, -0.5 * M_LN2, 1.5 * M_LN2, 1e-9, -1e-9, -700, 700, -740};
  for (int i = 0; i < 300000; ++i) xs.push_back(-100 * d.next());  // z - max(z) <= 0
  for (int i = 0; i < 100000; ++i) xs.push_back(1400 * d.next() - 700);
  ExpectWithinOneUlp("exp", fdlibm_exp, [](double x) { return std::exp(x); }, xs);
  EXPECT_EQ(fdlibm_exp(0.0), 1.0);
  EXPECT_EQ(fdlibm_exp(-800.0), 0.0);
  EXPECT_EQ(fdlibm_exp(800.0), INFINITY);
}

TEST(Fdlibm, CosIsWithinOneUlpOnTheCoresArguments) {
  Draws d;
  std::vector<double> xs = {0.0, M_PI / 4, M_PI / 2, M_PI, 3 * M_PI / 2, 2 * M_PI, 1e-10};
  for (int i = 0; i < 400000; ++i) xs.push_back(6.283185307179586 * d.next());  // [0, 2 pi)
  // Near the zeros, where the reduction cancels.
  for (double z : {M_PI / 2, 3 * M_PI / 2})
    for (int i = -2000; i <= 2000; ++i) xs.push_back(std::nextafter(z, 0.0) + i * 0x1p-40);
  // cos is within 1 ulp of cos(x), but near a zero a tiny absolute error is many ulps of a tiny
  // result; compare those in absolute terms.
  std::vector<double> ordinary;
  for (double x : xs) {
    if (std::fabs(std::cos(x)) > 1e-6) {
      ordinary.push_back(x);
    } else {
      EXPECT_NEAR(fdlibm_cos(x), std::cos(x), 1e-22) << "x = " << x;
    }
  }
  ExpectWithinOneUlp("cos", fdlibm_cos, [](double x) { return std::cos(x); }, ordinary);
  EXPECT_TRUE(std::isnan(fdlibm_cos(1e300)));
}

TEST(Fdlibm, BoxMullerDrawsRoundToTheSameFloats) {
  // What init 'normal' computes (cpp/src/ops/registry.cpp, init_weights), one million draws.
  Draws d;
  int differ = 0;
  for (int i = 0; i < 1000000; ++i) {
    const double u1 = 1.0 - d.next(), u2 = d.next();
    const float ours = static_cast<float>(0.05 * std::sqrt(-2.0 * fdlibm_log(u1)) * fdlibm_cos(6.283185307179586 * u2));
    const float libc = static_cast<float>(0.05 * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
    differ += ours != libc;
  }
  EXPECT_EQ(differ, 0);
}
