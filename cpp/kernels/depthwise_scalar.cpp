// Depthwise convolution, scalar reference: the definition every SIMD variant
// is tested against (bnwasm/depthwise.h gives the order of operations).
#include "bnwasm/depthwise.h"

#include <algorithm>

namespace bnwasm {

namespace {

// init + sum, then the inference batch norm and ReLU, as f32_conv_direct__scalar
// does; then the clip, as the clip layer does.
inline float epilogue(float acc, size_t f, const DepthwiseEpilogue& ep) {
  float v = (ep.init != nullptr ? ep.init[f] : 0.0f) + acc;
  if (ep.scale != nullptr) v = v * ep.scale[f] + ep.shift[f];
  if (ep.relu) v = v > 0.0f ? v : 0.0f;
  if (ep.clip) v = std::min(std::max(v, ep.lo), ep.hi);
  return v;
}

// The output index that tap offset t (t = i + P - k D, as a signed number)
// reaches at stride S, or n when none does: t must be a multiple of S in [0, n S).
inline size_t reached(long t, size_t S, size_t n) {
  if (t < 0 || t % long(S) != 0) return n;
  const size_t o = size_t(t) / S;
  return o < n ? o : n;
}

}  // namespace

void f32_dwconv__scalar(float* out, float*, const float* in, const float* w,
                        const DepthwiseEpilogue& ep, const DepthwiseConv& s) {
  // out is (F, OH, OW); in is (C, H, W); w is (F, KH, KW)
  const size_t K = s.K(), P = s.P();
  for (size_t f = 0; f < s.F(); ++f) {
    const float* plane = in + (f / s.M) * s.H * s.W;
    const float* wf = w + f * K;
    float* o = out + f * P;
    for (size_t oy = 0; oy < s.OH; ++oy)
      for (size_t ox = 0; ox < s.OW; ++ox) {
        float acc = 0.0f;
        for (size_t ky = 0; ky < s.KH; ++ky) {
          // Unsigned arithmetic: a row above the input wraps to a huge value, >= H.
          const size_t y = oy * s.SH + ky * s.DH - s.PT;
          if (y >= s.H) continue;
          for (size_t kx = 0; kx < s.KW; ++kx) {
            const size_t x = ox * s.SW + kx * s.DW - s.PL;
            if (x >= s.W) continue;
            acc += wf[ky * s.KW + kx] * plane[y * s.W + x];
          }
        }
        o[oy * s.OW + ox] = epilogue(acc, f, ep);
      }
  }
}

void f32_dwconv_dinput__scalar(float* din, float*, const float* dout, const float* w,
                               const DepthwiseConv& s) {
  // din is (C, H, W); dout is (F, OH, OW); w is (F, KH, KW)
  const size_t K = s.K(), P = s.P();
  for (size_t c = 0; c < s.C; ++c)
    for (size_t m = 0; m < s.M; ++m) {
      const size_t f = c * s.M + m;
      const float* dplane = dout + f * P;
      const float* wf = w + f * K;
      float* plane = din + c * s.H * s.W;
      for (size_t iy = 0; iy < s.H; ++iy)
        for (size_t ix = 0; ix < s.W; ++ix) {
          float acc = 0.0f;
          for (size_t ky = 0; ky < s.KH; ++ky) {
            const size_t oy = reached(long(iy + s.PT) - long(ky * s.DH), s.SH, s.OH);
            if (oy == s.OH) continue;
            for (size_t kx = 0; kx < s.KW; ++kx) {
              const size_t ox = reached(long(ix + s.PL) - long(kx * s.DW), s.SW, s.OW);
              if (ox == s.OW) continue;
              acc += wf[ky * s.KW + kx] * dplane[oy * s.OW + ox];
            }
          }
          plane[iy * s.W + ix] += acc;
        }
    }
}

void f32_dwconv_dweight__scalar(float* dw, float*, const float* dout, const float* in,
                                const DepthwiseConv& s) {
  // dw is (F, KH, KW); dout is (F, OH, OW); in is (C, H, W)
  const size_t K = s.K(), P = s.P();
  for (size_t f = 0; f < s.F(); ++f) {
    const float* plane = in + (f / s.M) * s.H * s.W;
    const float* dplane = dout + f * P;
    for (size_t ky = 0; ky < s.KH; ++ky)
      for (size_t kx = 0; kx < s.KW; ++kx) {
        float sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (size_t oy = 0; oy < s.OH; ++oy) {
          const size_t y = oy * s.SH + ky * s.DH - s.PT;
          if (y >= s.H) continue;
          for (size_t ox = 0; ox < s.OW; ++ox) {
            const size_t x = ox * s.SW + kx * s.DW - s.PL;
            if (x >= s.W) continue;
            sum[ox % 4] += dplane[oy * s.OW + ox] * plane[y * s.W + x];
          }
        }
        dw[f * K + ky * s.KW + kx] += (sum[0] + sum[1]) + (sum[2] + sum[3]);
      }
  }
}

#if !defined(__wasm_simd128__)
void f32_dwconv(float* out, float* scratch, const float* in, const float* w,
                const DepthwiseEpilogue& ep, const DepthwiseConv& s) {
  f32_dwconv__scalar(out, scratch, in, w, ep, s);
}
void f32_dwconv_dinput(float* din, float* scratch, const float* dout, const float* w,
                       const DepthwiseConv& s) {
  f32_dwconv_dinput__scalar(din, scratch, dout, w, s);
}
void f32_dwconv_dweight(float* dw, float* scratch, const float* dout, const float* in,
                        const DepthwiseConv& s) {
  f32_dwconv_dweight__scalar(dw, scratch, dout, in, s);
}
#endif

}  // namespace bnwasm
