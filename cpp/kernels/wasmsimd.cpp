// WebAssembly SIMD128 kernels. Same signatures and results (up to float
// summation order) as the scalar references in scalar.cpp.
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

#include "bnwasm/kernels.h"

namespace bnwasm {
namespace {

inline float hsum(v128_t v) {
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

// MR rows of c, 8 columns starting at j: 2*MR accumulators live in registers
// while p walks k, so each b row segment is loaded once per MR rows of a.
template <int MR>
inline void gemm_tile_x8(float* c, const float* a, const float* b, size_t n, size_t k, size_t j) {
  v128_t acc0[MR], acc1[MR];
  for (int r = 0; r < MR; ++r) acc0[r] = acc1[r] = wasm_f32x4_splat(0.0f);
  const float* bp = b + j;
  for (size_t p = 0; p < k; ++p, bp += n) {
    const v128_t b0 = wasm_v128_load(bp);
    const v128_t b1 = wasm_v128_load(bp + 4);
    for (int r = 0; r < MR; ++r) {
      const v128_t av = wasm_f32x4_splat(a[r * k + p]);
      acc0[r] = wasm_f32x4_add(acc0[r], wasm_f32x4_mul(av, b0));
      acc1[r] = wasm_f32x4_add(acc1[r], wasm_f32x4_mul(av, b1));
    }
  }
  for (int r = 0; r < MR; ++r) {
    float* cr = c + r * n + j;
    wasm_v128_store(cr, wasm_f32x4_add(wasm_v128_load(cr), acc0[r]));
    wasm_v128_store(cr + 4, wasm_f32x4_add(wasm_v128_load(cr + 4), acc1[r]));
  }
}

template <int MR>
inline void gemm_tile_x4(float* c, const float* a, const float* b, size_t n, size_t k, size_t j) {
  v128_t acc[MR];
  for (int r = 0; r < MR; ++r) acc[r] = wasm_f32x4_splat(0.0f);
  const float* bp = b + j;
  for (size_t p = 0; p < k; ++p, bp += n) {
    const v128_t b0 = wasm_v128_load(bp);
    for (int r = 0; r < MR; ++r)
      acc[r] = wasm_f32x4_add(acc[r], wasm_f32x4_mul(wasm_f32x4_splat(a[r * k + p]), b0));
  }
  for (int r = 0; r < MR; ++r) {
    float* cr = c + r * n + j;
    wasm_v128_store(cr, wasm_f32x4_add(wasm_v128_load(cr), acc[r]));
  }
}

template <int MR>
inline void gemm_tile_x1(float* c, const float* a, const float* b, size_t n, size_t k, size_t j) {
  for (int r = 0; r < MR; ++r) {
    float s = 0.0f;
    for (size_t p = 0; p < k; ++p) s += a[r * k + p] * b[p * n + j];
    c[r * n + j] += s;
  }
}

template <int MR>
inline void gemm_rows(float* c, const float* a, const float* b, size_t n, size_t k) {
  size_t j = 0;
  for (; j + 8 <= n; j += 8) gemm_tile_x8<MR>(c, a, b, n, k, j);
  for (; j + 4 <= n; j += 4) gemm_tile_x4<MR>(c, a, b, n, k, j);
  for (; j < n; ++j) gemm_tile_x1<MR>(c, a, b, n, k, j);
}

}  // namespace

void f32_gemm_4x8__wasmsimd(float* c, const float* a, const float* b, size_t m, size_t n,
                            size_t k) {
  // c is (m, n); a is (m, k); b is (k, n). c += a * b.
  size_t i = 0;
  for (; i + 4 <= m; i += 4) gemm_rows<4>(c + i * n, a + i * k, b, n, k);
  switch (m - i) {
    case 3: gemm_rows<3>(c + i * n, a + i * k, b, n, k); break;
    case 2: gemm_rows<2>(c + i * n, a + i * k, b, n, k); break;
    case 1: gemm_rows<1>(c + i * n, a + i * k, b, n, k); break;
    default: break;
  }
}

void f32_gemv__wasmsimd(float* y, const float* w, const float* x, const float* bias, size_t m,
                        size_t k) {
  // y is (m); w is (m, k); x is (k). Four rows at a time share each load of x.
  const size_t k4 = k & ~size_t(3);
  size_t i = 0;
  for (; i + 4 <= m; i += 4) {
    const float* w0 = w + i * k;
    const float* w1 = w0 + k;
    const float* w2 = w1 + k;
    const float* w3 = w2 + k;
    v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (size_t p = 0; p < k4; p += 4) {
      const v128_t xv = wasm_v128_load(x + p);
      a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(w0 + p), xv));
      a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load(w1 + p), xv));
      a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load(w2 + p), xv));
      a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(wasm_v128_load(w3 + p), xv));
    }
    float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
    for (size_t p = k4; p < k; ++p) {
      s0 += w0[p] * x[p];
      s1 += w1[p] * x[p];
      s2 += w2[p] * x[p];
      s3 += w3[p] * x[p];
    }
    y[i] = s0 + (bias ? bias[i] : 0.0f);
    y[i + 1] = s1 + (bias ? bias[i + 1] : 0.0f);
    y[i + 2] = s2 + (bias ? bias[i + 2] : 0.0f);
    y[i + 3] = s3 + (bias ? bias[i + 3] : 0.0f);
  }
  for (; i < m; ++i) {
    const float* wi = w + i * k;
    v128_t acc = wasm_f32x4_splat(0.0f);
    for (size_t p = 0; p < k4; p += 4)
      acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(wi + p), wasm_v128_load(x + p)));
    float s = hsum(acc);
    for (size_t p = k4; p < k; ++p) s += wi[p] * x[p];
    y[i] = s + (bias ? bias[i] : 0.0f);
  }
}

void f32_colsum__wasmsimd(float* out, const float* in, size_t rows, size_t cols) {
  // in is (rows, cols); out is (cols)
  size_t j = 0;
  for (; j + 4 <= cols; j += 4) {
    v128_t s = wasm_f32x4_splat(0.0f);
    for (size_t i = 0; i < rows; ++i) s = wasm_f32x4_add(s, wasm_v128_load(in + i * cols + j));
    wasm_v128_store(out + j, s);
  }
  for (; j < cols; ++j) {
    float s = 0.0f;
    for (size_t i = 0; i < rows; ++i) s += in[i * cols + j];
    out[j] = s;
  }
}

void f32_colmeanvar__wasmsimd(float* mean, float* var, const float* in, size_t rows, size_t cols) {
  // in is (rows, cols); mean, var are (cols). Two passes: the second sums
  // squares of centred values, so a large mean does not cancel the variance.
  const float inv = 1.0f / static_cast<float>(rows);
  const v128_t vinv = wasm_f32x4_splat(inv);
  size_t j = 0;
  for (; j + 4 <= cols; j += 4) {
    v128_t s = wasm_f32x4_splat(0.0f);
    for (size_t i = 0; i < rows; ++i) s = wasm_f32x4_add(s, wasm_v128_load(in + i * cols + j));
    const v128_t mu = wasm_f32x4_mul(s, vinv);
    v128_t q = wasm_f32x4_splat(0.0f);
    for (size_t i = 0; i < rows; ++i) {
      const v128_t d = wasm_f32x4_sub(wasm_v128_load(in + i * cols + j), mu);
      q = wasm_f32x4_add(q, wasm_f32x4_mul(d, d));
    }
    wasm_v128_store(mean + j, mu);
    wasm_v128_store(var + j, wasm_f32x4_mul(q, vinv));
  }
  for (; j < cols; ++j) {
    float s = 0.0f;
    for (size_t i = 0; i < rows; ++i) s += in[i * cols + j];
    const float mu = s * inv;
    float q = 0.0f;
    for (size_t i = 0; i < rows; ++i) {
      const float d = in[i * cols + j] - mu;
      q += d * d;
    }
    mean[j] = mu;
    var[j] = q * inv;
  }
}

void f32_gemm(float* c, const float* a, const float* b, size_t m, size_t n, size_t k) {
  f32_gemm_4x8__wasmsimd(c, a, b, m, n, k);
}
void f32_gemv(float* y, const float* w, const float* x, const float* bias, size_t m, size_t k) {
  f32_gemv__wasmsimd(y, w, x, bias, m, k);
}
void f32_colmeanvar(float* mean, float* var, const float* in, size_t rows, size_t cols) {
  f32_colmeanvar__wasmsimd(mean, var, in, rows, cols);
}
void f32_colsum(float* out, const float* in, size_t rows, size_t cols) {
  f32_colsum__wasmsimd(out, in, rows, cols);
}
const char* kernel_isa() { return "wasmsimd"; }

}  // namespace bnwasm
#endif  // __wasm_simd128__
