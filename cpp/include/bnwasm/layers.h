// Layers as pairs of free functions over flat row-major float arrays.
//
// Argument order is fixed: outputs, caches, inputs, parameters, sizes.
// B is the mini-batch size, C the input features, OC the output features.
// Backward functions ADD into their gradient outputs (+=); the network clears
// its single gradient arena once per step.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bnwasm {

struct ConvEpilogue;  // kernels.h

// ---- dense: out = in * weight^T + bias ------------------------------------
// in is (B, C); weight_t is (C, OC), the transpose of the (OC, C) PyTorch-
// layout weight packed into panels (f32_pack_t_x8), which the network keeps up
// to date; bias is (OC) or null; out is (B, OC).
void dense_forward(float* out, const float* in, const float* weight_t, const float* bias, size_t B,
                   size_t C, size_t OC);
// Inference: dense_forward, then a batch norm given as scale and shift (OC)
// (batchnorm_infer_scale_shift; null for none), then ReLU when relu, in one
// pass over the output; equal bit for bit to the layers one after another.
void dense_batchnorm_relu_forward_infer(float* out, const float* in, const float* weight_t,
                                        const float* bias, const float* scale, const float* shift,
                                        bool relu, size_t B, size_t C, size_t OC);
// dout is (B, OC); din is (B, C) or null when nobody needs the input gradient
// (the first layer); scratch holds max(f32_packed_size(B, C), f32_packed_size(OC, C))
// floats; dbias may be null.
void dense_backward(float* din, float* dweight, float* dbias, float* scratch, const float* dout,
                    const float* in, const float* weight, size_t B, size_t C, size_t OC);
// x^n by repeated squaring, for the bias corrections 1 - beta^t and 1 - momentum^t (t a
// step or batch count): within about 2 log2(n) roundings of std::pow, and it keeps libm's
// pow and its tables out of the wasm.
inline double pow_int(double x, uint64_t n) {
  double r = 1.0;
  for (; n != 0; n >>= 1, x *= x) {
    if (n & 1) r *= x;
  }
  return r;
}

// ---- batch norm -------------------------------------------------------------
// Training mode. in is (B, C); out is (B, C); mean, var, rstd are (C): this
// mini-batch's mean, biased variance and 1/sqrt(var + eps), kept for backward
// and for the running statistics.
void batchnorm_forward_train(float* out, float* mean, float* var, float* rstd, const float* in,
                             const float* gamma, const float* beta, size_t B, size_t C, float eps);
// Inference mode: only running statistics, never statistics of the batch.
// in is (B, C); out is (B, C).
void batchnorm_forward_infer(float* out, const float* in, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, size_t B,
                             size_t C, float eps);
// Inference batch norm as one affine map per feature, the one
// batchnorm_forward_infer applies: scale = gamma / sqrt(running_var + eps),
// shift = beta - running_mean * scale; all (C), none overlapping another.
void batchnorm_infer_scale_shift(float* scale, float* shift, const float* gamma, const float* beta,
                                 const float* running_mean, const float* running_var, size_t C,
                                 float eps);
// dout, in, din are (B, C); mean, rstd are the (C) caches of the forward pass.
void batchnorm_backward(float* din, float* dgamma, float* dbeta, const float* dout, const float* in,
                        const float* gamma, const float* mean, const float* rstd, size_t B,
                        size_t C);
// Batch renormalization (Ioffe 2017), training mode: the batch-normalized
// value is corrected towards the running statistics,
//   xhat = (x - mean) * rstd * r + d,
//   r = clip(sqrt(var + eps) / sqrt(running_var + eps), 1/rmax, rmax),
//   d = clip((mean - running_mean) / sqrt(running_var + eps), -dmax, dmax),
// with r and d (C) treated as constants by backward. rmax = 1, dmax = 0 is
// plain batch norm.
void batchnorm_renorm_forward_train(float* out, float* mean, float* var, float* rstd, float* r,
                                    float* d, const float* in, const float* gamma,
                                    const float* beta, const float* running_mean,
                                    const float* running_var, size_t B, size_t C, float eps,
                                    float rmax, float dmax);
void batchnorm_renorm_backward(float* din, float* dgamma, float* dbeta, const float* dout,
                               const float* in, const float* gamma, const float* mean,
                               const float* rstd, const float* r, const float* d, size_t B,
                               size_t C);
// running = past_weight * running + (1 - past_weight) * batch, per feature.
// past_weight is the layer's momentum for an exponentially weighted average
// (the weight of the past, the lecture's beta) or (n - 1) / n for the plain
// average over the n batches seen. The variance fed in is the biased batch
// variance; `unbiased` rescales it by B / (B - 1) first, as PyTorch does.
void batchnorm_update_running(float* running_mean, float* running_var, const float* mean,
                              const float* var, size_t B, size_t C, double past_weight,
                              bool unbiased);

// ---- batch norm per channel (BatchNorm2d) --------------------------------------
// The same functions over (B, C, S) inputs: C channels of S = H * W positions
// each, normalized per channel over all B * S values (m = B * S). S = 1 is
// the dense (B, C) case above, which calls these.
void batchnorm_forward_train(float* out, float* mean, float* var, float* rstd, const float* in,
                             const float* gamma, const float* beta, size_t B, size_t C, size_t S,
                             float eps);
void batchnorm_forward_infer(float* out, const float* in, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, size_t B,
                             size_t C, size_t S, float eps);
void batchnorm_backward(float* din, float* dgamma, float* dbeta, const float* dout, const float* in,
                        const float* gamma, const float* mean, const float* rstd, size_t B,
                        size_t C, size_t S);
void batchnorm_renorm_forward_train(float* out, float* mean, float* var, float* rstd, float* r,
                                    float* d, const float* in, const float* gamma,
                                    const float* beta, const float* running_mean,
                                    const float* running_var, size_t B, size_t C, size_t S,
                                    float eps, float rmax, float dmax);
void batchnorm_renorm_backward(float* din, float* dgamma, float* dbeta, const float* dout,
                               const float* in, const float* gamma, const float* mean,
                               const float* rstd, const float* r, const float* d, size_t B,
                               size_t C, size_t S);

// ---- conv2d: out = conv(in, weight) + bias, PyTorch's Conv2d ----------------------
// One image's geometry. Padding is PT zero rows above and PL zero columns to
// the left; rows and columns past the input read zero too, so OH and OW decide
// the bottom and right padding ('same' with an even kernel pads one more
// there, as PyTorch does). Kernel tap (ky, kx) of output (oy, ox) reads input
// row oy * SH + ky * DH - PT and column ox * SW + kx * DW - PL.
struct Conv2dGeometry {
  size_t C, H, W;                           // input channels, height, width
  size_t F;                                 // filters: output channels
  size_t KH, KW;                            // kernel
  size_t SH, SW;                            // stride
  size_t PT, PL;                            // padding above and to the left
  size_t OH, OW;                            // output height and width
  size_t DH = 1, DW = 1;                    // dilation: taps DH rows and DW columns apart
  size_t K() const { return C * KH * KW; }  // weights per filter
  size_t P() const { return OH * OW; }      // output positions
  bool pointwise() const {  // 1x1, stride 1, no padding: the input is its own im2col
    return KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0 && OH == H && OW == W;
  }
};
// col is (K, P): row (c, ky, kx), column (oy, ox) holds the input value under
// that kernel tap at that output position, 0 in the padding. in is (C, H, W).
void im2col(float* col, const float* in, const Conv2dGeometry& g);
// The same with col's rows ld >= P apart (images side by side in one matrix).
void im2col(float* col, const float* in, const Conv2dGeometry& g, size_t ld);
// The adjoint: din (C, H, W) += the col-shaped dcol (K, P) summed back onto the inputs.
void col2im_add(float* din, const float* dcol, const Conv2dGeometry& g);
void col2im_add(float* din, const float* dcol, const Conv2dGeometry& g, size_t ld);
// Images whose columns conv2d_backward puts side by side in one GEMM: 1 from
// 32 output positions on, enough for 32 columns below (ResNet-18's last stage at
// 32x32 has one position per image).
size_t conv2d_backward_images(const Conv2dGeometry& g);
// Floats of scratch that the conv2d functions below need.
size_t conv2d_scratch_size(const Conv2dGeometry& g);
// in is (B, C, H, W); weight is (F, C, KH, KW); bias is (F) or null; out is
// (B, F, OH, OW). Per image: out (F, P) = weight (F, K) * col (K, P) + bias.
void conv2d_forward(float* out, float* scratch, const float* in, const float* weight,
                    const float* bias, size_t B, const Conv2dGeometry& g);
// Inference: conv2d_forward, then a batch norm given as scale and shift (F)
// (batchnorm_infer_scale_shift), then ReLU when relu, in one pass over the
// output; equal bit for bit to the three layers one after another.
void conv2d_batchnorm_relu_forward_infer(float* out, float* scratch, const float* in,
                                         const float* weight, const float* bias,
                                         const float* scale, const float* shift, bool relu,
                                         size_t B, const Conv2dGeometry& g);
// dout is (B, F, OH, OW); din is (B, C, H, W) or null; dweight (F, C, KH, KW);
// dbias (F) or null. Per group of conv2d_backward_images images, their columns
// side by side: dweight += dout * col^T, din += col2im(weight^T dout).
// Inference of a 3x3 convolution at stride 1 through Winograd F(2x2, 3x3)
// (kernels.h), which needs 4/9 of the multiplies. u is the weight transformed
// by f32_winograd23_weights (kept by the caller across calls). Then the batch
// norm as scale and shift when scale is not null, ReLU when relu, and a 2x2
// max pool at stride 2 when pool: out is then (B, F, OH / 2, OW / 2). Not
// bit for bit the direct sum: its rounding is bounded in the kernel tests.
bool conv2d_winograd_applies(const Conv2dGeometry& g);
void conv2d_winograd_forward_infer(float* out, float* scratch, const float* in, const float* u,
                                   const float* bias, const float* scale, const float* shift,
                                   bool relu, bool pool, size_t B, const Conv2dGeometry& g);
void conv2d_backward(float* din, float* dweight, float* dbias, float* scratch, const float* dout,
                     const float* in, const float* weight, size_t B, const Conv2dGeometry& g);
// The forward pass (training and inference) for outputs of few positions (P <= 16:
// a ResNet's or MobileNet's last three stages at 32x32). There the GEMM over P
// columns fills its 8-column panels with zeros, Winograd reads 16/9 of the
// weights (and at 1x1 or 3x3 covers outputs that do not exist), and at a 1x1
// input with padding 1 eight of a 3x3 kernel's nine taps only ever meet padding.
// Measured on ResNet-18's single-image predict: P <= 16 3.4 -> 2.1-2.7 ms against
// P <= 4; P <= 64 back to 3.4 (at 8x8 Winograd's 4/9 of the multiplies win). Here each output position is a row (images stacked),
// only the live taps are read, and the weight is packed once per change:
//   out^T (rows, F) = X (rows, C * taps) * W_live^T (C * taps, F),
// one row through f32_gemm_packed's one-row kernel (which skips zeros), more
// through its four-row tiles. Each sum skips only terms that are exactly +-0
// (a dead tap's input is padding), so it equals conv2d_forward's bit for bit.
bool conv2d_rows_applies(const Conv2dGeometry& g);
// The taps (ky * KW + kx) that read inside the input for some output position.
std::vector<uint32_t> conv2d_live_taps(const Conv2dGeometry& g);
// weight (F, C, KH, KW) on the live taps, transposed and packed (f32_pack_x8's
// layout of the (C * taps, F) matrix): f32_packed_size(C * taps, F) floats.
void conv2d_rows_weights(float* packed, const float* weight, const std::vector<uint32_t>& taps,
                         const Conv2dGeometry& g);
// Floats of scratch conv2d_rows_forward needs for any batch.
size_t conv2d_rows_scratch_size(const Conv2dGeometry& g, size_t taps);
// in is (B, C, H, W); packed from conv2d_rows_weights; out is (B, F, OH, OW),
// each value through ep (ConvEpilogue, kernels.h).
void conv2d_rows_forward(float* out, float* scratch, const float* in, const float* packed,
                               const std::vector<uint32_t>& taps, const ConvEpilogue& ep, size_t B,
                               const Conv2dGeometry& g);

// ---- pooling ---------------------------------------------------------------------
// Windows of KH x KW every SH, SW positions, no padding (PyTorch's defaults):
// OH = (H - KH) / SH + 1, OW = (W - KW) / SW + 1.
struct Pool2dGeometry {
  size_t C, H, W, KH, KW, SH, SW, OH, OW;
  // The usual window: 2x2 at stride 2, which the SIMD kernel and the fused
  // conv inference take.
  bool two_by_two_stride_two() const { return KH == 2 && KW == 2 && SH == 2 && SW == 2; }
};
// in is (B, C, H, W); out is (B, C, OH, OW); argmax is (B, C, OH, OW), the
// offset (y * W + x) of each window's first maximum within its channel, or
// null at inference.
void maxpool2d_forward(float* out, int32_t* argmax, const float* in, size_t B,
                       const Pool2dGeometry& g);
void maxpool2d_backward(float* din, const float* dout, const int32_t* argmax, size_t B,
                        const Pool2dGeometry& g);
// The window's mean; backward spreads dout / (KH * KW) over the window.
void avgpool2d_forward(float* out, const float* in, size_t B, const Pool2dGeometry& g);
void avgpool2d_backward(float* din, const float* dout, size_t B, const Pool2dGeometry& g);
// in is (B, C, S); out is (B, C): the mean over the S positions of each channel.
void global_avgpool_forward(float* out, const float* in, size_t B, size_t C, size_t S);
void global_avgpool_backward(float* din, const float* dout, size_t B, size_t C, size_t S);

// ---- activations (elementwise over n values) --------------------------------
void relu_forward(float* out, const float* in, size_t n);
void relu_backward(float* din, const float* dout, const float* out, size_t n);
void sigmoid_forward(float* out, const float* in, size_t n);
void sigmoid_backward(float* din, const float* dout, const float* out, size_t n);
void tanh_forward(float* out, const float* in, size_t n);
void tanh_backward(float* din, const float* dout, const float* out, size_t n);

// ---- losses: mean over the batch; they write (not add) d<input> -------------
// logits is (B, K); labels is (B) in [0, K). dlogits = (softmax - onehot) / B.
double softmax_crossentropy_forward_backward(float* dlogits, const float* logits,
                                             const int32_t* labels, size_t B, size_t K);
// Loss only (evaluation); correct counts argmax hits.
double softmax_crossentropy_forward(size_t* correct, const float* logits, const int32_t* labels,
                                    size_t B, size_t K);
// out and targets are (B, K); loss = mean over all B*K of (out - target)^2.
double mse_forward_backward(float* dout, const float* out, const float* targets, size_t B,
                            size_t K);
double mse_forward(const float* out, const float* targets, size_t B, size_t K);
// Row-wise numerically stable softmax; in and out are (B, K), may alias.
void softmax_forward(float* out, const float* in, size_t B, size_t K);

}  // namespace bnwasm
