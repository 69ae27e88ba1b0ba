// Scalar reference kernels: the definition every SIMD variant is tested against.
#include <algorithm>
#include <cmath>

#include "bnwasm/kernels.h"

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

void f32_pack_x8(float* packed, const float* b, size_t k, size_t n) {
  // b is (k, n); packed is ceil(n / 8) panels of (k, 8)
  for (size_t j0 = 0; j0 < n; j0 += kPanel) {
    const size_t nr = std::min(kPanel, n - j0);
    for (size_t p = 0; p < k; ++p) {
      const float* src = b + p * n + j0;
      size_t jj = 0;
      for (; jj < nr; ++jj) packed[jj] = src[jj];
      for (; jj < kPanel; ++jj) packed[jj] = 0.0f;
      packed += kPanel;
    }
  }
}

void f32_pack_t_x8__scalar(float* packed, const float* bt, size_t k, size_t n) {
  // bt is (n, k); packed is ceil(n / 8) panels of (k, 8). Each panel reads 8
  // rows of bt side by side and writes its output front to back.
  for (size_t j0 = 0; j0 < n; j0 += kPanel) {
    const size_t nr = std::min(kPanel, n - j0);
    const float* rows = bt + j0 * k;
    for (size_t p = 0; p < k; ++p) {
      size_t jj = 0;
      for (; jj < nr; ++jj) packed[jj] = rows[jj * k + p];
      for (; jj < kPanel; ++jj) packed[jj] = 0.0f;
      packed += kPanel;
    }
  }
}

void f32_gemm_packed__scalar(float* c, const float* a, const float* packed, size_t m, size_t n,
                             size_t k) {
  // c is (m, n); a is (m, k); packed holds b (k, n)
  for (size_t i = 0; i < m; ++i) {
    const float* ai = a + i * k;
    for (size_t j0 = 0; j0 < n; j0 += kPanel) {
      const float* panel = packed + j0 * k;
      float acc[kPanel] = {0};
      for (size_t p = 0; p < k; ++p)
        for (size_t jj = 0; jj < kPanel; ++jj) acc[jj] += ai[p] * panel[p * kPanel + jj];
      const size_t nr = std::min(kPanel, n - j0);
      for (size_t jj = 0; jj < nr; ++jj) c[i * n + j0 + jj] += acc[jj];
    }
  }
}

void f32_gemm_tn_packed__scalar(float* c, const float* a, const float* packed, size_t m, size_t n,
                                size_t k) {
  // c is (m, n); a is (k, m); packed holds b (k, n)
  for (size_t i = 0; i < m; ++i) {
    for (size_t j0 = 0; j0 < n; j0 += kPanel) {
      const float* panel = packed + j0 * k;
      float acc[kPanel] = {0};
      for (size_t p = 0; p < k; ++p)
        for (size_t jj = 0; jj < kPanel; ++jj) acc[jj] += a[p * m + i] * panel[p * kPanel + jj];
      const size_t nr = std::min(kPanel, n - j0);
      for (size_t jj = 0; jj < nr; ++jj) c[i * n + j0 + jj] += acc[jj];
    }
  }
}

bool f32_adam__scalar(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2,
                      float c1, float c2, float step_size, float inv_sqrt_bc2, float eps, float wd,
                      bool write) {
  // p, m, v, g are (n). x * 0 is 0 for finite x and NaN otherwise, so one sum
  // tells whether every new value is finite.
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    const float d = g[i] + wd * p[i];
    const float nm = b1 * m[i] + c1 * d;
    const float nv = b2 * v[i] + c2 * d * d;
    const float np = p[i] - step_size * nm / (std::sqrt(nv) * inv_sqrt_bc2 + eps);
    acc += (np + nm + nv) * 0.0f;
    if (write) {
      p[i] = np;
      m[i] = nm;
      v[i] = nv;
    }
  }
  return acc == 0.0f;
}

bool f32_all_finite__scalar(const float* x, size_t n) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) acc += x[i] * 0.0f;
  return acc == 0.0f;
}

bool f32_sgd(float* p, float* buf, const float* g, size_t n, float lr, float mu, float wd,
             bool nesterov, bool write) {
  float acc = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    float d = g[i] + wd * p[i];
    float b = buf[i];
    if (mu != 0.0f) {
      b = mu * b + d;
      d = nesterov ? d + mu * b : b;
    }
    const float np = p[i] - lr * d;
    acc += (np + b) * 0.0f;  // 0 while everything is finite, NaN otherwise
    if (write) {
      p[i] = np;
      buf[i] = b;
    }
  }
  return acc == 0.0f;
}

#if !defined(__wasm_simd128__)
void f32_pack_t_x8(float* packed, const float* bt, size_t k, size_t n) {
  f32_pack_t_x8__scalar(packed, bt, k, n);
}
void f32_gemm_packed(float* c, const float* a, const float* packed, size_t m, size_t n, size_t k) {
  f32_gemm_packed__scalar(c, a, packed, m, n, k);
}
void f32_gemm_tn_packed(float* c, const float* a, const float* packed, size_t m, size_t n,
                        size_t k) {
  f32_gemm_tn_packed__scalar(c, a, packed, m, n, k);
}
bool f32_adam(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2, float c1,
              float c2, float step_size, float inv_sqrt_bc2, float eps, float wd, bool write) {
  return f32_adam__scalar(p, m, v, g, n, b1, b2, c1, c2, step_size, inv_sqrt_bc2, eps, wd, write);
}
bool f32_all_finite(const float* x, size_t n) { return f32_all_finite__scalar(x, n); }
void f32_colmeanvar(float* mean, float* var, const float* in, size_t rows, size_t cols) {
  f32_colmeanvar__scalar(mean, var, in, rows, cols);
}
const char* kernel_isa() { return "scalar"; }
#endif

}  // namespace bnwasm
