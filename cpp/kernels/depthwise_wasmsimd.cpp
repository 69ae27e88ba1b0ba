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
// ReLU as v & (v > 0), which is v > 0 ? v : 0 (NaN and -0 give +0).
struct Epilogue {
  v128_t init, scale, shift;
  bool affine, relu;
  v128_t apply(v128_t acc) const {
    v128_t v = wasm_f32x4_add(init, acc);
    if (affine) v = wasm_f32x4_add(wasm_f32x4_mul(v, scale), shift);
    if (relu) v = wasm_v128_and(v, wasm_f32x4_gt(v, wasm_f32x4_splat(0.0f)));
    return v;
  }
};

// Filter f's, in every lane (the width variants).
Epilogue splat_epilogue(const ConvEpilogue& ep, size_t f) {
  Epilogue e;
  e.init = wasm_f32x4_splat(ep.init != nullptr ? ep.init[f] : 0.0f);
  e.affine = ep.scale != nullptr;
  e.scale = wasm_f32x4_splat(e.affine ? ep.scale[f] : 1.0f);
  e.shift = wasm_f32x4_splat(e.affine ? ep.shift[f] : 0.0f);
  e.relu = ep.relu;
  return e;
}

inline float hsum(v128_t v) {  // (s0 + s1) + (s2 + s3), the reference's order
  return (wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1)) +
         (wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3));
}

// Four values that are S floats apart: S = 1 a load; S = 2 the even lanes of
// eight (a stride-2 row of taps).
template <size_t S>
inline v128_t load_strided(const float* p) {
  if (S == 1) return wasm_v128_load(p);
  return wasm_i32x4_shuffle(wasm_v128_load(p), wasm_v128_load(p + 4), 0, 2, 4, 6);
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
    const float* r = xp + y * XW + ox0 * SW;
    for (size_t kx = 0; kx < KW; ++kx) {
      const v128_t wv = wasm_f32x4_splat(wf[ky * KW + kx]);
      for (int i = 0; i < NV; ++i)
        acc[i] = wasm_f32x4_add(acc[i], wasm_f32x4_mul(wv, load_strided<SW>(r + kx + 4 * SW * i)));
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
    const long t = long(iy + s.PT) - long(ky * s.DH);
    if (t < 0 || t % long(s.SH) != 0 || size_t(t) / s.SH >= s.OH) continue;
    const float* r = dp + (size_t(t) / s.SH) * DPW + s.dpl() + ix0 + s.PL;
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
    const long t = long(iy + s.PT) - long(ky * s.DH);
    if (t < 0 || t % long(s.SH) != 0 || size_t(t) / s.SH >= s.OH) continue;
    const float* r = dp + (size_t(t) / s.SH) * DPW + s.dpl() + ix0 / 2;
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
          acc[ky * 3 + kx] = wasm_f32x4_add(acc[ky * 3 + kx],
                                            wasm_f32x4_mul(dv, load_strided<SW>(r + ox0 * SW + kx)));
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
        const float* r = xp + y * XW + kx;
        for (size_t ox0 = 0; ox0 < s.OW; ox0 += 4)
          acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(drow + ox0),
                                                   load_strided<SW>(r + ox0 * SW)));
      }
      dwf[ky * s.KW + kx] += hsum(acc);
    }
}

// ---- across channels ----------------------------------------------------------------

// Four planes, one value of each per lane: lane l reads plane p[l]. Past the
// last plane the lanes repeat it (computed, never stored).
struct Lanes {
  const float* p[4];
  size_t n;  // lanes that are real planes
  v128_t at(size_t i) const { return wasm_f32x4_make(p[0][i], p[1][i], p[2][i], p[3][i]); }
};
Lanes lanes(const float* base, size_t first, size_t count, size_t step, size_t stride,
            size_t total) {
  // plane i of the group is base + min(first + i * step, last) * stride
  Lanes l;
  l.n = count;
  for (size_t i = 0; i < 4; ++i) {
    size_t k = first + (i < count ? i : count - 1) * step;
    l.p[i] = base + (k < total ? k : total - 1) * stride;
  }
  return l;
}
// Lane l of v to o[l][i] for the real lanes.
inline void scatter(float* const* o, size_t i, v128_t v, size_t n, bool add) {
  alignas(16) float t[4];
  wasm_v128_store(t, v);
  for (size_t l = 0; l < n; ++l) o[l][i] = add ? o[l][i] + t[l] : t[l];
}

}  // namespace

void f32_dwconv_w8__wasmsimd(float* out, float* scratch, const float* in, const float* w,
                             const ConvEpilogue& ep, const DepthwiseConv& s) {
  // out is (F, OH, OW); in is (C, H, W); w is (F, KH, KW); scratch: the padded rows (H, xw())
  const size_t XW = s.xw(), K = s.K(), P = s.P();
  const bool k3 = s.KH == 3 && s.KW == 3;
  std::memset(scratch, 0, s.H * XW * sizeof(float));
  for (size_t c = 0; c < s.C; ++c) {
    copy_rows(scratch, in + c * s.H * s.W, s.H, s.W, s.PL, XW);
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
    copy_rows(xp, in + c * s.H * s.W, s.H, s.W, s.PL, XW);
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

void f32_dwconv_c4__wasmsimd(float* out, float*, const float* in, const float* w,
                             const ConvEpilogue& ep, const DepthwiseConv& s) {
  // out is (F, OH, OW); in is (C, H, W); w is (F, KH, KW). Lanes: filters f0 .. f0 + 3.
  const size_t F = s.F(), K = s.K(), P = s.P(), HW = s.H * s.W;
  for (size_t f0 = 0; f0 < F; f0 += 4) {
    const size_t n = F - f0 < 4 ? F - f0 : 4;
    const Lanes wl = lanes(w, f0, n, 1, K, F);
    Lanes xl;
    for (size_t l = 0; l < 4; ++l) xl.p[l] = in + ((wl.p[l] - w) / K / s.M) * HW;
    float* o[4];
    for (size_t l = 0; l < n; ++l) o[l] = out + (f0 + l) * P;
    Epilogue e;
    e.affine = ep.scale != nullptr;
    e.relu = ep.relu;
    e.init = ep.init != nullptr ? lanes(ep.init, f0, n, 1, 1, F).at(0) : wasm_f32x4_splat(0.0f);
    e.scale = e.affine ? lanes(ep.scale, f0, n, 1, 1, F).at(0) : wasm_f32x4_splat(1.0f);
    e.shift = e.affine ? lanes(ep.shift, f0, n, 1, 1, F).at(0) : wasm_f32x4_splat(0.0f);
    for (size_t oy = 0; oy < s.OH; ++oy)
      for (size_t ox = 0; ox < s.OW; ++ox) {
        v128_t acc = wasm_f32x4_splat(0.0f);
        for (size_t ky = 0; ky < s.KH; ++ky) {
          const size_t y = oy * s.SH + ky * s.DH - s.PT;
          if (y >= s.H) continue;
          for (size_t kx = 0; kx < s.KW; ++kx) {
            const size_t x = ox * s.SW + kx * s.DW - s.PL;
            if (x >= s.W) continue;
            acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wl.at(ky * s.KW + kx), xl.at(y * s.W + x)));
          }
        }
        scatter(o, oy * s.OW + ox, e.apply(acc), n, false);
      }
  }
}

void f32_dwconv_dinput_c4__wasmsimd(float* din, float*, const float* dout, const float* w,
                                    const DepthwiseConv& s) {
  // din is (C, H, W); dout is (F, OH, OW). Lanes: channels c0 .. c0 + 3.
  const size_t K = s.K(), P = s.P(), HW = s.H * s.W;
  for (size_t c0 = 0; c0 < s.C; c0 += 4) {
    const size_t n = s.C - c0 < 4 ? s.C - c0 : 4;
    float* d[4];
    for (size_t l = 0; l < n; ++l) d[l] = din + (c0 + l) * HW;
    for (size_t m = 0; m < s.M; ++m) {
      // filter c M + m of each lane's channel c
      const Lanes wl = lanes(w, c0 * s.M + m, n, s.M, K, s.F());
      const Lanes dl = lanes(dout, c0 * s.M + m, n, s.M, P, s.F());
      for (size_t iy = 0; iy < s.H; ++iy)
        for (size_t ix = 0; ix < s.W; ++ix) {
          v128_t acc = wasm_f32x4_splat(0.0f);
          for (size_t ky = 0; ky < s.KH; ++ky) {
            const long t = long(iy + s.PT) - long(ky * s.DH);
            if (t < 0 || t % long(s.SH) != 0 || size_t(t) / s.SH >= s.OH) continue;
            const size_t oy = size_t(t) / s.SH;
            for (size_t kx = 0; kx < s.KW; ++kx) {
              const long u = long(ix + s.PL) - long(kx * s.DW);
              if (u < 0 || u % long(s.SW) != 0 || size_t(u) / s.SW >= s.OW) continue;
              acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wl.at(ky * s.KW + kx),
                                                       dl.at(oy * s.OW + size_t(u) / s.SW)));
            }
          }
          scatter(d, iy * s.W + ix, acc, n, true);
        }
    }
  }
}

void f32_dwconv_dweight_c4__wasmsimd(float* dw, float*, const float* dout, const float* in,
                                     const DepthwiseConv& s) {
  // dw is (F, KH, KW). Lanes: filters f0 .. f0 + 3; per tap the four sums by ox % 4.
  const size_t F = s.F(), K = s.K(), P = s.P(), HW = s.H * s.W;
  for (size_t f0 = 0; f0 < F; f0 += 4) {
    const size_t n = F - f0 < 4 ? F - f0 : 4;
    const Lanes dl = lanes(dout, f0, n, 1, P, F);
    Lanes xl;
    for (size_t l = 0; l < 4; ++l) xl.p[l] = in + ((dl.p[l] - dout) / P / s.M) * HW;
    float* o[4];
    for (size_t l = 0; l < n; ++l) o[l] = dw + (f0 + l) * K;
    for (size_t ky = 0; ky < s.KH; ++ky)
      for (size_t kx = 0; kx < s.KW; ++kx) {
        v128_t sum[4];
        for (v128_t& v : sum) v = wasm_f32x4_splat(0.0f);
        for (size_t oy = 0; oy < s.OH; ++oy) {
          const size_t y = oy * s.SH + ky * s.DH - s.PT;
          if (y >= s.H) continue;
          for (size_t ox = 0; ox < s.OW; ++ox) {
            const size_t x = ox * s.SW + kx * s.DW - s.PL;
            if (x >= s.W) continue;
            sum[ox % 4] = wasm_f32x4_add(sum[ox % 4],
                                         wasm_f32x4_mul(dl.at(oy * s.OW + ox), xl.at(y * s.W + x)));
          }
        }
        const v128_t t = wasm_f32x4_add(wasm_f32x4_add(sum[0], sum[1]), wasm_f32x4_add(sum[2], sum[3]));
        scatter(o, ky * s.KW + kx, t, n, true);
      }
  }
}

// Rows of at least a vector go along the row; smaller planes across channels.
void f32_dwconv(float* out, float* scratch, const float* in, const float* w,
                const ConvEpilogue& ep, const DepthwiseConv& s) {
  if (s.width_variants_apply() && s.OW >= 4)
    f32_dwconv_w8__wasmsimd(out, scratch, in, w, ep, s);
  else
    f32_dwconv_c4__wasmsimd(out, scratch, in, w, ep, s);
}
void f32_dwconv_dinput(float* din, float* scratch, const float* dout, const float* w,
                       const DepthwiseConv& s) {
  if (s.width_variants_apply() && s.W >= 4)
    f32_dwconv_dinput_w8__wasmsimd(din, scratch, dout, w, s);
  else
    f32_dwconv_dinput_c4__wasmsimd(din, scratch, dout, w, s);
}
void f32_dwconv_dweight(float* dw, float* scratch, const float* dout, const float* in,
                        const DepthwiseConv& s) {
  if (s.width_variants_apply() && s.OW >= 4)
    f32_dwconv_dweight_w4__wasmsimd(dw, scratch, dout, in, s);
  else
    f32_dwconv_dweight_c4__wasmsimd(dw, scratch, dout, in, s);
}

}  // namespace bnwasm
#endif  // __wasm_simd128__
