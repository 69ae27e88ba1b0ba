// Scalar reference kernels: the definition every SIMD variant is tested against.
#include "bnwasm/kernels.h"

#include <algorithm>

namespace bnwasm {

void f32_gemm__scalar(float* c, const float* a, const float* b, size_t m, size_t n, size_t k) {
  // c is (m, n); a is (m, k); b is (k, n)
  for (size_t i = 0; i < m; ++i) {
    float* ci = c + i * n;
    for (size_t p = 0; p < k; ++p) {
      const float aip = a[i * k + p];
      const float* bp = b + p * n;
      for (size_t j = 0; j < n; ++j) ci[j] += aip * bp[j];
    }
  }
}

void f32_gemv__scalar(float* y, const float* w, const float* x, const float* bias, size_t m,
                      size_t k) {
  // y is (m); w is (m, k); x is (k)
  for (size_t i = 0; i < m; ++i) {
    float s = bias ? bias[i] : 0.0f;
    const float* wi = w + i * k;
    for (size_t p = 0; p < k; ++p) s += wi[p] * x[p];
    y[i] = s;
  }
}

void f32_colmeanvar__scalar(float* mean, float* var, const float* in, size_t rows, size_t cols) {
  // in is (rows, cols); mean, var are (cols)
  for (size_t j = 0; j < cols; ++j) mean[j] = 0.0f;
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) mean[j] += in[i * cols + j];
  const float inv = 1.0f / static_cast<float>(rows);
  for (size_t j = 0; j < cols; ++j) {
    mean[j] *= inv;
    var[j] = 0.0f;
  }
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) {
      const float d = in[i * cols + j] - mean[j];
      var[j] += d * d;
    }
  for (size_t j = 0; j < cols; ++j) var[j] *= inv;
}

void f32_colsum__scalar(float* out, const float* in, size_t rows, size_t cols) {
  // in is (rows, cols); out is (cols)
  for (size_t j = 0; j < cols; ++j) out[j] = 0.0f;
  for (size_t i = 0; i < rows; ++i)
    for (size_t j = 0; j < cols; ++j) out[j] += in[i * cols + j];
}

void f32_transpose(float* out, const float* in, size_t rows, size_t cols) {
  // in is (rows, cols); out is (cols, rows). Tiles keep both sides in cache.
  constexpr size_t T = 16;
  for (size_t i0 = 0; i0 < rows; i0 += T)
    for (size_t j0 = 0; j0 < cols; j0 += T) {
      const size_t i1 = std::min(rows, i0 + T), j1 = std::min(cols, j0 + T);
      for (size_t i = i0; i < i1; ++i)
        for (size_t j = j0; j < j1; ++j) out[j * rows + i] = in[i * cols + j];
    }
}

#if !defined(__wasm_simd128__)
void f32_gemm(float* c, const float* a, const float* b, size_t m, size_t n, size_t k) {
  f32_gemm__scalar(c, a, b, m, n, k);
}
void f32_gemv(float* y, const float* w, const float* x, const float* bias, size_t m, size_t k) {
  f32_gemv__scalar(y, w, x, bias, m, k);
}
void f32_colmeanvar(float* mean, float* var, const float* in, size_t rows, size_t cols) {
  f32_colmeanvar__scalar(mean, var, in, rows, cols);
}
void f32_colsum(float* out, const float* in, size_t rows, size_t cols) {
  f32_colsum__scalar(out, in, rows, cols);
}
const char* kernel_isa() { return "scalar"; }
#endif

}  // namespace bnwasm
