// WebAssembly SIMD128 kernels. Same signatures and results (up to float
// summation order) as the scalar references in scalar.cpp.
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

#include <cstdint>

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

// ---- packed panels ----

// c += acc for the nr (1..8) valid columns of a panel; lane adds and scalar
// adds round the same, so a partial panel matches a full one bit for bit.
inline void add_panel(float* c, v128_t lo, v128_t hi, size_t nr) {
  if (nr == kPanel) {
    wasm_v128_store(c, wasm_f32x4_add(wasm_v128_load(c), lo));
    wasm_v128_store(c + 4, wasm_f32x4_add(wasm_v128_load(c + 4), hi));
    return;
  }
  alignas(16) float t[kPanel];
  wasm_v128_store(t, lo);
  wasm_v128_store(t + 4, hi);
  for (size_t jj = 0; jj < nr; ++jj) c[jj] += t[jj];
}

// MR rows of c by one panel. A's element (r, p) is a[r * k + p], or with
// AT a[p * m + r] (a stored transposed). Both splat it from memory.
template <int MR, bool AT>
inline void packed_tile(float* c, const float* a, const float* panel, size_t m, size_t n, size_t k,
                        size_t nr) {
  v128_t lo[MR], hi[MR];
  for (int r = 0; r < MR; ++r) lo[r] = hi[r] = wasm_f32x4_splat(0.0f);
  const float* bp = panel;
  if (AT) {
    const float* ap = a;
    for (size_t p = 0; p < k; ++p, bp += kPanel, ap += m) {
      const v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
      for (int r = 0; r < MR; ++r) {
        const v128_t av = wasm_v128_load32_splat(ap + r);
        lo[r] = wasm_f32x4_add(lo[r], wasm_f32x4_mul(av, b0));
        hi[r] = wasm_f32x4_add(hi[r], wasm_f32x4_mul(av, b1));
      }
    }
  } else {
    for (size_t p = 0; p < k; ++p, bp += kPanel) {
      const v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
      for (int r = 0; r < MR; ++r) {
        const v128_t av = wasm_v128_load32_splat(a + r * k + p);
        lo[r] = wasm_f32x4_add(lo[r], wasm_f32x4_mul(av, b0));
        hi[r] = wasm_f32x4_add(hi[r], wasm_f32x4_mul(av, b1));
      }
    }
  }
  for (int r = 0; r < MR; ++r) add_panel(c + r * n, lo[r], hi[r], nr);
}

// The most entries of a row that f32_gemm_packed_sparse_1x32__wasmsimd lists;
// longer rows go dense.
constexpr size_t kMaxList = 1024;

// MR rows of c, every panel. The panel loop is inside the row block, so the
// MR rows of a stay in L1 while b streams through.
template <int MR, bool AT>
inline void packed_rows(float* c, const float* a, const float* packed, size_t m, size_t n,
                        size_t k) {
  for (size_t j0 = 0; j0 < n; j0 += kPanel) {
    const size_t nr = n - j0 < kPanel ? n - j0 : kPanel;
    packed_tile<MR, AT>(c + j0, a, packed + j0 * k, m, n, k, nr);
  }
}

template <int MR, bool AT>
void packed_gemm(float* c, const float* a, const float* packed, size_t m, size_t n, size_t k) {
  // Row i of a starts at a + i * k, or at a + i when a is stored transposed.
  const size_t row_step = AT ? 1 : k;
  size_t i = 0;
  for (; i + MR <= m; i += MR) packed_rows<MR, AT>(c + i * n, a + i * row_step, packed, m, n, k);
  // The last m % MR rows one at a time: the same sums, and one more template
  // instance instead of MR - 1 keeps the module small.
  for (; i < m; ++i) packed_rows<1, AT>(c + i * n, a + i * row_step, packed, m, n, k);
}

// One row of c, P panels at once: 2 * P independent accumulators hide the add
// latency that a single panel's two chains would expose.
template <int P>
inline void row_panels(float* c, const float* a, const float* packed, size_t n, size_t k,
                       size_t j0) {
  v128_t lo[P], hi[P];
  for (int q = 0; q < P; ++q) lo[q] = hi[q] = wasm_f32x4_splat(0.0f);
  const float* bp = packed + j0 * k;
  const size_t stride = kPanel * k;  // from one panel to the next
  for (size_t p = 0; p < k; ++p, bp += kPanel) {
    const v128_t av = wasm_v128_load32_splat(a + p);
    for (int q = 0; q < P; ++q) {
      lo[q] = wasm_f32x4_add(lo[q], wasm_f32x4_mul(av, wasm_v128_load(bp + q * stride)));
      hi[q] = wasm_f32x4_add(hi[q], wasm_f32x4_mul(av, wasm_v128_load(bp + q * stride + 4)));
    }
  }
  for (int q = 0; q < P; ++q) {
    const size_t j = j0 + q * kPanel;
    add_panel(c + j, lo[q], hi[q], n - j < kPanel ? n - j : kPanel);
  }
}

// Like row_panels, over the listed p only (ascending): the terms left out
// have a[p] == 0.
template <int P>
inline void row_panels_listed(float* c, const float* a, const uint32_t* list, size_t count,
                              const float* packed, size_t n, size_t k, size_t j0) {
  v128_t lo[P], hi[P];
  for (int q = 0; q < P; ++q) lo[q] = hi[q] = wasm_f32x4_splat(0.0f);
  const float* b0 = packed + j0 * k;
  const size_t stride = kPanel * k;
  for (size_t t = 0; t < count; ++t) {
    const uint32_t p = list[t];
    const v128_t av = wasm_v128_load32_splat(a + p);
    const float* bp = b0 + p * kPanel;
    for (int q = 0; q < P; ++q) {
      lo[q] = wasm_f32x4_add(lo[q], wasm_f32x4_mul(av, wasm_v128_load(bp + q * stride)));
      hi[q] = wasm_f32x4_add(hi[q], wasm_f32x4_mul(av, wasm_v128_load(bp + q * stride + 4)));
    }
  }
  for (int q = 0; q < P; ++q) {
    const size_t j = j0 + q * kPanel;
    add_panel(c + j, lo[q], hi[q], n - j < kPanel ? n - j : kPanel);
  }
}

void dense_row(float* c, const float* a, const float* packed, size_t n, size_t k) {
  const size_t panels = (n + kPanel - 1) / kPanel;
  size_t q = 0;
  for (; q + 4 <= panels; q += 4) row_panels<4>(c, a, packed, n, k, q * kPanel);
  for (; q < panels; ++q) row_panels<1>(c, a, packed, n, k, q * kPanel);
}

}  // namespace

void f32_gemm_packed_4x8__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                   size_t n, size_t k) {
  // c is (m, n); a is (m, k); packed holds b (k, n). c += a * b.
  packed_gemm<4, false>(c, a, packed, m, n, k);
}
void f32_gemm_packed_6x8__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                   size_t n, size_t k) {
  packed_gemm<6, false>(c, a, packed, m, n, k);
}
void f32_gemm_tn_packed_4x8__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                      size_t n, size_t k) {
  // c is (m, n); a is (k, m); packed holds b (k, n). c += a^T * b.
  packed_gemm<4, true>(c, a, packed, m, n, k);
}
void f32_gemm_tn_packed_6x8__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                      size_t n, size_t k) {
  packed_gemm<6, true>(c, a, packed, m, n, k);
}

void f32_gemm_packed_1x32__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                    size_t n, size_t k) {
  // c is (m, n); a is (m, k); packed holds b (k, n). Row by row.
  for (size_t i = 0; i < m; ++i) dense_row(c + i * n, a + i * k, packed, n, k);
}

void f32_gemm_packed_sparse_1x32__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                           size_t n, size_t k) {
  // c is (m, n); a is (m, k); packed holds b (k, n), finite. Row by row.
  uint32_t list[kMaxList];
  const size_t panels = (n + kPanel - 1) / kPanel;
  for (size_t i = 0; i < m; ++i) {
    float* ci = c + i * n;
    const float* ai = a + i * k;
    size_t count = 0;
    if (k <= kMaxList)
      for (size_t p = 0; p < k; ++p) {
        list[count] = static_cast<uint32_t>(p);
        count += ai[p] != 0.0f;
      }
    // Listing pays off only when it skips a good share of the row.
    if (k > kMaxList || count * 4 > k * 3) {
      dense_row(ci, ai, packed, n, k);
      continue;
    }
    size_t q = 0;
    for (; q + 4 <= panels; q += 4)
      row_panels_listed<4>(ci, ai, list, count, packed, n, k, q * kPanel);
    for (; q < panels; ++q) row_panels_listed<1>(ci, ai, list, count, packed, n, k, q * kPanel);
  }
}

void f32_pack_t_x8__wasmsimd(float* packed, const float* bt, size_t k, size_t n) {
  // bt is (n, k); packed is ceil(n / 8) panels of (k, 8). A full panel reads
  // four p at a time from each of its 8 rows and writes them as two 4x4
  // transposes; partial panels and the last k % 4 go through the scalar code.
  const size_t k4 = k & ~size_t(3);
  size_t j0 = 0;
  for (; j0 + kPanel <= n; j0 += kPanel) {
    const float* r = bt + j0 * k;
    float* out = packed + j0 * k;
    for (size_t p = 0; p < k4; p += 4) {
      for (int half = 0; half < 2; ++half) {
        const float* h = r + half * 4 * k + p;
        const v128_t v0 = wasm_v128_load(h), v1 = wasm_v128_load(h + k);
        const v128_t v2 = wasm_v128_load(h + 2 * k), v3 = wasm_v128_load(h + 3 * k);
        const v128_t lo01 = wasm_i32x4_shuffle(v0, v1, 0, 4, 1, 5);
        const v128_t hi01 = wasm_i32x4_shuffle(v0, v1, 2, 6, 3, 7);
        const v128_t lo23 = wasm_i32x4_shuffle(v2, v3, 0, 4, 1, 5);
        const v128_t hi23 = wasm_i32x4_shuffle(v2, v3, 2, 6, 3, 7);
        float* o = out + p * kPanel + half * 4;
        wasm_v128_store(o, wasm_i32x4_shuffle(lo01, lo23, 0, 1, 4, 5));
        wasm_v128_store(o + kPanel, wasm_i32x4_shuffle(lo01, lo23, 2, 3, 6, 7));
        wasm_v128_store(o + 2 * kPanel, wasm_i32x4_shuffle(hi01, hi23, 0, 1, 4, 5));
        wasm_v128_store(o + 3 * kPanel, wasm_i32x4_shuffle(hi01, hi23, 2, 3, 6, 7));
      }
    }
    for (size_t p = k4; p < k; ++p)
      for (size_t jj = 0; jj < kPanel; ++jj) out[p * kPanel + jj] = r[jj * k + p];
  }
  if (j0 < n) f32_pack_t_x8__scalar(packed + j0 * k, bt + j0 * k, k, n - j0);
}

bool f32_adam__wasmsimd(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2,
                        float c1, float c2, float step_size, float inv_sqrt_bc2, float eps,
                        float wd, bool write) {
  // The scalar reference's operations in the same order, four lanes at a
  // time: sqrt and division round the same in a lane, so results are equal.
  const v128_t vb1 = wasm_f32x4_splat(b1), vb2 = wasm_f32x4_splat(b2);
  const v128_t vc1 = wasm_f32x4_splat(c1), vc2 = wasm_f32x4_splat(c2);
  const v128_t vstep = wasm_f32x4_splat(step_size), vbc2 = wasm_f32x4_splat(inv_sqrt_bc2);
  const v128_t veps = wasm_f32x4_splat(eps), vwd = wasm_f32x4_splat(wd);
  const v128_t zero = wasm_f32x4_splat(0.0f);
  v128_t acc = zero;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t pi = wasm_v128_load(p + i);
    const v128_t d = wasm_f32x4_add(wasm_v128_load(g + i), wasm_f32x4_mul(vwd, pi));
    const v128_t nm =
        wasm_f32x4_add(wasm_f32x4_mul(vb1, wasm_v128_load(m + i)), wasm_f32x4_mul(vc1, d));
    const v128_t nv = wasm_f32x4_add(wasm_f32x4_mul(vb2, wasm_v128_load(v + i)),
                                     wasm_f32x4_mul(wasm_f32x4_mul(vc2, d), d));
    const v128_t den = wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_sqrt(nv), vbc2), veps);
    const v128_t np = wasm_f32x4_sub(pi, wasm_f32x4_div(wasm_f32x4_mul(vstep, nm), den));
    acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_add(wasm_f32x4_add(np, nm), nv), zero));
    if (write) {
      wasm_v128_store(p + i, np);
      wasm_v128_store(m + i, nm);
      wasm_v128_store(v + i, nv);
    }
  }
  const bool tail = f32_adam__scalar(p + i, m + i, v + i, g + i, n - i, b1, b2, c1, c2, step_size,
                                     inv_sqrt_bc2, eps, wd, write);
  return tail && hsum(acc) == 0.0f;
}

bool f32_all_finite__wasmsimd(const float* x, size_t n) {
  // Four independent chains: the sum's latency, not the loads, bounds one chain.
  const v128_t zero = wasm_f32x4_splat(0.0f);
  v128_t a0 = zero, a1 = zero, a2 = zero, a3 = zero;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(wasm_v128_load(x + i), zero));
    a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(wasm_v128_load(x + i + 4), zero));
    a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(wasm_v128_load(x + i + 8), zero));
    a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(wasm_v128_load(x + i + 12), zero));
  }
  const v128_t acc = wasm_f32x4_add(wasm_f32x4_add(a0, a1), wasm_f32x4_add(a2, a3));
  return hsum(acc) == 0.0f && f32_all_finite__scalar(x + i, n - i);
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

void f32_colmeanvar(float* mean, float* var, const float* in, size_t rows, size_t cols) {
  f32_colmeanvar__wasmsimd(mean, var, in, rows, cols);
}
void f32_pack_t_x8(float* packed, const float* bt, size_t k, size_t n) {
  f32_pack_t_x8__wasmsimd(packed, bt, k, n);
}
void f32_gemm_packed(float* c, const float* a, const float* packed, size_t m, size_t n, size_t k) {
  // One row skips its zeros (pixels, ReLU outputs); more rows go four at a
  // time, which reads b once per four rows (row by row, even with the zeros
  // skipped, measured slower at 64 rows). Either way the bits are the same.
  if (m == 1)
    f32_gemm_packed_sparse_1x32__wasmsimd(c, a, packed, m, n, k);
  else
    f32_gemm_packed_4x8__wasmsimd(c, a, packed, m, n, k);
}
void f32_gemm_tn_packed(float* c, const float* a, const float* packed, size_t m, size_t n,
                        size_t k) {
  f32_gemm_tn_packed_4x8__wasmsimd(c, a, packed, m, n, k);
}
bool f32_adam(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2, float c1,
              float c2, float step_size, float inv_sqrt_bc2, float eps, float wd, bool write) {
  return f32_adam__wasmsimd(p, m, v, g, n, b1, b2, c1, c2, step_size, inv_sqrt_bc2, eps, wd, write);
}
bool f32_all_finite(const float* x, size_t n) { return f32_all_finite__wasmsimd(x, n); }
const char* kernel_isa() { return "wasmsimd"; }

}  // namespace bnwasm
#endif  // __wasm_simd128__
