// Helpers shared by the native test files: a seeded generator that gives the
// same numbers natively and under Emscripten (the <random> distributions do
// not), and comparisons that report the worst element on failure.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace bnwasm_test {

// Unit roundoff of float32: the relative error of one correctly rounded operation.
constexpr double kU = 0x1.0p-24;

// splitmix64 with Box-Muller: fully specified, so a seed means the same data
// on every platform and standard library.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return (next() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  std::vector<float> uniform_vec(size_t n, double lo, double hi) {
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(uniform(lo, hi));
    return v;
  }
  std::vector<float> normal_vec(size_t n, double mean, double stddev) {
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(mean + stddev * normal());
    return v;
  }

 private:
  uint64_t state_;
};

inline std::string fmt(double v) {
  std::ostringstream s;
  s.precision(9);
  s << v;
  return s.str();
}

// Passes when |actual[i] - expected[i]| <= tol[i] for every i; otherwise names
// the worst element (largest error relative to its tolerance) with its
// expected and actual value, and how many elements failed. T is float (the
// code under test) or double (a statistic the test computed from its output).
template <typename T>
::testing::AssertionResult AllNear(const std::string& what, const double* expected, const T* actual,
                                   const double* tol, size_t n) {
  size_t worst = n, bad = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < n; ++i) {
    const double err = std::fabs(static_cast<double>(actual[i]) - expected[i]);
    // !(err <= tol) also catches NaN.
    if (!(err <= tol[i])) {
      ++bad;
      const double ratio = std::isnan(err) ? INFINITY : err / tol[i];
      if (worst == n || ratio > worst_ratio) {
        worst = i;
        worst_ratio = ratio;
      }
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  const double a = static_cast<double>(actual[worst]);
  return ::testing::AssertionFailure()
         << what << ": " << bad << " of " << n << " elements out of tolerance; worst at index "
         << worst << ": expected " << fmt(expected[worst]) << ", actual " << fmt(a)
         << ", |difference| " << fmt(std::fabs(a - expected[worst])) << " > tolerance "
         << fmt(tol[worst]);
}

template <typename T>
::testing::AssertionResult AllNear(const std::string& what, const std::vector<double>& expected,
                                   const T* actual, const std::vector<double>& tol) {
  return AllNear(what, expected.data(), actual, tol.data(), expected.size());
}

template <typename T>
::testing::AssertionResult AllNear(const std::string& what, const std::vector<double>& expected,
                                   const T* actual, double tol) {
  return AllNear(what, expected, actual, std::vector<double>(expected.size(), tol));
}

// The same with a double actual, for values the code under test returns as double.
inline ::testing::AssertionResult Near(const std::string& what, double expected, double actual,
                                       double tol) {
  if (std::fabs(actual - expected) <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << what << ": expected " << fmt(expected) << ", actual " << fmt(actual)
         << ", |difference| " << fmt(std::fabs(actual - expected)) << " > tolerance " << fmt(tol);
}

// Bit-for-bit equality of two float arrays; names the first differing element.
inline ::testing::AssertionResult BitEqual(const std::string& what, const float* expected,
                                           const float* actual, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (std::memcmp(expected + i, actual + i, sizeof(float)) != 0) {
      std::ostringstream s;
      s << std::hexfloat << expected[i] << " vs " << actual[i];
      return ::testing::AssertionFailure()
             << what << ": first difference at index " << i << ": expected " << fmt(expected[i])
             << ", actual " << fmt(actual[i]) << " (" << s.str() << ")";
    }
  }
  return ::testing::AssertionSuccess();
}

// Equality of two byte strings; names the first differing offset.
inline ::testing::AssertionResult BytesEqual(const std::string& what,
                                             const std::vector<uint8_t>& expected,
                                             const std::vector<uint8_t>& actual) {
  if (expected.size() != actual.size())
    return ::testing::AssertionFailure()
           << what << ": " << actual.size() << " bytes, expected " << expected.size();
  for (size_t i = 0; i < expected.size(); ++i)
    if (expected[i] != actual[i])
      return ::testing::AssertionFailure()
             << what << ": first difference at byte " << i << " of " << expected.size()
             << ": expected " << int(expected[i]) << ", actual " << int(actual[i]);
  return ::testing::AssertionSuccess();
}

inline std::vector<double> to_double(const float* p, size_t n) {
  return std::vector<double>(p, p + n);
}

}  // namespace bnwasm_test
