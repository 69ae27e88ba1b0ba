// Compute kernels over flat row-major float arrays.
//
// Every kernel has a scalar reference (`__scalar`) that builds everywhere and a
// wasm SIMD128 variant (`__wasmsimd`) that is only compiled with -msimd128. The
// un-suffixed name is the one the core calls: it resolves to the fastest
// variant compiled into this build. Tests check every variant against the
// scalar reference.
#pragma once
#include <cstddef>

namespace bnwasm {

// c is (m, n); a is (m, k); b is (k, n). c += a * b.
void f32_gemm__scalar(float* c, const float* a, const float* b, size_t m, size_t n, size_t k);
// y is (m); w is (m, k); x is (k). y = w * x + (bias ? bias : 0).
void f32_gemv__scalar(float* y, const float* w, const float* x, const float* bias, size_t m, size_t k);
// in is (rows, cols); mean and var are (cols): per-column mean and biased
// variance, two passes (the second over centred values) so a large mean does
// not cancel the variance's digits in float32.
void f32_colmeanvar__scalar(float* mean, float* var, const float* in, size_t rows, size_t cols);
// in is (rows, cols); out is (cols). out = sum over rows of in.
void f32_colsum__scalar(float* out, const float* in, size_t rows, size_t cols);

#if defined(__wasm_simd128__)
void f32_gemm_4x8__wasmsimd(float* c, const float* a, const float* b, size_t m, size_t n, size_t k);
void f32_gemv__wasmsimd(float* y, const float* w, const float* x, const float* bias, size_t m, size_t k);
void f32_colmeanvar__wasmsimd(float* mean, float* var, const float* in, size_t rows, size_t cols);
void f32_colsum__wasmsimd(float* out, const float* in, size_t rows, size_t cols);
#endif

// in is (rows, cols); out is (cols, rows). Memory-bound; one version.
void f32_transpose(float* out, const float* in, size_t rows, size_t cols);

// The variant this build uses.
void f32_gemm(float* c, const float* a, const float* b, size_t m, size_t n, size_t k);
void f32_gemv(float* y, const float* w, const float* x, const float* bias, size_t m, size_t k);
void f32_colmeanvar(float* mean, float* var, const float* in, size_t rows, size_t cols);
void f32_colsum(float* out, const float* in, size_t rows, size_t cols);

// Name of the variant set in use: "wasmsimd" or "scalar".
const char* kernel_isa();

}  // namespace bnwasm
