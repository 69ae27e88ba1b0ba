// Finite-difference gradient checks shared by the layer tests.
//
// Gradient checks. The layers are float-only, so the finite differences are
// taken in float32: the scalar loss is L = sum(out * R) with a fixed random R
// (accumulated in double), and each input element is moved by +-h with
// h = 2^-7 ~ 7.8e-3. A power of two keeps x +- h exact for |x| < 2, and the
// step actually taken is used as the denominator anyway. The numerical
// derivative then carries two errors:
//  - truncation, h^2 / 6 * |f'''| ~ 1e-5 * |f'''|, small for the well-scaled
//    inputs used here (|x| of order 1, ReLU inputs kept >= 0.1 from its kink);
//  - float32 rounding of the outputs: each is within a few u of its exact
//    value, so L moves by at most ~4 u * sum|out * R| between the two sides;
//    divided by 2h that is kRoundoffFactor * sum|out R|.
// An element passes when |numerical - analytic| <= noise + 1e-3 * |numerical|:
// the relative part covers truncation, and a wrong factor (a missing 1/B, a
// dropped term of the batch-norm gradient, a sign) is off by far more.
#pragma once

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "test_util.h"

namespace bnwasm_test {

constexpr float kH = 0x1.0p-7f;
constexpr double kRtol = 1e-3;
// 4 u * sum|out R| / (2 h), with a factor 2 of margin.
constexpr double kRoundoffFactor = 4.0 * kU / kH;

inline double dot(const std::vector<float>& out, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < out.size(); ++i) s += static_cast<double>(out[i]) * r[i];
  return s;
}
inline double abs_dot(const std::vector<float>& out, const std::vector<float>& r) {
  double s = 0;
  for (size_t i = 0; i < out.size(); ++i) s += std::fabs(static_cast<double>(out[i]) * r[i]);
  return s;
}

// Central differences of loss() with respect to each element of x[0..n).
inline std::vector<double> numeric_gradient(const std::function<double()>& loss, float* x,
                                            size_t n) {
  std::vector<double> g(n);
  for (size_t i = 0; i < n; ++i) {
    const float x0 = x[i];
    const float xp = x0 + kH, xm = x0 - kH;
    x[i] = xp;
    const double lp = loss();
    x[i] = xm;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (static_cast<double>(xp) - static_cast<double>(xm));
  }
  return g;
}

// The analytic gradient against the numerical one, tolerance as explained at the top.
inline ::testing::AssertionResult GradientMatches(const std::string& what,
                                                  const std::vector<double>& numeric,
                                                  const std::vector<float>& analytic,
                                                  double loss_scale) {
  std::vector<double> tol(numeric.size());
  for (size_t i = 0; i < tol.size(); ++i)
    tol[i] = kRoundoffFactor * loss_scale + kRtol * std::fabs(numeric[i]);
  return AllNear(what + " (expected: finite differences, actual: backward)", numeric,
                 analytic.data(), tol);
}

// second == 2 * first, where `second` is what backward left after running
// twice on zeroed outputs. Exact where the kernel adds one finished value
// (v + v = 2v exactly); `tol` covers accumulating gemms, which add their terms
// one by one onto the value already there.
inline ::testing::AssertionResult Doubled(const std::string& what, const std::vector<float>& first,
                                          const std::vector<float>& second, double tol) {
  std::vector<double> expected(first.size());
  for (size_t i = 0; i < first.size(); ++i) expected[i] = 2.0 * first[i];
  return AllNear(what + " after two backward calls", expected, second.data(), tol);
}

}  // namespace bnwasm_test
