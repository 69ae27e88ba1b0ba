// Every kernel variant against the scalar reference, and the scalar reference
// against a double-precision naive loop, at sizes below, at and above the tile
// (gemm: 4 rows x 8 columns; packed gemm: 4 or 6 rows x one 8-column panel, or
// one row x 4 panels; the others: 4 lanes) and with odd remainders.
//
// Natively only the scalar variant exists; built with Emscripten and
// -msimd128, the __wasmsimd variants are tested too and the un-suffixed names
// dispatch to them.
//
// Tolerances are the classical worst-case bounds for recursive float32
// summation (Higham, Accuracy and Stability of Numerical Algorithms, 3.1): a
// sum of n rounded terms is within about (n + 1) u * sum |terms| of the exact
// value, u = 2^-24. They hold for any summation order, so they also bound a
// SIMD variant's reordered sums, and they are far below the O(1) errors of an
// indexing or remainder mistake.
#include "bnwasm/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

const size_t kM[] = {1, 2, 3, 4, 5, 7, 8, 9, 13};
const size_t kN[] = {1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 33};
const size_t kK[] = {1, 2, 7, 16, 31, 64};
const size_t kRows[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 31, 64};

// Stop a sweep after this many failing sizes: one message per size is enough.
constexpr int kMaxReportedSizes = 5;

// Canary elements around every buffer: a quiet NaN with a payload of its own.
// A kernel that writes out of bounds changes them; one that reads out of
// bounds and uses the value turns its results into NaN.
constexpr size_t kPad = 8;
constexpr uint32_t kCanaryBits = 0x7FC0DEADu;

class Guarded {
 public:
  explicit Guarded(size_t n) : n_(n), buf_(n + 2 * kPad) {
    float canary;
    std::memcpy(&canary, &kCanaryBits, sizeof canary);
    std::fill(buf_.begin(), buf_.end(), canary);
  }
  explicit Guarded(const std::vector<float>& v) : Guarded(v.size()) {
    std::copy(v.begin(), v.end(), data());
  }
  float* data() { return buf_.data() + kPad; }
  const float* data() const { return buf_.data() + kPad; }
  size_t size() const { return n_; }
  ::testing::AssertionResult GuardsIntact(const std::string& what) const {
    for (size_t i = 0; i < buf_.size(); ++i) {
      if (i == kPad) i += n_;
      if (i >= buf_.size()) break;
      uint32_t bits;
      std::memcpy(&bits, &buf_[i], sizeof bits);
      if (bits != kCanaryBits) {
        const long offset = static_cast<long>(i) - static_cast<long>(kPad);
        return ::testing::AssertionFailure()
               << what << ": wrote outside its " << n_ << " elements, at offset " << offset;
      }
    }
    return ::testing::AssertionSuccess();
  }

 private:
  size_t n_;
  std::vector<float> buf_;
};

std::string sizes(const char* a, size_t x, const char* b, size_t y, const char* c = nullptr,
                  size_t z = 0) {
  std::string s = std::string(a) + "=" + std::to_string(x) + " " + b + "=" + std::to_string(y);
  if (c != nullptr) s += std::string(" ") + c + "=" + std::to_string(z);
  return s;
}

// ---- gemm -----------------------------------------------------------------------

using GemmFn = void (*)(float*, const float*, const float*, size_t, size_t, size_t);

struct GemmCase {
  size_t m, n, k;
  std::vector<float> a, b, c0;
  std::vector<double> exact;  // c0 + a * b in double: exact to ~1e-16, i.e. exact here
  std::vector<double> bound;  // worst-case float32 error of any summation order
};

GemmCase make_gemm_case(size_t m, size_t n, size_t k, uint64_t seed) {
  Rng rng(seed);
  GemmCase g{m,
             n,
             k,
             rng.uniform_vec(m * k, -1, 1),
             rng.uniform_vec(k * n, -1, 1),
             rng.uniform_vec(m * n, -1, 1),
             {},
             {}};
  g.exact.resize(m * n);
  g.bound.resize(m * n);
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < n; ++j) {
      double s = g.c0[i * n + j], abs_sum = std::fabs(s);
      for (size_t p = 0; p < k; ++p) {
        const double t = static_cast<double>(g.a[i * k + p]) * g.b[p * n + j];
        s += t;
        abs_sum += std::fabs(t);
      }
      g.exact[i * n + j] = s;
      // k rounded products and k additions onto c: at most (k + 1) roundings
      // in any chain; one more u of slack for the second-order terms.
      g.bound[i * n + j] = (k + 2) * kU * abs_sum;
    }
  return g;
}

std::vector<float> run_gemm(GemmFn f, const GemmCase& g, ::testing::AssertionResult* guards) {
  Guarded a(g.a), b(g.b), c(g.c0);
  f(c.data(), a.data(), b.data(), g.m, g.n, g.k);
  *guards = c.GuardsIntact("c");
  return std::vector<float>(c.data(), c.data() + c.size());
}

// f against the double-precision loop, within factor * the summation bound.
void check_gemm_against_double(GemmFn f, double factor) {
  int failures = 0;
  uint64_t seed = 1;
  for (size_t m : kM)
    for (size_t n : kN)
      for (size_t k : kK) {
        const GemmCase g = make_gemm_case(m, n, k, seed++);
        ::testing::AssertionResult guards = ::testing::AssertionSuccess();
        const std::vector<float> c = run_gemm(f, g, &guards);
        std::vector<double> tol = g.bound;
        for (double& t : tol) t *= factor;
        const ::testing::AssertionResult ok = AllNear("c", g.exact, c.data(), tol);
        EXPECT_TRUE(ok) << sizes("m", m, "n", n, "k", k);
        EXPECT_TRUE(guards) << sizes("m", m, "n", n, "k", k);
        if ((!ok || !guards) && ++failures >= kMaxReportedSizes) return;
      }
}

// ---- column reductions --------------------------------------------------------------

using ColMeanVarFn = void (*)(float*, float*, const float*, size_t, size_t);

struct ColStats {
  std::vector<float> mean, var;
};

ColStats run_colmeanvar(ColMeanVarFn f, const std::vector<float>& in, size_t rows, size_t cols,
                        ::testing::AssertionResult* guards) {
  Guarded x(in), mean(cols), var(cols);
  f(mean.data(), var.data(), x.data(), rows, cols);
  *guards = mean.GuardsIntact("mean");
  if (*guards) *guards = var.GuardsIntact("var");
  return {std::vector<float>(mean.data(), mean.data() + cols),
          std::vector<float>(var.data(), var.data() + cols)};
}

// Checks a colmeanvar result against double precision:
//  mean: a sum of `rows` terms, then one multiply by a rounded 1/rows:
//        (rows + 3) u * sum|x| / rows.
//  var:  two-pass. In exact arithmetic the second pass about the kernel's own
//        mean m' gives V(m') = sum (x - m')^2 / rows, which differs from the
//        true variance only by (m' - mean)^2. Its float32 evaluation rounds
//        each difference, each square, rows additions and the final multiply:
//        (rows + 6) u * V(m'). A one-pass E[x^2] - E[x]^2 fails this by orders
//        of magnitude whenever |mean| >> std.
::testing::AssertionResult ColMeanVarAccurate(const ColStats& s, const std::vector<float>& in,
                                              size_t rows, size_t cols) {
  std::vector<double> mean(cols, 0.0), mean_tol(cols, 0.0), var_about(cols, 0.0), var_tol(cols);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) {
      mean[j] += in[i * cols + j];
      mean_tol[j] += std::fabs(in[i * cols + j]);
    }
  for (size_t j = 0; j < cols; ++j) {
    mean[j] /= rows;
    mean_tol[j] = (rows + 3) * kU * mean_tol[j] / rows;
  }
  const ::testing::AssertionResult m = AllNear("mean", mean, s.mean.data(), mean_tol);
  if (!m) return m;
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) {
      const double d = static_cast<double>(in[i * cols + j]) - s.mean[j];
      var_about[j] += d * d;
    }
  for (size_t j = 0; j < cols; ++j) {
    var_about[j] /= rows;
    var_tol[j] = (rows + 6) * kU * var_about[j];
  }
  return AllNear("var (about the kernel's own mean)", var_about, s.var.data(), var_tol);
}

// Inputs with an offset per column so the mean is not ~0 and the two passes matter.
std::vector<float> colstats_input(size_t rows, size_t cols, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> in(rows * cols);
  std::vector<double> offset(cols);
  for (double& o : offset) o = rng.uniform(-3, 3);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j)
      in[i * cols + j] = static_cast<float>(offset[j] + rng.uniform(-1, 1));
  return in;
}

void check_colmeanvar(ColMeanVarFn f, ColMeanVarFn reference) {
  int failures = 0;
  uint64_t seed = 3000;
  for (size_t rows : kRows)
    for (size_t cols : kN) {
      const std::vector<float> in = colstats_input(rows, cols, seed++);
      ::testing::AssertionResult guards = ::testing::AssertionSuccess();
      const ColStats s = run_colmeanvar(f, in, rows, cols, &guards);
      ::testing::AssertionResult ok = ColMeanVarAccurate(s, in, rows, cols);
      if (ok && reference != nullptr) {
        // Both meet the bounds above; against each other they may differ by
        // both mean bounds, and the variances by both variance bounds plus the
        // effect of their different means, (m1 - m)^2 + (m2 - m)^2 <= 2 tol_m^2.
        ::testing::AssertionResult ref_guards = ::testing::AssertionSuccess();
        const ColStats r = run_colmeanvar(reference, in, rows, cols, &ref_guards);
        std::vector<double> mean_tol(cols), var_tol(cols);
        for (size_t j = 0; j < cols; ++j) {
          double abs_sum = 0;
          for (size_t i = 0; i < rows; ++i) abs_sum += std::fabs(in[i * cols + j]);
          mean_tol[j] = 2 * (rows + 3) * kU * abs_sum / rows;
          var_tol[j] =
              2 * (rows + 6) * kU * std::fabs(r.var[j]) * 1.01 + 0.5 * mean_tol[j] * mean_tol[j];
        }
        ok = AllNear("mean vs scalar", to_double(r.mean.data(), cols), s.mean.data(), mean_tol);
        if (ok) ok = AllNear("var vs scalar", to_double(r.var.data(), cols), s.var.data(), var_tol);
      }
      EXPECT_TRUE(ok) << sizes("rows", rows, "cols", cols);
      EXPECT_TRUE(guards) << sizes("rows", rows, "cols", cols);
      if ((!ok || !guards) && ++failures >= kMaxReportedSizes) return;
    }
}

// Values near 1e4 with unit spread: in float32 a one-pass E[x^2] - E[x]^2
// loses every digit (x^2 ~ 1e8 has an ulp of 8), the two-pass variance keeps them.
void check_colmeanvar_large_mean(ColMeanVarFn f) {
  for (size_t rows : {2, 7, 64, 256}) {
    const size_t cols = 5;
    Rng rng(5000 + rows);
    const std::vector<float> in = rng.normal_vec(rows * cols, 1e4, 1.0);
    ::testing::AssertionResult guards = ::testing::AssertionSuccess();
    const ColStats s = run_colmeanvar(f, in, rows, cols, &guards);
    EXPECT_TRUE(guards);
    EXPECT_TRUE(ColMeanVarAccurate(s, in, rows, cols)) << "rows=" << rows;
    // Against the true variance: the error is (m' - mean)^2 plus the rounding
    // above, with |m' - mean| <= (rows + 3) u * 1e4 from the mean bound.
    std::vector<double> var(cols, 0.0), tol(cols);
    for (size_t j = 0; j < cols; ++j) {
      double mean = 0;
      for (size_t i = 0; i < rows; ++i) mean += in[i * cols + j];
      mean /= rows;
      for (size_t i = 0; i < rows; ++i)
        var[j] += (in[i * cols + j] - mean) * (in[i * cols + j] - mean);
      var[j] /= rows;
      const double dm = (rows + 3) * kU * 1.001e4;
      tol[j] = dm * dm + (rows + 6) * kU * (var[j] + dm * dm);
    }
    EXPECT_TRUE(AllNear("var", var, s.var.data(), tol)) << "rows=" << rows;
  }
}

// ---- gemm on packed panels ----------------------------------------------------------
//
// kernels.h defines the packed kernels' arithmetic exactly: each c element is
// one float that starts at 0, adds a[i][p] * b[p][j] for p = 0 .. k-1 in
// order, and is then added to c. So the scalar reference must equal that loop
// written out here bit for bit, every variant must equal the scalar reference
// bit for bit, and (checked as well) all stay within the summation bound of
// the exact product.

const size_t kPackedM[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13};  // 4- and 6-row tiles
const size_t kPackedN[] = {1,  3,  4,  5,  7,  8,  9,  15,
                           16, 17, 31, 32, 33, 40, 64, 65};  // 8-column panels, 1x32 rows

using PackedFn = void (*)(float*, const float*, const float*, size_t, size_t, size_t);

// c0 + (a * b) with a (m, k), or with `transposed_a` a^T * b with a stored (k, m),
// in the order kernels.h prescribes.
std::vector<float> packed_definition(const GemmCase& g, bool transposed_a) {
  std::vector<float> c = g.c0;
  for (size_t i = 0; i < g.m; ++i)
    for (size_t j = 0; j < g.n; ++j) {
      float acc = 0.0f;
      for (size_t p = 0; p < g.k; ++p) {
        const float aip = transposed_a ? g.a[p * g.m + i] : g.a[i * g.k + p];
        const float prod = aip * g.b[p * g.n + j];
        acc += prod;
      }
      c[i * g.n + j] += acc;
    }
  return c;
}

// The same case with a stored transposed, (k, m), for the tn kernels.
GemmCase transpose_a(GemmCase g) {
  std::vector<float> at(g.k * g.m);
  for (size_t i = 0; i < g.m; ++i)
    for (size_t p = 0; p < g.k; ++p) at[p * g.m + i] = g.a[i * g.k + p];
  g.a = at;
  return g;
}

std::vector<float> run_packed(PackedFn f, const GemmCase& g, ::testing::AssertionResult* guards) {
  Guarded a(g.a), c(g.c0), b(g.b);
  Guarded packed(f32_packed_size(g.k, g.n));
  f32_pack_x8(packed.data(), b.data(), g.k, g.n);
  f(c.data(), a.data(), packed.data(), g.m, g.n, g.k);
  *guards = c.GuardsIntact("c");
  return std::vector<float>(c.data(), c.data() + c.size());
}

// f against the written-out definition (bit for bit), against `reference`
// when given (bit for bit), and against double precision (summation bound).
void check_packed(PackedFn f, PackedFn reference, bool transposed_a) {
  int failures = 0;
  uint64_t seed = 6000;
  for (size_t m : kPackedM)
    for (size_t n : kPackedN)
      for (size_t k : kK) {
        GemmCase g = make_gemm_case(m, n, k, seed++);
        if (transposed_a) g = transpose_a(g);
        ::testing::AssertionResult guards = ::testing::AssertionSuccess();
        const std::vector<float> c = run_packed(f, g, &guards);
        const std::vector<float> def = packed_definition(g, transposed_a);
        ::testing::AssertionResult ok = AllNear("c vs double", g.exact, c.data(), g.bound);
        if (ok)
          ok = BitEqual("c vs the accumulation order of kernels.h", def.data(), c.data(), c.size());
        if (ok && reference != nullptr) {
          ::testing::AssertionResult ref_guards = ::testing::AssertionSuccess();
          const std::vector<float> ref = run_packed(reference, g, &ref_guards);
          ok = BitEqual("c vs the scalar reference", ref.data(), c.data(), c.size());
        }
        EXPECT_TRUE(ok) << sizes("m", m, "n", n, "k", k);
        EXPECT_TRUE(guards) << sizes("m", m, "n", n, "k", k);
        if ((!ok || !guards) && ++failures >= kMaxReportedSizes) return;
      }
}

// ---- the packed GEMM through an epilogue per column --------------------------------------
//
// kernels.h: c = ep(sum) per column j, equal bit for bit to c = init, then
// f32_gemm_packed, then the batch norm and ReLU as passes of their own. The
// definition below is those passes written out; c starts as NaN, which the
// kernel must overwrite and never read.

using PackedEpilogueFn = void (*)(float*, const float*, const float*, size_t, size_t, size_t,
                                  const ConvEpilogue&);

// The epilogues checked: none, the bias alone, ReLU alone, batch norm, all three.
struct EpilogueCase {
  bool init, bn, relu;
};
const EpilogueCase kEpilogues[] = {
    {false, false, false}, {true, false, false}, {false, false, true}, {false, true, false}, {true, true, true}};

std::vector<float> packed_epilogue_definition(const GemmCase& g, const ConvEpilogue& ep) {
  GemmCase z = g;
  for (size_t i = 0; i < g.m; ++i)
    for (size_t j = 0; j < g.n; ++j) z.c0[i * g.n + j] = ep.init != nullptr ? ep.init[j] : 0.0f;
  std::vector<float> c = packed_definition(z, false);  // init + sum, as f32_gemm_packed adds it
  for (size_t i = 0; i < g.m; ++i)
    for (size_t j = 0; j < g.n; ++j) {
      float& v = c[i * g.n + j];
      if (ep.scale != nullptr) v = v * ep.scale[j] + ep.shift[j];  // batchnorm_forward_infer
      if (ep.relu) v = v > 0.0f ? v : 0.0f;                       // relu_forward
    }
  return c;
}

// f on (m, n, k) with every epilogue of kEpilogues, bit for bit against the definition.
::testing::AssertionResult packed_epilogue_matches(PackedEpilogueFn f, size_t m, size_t n, size_t k,
                                                   uint64_t seed) {
  const GemmCase g = make_gemm_case(m, n, k, seed);
  Rng rng(seed + 1);
  // Shifts around zero, so ReLU clips about half the outputs; scales of both signs.
  const std::vector<float> init = rng.uniform_vec(n, -1, 1), scale = rng.uniform_vec(n, -2, 2),
                           shift = rng.uniform_vec(n, -1, 1);
  for (const EpilogueCase& e : kEpilogues) {
    ConvEpilogue ep;
    ep.init = e.init ? init.data() : nullptr;
    ep.scale = e.bn ? scale.data() : nullptr;
    ep.shift = e.bn ? shift.data() : nullptr;
    ep.relu = e.relu;
    Guarded a(g.a), b(g.b), c(std::vector<float>(m * n, std::nanf("")));
    Guarded packed(f32_packed_size(k, n));
    f32_pack_x8(packed.data(), b.data(), k, n);
    f(c.data(), a.data(), packed.data(), m, n, k, ep);
    const std::vector<float> def = packed_epilogue_definition(g, ep);
    ::testing::AssertionResult ok = BitEqual("c vs the passes one after another", def.data(), c.data(), c.size());
    if (ok) ok = c.GuardsIntact("c");
    if (!ok)
      return ok << " (" << sizes("m", m, "n", n, "k", k) << "; init " << e.init << ", batch norm "
                << e.bn << ", relu " << e.relu << ")";
  }
  return ::testing::AssertionSuccess();
}

void check_packed_epilogue(PackedEpilogueFn f) {
  int failures = 0;
  uint64_t seed = 9000;
  for (size_t m : kPackedM)
    for (size_t n : kPackedN)
      for (size_t k : kK) {
        const ::testing::AssertionResult ok = packed_epilogue_matches(f, m, n, k, seed += 2);
        EXPECT_TRUE(ok);
        if (!ok && ++failures >= kMaxReportedSizes) return;
      }
  // A dense network's shapes, split into row pieces and column groups.
  const size_t shapes[][3] = {{64, 256, 784}, {70, 261, 100}, {512, 256, 256}, {1, 256, 784}};
  for (const auto& sh : shapes) EXPECT_TRUE(packed_epilogue_matches(f, sh[0], sh[1], sh[2], seed += 2));
}

TEST(KernelsScalar, GemmPackedEpilogueEqualsThePassesOneAfterAnother) {
  check_packed_epilogue(f32_gemm_packed_epilogue__scalar);
}

TEST(KernelsDispatch, GemmPackedEpilogueEqualsThePassesOneAfterAnother) {
  check_packed_epilogue(f32_gemm_packed_epilogue);
}

#if defined(__wasm_simd128__)
TEST(KernelsWasmSimd, GemmPackedEpilogue4x8EqualsThePassesOneAfterAnother) {
  check_packed_epilogue(f32_gemm_packed_epilogue_4x8__wasmsimd);
}
#endif

// ---- Adam and the finiteness check ------------------------------------------------------

using AdamFn = bool (*)(float*, float*, float*, const float*, size_t, float, float, float, float,
                        float, float, float, float, bool);

struct AdamState {
  std::vector<float> p, m, v, g;
};

AdamState adam_state(size_t n, uint64_t seed) {
  Rng rng(seed);
  return {rng.uniform_vec(n, -1, 1), rng.uniform_vec(n, -0.1, 0.1), rng.uniform_vec(n, 0, 0.01),
          rng.uniform_vec(n, -0.5, 0.5)};
}

struct AdamHyper {
  // c1, c2 are 1 - b1 and 1 - b2 rounded from double, as the network passes them.
  float b1 = 0.9f, b2 = 0.999f, c1 = 0.1f, c2 = 0.001f, step_size = 0.01f, inv_sqrt_bc2 = 1.3f,
        eps = 1e-3f, wd = 0.01f;
};

bool run_adam(AdamFn f, AdamState* s, const AdamHyper& h, bool write) {
  return f(s->p.data(), s->m.data(), s->v.data(), s->g.data(), s->p.size(), h.b1, h.b2, h.c1, h.c2,
           h.step_size, h.inv_sqrt_bc2, h.eps, h.wd, write);
}

const size_t kVectorN[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 64, 67};

using AllFiniteFn = bool (*)(const float*, size_t);

// Every position of every length holds, in turn, each non-finite value: the
// check must see it there; and large finite values are finite.
void check_all_finite(AllFiniteFn f) {
  const float bad[] = {std::numeric_limits<float>::quiet_NaN(),
                       std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity()};
  for (size_t n : kVectorN) {
    Rng rng(7000 + n);
    std::vector<float> x = rng.uniform_vec(n, -1, 1);
    if (n > 0) x[n / 2] = std::numeric_limits<float>::max();
    if (n > 1) x[n - 1] = -std::numeric_limits<float>::max();
    EXPECT_TRUE(f(x.data(), n)) << "n=" << n << ", all finite";
    for (size_t i = 0; i < n; ++i)
      for (float v : bad) {
        std::vector<float> y = x;
        y[i] = v;
        EXPECT_FALSE(f(y.data(), n)) << "n=" << n << ", x[" << i << "] = " << v;
      }
  }
}

using AbsPeakFn = uint32_t (*)(const float*, size_t);

// f32_abs_peak: the bits of the largest |x|, exactly (compared with a plain
// loop over the magnitudes), signs and zeros included; at least kNotFinite
// with a NaN or an infinity anywhere.
void check_abs_peak(AbsPeakFn f) {
  const float bad[] = {std::numeric_limits<float>::quiet_NaN(),
                       -std::numeric_limits<float>::quiet_NaN(),
                       std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity()};
  for (size_t n : kVectorN) {
    Rng rng(7100 + n);
    std::vector<float> x = rng.uniform_vec(n, -1, 1);
    for (size_t big = 0; big < n; ++big) {  // the largest magnitude at every place, either sign
      std::vector<float> y = x;
      y[big] = big % 2 ? -3.5f : 3.5f;
      EXPECT_EQ(from_peak_bits(f(y.data(), n)), 3.5f) << "n=" << n << ", at " << big;
    }
    float expected = 0.0f;
    for (float v : x) expected = std::max(expected, std::fabs(v));
    EXPECT_EQ(from_peak_bits(f(x.data(), n)), expected) << "n=" << n;
    std::vector<float> zeros(n, -0.0f);
    EXPECT_EQ(f(zeros.data(), n), 0u) << "n=" << n << ", -0 is 0";
    if (n > 0) {
      zeros[n - 1] = -std::numeric_limits<float>::max();
      EXPECT_EQ(from_peak_bits(f(zeros.data(), n)), std::numeric_limits<float>::max());
    }
    for (size_t i = 0; i < n; ++i)
      for (float v : bad) {
        std::vector<float> y = x;
        y[i] = v;
        EXPECT_GE(f(y.data(), n), kNotFinite) << "n=" << n << ", x[" << i << "] = " << v;
      }
  }
}

}  // namespace

// ---- the scalar references against double precision ----------------------------------

TEST(KernelsScalar, GemmMatchesDoubleLoop) { check_gemm_against_double(f32_gemm__scalar, 1.0); }

TEST(KernelsScalar, ColMeanVarMatchesDoubleLoop) {
  check_colmeanvar(f32_colmeanvar__scalar, nullptr);
}

TEST(KernelsScalar, ColMeanVarIsAccurateWithLargeMean) {
  check_colmeanvar_large_mean(f32_colmeanvar__scalar);
}

TEST(KernelsScalar, ColMeanVarOfConstantColumnIsZero) {
  // Every row equal: the centred values are exactly 0, so the variance is
  // exactly 0 (E[x^2] - E[x]^2 would give rounding noise, possibly negative).
  const size_t rows = 9, cols = 5;
  std::vector<float> in(rows * cols);
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) in[i * cols + j] = 1234.5f + static_cast<float>(j);
  std::vector<float> mean(cols), var(cols);
  f32_colmeanvar(mean.data(), var.data(), in.data(), rows, cols);
  for (size_t j = 0; j < cols; ++j) EXPECT_EQ(var[j], 0.0f) << "column " << j;
}

// ---- packing ------------------------------------------------------------------------------

TEST(KernelsPacking, PackX8LaysOutPanelsWithZeroPadding) {
  for (size_t k : {size_t(1), size_t(3), size_t(16)})
    for (size_t n : kPackedN) {
      const std::vector<float> b = Rng(k * 1000 + n).uniform_vec(k * n, -1, 1);
      const size_t size = f32_packed_size(k, n);
      ASSERT_EQ(size, k * ((n + 7) / 8) * 8) << sizes("k", k, "n", n);
      std::vector<float> expected(size, 0.0f);
      for (size_t p = 0; p < k; ++p)
        for (size_t j = 0; j < n; ++j) expected[(j / 8) * k * 8 + p * 8 + j % 8] = b[p * n + j];
      Guarded packed(size);
      f32_pack_x8(packed.data(), b.data(), k, n);
      EXPECT_TRUE(BitEqual("packed", expected.data(), packed.data(), size))
          << sizes("k", k, "n", n);
      EXPECT_TRUE(packed.GuardsIntact("packed")) << sizes("k", k, "n", n);
      // The transposed form packs the same matrix from its (n, k) transpose.
      std::vector<float> bt(n * k);
      for (size_t p = 0; p < k; ++p)
        for (size_t j = 0; j < n; ++j) bt[j * k + p] = b[p * n + j];
      Guarded packed_t(size);
      f32_pack_t_x8(packed_t.data(), bt.data(), k, n);
      EXPECT_TRUE(BitEqual("packed from the transpose", expected.data(), packed_t.data(), size))
          << sizes("k", k, "n", n);
      EXPECT_TRUE(packed_t.GuardsIntact("packed from the transpose")) << sizes("k", k, "n", n);
    }
}

TEST(KernelsScalar, GemmPackedFollowsItsDefinition) {
  check_packed(f32_gemm_packed__scalar, nullptr, false);
}

TEST(KernelsScalar, GemmTnPackedFollowsItsDefinition) {
  check_packed(f32_gemm_tn_packed__scalar, nullptr, true);
}

// One Adam step against the formula of kernels.h evaluated in double from
// the same float inputs. The kernel rounds about 12 times in float per
// element (each operation once); 16 u relative to each result leaves margin.
TEST(KernelsScalar, AdamMatchesDoubleFormula) {
  const AdamHyper h;
  for (size_t n : kVectorN) {
    AdamState s = adam_state(n, 8000 + n);
    const AdamState before = s;
    ASSERT_TRUE(run_adam(f32_adam__scalar, &s, h, true)) << "n=" << n;
    std::vector<double> ep(n), em(n), ev(n), tp(n), tm(n), tv(n);
    for (size_t i = 0; i < n; ++i) {
      const double d = double(before.g[i]) + double(h.wd) * before.p[i];
      em[i] = double(h.b1) * before.m[i] + double(h.c1) * d;
      ev[i] = double(h.b2) * before.v[i] + double(h.c2) * d * d;
      const double step = double(h.step_size) * em[i] / (std::sqrt(ev[i]) * h.inv_sqrt_bc2 + h.eps);
      ep[i] = before.p[i] - step;
      // Each result's rounding is relative to the terms that formed it.
      tm[i] = 16 * kU * (std::fabs(h.b1 * before.m[i]) + std::fabs(h.c1 * d));
      tv[i] = 16 * kU * (h.b2 * before.v[i] + h.c2 * d * d);
      tp[i] = 16 * kU * (std::fabs(before.p[i]) + std::fabs(step));
    }
    EXPECT_TRUE(AllNear("p", ep, s.p.data(), tp)) << "n=" << n;
    EXPECT_TRUE(AllNear("m", em, s.m.data(), tm)) << "n=" << n;
    EXPECT_TRUE(AllNear("v", ev, s.v.data(), tv)) << "n=" << n;
  }
}

TEST(KernelsScalar, AdamWithoutWriteOnlyChecks) {
  const AdamHyper h;
  for (size_t n : kVectorN) {
    AdamState s = adam_state(n, 8100 + n);
    const AdamState before = s;
    EXPECT_TRUE(run_adam(f32_adam__scalar, &s, h, false)) << "n=" << n;
    EXPECT_TRUE(BitEqual("p", before.p.data(), s.p.data(), n));
    EXPECT_TRUE(BitEqual("m", before.m.data(), s.m.data(), n));
    EXPECT_TRUE(BitEqual("v", before.v.data(), s.v.data(), n));
  }
}

TEST(KernelsScalar, AdamReportsNonFiniteResults) {
  AdamHyper h;
  for (size_t n : kVectorN) {
    for (size_t i = 0; i < n; ++i) {
      AdamState s = adam_state(n, 8200 + n);
      s.g[i] = 3e38f;  // d * d overflows: v becomes infinite
      EXPECT_FALSE(run_adam(f32_adam__scalar, &s, h, false)) << "n=" << n << ", overflow at " << i;
      s = adam_state(n, 8200 + n);
      s.g[i] = std::numeric_limits<float>::quiet_NaN();
      EXPECT_FALSE(run_adam(f32_adam__scalar, &s, h, false)) << "n=" << n << ", NaN at " << i;
    }
  }
}

TEST(KernelsScalar, AllFiniteFindsEveryNonFiniteValue) { check_all_finite(f32_all_finite__scalar); }

TEST(KernelsScalar, AbsPeakIsTheLargestMagnitude) { check_abs_peak(f32_abs_peak__scalar); }

// ---- the variants this build dispatches to ------------------------------------------

TEST(KernelsDispatch, IsaMatchesBuild) {
#if defined(__wasm_simd128__)
  EXPECT_STREQ(kernel_isa(), "wasmsimd");
#else
  EXPECT_STREQ(kernel_isa(), "scalar");
#endif
}

TEST(KernelsDispatch, ColMeanVarMatchesScalar) {
  check_colmeanvar(f32_colmeanvar, f32_colmeanvar__scalar);
}

TEST(KernelsDispatch, ColMeanVarIsAccurateWithLargeMean) {
  check_colmeanvar_large_mean(f32_colmeanvar);
}

TEST(KernelsDispatch, GemmPackedMatchesScalarBitForBit) {
  check_packed(f32_gemm_packed, f32_gemm_packed__scalar, false);
}

TEST(KernelsDispatch, GemmTnPackedMatchesScalarBitForBit) {
  check_packed(f32_gemm_tn_packed, f32_gemm_tn_packed__scalar, true);
}

// The same operations in the same order in every lane: equal results.
void check_adam_against_scalar(AdamFn f) {
  const AdamHyper h;
  for (size_t n : kVectorN) {
    AdamState s = adam_state(n, 8300 + n), ref = s;
    EXPECT_EQ(run_adam(f, &s, h, true), run_adam(f32_adam__scalar, &ref, h, true)) << "n=" << n;
    EXPECT_TRUE(BitEqual("p", ref.p.data(), s.p.data(), n)) << "n=" << n;
    EXPECT_TRUE(BitEqual("m", ref.m.data(), s.m.data(), n)) << "n=" << n;
    EXPECT_TRUE(BitEqual("v", ref.v.data(), s.v.data(), n)) << "n=" << n;
    for (size_t i = 0; i < n; ++i) {
      AdamState bad = adam_state(n, 8300 + n);
      bad.g[i] = std::numeric_limits<float>::infinity();
      const AdamState before = bad;
      EXPECT_FALSE(run_adam(f, &bad, h, false)) << "n=" << n << ", infinite gradient at " << i;
      EXPECT_TRUE(BitEqual("p after a check-only call", before.p.data(), bad.p.data(), n));
    }
  }
}

TEST(KernelsDispatch, AdamMatchesScalar) { check_adam_against_scalar(f32_adam); }

TEST(KernelsDispatch, AllFiniteFindsEveryNonFiniteValue) { check_all_finite(f32_all_finite); }

TEST(KernelsDispatch, AbsPeakIsTheLargestMagnitude) { check_abs_peak(f32_abs_peak); }

// ---- wasm SIMD128 variants (Emscripten builds only) ----------------------------------

#if defined(__wasm_simd128__)
TEST(KernelsWasmSimd, ColMeanVarMatchesScalar) {
  check_colmeanvar(f32_colmeanvar__wasmsimd, f32_colmeanvar__scalar);
}

TEST(KernelsWasmSimd, ColMeanVarIsAccurateWithLargeMean) {
  check_colmeanvar_large_mean(f32_colmeanvar__wasmsimd);
}
TEST(KernelsWasmSimd, GemmPacked4x8MatchesScalarBitForBit) {
  check_packed(f32_gemm_packed_4x8__wasmsimd, f32_gemm_packed__scalar, false);
}

TEST(KernelsWasmSimd, GemmPackedSparse1x32MatchesScalarBitForBit) {
  check_packed(f32_gemm_packed_sparse_1x32__wasmsimd, f32_gemm_packed__scalar, false);
}

TEST(KernelsWasmSimd, GemmTnPacked4x8MatchesScalarBitForBit) {
  check_packed(f32_gemm_tn_packed_4x8__wasmsimd, f32_gemm_tn_packed__scalar, true);
}

// A batch's few rows split the columns too (packed_gemm's column groups): shapes with
// several groups, a partial panel and a short last group, plain and with a transposed.
TEST(KernelsWasmSimd, GemmPacked4x8WithColumnGroupsMatchesScalarBitForBit) {
  const size_t shapes[][3] = {{64, 261, 100}, {13, 200, 784}, {70, 256, 256}, {8, 1001, 33}};
  uint64_t seed = 7000;
  for (const auto& s : shapes)
    for (bool transposed_a : {false, true}) {
      GemmCase g = make_gemm_case(s[0], s[1], s[2], seed++);
      if (transposed_a) g = transpose_a(g);
      ::testing::AssertionResult guards = ::testing::AssertionSuccess(), ref_guards = guards;
      const std::vector<float> c =
          run_packed(transposed_a ? f32_gemm_tn_packed_4x8__wasmsimd : f32_gemm_packed_4x8__wasmsimd, g, &guards);
      const std::vector<float> ref =
          run_packed(transposed_a ? f32_gemm_tn_packed__scalar : f32_gemm_packed__scalar, g, &ref_guards);
      EXPECT_TRUE(BitEqual("c vs the scalar reference", ref.data(), c.data(), c.size()))
          << sizes("m", s[0], "n", s[1], "k", s[2]) << (transposed_a ? ", a transposed" : "");
      EXPECT_TRUE(guards);
    }
}

TEST(KernelsWasmSimd, AdamMatchesScalar) { check_adam_against_scalar(f32_adam__wasmsimd); }

TEST(KernelsWasmSimd, AbsPeakIsTheLargestMagnitude) { check_abs_peak(f32_abs_peak__wasmsimd); }
#endif
