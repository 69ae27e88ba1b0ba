// The kernels the core calls: each picks the fastest variant compiled into
// this build (wasm SIMD128, else the scalar reference) and splits the work
// over the thread pool (parallel.h) where the pieces are independent. Every
// split cuts between outputs, never through a sum, so results are the same
// bits for any thread count; the GEMMs split their rows inside the variants.
#include <atomic>
#include <cstring>

#include "bnwasm/kernels.h"
#include "bnwasm/parallel.h"

#if defined(__wasm_simd128__)
#define BNWASM_VARIANT(name) name##__wasmsimd
#define BNWASM_GEMM(name) name##_4x8__wasmsimd
#else
#define BNWASM_VARIANT(name) name##__scalar
#define BNWASM_GEMM(name) name##__scalar
#endif

namespace bnwasm {

void f32_colmeanvar(float* mean, float* var, const float* in, size_t rows, size_t cols) {
  BNWASM_VARIANT(f32_colmeanvar)(mean, var, in, rows, cols);
}
void f32_chanmeanvar(float* mean, float* var, const float* in, size_t B, size_t C, size_t S) {
  BNWASM_VARIANT(f32_chanmeanvar)(mean, var, in, B, C, S);
}
void f32_chandsums(double* sum_dy, double* sum_dy_xc, const float* dout, const float* in,
                   const float* mean, size_t B, size_t C, size_t S, size_t stride) {
  // Channels are independent; each keeps its order over the batch.
  const size_t g = grain(C, 2 * B * S);
  parallel_for(pieces(C, g), [&](size_t t, size_t) {
    const auto [c0, c1] = piece(t, C, g);
    BNWASM_VARIANT(f32_chandsums)(sum_dy + c0, sum_dy_xc + c0, dout + c0 * S, in + c0 * S,
                                  mean + c0, B, c1 - c0, S, stride);
  });
}
void f32_pack_t_x8(float* packed, const float* bt, size_t k, size_t n) {
  // Panels of 8 columns are independent: panel j0 / 8 starts at packed + j0 * k.
  // Pieces of 8 panels (or a multiple), like the GEMM's column groups, so the
  // thread that packs a panel is the one whose GEMM tasks read it.
  const size_t g = grain(n, k, 8 * kPanel);
  parallel_for(pieces(n, g), [&](size_t t, size_t) {
    const auto [j0, j1] = piece(t, n, g);
    BNWASM_VARIANT(f32_pack_t_x8)(packed + j0 * k, bt + j0 * k, k, j1 - j0);
  });
}
void f32_gemm_packed(float* c, const float* a, const float* packed, size_t m, size_t n, size_t k) {
#if defined(__wasm_simd128__)
  // One row skips its zeros (pixels, ReLU outputs); more rows go four at a
  // time, which reads b once per four rows (row by row, even with the zeros
  // skipped, measured slower at 64 rows). Either way the bits are the same.
  if (m == 1) {
    f32_gemm_packed_sparse_1x32__wasmsimd(c, a, packed, m, n, k);
    return;
  }
#endif
  BNWASM_GEMM(f32_gemm_packed)(c, a, packed, m, n, k);
}
void f32_gemm_packed_every_term(float* c, const float* a, const float* packed, size_t m, size_t n,
                                size_t k) {
#if defined(__wasm_simd128__)
  f32_gemm_packed_every_term_4x8__wasmsimd(c, a, packed, m, n, k);
#else
  f32_gemm_packed__scalar(c, a, packed, m, n, k);  // adds every term
#endif
}
void f32_gemm_packed_epilogue(float* c, const float* a, const float* packed, size_t m, size_t n,
                              size_t k, const ConvEpilogue& ep) {
#if defined(__wasm_simd128__)
  if (m == 1) {
    // c = init + sum as the sparse row kernel adds it, then the rest per column.
    if (ep.init != nullptr)
      std::memcpy(c, ep.init, n * sizeof(float));
    else
      std::memset(c, 0, n * sizeof(float));
    f32_gemm_packed_sparse_1x32__wasmsimd(c, a, packed, m, n, k);
    if (ep.scale != nullptr || ep.relu) f32_epilogue_finish__wasmsimd(c, n, ep);
    return;
  }
  f32_gemm_packed_epilogue_4x8__wasmsimd(c, a, packed, m, n, k, ep);
#else
  f32_gemm_packed_epilogue__scalar(c, a, packed, m, n, k, ep);
#endif
}
void f32_gemm_tn_packed(float* c, const float* a, const float* packed, size_t m, size_t n,
                        size_t k) {
  BNWASM_GEMM(f32_gemm_tn_packed)(c, a, packed, m, n, k);
}
bool f32_adam(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2, float c1,
              float c2, float step_size, float inv_sqrt_bc2, float eps, float wd, bool write) {
  // Element-wise; the finiteness of the pieces is and-ed.
  std::atomic<bool> finite{true};
  const size_t gr = grain(n, 8, 4);
  parallel_for(pieces(n, gr), [&](size_t t, size_t) {
    const auto [i0, i1] = piece(t, n, gr);
    if (!BNWASM_VARIANT(f32_adam)(p + i0, m + i0, v + i0, g + i0, i1 - i0, b1, b2, c1, c2,
                                  step_size, inv_sqrt_bc2, eps, wd, write))
      finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}
bool f32_sgd(float* p, float* buf, const float* g, size_t n, float lr, float mu, float wd,
             bool nesterov, bool write) {
  std::atomic<bool> finite{true};
  const size_t gr = grain(n, 4, 4);
  parallel_for(pieces(n, gr), [&](size_t t, size_t) {
    const auto [i0, i1] = piece(t, n, gr);
    if (!f32_sgd__scalar(p + i0, buf + i0, g + i0, i1 - i0, lr, mu, wd, nesterov, write))
      finite.store(false, std::memory_order_relaxed);
  });
  return finite.load();
}
uint32_t f32_abs_peak(const float* x, size_t n) {
  // The pieces' peaks max-ed as they finish.
  std::atomic<uint32_t> peak{0};
  const size_t g = grain(n, 1, 16);
  parallel_for(pieces(n, g), [&](size_t t, size_t) {
    const auto [i0, i1] = piece(t, n, g);
    fetch_max(peak, BNWASM_VARIANT(f32_abs_peak)(x + i0, i1 - i0));
  });
  return peak.load();
}
bool f32_all_finite(const float* x, size_t n) { return f32_abs_peak(x, n) < kNotFinite; }
void f32_conv_direct(float* out, const float* x, const float* wp, const ConvEpilogue& ep,
                     const PaddedConv& s) {
  BNWASM_GEMM(f32_conv_direct)(out, x, wp, ep, s);
}
void f32_maxpool2x2(float* out, const float* in, size_t planes, size_t H, size_t W, size_t OH,
                    size_t OW) {
  const size_t g = grain(planes, 4 * OH * OW);
  parallel_for(pieces(planes, g), [&](size_t t, size_t) {
    const auto [p0, p1] = piece(t, planes, g);
    BNWASM_VARIANT(f32_maxpool2x2)(out + p0 * OH * OW, in + p0 * H * W, p1 - p0, H, W, OH, OW);
  });
}
void f32_conv3x3_winograd23(float* out, const float* x, const float* u, float* v,
                            const ConvEpilogue& ep, const Winograd23Conv& s) {
  BNWASM_GEMM(f32_conv3x3_winograd23)(out, x, u, v, ep, s);
}

#if defined(__wasm_simd128__)
const char* kernel_isa() { return "wasmsimd"; }
#else
const char* kernel_isa() { return "scalar"; }
#endif

}  // namespace bnwasm
