// Layers as pairs of free functions over flat row-major float arrays.
//
// Argument order is fixed: outputs, caches, inputs, parameters, sizes.
// B is the mini-batch size, C the input features, OC the output features.
// Backward functions ADD into their gradient outputs (+=); the network clears
// its single gradient arena once per step.
#pragma once
#include <cstddef>
#include <cstdint>

namespace bnwasm {

// ---- dense: out = in * weight^T + bias ------------------------------------
// in is (B, C); weight_t is (C, OC), the transpose of the (OC, C) PyTorch-
// layout weight packed into panels (f32_pack_t_x8), which the network keeps up
// to date; bias is (OC) or null; out is (B, OC).
void dense_forward(float* out, const float* in, const float* weight_t, const float* bias, size_t B,
                   size_t C, size_t OC);
// dout is (B, OC); din is (B, C) or null when nobody needs the input gradient
// (the first layer); scratch holds max(f32_packed_size(B, C), f32_packed_size(OC, C))
// floats; dbias may be null.
void dense_backward(float* din, float* dweight, float* dbias, float* scratch, const float* dout,
                    const float* in, const float* weight, size_t B, size_t C, size_t OC);

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
