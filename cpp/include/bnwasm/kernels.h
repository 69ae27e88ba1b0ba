// Compute kernels over flat row-major float arrays.
//
// Every kernel has a scalar reference (`__scalar`) that builds everywhere and a
// wasm SIMD128 variant (`__wasmsimd`) that is only compiled with -msimd128. The
// un-suffixed name is the one the core calls: it resolves to the fastest
// variant compiled into this build. Tests check every variant against the
// scalar reference.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace bnwasm {

// c is (m, n); a is (m, k); b is (k, n). c += a * b.
void f32_gemm__scalar(float* c, const float* a, const float* b, size_t m, size_t n, size_t k);
// in is (rows, cols); mean and var are (cols): per-column mean and biased
// variance, two passes (the second over centred values) so a large mean does
// not cancel the variance's digits in float32.
void f32_colmeanvar__scalar(float* mean, float* var, const float* in, size_t rows, size_t cols);
// in is (B, C, S); mean and var are (C): per-channel mean and biased variance
// over the B * S values, two passes. Each run of S values is summed in float,
// the B runs in double, so a channel of B * S ~ 50,000 values keeps its digits.
void f32_chanmeanvar__scalar(float* mean, float* var, const float* in, size_t B, size_t C,
                             size_t S);
// Batch norm backward's two sums per channel for (B, C, S) data: dout and in
// are B rows of C channels of S values, `stride` floats apart (C * S for a
// whole tensor; more when the C channels are a block of a wider one); mean is
// (C). sum_dy[c] = sum of dout, sum_dy_xc[c] = sum of dout * (in - mean[c]);
// runs of S summed in float, the B runs in double.
void f32_chandsums__scalar(double* sum_dy, double* sum_dy_xc, const float* dout, const float* in,
                           const float* mean, size_t B, size_t C, size_t S, size_t stride);

// What happens to each sum before it is stored, per channel i (a conv's
// filter, a dense layer's output column):
//   v = init[i] + sum (init null: 0 + sum);
//   v = v * scale[i] + shift[i] when scale is not null (inference batch norm);
//   v = v > 0 ? v : 0 when relu.
struct ConvEpilogue {
  const float* init = nullptr;
  const float* scale = nullptr;
  const float* shift = nullptr;
  bool relu = false;
  // The steps after the init, for channel i's v = init + sum.
  float finish(float v, size_t i) const {
    if (scale != nullptr) v = v * scale[i] + shift[i];
    return relu ? (v > 0.0f ? v : 0.0f) : v;
  }
  // All of them, over channel i's sum: what the scalar kernels store.
  float operator()(float sum, size_t i) const {
    return finish((init != nullptr ? init[i] : 0.0f) + sum, i);
  }
};

// ---- GEMM on packed panels ----------------------------------------------------
// The right-hand matrix b (k, n) is packed into ceil(n / 8) panels, each (k, 8)
// row-major with the columns past n zero, so a tile reads it front to back.
// Every variant accumulates each c element the same way: a single lane starts
// at 0, adds a[i][p] * b[p][j] for p = 0 .. k-1 in order, and is then added to
// c. Variants differ only in how many rows and columns are in flight, so one
// row through any variant equals that row of a batch bit for bit.
constexpr size_t kPanel = 8;
// Floats in the packed form of a (k, n) matrix.
inline size_t f32_packed_size(size_t k, size_t n) {
  return k * ((n + kPanel - 1) / kPanel) * kPanel;
}
// b is (k, n) row-major. Memory-bound; one version.
void f32_pack_x8(float* packed, const float* b, size_t k, size_t n);
// bt is (n, k) row-major: packs its transpose, the (k, n) matrix. A dense
// layer's (OC, C) weight packed this way is the right operand of in * weight^T;
// training repacks it every step, so it has a SIMD variant (4x4 transposes).
void f32_pack_t_x8__scalar(float* packed, const float* bt, size_t k, size_t n);
// c is (m, n); a is (m, k); packed holds b (k, n). c += a * b.
void f32_gemm_packed__scalar(float* c, const float* a, const float* packed, size_t m, size_t n,
                             size_t k);
// The same product written through an epilogue per column j (a dense layer's
// output feature): c = ep(sum), ConvEpilogue's steps with init, scale and
// shift indexed by column. Equal bit for bit to c = init (0 when null), then
// f32_gemm_packed, then the batch norm and ReLU as passes of their own.
void f32_gemm_packed_epilogue__scalar(float* c, const float* a, const float* packed, size_t m,
                                      size_t n, size_t k, const ConvEpilogue& ep);
// c is (m, n); a is (k, m); packed holds b (k, n). c += a^T * b (the weight
// gradient dout^T * in, without transposing dout).
void f32_gemm_tn_packed__scalar(float* c, const float* a, const float* packed, size_t m, size_t n,
                                size_t k);

// ---- direct convolution (implicit GEMM) ---------------------------------------------
// A convolution whose output columns step one input column at a time (stride 1
// in width), read from KW shifted copies of the zero-padded image instead of
// an im2col matrix (which has KH * KW copies): copy kx of channel c is the
// padded image moved kx columns left and cut to the output's width, so tap
// (c, ky, kx) of output (oy, ox) is
//   x[((c * KW + kx) * HP + oy * SH + ky) * WP + ox],
// x being (C, KW, HP, WP). The taps of neighbouring outputs are neighbouring
// floats, one vector load for eight. With WP = OW and SH = 1 that holds
// across rows too: the caller then describes the output as one row of OH * OW
// columns (OH = 1), and no tile straddles a row end half empty.
struct PaddedConv {
  size_t F, C, KH, KW;  // filters, input channels, kernel
  size_t HP, WP;        // rows and columns of each shifted copy
  size_t SH;            // stride down the rows
  size_t OH, OW;        // output height and width
  // Floats of x the kernels may read: the copies and 8 more, since a SIMD
  // tile past the last output column reads (and discards) up to 7 floats
  // past the last copy.
  size_t input_size() const { return C * KW * HP * WP + 8; }
};
// The (F, K) weight, PyTorch's layout, as ceil(F / 4) blocks of (K, 4): the
// four filters' weights for one tap side by side, filters past F zero.
inline size_t f32_packed_rows_x4_size(size_t F, size_t K) { return (F + 3) / 4 * 4 * K; }
void f32_pack_rows_x4(float* packed, const float* w, size_t F, size_t K);
// out is (F, OH, OW); x as above; wp is the weight (F, K = C * KH * KW) packed
// by f32_pack_rows_x4. Each sum starts at 0 and adds w[i][p] * tap p for
// p = 0 .. K-1 in order, as the packed GEMM does, so the result equals
// im2col + f32_gemm_packed (+ the epilogue as separate passes) bit for bit.
void f32_conv_direct__scalar(float* out, const float* x, const float* wp, const ConvEpilogue& ep,
                             const PaddedConv& s);
// in is (planes, H, W); out is (planes, OH, OW): the maximum of each 2x2 window
// at stride 2, OH <= H / 2, OW <= W / 2. The first maximum of a window in
// reading order wins, as maxpool2d_forward's does (so -0 before +0 gives -0).
void f32_maxpool2x2__scalar(float* out, const float* in, size_t planes, size_t H, size_t W,
                            size_t OH, size_t OW);

// ---- Winograd F(2x2, 3x3) convolution (inference) ---------------------------------
// A 3x3 convolution at stride 1 computed per 2x2 block of outputs (a tile) from
// the 4x4 block of inputs under it: y = A^T [ sum_c (G g G^T) . (B^T d B) ] A
// (Lavin and Gray, 2016). The sum over input channels becomes 16 small GEMMs
// with 16 / (2 * 2 * 9) = 4/9 of the direct form's multiplies. Inference
// only: the transforms round differently from the direct sum (the bound is in
// tests/cpp/conv_kernels_test.cpp), so training, whose results are compared
// bit for bit with the im2col path, keeps the direct kernel.
struct Winograd23Conv {
  size_t F, C;    // filters, input channels
  size_t TH, TW;  // tiles down and across (the output rounded up to even, halved)
  size_t OH, OW;  // the convolution's output, OH <= 2 TH, OW <= 2 TW
  // Followed by a 2x2 max pool at stride 2 (of the epilogue's values): out is
  // then (F, OH / 2, OW / 2), one value per whole tile.
  bool pool = false;
  // The tiles of an (OH, OW) output.
  static Winograd23Conv of(size_t F, size_t C, size_t OH, size_t OW, bool pool) {
    return {F, C, (OH + 1) / 2, (OW + 1) / 2, OH, OW, pool};
  }
  size_t TWP() const { return (TW + 3) / 4 * 4; }  // tiles across, rounded to a vector
  size_t tiles() const { return TH * TWP(); }
  // The input the kernels read: x is (C, HP, WP), the zero-padded image with
  // its first row and column at the padding's top left; the tile (ty, tx)
  // reads rows 2 ty .. 2 ty + 3 and columns 2 tx .. 2 tx + 3.
  size_t HP() const { return 2 * TH + 2; }
  size_t WP() const { return 2 * TWP() + 2; }
  size_t input_size() const { return C * HP() * WP(); }
  // Floats of the transformed input: (16, C, tiles()).
  size_t v_size() const { return 16 * C * tiles(); }
};
// The weight (F, C, 3, 3) transformed, G g G^T in double rounded once, as
// (16, ceil(F / 4), C, 4): for each of the 16 tile positions, blocks of four
// filters side by side per channel, filters past F zero. One version: it runs
// once per weight change.
inline size_t f32_winograd23_weight_size(size_t F, size_t C) { return 16 * ((F + 3) / 4 * 4) * C; }
void f32_winograd23_weights(float* u, const float* w, size_t F, size_t C);
// out is (F, OH, OW), or (F, OH / 2, OW / 2) with pool; x as above; u from
// f32_winograd23_weights; v is scratch of v_size() floats. Per tile: the input
// transform, for each of the 16 positions a sum over c from 0 in order, the
// output transform, then the epilogue of ConvEpilogue per value, then the
// pool's maximum in reading order. Every variant does the same operations in
// the same order, so all give the same bits.
void f32_conv3x3_winograd23__scalar(float* out, const float* x, const float* u, float* v,
                                    const ConvEpilogue& ep, const Winograd23Conv& s);

// ---- optimizer and checks ---------------------------------------------------------
// A float's IEEE bits. For x >= +0 the bits order as the values do, so the
// largest |x| of a pass is one integer max over bits with the sign cleared:
// exact, and the same for any split of the pass. Every NaN and infinity has
// bits of at least kNotFinite.
constexpr uint32_t kNotFinite = 0x7f800000u;
inline float from_peak_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}
// p, m, v, g are (n). One Adam step as torch.optim.Adam computes it:
//   d = g + wd * p; m' = b1 m + c1 d; v' = b2 v + c2 d d, where c1 = 1 - b1
//   and c2 = 1 - b2 come from the caller, rounded once from double;
//   p' = p - step_size * m' / (sqrt(v') * inv_sqrt_bc2 + eps).
// Writes p', m', v' only when `write`; returns whether all of them are finite,
// so a caller can check a step before taking it.
bool f32_adam__scalar(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2,
                      float c1, float c2, float step_size, float inv_sqrt_bc2, float eps, float wd,
                      bool write);
// x is (n). True when no value is NaN or infinite.
bool f32_all_finite__scalar(const float* x, size_t n);
// x is (n). The bits of max |x| (0 for n = 0): at least kNotFinite when a value is NaN
// or infinite.
uint32_t f32_abs_peak__scalar(const float* x, size_t n);

#if defined(__wasm_simd128__)
void f32_colmeanvar__wasmsimd(float* mean, float* var, const float* in, size_t rows, size_t cols);
// MR rows by one 8-column panel per tile: 2 * MR accumulators.
void f32_gemm_packed_4x8__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                   size_t n, size_t k);
// The same sums with every term added, the zeros of a included (f32_gemm_packed_every_term).
void f32_gemm_packed_every_term_4x8__wasmsimd(float* c, const float* a, const float* packed,
                                              size_t m, size_t n, size_t k);
void f32_gemm_packed_epilogue_4x8__wasmsimd(float* c, const float* a, const float* packed,
                                            size_t m, size_t n, size_t k, const ConvEpilogue& ep);
// The epilogue's steps after the init over one row of n columns already
// holding init + sum: c[j] = ep.finish(c[j], j).
void f32_epilogue_finish__wasmsimd(float* c, size_t n, const ConvEpilogue& ep);
// One row at a time, four panels (32 columns, 8 accumulators) in flight: the
// matrix-vector form for single-example inference, over the p where
// a[i][p] != 0 only (input pixels, ReLU outputs). Exact, not approximate: for
// finite b a skipped term adds +-0 to an accumulator that starts at +0 and so
// is never -0, which leaves it unchanged; the result equals the scalar
// reference's bit for bit.
void f32_gemm_packed_sparse_1x32__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                           size_t n, size_t k);
void f32_gemm_tn_packed_4x8__wasmsimd(float* c, const float* a, const float* packed, size_t m,
                                      size_t n, size_t k);
void f32_pack_t_x8__wasmsimd(float* packed, const float* bt, size_t k, size_t n);
bool f32_adam__wasmsimd(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2,
                        float c1, float c2, float step_size, float inv_sqrt_bc2, float eps,
                        float wd, bool write);
uint32_t f32_abs_peak__wasmsimd(const float* x, size_t n);
void f32_chanmeanvar__wasmsimd(float* mean, float* var, const float* in, size_t B, size_t C,
                               size_t S);
void f32_chandsums__wasmsimd(double* sum_dy, double* sum_dy_xc, const float* dout, const float* in,
                             const float* mean, size_t B, size_t C, size_t S, size_t stride);
// 4 filters by 8 output columns of one row per tile: 8 accumulators.
void f32_conv_direct_4x8__wasmsimd(float* out, const float* x, const float* wp,
                                   const ConvEpilogue& ep, const PaddedConv& s);
void f32_maxpool2x2__wasmsimd(float* out, const float* in, size_t planes, size_t H, size_t W,
                              size_t OH, size_t OW);
// 4 filters by 8 tiles (4 at the end of a row of tiles) per block.
void f32_conv3x3_winograd23_4x8__wasmsimd(float* out, const float* x, const float* u, float* v,
                                          const ConvEpilogue& ep, const Winograd23Conv& s);
#endif

// p, buf, g are (n). One SGD step as torch.optim.SGD computes it (dampening 0):
//   d = g + wd * p; buf' = mu * buf + d (when mu != 0); d' = nesterov ? d + mu * buf' : buf';
//   p' = p - lr * d'. buf starts at 0, so the first step's buf' = d, as PyTorch sets it.
// Writes p', buf' only when `write`; returns whether all of them are finite.
// One portable version: the compiler vectorizes it.
bool f32_sgd__scalar(float* p, float* buf, const float* g, size_t n, float lr, float mu,
                     float wd, bool nesterov, bool write);

// The variant this build uses (cpp/kernels/dispatch.cpp), split over the
// thread pool (parallel.h) where it pays; the same bits for any thread count.
void f32_colmeanvar(float* mean, float* var, const float* in, size_t rows, size_t cols);
void f32_chanmeanvar(float* mean, float* var, const float* in, size_t B, size_t C, size_t S);
void f32_chandsums(double* sum_dy, double* sum_dy_xc, const float* dout, const float* in,
                   const float* mean, size_t B, size_t C, size_t S, size_t stride);
void f32_pack_t_x8(float* packed, const float* bt, size_t k, size_t n);
// One row goes through the matrix-vector variant, more through the tiled one;
// both give the same bits for a row (see above).
void f32_gemm_packed(float* c, const float* a, const float* packed, size_t m, size_t n, size_t k);
// f32_gemm_packed for a b that may hold Infinity or NaN: a convolution's columns,
// which are activations (an overflow that a later clip hides from the loss). It
// adds every term, so a zero of a times an infinite b gives NaN, as the scalar
// reference's sum does; f32_gemm_packed may skip a's zeros (exact for finite b,
// the weights it is given elsewhere), and whether it does depends on whether it
// runs inside a pool task, so the same step could give NaN on several threads
// and a finite gradient on one.
void f32_gemm_packed_every_term(float* c, const float* a, const float* packed, size_t m, size_t n,
                                size_t k);
// The epilogue form (above): one row runs the matrix-vector variant over c =
// init and then the epilogue's other steps over the row, the same bits.
void f32_gemm_packed_epilogue(float* c, const float* a, const float* packed, size_t m, size_t n,
                              size_t k, const ConvEpilogue& ep);
void f32_gemm_tn_packed(float* c, const float* a, const float* packed, size_t m, size_t n,
                        size_t k);
bool f32_adam(float* p, float* m, float* v, const float* g, size_t n, float b1, float b2, float c1,
              float c2, float step_size, float inv_sqrt_bc2, float eps, float wd, bool write);
bool f32_all_finite(const float* x, size_t n);
uint32_t f32_abs_peak(const float* x, size_t n);
bool f32_sgd(float* p, float* buf, const float* g, size_t n, float lr, float mu, float wd,
             bool nesterov, bool write);
void f32_conv_direct(float* out, const float* x, const float* wp, const ConvEpilogue& ep,
                     const PaddedConv& s);
void f32_maxpool2x2(float* out, const float* in, size_t planes, size_t H, size_t W, size_t OH,
                    size_t OW);
void f32_conv3x3_winograd23(float* out, const float* x, const float* u, float* v,
                            const ConvEpilogue& ep, const Winograd23Conv& s);

// Name of the variant set in use: "wasmsimd" or "scalar".
const char* kernel_isa();

}  // namespace bnwasm
