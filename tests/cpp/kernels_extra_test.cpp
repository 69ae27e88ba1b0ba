// The performance variants that skip zeros: the sparse 1x32 GEMM of
// single-example inference (zero entries of a row), the 4x8 GEMM's runs of
// terms that four rows share as zeros, and the property the network's predict
// relies on, that one row through the dispatching GEMM equals that row of a
// batch bit for bit. Sizes run below, at and above every tile (4 or 6 rows,
// one 8-column panel, four panels for 1x32, the 4096-entry list) with odd remainders,
// and rows from all zero to no zero.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "bnwasm/kernels.h"
#include "test_util.h"

using namespace bnwasm;
using bnwasm_test::BitEqual;
using bnwasm_test::Rng;

namespace {

const size_t kRows[] = {1, 2, 3, 4, 5, 6, 7, 13};
const size_t kCols[] = {1, 3, 7, 8, 9, 16, 31, 32, 33, 40, 70};
const size_t kDepth[] = {1, 2, 5, 8, 33, 300};
// Share of a's entries set to zero; half of those zeros are -0.
const double kZeroShare[] = {0.0, 0.3, 0.6, 0.9, 1.0};

std::string sizes(size_t m, size_t n, size_t k, double zeros) {
  return "m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" + std::to_string(k) +
         " zero share=" + std::to_string(zeros);
}

// a (m, k) with about `zeros` of its entries +-0, the rest in [-1, 1].
std::vector<float> sparse_matrix(Rng* rng, size_t m, size_t k, double zeros) {
  std::vector<float> a = rng->uniform_vec(m * k, -1, 1);
  for (float& x : a) {
    const double u = rng->uniform();
    if (u < zeros) x = u < zeros / 2 ? 0.0f : -0.0f;
  }
  return a;
}

using GemmFn = void (*)(float*, const float*, const float*, size_t, size_t, size_t);

// c starts as a random "bias" (the network adds into a preset output), so the
// final c += sum is checked too.
void expect_matches_scalar(GemmFn f, const char* name, size_t m, size_t n, size_t k, double zeros,
                           uint64_t seed) {
  Rng rng(seed);
  const std::vector<float> a = sparse_matrix(&rng, m, k, zeros);
  const std::vector<float> b = rng.uniform_vec(k * n, -1, 1);
  const std::vector<float> c0 = rng.uniform_vec(m * n, -1, 1);
  std::vector<float> packed(f32_packed_size(k, n));
  f32_pack_x8(packed.data(), b.data(), k, n);
  std::vector<float> expected = c0, actual = c0;
  f32_gemm_packed__scalar(expected.data(), a.data(), packed.data(), m, n, k);
  f(actual.data(), a.data(), packed.data(), m, n, k);
  EXPECT_TRUE(BitEqual(name, expected.data(), actual.data(), m * n)) << sizes(m, n, k, zeros);
}

// Row i alone through f32_gemm_packed equals row i of the whole batch.
void expect_rows_equal_batch(size_t m, size_t n, size_t k, double zeros, uint64_t seed) {
  Rng rng(seed);
  const std::vector<float> a = sparse_matrix(&rng, m, k, zeros);
  const std::vector<float> b = rng.uniform_vec(k * n, -1, 1);
  const std::vector<float> c0 = rng.uniform_vec(m * n, -1, 1);
  std::vector<float> packed(f32_packed_size(k, n));
  f32_pack_x8(packed.data(), b.data(), k, n);
  std::vector<float> batch = c0;
  f32_gemm_packed(batch.data(), a.data(), packed.data(), m, n, k);
  for (size_t i = 0; i < m; ++i) {
    std::vector<float> row(c0.begin() + i * n, c0.begin() + (i + 1) * n);
    f32_gemm_packed(row.data(), a.data() + i * k, packed.data(), 1, n, k);
    EXPECT_TRUE(BitEqual("row " + std::to_string(i), batch.data() + i * n, row.data(), n))
        << sizes(m, n, k, zeros);
  }
}

}  // namespace

TEST(KernelsExtra, SingleRowsThroughDispatchEqualTheBatch) {
  uint64_t seed = 1;
  for (size_t m : kRows)
    for (size_t n : kCols)
      for (size_t k : kDepth)
        for (double z : kZeroShare) expect_rows_equal_batch(m, n, k, z, seed++);
}

// Past the one-row kernel's 4096-entry list, rows go through the 4x8 tile;
// both sides of the boundary must give the same bits as the batch.
TEST(KernelsExtra, SingleRowsEqualTheBatchAroundTheListLimit) {
  uint64_t seed = 500;
  for (size_t k : {size_t(4095), size_t(4096), size_t(4097)})
    for (double z : {0.0, 0.5, 1.0}) expect_rows_equal_batch(3, 37, k, z, seed++);
}

#if defined(__wasm_simd128__)
TEST(KernelsExtraWasmSimd, SparseGemm1x32MatchesScalarBitForBit) {
  uint64_t seed = 1000;
  for (size_t m : kRows)
    for (size_t n : kCols)
      for (size_t k : kDepth)
        for (double z : kZeroShare)
          expect_matches_scalar(f32_gemm_packed_sparse_1x32__wasmsimd, "sparse 1x32", m, n, k, z,
                                seed++);
  for (size_t k : {size_t(4095), size_t(4096), size_t(4097)})
    for (double z : {0.0, 0.5, 1.0})
      expect_matches_scalar(f32_gemm_packed_sparse_1x32__wasmsimd, "sparse 1x32", 2, 37, k, z,
                            seed++);
}

// Packing is a permutation with zero padding: exact, so bit-equal to the scalar
// code, for full and partial panels and every k % 4.
TEST(KernelsExtraWasmSimd, PackTX8MatchesScalarBitForBit) {
  for (size_t k :
       {size_t(1), size_t(3), size_t(4), size_t(5), size_t(8), size_t(13), size_t(64), size_t(67)})
    for (size_t n : {size_t(1), size_t(7), size_t(8), size_t(9), size_t(16), size_t(17), size_t(23),
                     size_t(40)}) {
      const std::vector<float> bt = Rng(k * 100 + n).uniform_vec(n * k, -1, 1);
      const size_t size = f32_packed_size(k, n);
      // Sentinels past the end catch a write beyond the packed size.
      std::vector<float> expected(size + 8, 7.0f), actual(size + 8, 7.0f);
      f32_pack_t_x8__scalar(expected.data(), bt.data(), k, n);
      f32_pack_t_x8__wasmsimd(actual.data(), bt.data(), k, n);
      EXPECT_TRUE(BitEqual("packed", expected.data(), actual.data(), size + 8))
          << "k=" << k << " n=" << n;
    }
}

// a (m, k) like rows of images or of a ReLU's outputs: zero in spans that
// blocks of four rows share (the 4x8 kernel skips those terms), with -0s, and
// now and then a row that breaks a span with one nonzero (or a NaN, which must
// not be skipped). Spans are 1 to k / 4 long, so a block has few runs or many.
std::vector<float> spans_matrix(Rng* rng, size_t m, size_t k, double zeros) {
  std::vector<float> a = rng->uniform_vec(m * k, -1, 1);
  for (size_t i0 = 0; i0 < m; i0 += 4) {
    const size_t rows = std::min<size_t>(4, m - i0);
    for (size_t p = 0; p < k;) {
      const size_t len = 1 + static_cast<size_t>(rng->uniform() * (k / 4 + 1));
      const bool zero = rng->uniform() < zeros;
      for (size_t q = p; q < std::min(k, p + len); ++q)
        for (size_t r = 0; r < rows && zero; ++r)
          a[(i0 + r) * k + q] = rng->uniform() < 0.5 ? 0.0f : -0.0f;
      if (zero && rng->uniform() < 0.2) {
        const size_t q = std::min(k - 1, p + static_cast<size_t>(rng->uniform() * len));
        const size_t r = static_cast<size_t>(rng->uniform() * rows);
        a[(i0 + r) * k + q] = rng->uniform() < 0.1 ? std::nanf("") : 0.5f;
      }
      p += len;
    }
  }
  return a;
}

#if defined(__wasm_simd128__)
TEST(KernelsExtraWasmSimd, Gemm4x8SkipsSharedZeroSpansBitForBit) {
  uint64_t seed = 3000;
  for (size_t m : {size_t(4), size_t(7), size_t(8), size_t(13), size_t(64)})
    for (size_t n : {size_t(9), size_t(64), size_t(67)})  // runs from 64 columns
      for (size_t k : {size_t(3), size_t(8), size_t(33), size_t(300), size_t(784)})
        for (double z : {0.2, 0.5, 0.9, 1.0}) {
          Rng rng(seed++);
          const std::vector<float> a = spans_matrix(&rng, m, k, z);
          const std::vector<float> b = rng.uniform_vec(k * n, -1, 1);
          const std::vector<float> c0 = rng.uniform_vec(m * n, -1, 1);
          const std::vector<float> init = rng.uniform_vec(n, -1, 1), scale = rng.uniform_vec(n, 0.5, 2),
                                   shift = rng.uniform_vec(n, -1, 1);
          std::vector<float> packed(f32_packed_size(k, n));
          f32_pack_x8(packed.data(), b.data(), k, n);
          std::vector<float> expected = c0, actual = c0;
          f32_gemm_packed__scalar(expected.data(), a.data(), packed.data(), m, n, k);
          f32_gemm_packed_4x8__wasmsimd(actual.data(), a.data(), packed.data(), m, n, k);
          EXPECT_TRUE(BitEqual("4x8", expected.data(), actual.data(), m * n)) << sizes(m, n, k, z);
          ConvEpilogue ep;
          ep.init = init.data();
          ep.scale = scale.data();
          ep.shift = shift.data();
          ep.relu = true;
          f32_gemm_packed_epilogue__scalar(expected.data(), a.data(), packed.data(), m, n, k, ep);
          f32_gemm_packed_epilogue_4x8__wasmsimd(actual.data(), a.data(), packed.data(), m, n, k, ep);
          EXPECT_TRUE(BitEqual("4x8 with epilogue", expected.data(), actual.data(), m * n))
              << sizes(m, n, k, z);
        }
}
#endif

// The 4x8 kernel on rows with zeros scattered at random (few of them shared
// by four rows, so mostly its plain loop).
TEST(KernelsExtraWasmSimd, Gemm4x8MatchesScalarOnRowsWithZeros) {
  uint64_t seed = 2000;
  for (size_t m : kRows)
    for (size_t n : kCols)
      for (size_t k : kDepth)
        for (double z : kZeroShare)
          expect_matches_scalar(f32_gemm_packed_4x8__wasmsimd, "4x8", m, n, k, z, seed++);
}
#endif
