// Depthwise convolution, WebAssembly SIMD128 variants. Each computes every
// value with the operations of the scalar reference (depthwise_scalar.cpp) in
// its order, so they give the same bits (bnwasm/depthwise.h).
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

#include <cstring>

#include "bnwasm/depthwise.h"

namespace bnwasm {
namespace {

// ---- shared pieces -----------------------------------------------------------------

// One filter's epilogue as vectors: init + acc, then scale and shift, then
// ReLU as v & (v > 0), which is v > 0 ? v : 0 (NaN and -0 give +0), then the
// clip: pmax(v, lo) is v < lo ? lo : v, std::max(v, lo); pmin(v, hi) is
// hi < v ? hi : v, std::min(v, hi).
struct Epilogue {
  v128_t init, scale, shift, lo, hi;
  bool affine, relu, clip;
  v128_t apply(v128_t acc) const {
    v128_t v = wasm_f32x4_add(init, acc);
    if (affine) v = wasm_f32x4_add(wasm_f32x4_mul(v, scale), shift);
    if (relu) v = wasm_v128_and(v, wasm_f32x4_gt(v, wasm_f32x4_splat(0.0f)));
    if (clip) v = wasm_f32x4_pmin(wasm_f32x4_pmax(v, lo), hi);
    return v;
  }
};
// What every filter shares: the flags and the clip's bounds.
Epilogue common_epilogue(const DepthwiseEpilogue& ep) {
  Epilogue e;
  e.affine = ep.scale != nullptr;
  e.relu = ep.relu;
  e.clip = ep.clip;
  e.lo = wasm_f32x4_splat(ep.lo);
  e.hi = wasm_f32x4_splat(ep.hi);
  return e;
}

// Filter f's, in every lane (the width variants).
Epilogue splat_epilogue(const DepthwiseEpilogue& ep, size_t f) {
  Epilogue e = common_epilogue(ep);
  e.init = wasm_f32x4_splat(ep.init != nullptr ? ep.init[f] : 0.0f);
  e.scale = wasm_f32x4_splat(e.affine ? ep.scale[f] : 1.0f);
  e.shift = wasm_f32x4_splat(e.affine ? ep.shift[f] : 0.0f);
  return e;
}

inline float hsum(v128_t v) {  // (s0 + s1) + (s2 + s3), the reference's order
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

// The output index o < n that tap offset t (t = i + P - k D) reaches at
// stride S: t must be a multiple of S. Strides 1 and 2 without a division.
inline bool reach(long t, size_t S, size_t n, size_t* o) {
  if (t < 0) return false;
  size_t q = size_t(t);
  if (S == 2) {
    if (q & 1) return false;
    q >>= 1;
  } else if (S != 1) {
    if (q % S != 0) return false;
    q /= S;
  }
  *o = q;
  return q < n;
}

// The j < J with 0 <= j step + offset < N, a range as j rises: the taps of
// an output that reach the input (step: the dilation), or the outputs a tap
// reaches it from (step: the stride).
inline size_t ceil_div(size_t a, size_t d) { return d == 1 ? a : d == 2 ? (a + 1) >> 1 : (a + d - 1) / d; }
inline void index_range(long offset, size_t step, size_t N, size_t J, size_t* lo, size_t* hi) {
  const size_t a = offset >= 0 ? 0 : ceil_div(size_t(-offset), step);
  const size_t b = long(N) <= offset ? 0 : ceil_div(size_t(long(N) - offset), step);
  *hi = b < J ? b : J;
  *lo = a < *hi ? a : *hi;
}

// Without dilation, the taps k (in order) through which position t = i + P
// of the padded input receives from outputs o < ON at stride S are
// k, k + S, ... (count of them), from outputs o, o - 1, ...: k = t - o S for
// the o in [0, ON) that put k in [0, KN).
struct Reaching {
  size_t k, o, count;
};
inline Reaching reaching(size_t t, size_t S, size_t ON, size_t KN) {
  const size_t top = S == 1 ? t : S == 2 ? t >> 1 : t / S;  // the largest o with k >= 0
  const size_t o_hi = top < ON - 1 ? top : ON - 1;
  // the smallest o with k = t - o S <= KN - 1
  const size_t o_lo = t < KN ? 0 : ceil_div(t - KN + 1, S);
  if (o_lo > o_hi) return {0, 0, 0};
  return {t - o_hi * S, o_hi, o_hi - o_lo + 1};
}

// Tap kx of outputs ox .. ox + 3 from a padded input row r: padded column
// ox S + kx. At stride 2 the row is stored split (copy_rows_split): its even
// columns, then from `half` its odd ones, so the taps are a plain load too.
template <size_t S>
inline v128_t tap(const float* r, size_t ox, size_t kx, size_t half) {
  if (S == 1) return wasm_v128_load(r + ox + kx);
  return wasm_v128_load(r + (kx & 1) * half + ox + kx / 2);
}

// The first n (1 .. 4 NV) of 4 NV lanes to o; dst += v when add.
template <int NV, bool add>
inline void store_row(float* o, const v128_t* v, size_t n) {
  if (n == 4 * NV) {
    for (int i = 0; i < NV; ++i)
      wasm_v128_store(o + 4 * i, add ? wasm_f32x4_add(wasm_v128_load(o + 4 * i), v[i]) : v[i]);
    return;
  }
  alignas(16) float t[4 * NV];
  for (int i = 0; i < NV; ++i) wasm_v128_store(t + 4 * i, v[i]);
  for (size_t j = 0; j < n; ++j) o[j] = add ? o[j] + t[j] : t[j];
}

// rows rows of cols floats into the middle of padded rows `width` apart, from
// column `left`; the margins were zeroed once and stay zero.
void copy_rows(float* dst, const float* src, size_t rows, size_t cols, size_t left, size_t width) {
  for (size_t r = 0; r < rows; ++r) std::memcpy(dst + r * width + left, src + r * cols, cols * sizeof(float));
}
// The same for stride 2, split: padded column j (input column j - left) goes
// to j / 2, or half + j / 2 when j is odd. Eight input columns at a time, as
// their even and odd four.
void copy_rows_split(float* dst, const float* src, size_t rows, size_t cols, size_t left, size_t width,
                     size_t half) {
  // Input columns 2i (and 2i + 1) land in the half of left's (the other) parity.
  float* even_to = dst + (left & 1) * half + left / 2;
  float* odd_to = dst + (1 - (left & 1)) * half + (left + 1) / 2;
  for (size_t r = 0; r < rows; ++r) {
    const float* row = src + r * cols;
    float* e = even_to + r * width;
    float* o = odd_to + r * width;
    size_t i = 0;
    for (; 2 * i + 8 <= cols; i += 4) {
      const v128_t a = wasm_v128_load(row + 2 * i), b = wasm_v128_load(row + 2 * i + 4);
      wasm_v128_store(e + i, wasm_i32x4_shuffle(a, b, 0, 2, 4, 6));
      wasm_v128_store(o + i, wasm_i32x4_shuffle(a, b, 1, 3, 5, 7));
    }
    for (; 2 * i < cols; ++i) {
      e[i] = row[2 * i];
      if (2 * i + 1 < cols) o[i] = row[2 * i + 1];
    }
  }
}
// The input's rows padded for the width variants: split at stride 2.
void pad_input(float* xp, const float* plane, const DepthwiseConv& s) {
  if (s.SW == 1)
    copy_rows(xp, plane, s.H, s.W, s.PL, s.xw());
  else
    copy_rows_split(xp, plane, s.H, s.W, s.PL, s.xw(), s.xw() / 2);
}

// ---- along a row: forward -------------------------------------------------------------

// 4 NV outputs of row oy from column ox0 of filter wf, read from the padded
// rows xp. K3: the kernel is 3x3, its loops unrolled.
template <size_t SW, bool K3, int NV>
inline void forward_tile(float* o, const float* xp, const float* wf, const Epilogue& e,
                         const DepthwiseConv& s, size_t oy, size_t ox0, size_t n) {
  const size_t KH = K3 ? 3 : s.KH, KW = K3 ? 3 : s.KW, XW = s.xw();
  v128_t acc[NV];
  for (int i = 0; i < NV; ++i) acc[i] = wasm_f32x4_splat(0.0f);
  for (size_t ky = 0; ky < KH; ++ky) {
    const size_t y = oy * s.SH + ky * s.DH - s.PT;  // above the input: wraps past H
    if (y >= s.H) continue;
    const float* r = xp + y * XW;
    for (size_t kx = 0; kx < KW; ++kx) {
      const v128_t wv = wasm_f32x4_splat(wf[ky * KW + kx]);
      for (int i = 0; i < NV; ++i)
        acc[i] = wasm_f32x4_add(acc[i], wasm_f32x4_mul(wv, tap<SW>(r, ox0 + 4 * i, kx, XW / 2)));
    }
  }
  for (int i = 0; i < NV; ++i) acc[i] = e.apply(acc[i]);
  store_row<NV, false>(o + oy * s.OW + ox0, acc, n);
}

template <size_t SW, bool K3>
void forward_plane(float* o, const float* xp, const float* wf, const Epilogue& e,
                   const DepthwiseConv& s) {
  for (size_t oy = 0; oy < s.OH; ++oy)
    for (size_t ox0 = 0; ox0 < s.OW; ox0 += 8) {
      const size_t n = s.OW - ox0 < 8 ? s.OW - ox0 : 8;
      if (n > 4)
        forward_tile<SW, K3, 2>(o, xp, wf, e, s, oy, ox0, n);
      else
        forward_tile<SW, K3, 1>(o, xp, wf, e, s, oy, ox0, n);
    }
}

// ---- along a row: input gradient ------------------------------------------------------

// din row iy, columns ix0 .. ix0 + 4 NV - 1 (n of them exist) += the taps
// reaching them from dout, read from the padded rows dp (column ox at
// dpl() + ox). Stride 1: column ix is reached by tap kx from ox = ix + PL - kx.
template <bool K3, int NV>
inline void dinput_tile_s1(float* d, const float* dp, const float* wf, const DepthwiseConv& s,
                           size_t iy, size_t ix0, size_t n) {
  const size_t KH = K3 ? 3 : s.KH, KW = K3 ? 3 : s.KW, DPW = s.dw();
  v128_t acc[NV];
  for (int i = 0; i < NV; ++i) acc[i] = wasm_f32x4_splat(0.0f);
  for (size_t ky = 0; ky < KH; ++ky) {
    size_t oy;
    if (!reach(long(iy + s.PT) - long(ky * s.DH), s.SH, s.OH, &oy)) continue;
    const float* r = dp + oy * DPW + s.dpl() + ix0 + s.PL;
    for (size_t kx = 0; kx < KW; ++kx) {
      const v128_t wv = wasm_f32x4_splat(wf[ky * KW + kx]);
      for (int i = 0; i < NV; ++i)
        acc[i] = wasm_f32x4_add(acc[i], wasm_f32x4_mul(wv, wasm_v128_load(r - kx + 4 * i)));
    }
  }
  store_row<NV, true>(d + iy * s.W + ix0, acc, n);
}

// Stride 2: of 8 din columns ix0 + 2 j + q, the even ones (q = 0) are reached
// by the taps kx with PL - kx even, from ox = ix0 / 2 + j + (PL - kx) / 2; the
// odd ones by those with PL + 1 - kx even. One vector each, interleaved.
template <bool K3>
inline void dinput_tile_s2(float* d, const float* dp, const float* wf, const DepthwiseConv& s,
                           size_t iy, size_t ix0, size_t n) {
  const size_t KH = K3 ? 3 : s.KH, KW = K3 ? 3 : s.KW, DPW = s.dw();
  v128_t even = wasm_f32x4_splat(0.0f), odd = even;
  for (size_t ky = 0; ky < KH; ++ky) {
    size_t oy;
    if (!reach(long(iy + s.PT) - long(ky * s.DH), s.SH, s.OH, &oy)) continue;
    const float* r = dp + oy * DPW + s.dpl() + ix0 / 2;
    for (size_t kx = 0; kx < KW; ++kx) {
      const v128_t wv = wasm_f32x4_splat(wf[ky * KW + kx]);
      const long e = long(s.PL) - long(kx);  // q + e even: exact halves
      if (e % 2 == 0)
        even = wasm_f32x4_add(even, wasm_f32x4_mul(wv, wasm_v128_load(r + e / 2)));
      else
        odd = wasm_f32x4_add(odd, wasm_f32x4_mul(wv, wasm_v128_load(r + (e + 1) / 2)));
    }
  }
  const v128_t v[2] = {wasm_i32x4_shuffle(even, odd, 0, 4, 1, 5),
                       wasm_i32x4_shuffle(even, odd, 2, 6, 3, 7)};
  store_row<2, true>(d + iy * s.W + ix0, v, n);
}

template <size_t SW, bool K3>
void dinput_plane(float* d, const float* dp, const float* wf, const DepthwiseConv& s) {
  for (size_t iy = 0; iy < s.H; ++iy)
    for (size_t ix0 = 0; ix0 < s.W; ix0 += 8) {
      const size_t n = s.W - ix0 < 8 ? s.W - ix0 : 8;
      if (SW == 2)
        dinput_tile_s2<K3>(d, dp, wf, s, iy, ix0, n);
      else if (n > 4)
        dinput_tile_s1<K3, 2>(d, dp, wf, s, iy, ix0, n);
      else
        dinput_tile_s1<K3, 1>(d, dp, wf, s, iy, ix0, n);
    }
}

// ---- along a row: weight gradient -----------------------------------------------------

// Lane l of tap k's accumulator sums the outputs with ox % 4 == l, in (oy, ox)
// order; dout's columns past OW are zeros in dp. A 3x3 kernel keeps its nine
// accumulators in registers for one pass over the plane; other kernels make
// one pass per tap.
template <size_t SW>
void dweight_plane_3x3(float* dwf, const float* xp, const float* dp, const DepthwiseConv& s) {
  const size_t XW = s.xw(), DPW = s.dw();
  v128_t acc[9];
  for (v128_t& a : acc) a = wasm_f32x4_splat(0.0f);
  for (size_t oy = 0; oy < s.OH; ++oy) {
    const float* drow = dp + oy * DPW + s.dpl();
    for (size_t ky = 0; ky < 3; ++ky) {
      const size_t y = oy * s.SH + ky * s.DH - s.PT;
      if (y >= s.H) continue;
      const float* r = xp + y * XW;
      for (size_t ox0 = 0; ox0 < s.OW; ox0 += 4) {
        const v128_t dv = wasm_v128_load(drow + ox0);
        for (size_t kx = 0; kx < 3; ++kx)
          acc[ky * 3 + kx] = wasm_f32x4_add(acc[ky * 3 + kx], wasm_f32x4_mul(dv, tap<SW>(r, ox0, kx, XW / 2)));
      }
    }
  }
  for (size_t k = 0; k < 9; ++k) dwf[k] += hsum(acc[k]);
}

template <size_t SW>
void dweight_plane(float* dwf, const float* xp, const float* dp, const DepthwiseConv& s) {
  const size_t XW = s.xw(), DPW = s.dw();
  for (size_t ky = 0; ky < s.KH; ++ky)
    for (size_t kx = 0; kx < s.KW; ++kx) {
      v128_t acc = wasm_f32x4_splat(0.0f);
      for (size_t oy = 0; oy < s.OH; ++oy) {
        const size_t y = oy * s.SH + ky * s.DH - s.PT;
        if (y >= s.H) continue;
        const float* drow = dp + oy * DPW + s.dpl();
        const float* r = xp + y * XW;
        for (size_t ox0 = 0; ox0 < s.OW; ox0 += 4)
          acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(drow + ox0), tap<SW>(r, ox0, kx, XW / 2)));
      }
      dwf[ky * s.KW + kx] += hsum(acc);
    }
}

// ---- across channels ----------------------------------------------------------------
// A step of 4 NV planes (filters, or channels for the input gradient) is held
// as vectors in scratch: value i of the planes of group g (4 of them) in the
// lanes of vector i NV + g. The step's input, outputs and weights are held so;
// NV = 2 halves the loop work per plane. Planes that follow one another in
// memory go in and out through 4x4 transposes; others (a partial group, a
// multiplier above 1) value by value. Past the last plane the lanes repeat
// it (computed, never stored).

inline void transpose4(v128_t& a, v128_t& b, v128_t& c, v128_t& d) {
  const v128_t t0 = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7);
  const v128_t t2 = wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(c, d, 2, 6, 3, 7);
  a = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);
  b = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
  c = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);
  d = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
}

// Four planes of `size` values: lane l is plane p[l]; consecutive when
// p[l] = p[0] + l * size (all four real).
struct Block {
  const float* p[4];
  bool consecutive;
};
// Planes first, first + step, ... (n of them; the rest repeat the last) of
// `stride` floats each from base.
Block block(const float* base, size_t first, size_t n, size_t step, size_t stride) {
  Block b;
  for (size_t l = 0; l < 4; ++l) b.p[l] = base + (first + (l < n ? l : n - 1) * step) * stride;
  b.consecutive = n == 4 && step == 1;
  return b;
}
// The input planes under filters first .. first + n - 1: channel f / M.
Block input_block(const float* in, size_t first, size_t n, const DepthwiseConv& s) {
  const size_t HW = s.H * s.W;
  if (s.M == 1) return block(in, first, n, 1, HW);
  Block b;
  for (size_t l = 0; l < 4; ++l) b.p[l] = in + (first + (l < n ? l : n - 1)) / s.M * HW;
  b.consecutive = false;
  return b;
}

// Vector i of v (vectors `vs` floats apart) = value i of the block's planes.
void gather(float* v, size_t vs, const Block& b, size_t size) {
  size_t i = 0;
  if (b.consecutive && size == 1) {
    wasm_v128_store(v, wasm_v128_load(b.p[0]));
    return;
  }
  if (b.consecutive)
    for (; i + 4 <= size; i += 4) {
      v128_t r0 = wasm_v128_load(b.p[0] + i), r1 = wasm_v128_load(b.p[1] + i);
      v128_t r2 = wasm_v128_load(b.p[2] + i), r3 = wasm_v128_load(b.p[3] + i);
      transpose4(r0, r1, r2, r3);
      wasm_v128_store(v + vs * i, r0);
      wasm_v128_store(v + vs * (i + 1), r1);
      wasm_v128_store(v + vs * (i + 2), r2);
      wasm_v128_store(v + vs * (i + 3), r3);
    }
  for (; i < size; ++i)
    wasm_v128_store(v + vs * i, wasm_f32x4_make(b.p[0][i], b.p[1][i], b.p[2][i], b.p[3][i]));
}

// The inverse for the n real planes o[l] (consecutive: o[l] = o[0] + l * size):
// o[l][i] = lane l of vector i, or += it when add.
template <bool add>
void scatter(float* const* o, size_t n, bool consecutive, const float* v, size_t vs, size_t size) {
  size_t i = 0;
  if (consecutive && size == 1) {
    const v128_t x = wasm_v128_load(v);
    wasm_v128_store(o[0], add ? wasm_f32x4_add(wasm_v128_load(o[0]), x) : x);
    return;
  }
  if (consecutive)
    for (; i + 4 <= size; i += 4) {
      v128_t r[4] = {wasm_v128_load(v + vs * i), wasm_v128_load(v + vs * (i + 1)),
                     wasm_v128_load(v + vs * (i + 2)), wasm_v128_load(v + vs * (i + 3))};
      transpose4(r[0], r[1], r[2], r[3]);
      for (size_t l = 0; l < 4; ++l)
        wasm_v128_store(o[l] + i, add ? wasm_f32x4_add(wasm_v128_load(o[l] + i), r[l]) : r[l]);
    }
  for (; i < size; ++i)
    for (size_t l = 0; l < n; ++l) o[l][i] = add ? o[l][i] + v[vs * i + l] : v[vs * i + l];
}

// The taps that reach the input from some output: the weights a step needs
// (a 1x1 plane with padding 1 uses only the centre). Rows and columns past
// 64 count as used.
struct TapsUsed {
  uint64_t rows = 0, cols = 0;
  size_t count = 0;
  bool at(size_t ky, size_t kx) const {
    return (ky >= 64 || ((rows >> ky) & 1)) && (kx >= 64 || ((cols >> kx) & 1));
  }
};
TapsUsed taps_used(const DepthwiseConv& s) {
  TapsUsed u;
  for (size_t ky = 0; ky < s.KH && ky < 64; ++ky)
    for (size_t oy = 0; oy < s.OH; ++oy)
      if (oy * s.SH + ky * s.DH - s.PT < s.H) u.rows |= uint64_t(1) << ky;
  for (size_t kx = 0; kx < s.KW && kx < 64; ++kx)
    for (size_t ox = 0; ox < s.OW; ++ox)
      if (ox * s.SW + kx * s.DW - s.PL < s.W) u.cols |= uint64_t(1) << kx;
  for (size_t ky = 0; ky < s.KH; ++ky)
    for (size_t kx = 0; kx < s.KW; ++kx) u.count += u.at(ky, kx);
  return u;
}
// Vector k of wv (vectors vs floats apart) = the block's weights of tap k,
// for the taps in use. Four consecutive filters' rows of K weights go
// through 4x4 transposes, unless a few taps are all that is used.
void gather_weights(float* wv, size_t vs, const Block& b, const TapsUsed& used, const DepthwiseConv& s) {
  const size_t K = s.K();
  size_t k = 0;
  if (b.consecutive && used.count > 2)
    for (; k + 4 <= K; k += 4) {
      v128_t r0 = wasm_v128_load(b.p[0] + k), r1 = wasm_v128_load(b.p[1] + k);
      v128_t r2 = wasm_v128_load(b.p[2] + k), r3 = wasm_v128_load(b.p[3] + k);
      transpose4(r0, r1, r2, r3);
      wasm_v128_store(wv + vs * k, r0);
      wasm_v128_store(wv + vs * (k + 1), r1);
      wasm_v128_store(wv + vs * (k + 2), r2);
      wasm_v128_store(wv + vs * (k + 3), r3);
    }
  for (; k < K; ++k)
    if (used.at(k / s.KW, k % s.KW))
      wasm_v128_store(wv + vs * k, wasm_f32x4_make(b.p[0][k], b.p[1][k], b.p[2][k], b.p[3][k]));
}

// Lanes filters first .. first + 3 of an epilogue array (n real).
v128_t epilogue_lanes(const float* a, size_t first, size_t n, float none) {
  if (a == nullptr) return wasm_f32x4_splat(none);
  if (n == 4) return wasm_v128_load(a + first);
  const Block b = block(a, first, n, 1, 1);
  return wasm_f32x4_make(*b.p[0], *b.p[1], *b.p[2], *b.p[3]);
}

// Real lanes of group g in a step of n planes.
inline size_t group_lanes(size_t n, int g) { return n - 4 * g < 4 ? n - 4 * g : 4; }

// Forward for filters f0 .. f0 + n - 1 (n <= 4 NV; all 4 NV when NV > 1).
// scratch: the input x (HW steps of 4 NV floats), the outputs y (P), the weights wv (K).
template <int NV>
void forward_step(float* out, float* scratch, const float* in, const float* w, const DepthwiseEpilogue& ep,
                  const DepthwiseConv& s, const TapsUsed& used, size_t f0, size_t n) {
  const size_t K = s.K(), P = s.P(), HW = s.H * s.W, V = 4 * NV;
  float* x = scratch;
  float* y = x + V * HW;
  float* wv = y + V * P;
  Epilogue e[NV];
  for (int g = 0; g < NV; ++g) {
    const size_t f = f0 + 4 * g, ng = group_lanes(n, g);
    gather_weights(wv + 4 * g, V, block(w, f, ng, 1, K), used, s);
    gather(x + 4 * g, V, input_block(in, f, ng, s), HW);
    e[g] = common_epilogue(ep);
    e[g].init = epilogue_lanes(ep.init, f, ng, 0.0f);
    e[g].scale = epilogue_lanes(ep.scale, f, ng, 1.0f);
    e[g].shift = epilogue_lanes(ep.shift, f, ng, 0.0f);
  }
  for (size_t oy = 0; oy < s.OH; ++oy) {
    size_t ky0, ky1;
    index_range(long(oy * s.SH) - long(s.PT), s.DH, s.H, s.KH, &ky0, &ky1);
    for (size_t ox = 0; ox < s.OW; ++ox) {
      size_t kx0, kx1;
      index_range(long(ox * s.SW) - long(s.PL), s.DW, s.W, s.KW, &kx0, &kx1);
      v128_t acc[NV];
      for (int g = 0; g < NV; ++g) acc[g] = wasm_f32x4_splat(0.0f);
      for (size_t ky = ky0; ky < ky1; ++ky) {
        // the input under tap (ky, kx0), then DW values on per tap
        const float* xr = x + V * ((oy * s.SH + ky * s.DH - s.PT) * s.W + ox * s.SW + kx0 * s.DW - s.PL);
        const float* wr = wv + V * (ky * s.KW + kx0);
        for (size_t j = 0; j < kx1 - kx0; ++j)
          for (int g = 0; g < NV; ++g)
            acc[g] = wasm_f32x4_add(acc[g], wasm_f32x4_mul(wasm_v128_load(wr + V * j + 4 * g),
                                                           wasm_v128_load(xr + V * j * s.DW + 4 * g)));
      }
      for (int g = 0; g < NV; ++g) wasm_v128_store(y + V * (oy * s.OW + ox) + 4 * g, e[g].apply(acc[g]));
    }
  }
  for (int g = 0; g < NV; ++g) {
    const size_t ng = group_lanes(n, g);
    float* o[4];
    for (size_t l = 0; l < ng; ++l) o[l] = out + (f0 + 4 * g + l) * P;
    scatter<false>(o, ng, ng == 4, y + 4 * g, V, P);
  }
}

// Input gradient for channels c0 .. c0 + n - 1, each m in turn. scratch:
// dout of filters c M + m (P steps), the gradient g (HW), the weights wv (K).
template <int NV>
void dinput_step(float* din, float* scratch, const float* dout, const float* w, const DepthwiseConv& s,
                 const TapsUsed& used, size_t c0, size_t n) {
  const size_t K = s.K(), P = s.P(), HW = s.H * s.W, V = 4 * NV;
  float* d = scratch;
  float* gr = d + V * P;
  float* wv = gr + V * HW;
  for (size_t m = 0; m < s.M; ++m) {
    for (int g = 0; g < NV; ++g) {
      const size_t c = c0 + 4 * g, ng = group_lanes(n, g);
      gather_weights(wv + 4 * g, V, block(w, c * s.M + m, ng, s.M, K), used, s);
      gather(d + 4 * g, V, block(dout, c * s.M + m, ng, s.M, P), P);
    }
    for (size_t iy = 0; iy < s.H; ++iy)
      for (size_t ix = 0; ix < s.W; ++ix) {
        v128_t acc[NV];
        for (int g = 0; g < NV; ++g) acc[g] = wasm_f32x4_splat(0.0f);
        if (s.DH == 1 && s.DW == 1) {
          const Reaching ry = reaching(iy + s.PT, s.SH, s.OH, s.KH);
          const Reaching rx = reaching(ix + s.PL, s.SW, s.OW, s.KW);
          for (size_t a = 0; a < ry.count; ++a) {
            const float* wr = wv + V * ((ry.k + a * s.SH) * s.KW + rx.k);
            const float* dr = d + V * ((ry.o - a) * s.OW + rx.o);
            for (size_t b = 0; b < rx.count; ++b)
              for (int g = 0; g < NV; ++g)
                acc[g] = wasm_f32x4_add(acc[g], wasm_f32x4_mul(wasm_v128_load(wr + V * b * s.SW + 4 * g),
                                                               wasm_v128_load(dr - V * b + 4 * g)));
          }
        } else {
          for (size_t ky = 0; ky < s.KH; ++ky) {
            size_t oy, ox;
            if (!reach(long(iy + s.PT) - long(ky * s.DH), s.SH, s.OH, &oy)) continue;
            for (size_t kx = 0; kx < s.KW; ++kx) {
              if (!reach(long(ix + s.PL) - long(kx * s.DW), s.SW, s.OW, &ox)) continue;
              for (int g = 0; g < NV; ++g)
                acc[g] = wasm_f32x4_add(acc[g], wasm_f32x4_mul(wasm_v128_load(wv + V * (ky * s.KW + kx) + 4 * g),
                                                               wasm_v128_load(d + V * (oy * s.OW + ox) + 4 * g)));
            }
          }
        }
        for (int g = 0; g < NV; ++g) wasm_v128_store(gr + V * (iy * s.W + ix) + 4 * g, acc[g]);
      }
    for (int g = 0; g < NV; ++g) {
      const size_t ng = group_lanes(n, g);
      float* o[4];
      for (size_t l = 0; l < ng; ++l) o[l] = din + (c0 + 4 * g + l) * HW;
      scatter<true>(o, ng, ng == 4, gr + 4 * g, V, HW);
    }
  }
}

// Weight gradient for filters f0 .. f0 + n - 1. scratch: the input x (HW
// steps), dout (P) and the step's gradient r (K): per tap the four sums by
// ox % 4, combined; then dw += r, transposed.
template <int NV>
void dweight_step(float* dw, float* scratch, const float* dout, const float* in, const DepthwiseConv& s,
                  const TapsUsed& used, size_t f0, size_t n) {
  const size_t K = s.K(), P = s.P(), HW = s.H * s.W, V = 4 * NV;
  float* x = scratch;
  float* d = x + V * HW;
  float* r = d + V * P;
  for (int g = 0; g < NV; ++g) {
    const size_t f = f0 + 4 * g, ng = group_lanes(n, g);
    gather(x + 4 * g, V, input_block(in, f, ng, s), HW);
    gather(d + 4 * g, V, block(dout, f, ng, 1, P), P);
  }
  for (size_t ky = 0; ky < s.KH; ++ky)
    for (size_t kx = 0; kx < s.KW; ++kx) {
      if (!used.at(ky, kx)) {  // no output reaches the input through this tap: sums of +0
        for (int g = 0; g < NV; ++g) wasm_v128_store(r + V * (ky * s.KW + kx) + 4 * g, wasm_f32x4_splat(0.0f));
        continue;
      }
      v128_t sum[4][NV];
      for (auto& q : sum)
        for (v128_t& v : q) v = wasm_f32x4_splat(0.0f);
      size_t oy0, oy1, ox0, ox1;  // the outputs whose tap (ky, kx) lies inside the input
      index_range(long(ky * s.DH) - long(s.PT), s.SH, s.H, s.OH, &oy0, &oy1);
      index_range(long(kx * s.DW) - long(s.PL), s.SW, s.W, s.OW, &ox0, &ox1);
      for (size_t oy = oy0; oy < oy1; ++oy) {
        // the input under output (oy, ox0), then SW values on per output
        const float* xr = x + V * ((oy * s.SH + ky * s.DH - s.PT) * s.W + ox0 * s.SW + kx * s.DW - s.PL);
        const float* dr = d + V * (oy * s.OW + ox0);
        for (size_t j = 0; j < ox1 - ox0; ++j) {
          v128_t* q = sum[(ox0 + j) % 4];
          for (int g = 0; g < NV; ++g)
            q[g] = wasm_f32x4_add(q[g], wasm_f32x4_mul(wasm_v128_load(dr + V * j + 4 * g),
                                                       wasm_v128_load(xr + V * j * s.SW + 4 * g)));
        }
      }
      for (int g = 0; g < NV; ++g)
        wasm_v128_store(r + V * (ky * s.KW + kx) + 4 * g,
                        wasm_f32x4_add(wasm_f32x4_add(sum[0][g], sum[1][g]), wasm_f32x4_add(sum[2][g], sum[3][g])));
    }
  for (int g = 0; g < NV; ++g) {
    const size_t ng = group_lanes(n, g);
    float* o[4];
    for (size_t l = 0; l < ng; ++l) o[l] = dw + (f0 + 4 * g + l) * K;
    scatter<true>(o, ng, ng == 4, r + 4 * g, V, K);
  }
}

}  // namespace

void f32_dwconv_w8__wasmsimd(float* out, float* scratch, const float* in, const float* w,
                             const DepthwiseEpilogue& ep, const DepthwiseConv& s) {
  // out is (F, OH, OW); in is (C, H, W); w is (F, KH, KW); scratch: the padded rows (H, xw())
  const size_t XW = s.xw(), K = s.K(), P = s.P();
  const bool k3 = s.KH == 3 && s.KW == 3;
  std::memset(scratch, 0, s.H * XW * sizeof(float));
  for (size_t c = 0; c < s.C; ++c) {
    pad_input(scratch, in + c * s.H * s.W, s);
    for (size_t m = 0; m < s.M; ++m) {
      const size_t f = c * s.M + m;
      const Epilogue e = splat_epilogue(ep, f);
      float* o = out + f * P;
      const float* wf = w + f * K;
      if (s.SW == 1)
        k3 ? forward_plane<1, true>(o, scratch, wf, e, s) : forward_plane<1, false>(o, scratch, wf, e, s);
      else
        k3 ? forward_plane<2, true>(o, scratch, wf, e, s) : forward_plane<2, false>(o, scratch, wf, e, s);
    }
  }
}

void f32_dwconv_dinput_w8__wasmsimd(float* din, float* scratch, const float* dout,
                                    const float* w, const DepthwiseConv& s) {
  // din is (C, H, W); dout is (F, OH, OW); scratch: dout's padded rows (OH, dw())
  const size_t DPW = s.dw(), K = s.K(), P = s.P();
  const bool k3 = s.KH == 3 && s.KW == 3;
  std::memset(scratch, 0, s.OH * DPW * sizeof(float));
  for (size_t c = 0; c < s.C; ++c)
    for (size_t m = 0; m < s.M; ++m) {
      const size_t f = c * s.M + m;
      copy_rows(scratch, dout + f * P, s.OH, s.OW, s.dpl(), DPW);
      float* d = din + c * s.H * s.W;
      const float* wf = w + f * K;
      if (s.SW == 1)
        k3 ? dinput_plane<1, true>(d, scratch, wf, s) : dinput_plane<1, false>(d, scratch, wf, s);
      else
        k3 ? dinput_plane<2, true>(d, scratch, wf, s) : dinput_plane<2, false>(d, scratch, wf, s);
    }
}

void f32_dwconv_dweight_w4__wasmsimd(float* dw, float* scratch, const float* dout,
                                     const float* in, const DepthwiseConv& s) {
  // dw is (F, KH, KW); scratch: the input's padded rows (H, xw()), then dout's (OH, dw())
  const size_t XW = s.xw(), DPW = s.dw(), K = s.K(), P = s.P();
  float* xp = scratch;
  float* dp = scratch + s.H * XW;
  const bool k3 = s.KH == 3 && s.KW == 3;
  std::memset(scratch, 0, s.scratch_size() * sizeof(float));
  for (size_t c = 0; c < s.C; ++c) {
    pad_input(xp, in + c * s.H * s.W, s);
    for (size_t m = 0; m < s.M; ++m) {
      const size_t f = c * s.M + m;
      copy_rows(dp, dout + f * P, s.OH, s.OW, s.dpl(), DPW);
      float* dwf = dw + f * K;
      if (s.SW == 1)
        k3 ? dweight_plane_3x3<1>(dwf, xp, dp, s) : dweight_plane<1>(dwf, xp, dp, s);
      else
        k3 ? dweight_plane_3x3<2>(dwf, xp, dp, s) : dweight_plane<2>(dwf, xp, dp, s);
    }
  }
}

void f32_dwconv_c8__wasmsimd(float* out, float* scratch, const float* in, const float* w,
                             const DepthwiseEpilogue& ep, const DepthwiseConv& s) {
  // out is (F, OH, OW); in is (C, H, W); w is (F, KH, KW): 8 filters a step, the last by 4
  const size_t F = s.F();
  const TapsUsed used = taps_used(s);
  size_t f0 = 0;
  for (; f0 + 8 <= F; f0 += 8) forward_step<2>(out, scratch, in, w, ep, s, used, f0, 8);
  for (; f0 < F; f0 += 4) forward_step<1>(out, scratch, in, w, ep, s, used, f0, F - f0 < 4 ? F - f0 : 4);
}

void f32_dwconv_dinput_c8__wasmsimd(float* din, float* scratch, const float* dout,
                                    const float* w, const DepthwiseConv& s) {
  // din is (C, H, W); dout is (F, OH, OW): 8 channels a step, the last by 4
  const TapsUsed used = taps_used(s);
  size_t c0 = 0;
  for (; c0 + 8 <= s.C; c0 += 8) dinput_step<2>(din, scratch, dout, w, s, used, c0, 8);
  for (; c0 < s.C; c0 += 4) dinput_step<1>(din, scratch, dout, w, s, used, c0, s.C - c0 < 4 ? s.C - c0 : 4);
}

void f32_dwconv_dweight_c8__wasmsimd(float* dw, float* scratch, const float* dout, const float* in,
                                     const DepthwiseConv& s) {
  // dw is (F, KH, KW): 8 filters a step, the last by 4
  const size_t F = s.F();
  const TapsUsed used = taps_used(s);
  size_t f0 = 0;
  for (; f0 + 8 <= F; f0 += 8) dweight_step<2>(dw, scratch, dout, in, s, used, f0, 8);
  for (; f0 < F; f0 += 4) dweight_step<1>(dw, scratch, dout, in, s, used, f0, F - f0 < 4 ? F - f0 : 4);
}

// Along the row when rows are long enough to fill the vectors (measured at
// MobileNetV2's shapes: bench/wasm/depthwise.cpp), else across channels.
void f32_dwconv(float* out, float* scratch, const float* in, const float* w,
                const DepthwiseEpilogue& ep, const DepthwiseConv& s) {
  if (s.width_variants_apply() && s.OW >= 8)
    f32_dwconv_w8__wasmsimd(out, scratch, in, w, ep, s);
  else
    f32_dwconv_c8__wasmsimd(out, scratch, in, w, ep, s);
}
void f32_dwconv_dinput(float* din, float* scratch, const float* dout, const float* w,
                       const DepthwiseConv& s) {
  if (s.width_variants_apply() && s.W >= 8)
    f32_dwconv_dinput_w8__wasmsimd(din, scratch, dout, w, s);
  else
    f32_dwconv_dinput_c8__wasmsimd(din, scratch, dout, w, s);
}
void f32_dwconv_dweight(float* dw, float* scratch, const float* dout, const float* in,
                        const DepthwiseConv& s) {
  if (s.width_variants_apply() && s.OW >= 16)
    f32_dwconv_dweight_w4__wasmsimd(dw, scratch, dout, in, s);
  else
    f32_dwconv_dweight_c8__wasmsimd(dw, scratch, dout, in, s);
}

}  // namespace bnwasm
#endif  // __wasm_simd128__
