// Depthwise convolution: every input channel convolved with filters of its own
// (PyTorch's Conv2d with groups = in_channels), MobileNet's 3x3 layers.
//
// The kernels work on one image: a scalar reference (`__scalar`), wasm SIMD128
// variants, and the un-suffixed name the core calls, which picks a variant by
// the shape. The layer functions at the end loop over a batch.
//
// Every variant computes each value with the same operations in the same
// order as the reference, so all give the same bits. Where the reference skips
// a tap that falls in the padding, a SIMD variant may read a zero there and
// add the product: a sum that starts at +0 is never -0, so adding w * 0 = +-0
// leaves it as it is (for finite w and values; inf * 0 would be NaN).
#pragma once
#include <cstddef>

#include "bnwasm/kernels.h"

namespace bnwasm {

// C channels of H x W, each with M filters (the channel multiplier): F = C M
// filters, filter f reads channel f / M; the weight is (F, KH, KW), PyTorch's
// (F, 1, KH, KW). Tap (ky, kx) of output (oy, ox) reads row
// oy SH + ky DH - PT and column ox SW + kx DW - PL; a tap outside the input
// reads nothing (zero padding), as in Conv2dGeometry.
struct DepthwiseConv {
  size_t C, H, W;     // input channels, height, width
  size_t M;           // filters per channel
  size_t KH, KW;      // kernel
  size_t SH, SW;      // stride
  size_t PT, PL;      // padding above and to the left
  size_t OH, OW;      // output height and width
  size_t DH = 1, DW = 1;  // dilation
  size_t F() const { return C * M; }
  size_t K() const { return KH * KW; }
  size_t P() const { return OH * OW; }

  // The width variants (w8, w4: vectors along a row) read padded copies, so
  // a vector never needs a bound check: the input's H rows with PL zeros on
  // the left and zeros to xw() columns (at stride 2 split in two halves of
  // xw() / 2, the even columns and the odd ones), and dout's OH rows with
  // dpl() zeros on the left and zeros to dw() columns. They take columns one
  // or two apart (SW <= 2) and taps one apart (DW = 1); rows any way.
  bool width_variants_apply() const { return SW <= 2 && DW == 1; }
  size_t xw() const {  // even, so that the halves are whole
    const size_t read = SW * ((OW + 7) / 8 * 8 + KW + 8);
    return (read > PL + W + 1 ? read : PL + W + 1) / 2 * 2;
  }
  size_t dpl() const { return KW; }  // dout column ox sits at dpl() + ox
  size_t dw() const {  // din columns, by vectors of 8, reach PL + 7 past the input
    const size_t din = (W + 7) / 8 * 8 + PL + 8, outs = (OW + 7) / 8 * 8;
    return dpl() + (din > outs ? din : outs);
  }
  // The channel variants (c8) hold a step of eight planes as vectors: the
  // input (or its gradient), dout (or the output) and the weights.
  size_t c8_size() const { return 8 * (H * W + P() + K()); }
  // Floats of scratch any variant of the three kernels needs.
  size_t scratch_size() const {
    const size_t width = H * xw() + OH * dw();
    return width > c8_size() ? width : c8_size();
  }
};

// The conv epilogue (kernels.h: init + sum, the batch norm's scale and
// shift, ReLU), then, when clip, v = min(max(v, lo), hi) as the clip layer
// computes it (relu6 is [0, 6]; NaN stays NaN, -0 stays -0).
struct DepthwiseEpilogue : ConvEpilogue {
  bool clip = false;
  float lo = 0.0f, hi = 0.0f;
};

// ---- kernels -------------------------------------------------------------------------
// out is (F, OH, OW); in is (C, H, W); w is (F, KH, KW); scratch holds
// scratch_size() floats. Per value: a sum from +0 adds w[f][ky][kx] *
// in[f / M][row][column] for the taps inside the input in (ky, kx) order; then
// the epilogue. The im2col + packed GEMM path sums the same products in the
// same order, so this equals conv2d_forward per group bit for bit.
void f32_dwconv__scalar(float* out, float* scratch, const float* in, const float* w,
                        const DepthwiseEpilogue& ep, const DepthwiseConv& s);
// din is (C, H, W); dout is (F, OH, OW); w is (F, KH, KW). The input gradient:
// for each of a channel's M filters in turn, din += a sum from +0 of
// w[f][ky][kx] * dout[f][oy][ox] over the taps (ky, kx), in order, that reach
// this value from an output (oy, ox) that exists.
void f32_dwconv_dinput__scalar(float* din, float* scratch, const float* dout, const float* w,
                               const DepthwiseConv& s);
// dw is (F, KH, KW); dout is (F, OH, OW); in is (C, H, W). The weight gradient
// of one image: per tap, dw += (s0 + s1) + (s2 + s3), where s_l sums from +0,
// in (oy, ox) order, dout[f][oy][ox] * in[f / M][row][column] over the
// outputs with ox % 4 == l whose tap lies inside the input. (The four sums are
// the lanes of the width variant; the reference keeps them so that every
// variant gives the same bits.)
void f32_dwconv_dweight__scalar(float* dw, float* scratch, const float* dout, const float* in,
                                const DepthwiseConv& s);

#if defined(__wasm_simd128__)
// Along a row: 8 (then 4) output columns per vector pair, width_variants_apply() only.
void f32_dwconv_w8__wasmsimd(float* out, float* scratch, const float* in, const float* w,
                             const DepthwiseEpilogue& ep, const DepthwiseConv& s);
void f32_dwconv_dinput_w8__wasmsimd(float* din, float* scratch, const float* dout,
                                    const float* w, const DepthwiseConv& s);
void f32_dwconv_dweight_w4__wasmsimd(float* dw, float* scratch, const float* dout,
                                     const float* in, const DepthwiseConv& s);
// Across channels: 8 filters (or, for the input gradient, 8 channels) per
// step as two vectors, the last ones by 4; one value of each plane per lane;
// any geometry. For small planes, where a row fills a vector poorly.
void f32_dwconv_c8__wasmsimd(float* out, float* scratch, const float* in, const float* w,
                             const DepthwiseEpilogue& ep, const DepthwiseConv& s);
void f32_dwconv_dinput_c8__wasmsimd(float* din, float* scratch, const float* dout,
                                    const float* w, const DepthwiseConv& s);
void f32_dwconv_dweight_c8__wasmsimd(float* dw, float* scratch, const float* dout,
                                     const float* in, const DepthwiseConv& s);
#endif

// The variant this build uses for the shape.
void f32_dwconv(float* out, float* scratch, const float* in, const float* w,
                const DepthwiseEpilogue& ep, const DepthwiseConv& s);
void f32_dwconv_dinput(float* din, float* scratch, const float* dout, const float* w,
                       const DepthwiseConv& s);
void f32_dwconv_dweight(float* dw, float* scratch, const float* dout, const float* in,
                        const DepthwiseConv& s);

// ---- the layer ----------------------------------------------------------------------
// in is (B, C, H, W); weight is (F, KH, KW); out is (B, F, OH, OW); ep.init
// is the bias (F) or null, its other fields a fused batch norm and
// activation at inference; scratch holds s.scratch_size() floats.
void depthwise_conv2d_forward(float* out, float* scratch, const float* in, const float* weight,
                              const DepthwiseEpilogue& ep, size_t B, const DepthwiseConv& s);
// dout is (B, F, OH, OW); din is (B, C, H, W) or null; dweight (F, KH, KW);
// dbias (F) or null. Per image in order: dweight += the image's gradient,
// dbias += the float sum of dout over the positions, din += its gradient.
void depthwise_conv2d_backward(float* din, float* dweight, float* dbias, float* scratch,
                               const float* dout, const float* in, const float* weight, size_t B,
                               const DepthwiseConv& s);

}  // namespace bnwasm
