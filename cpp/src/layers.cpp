#include "bnwasm/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "bnwasm/kernels.h"

namespace bnwasm {
namespace {
// Per-feature reductions walk the features in blocks of this many, keeping the
// block's sums in a stack array: rows stay the outer loop (contiguous inner
// loop the compiler vectorizes) and nothing is allocated.
constexpr size_t kBlock = 64;

}  // namespace

// ---- dense -------------------------------------------------------------------

void dense_forward(float* out, const float* in, const float* weight_t, const float* bias, size_t B,
                   size_t C, size_t OC) {
  // in is (B, C); weight_t is (C, OC), packed (f32_pack_t_x8); out is (B, OC)
  for (size_t b = 0; b < B; ++b) {
    float* ob = out + b * OC;
    if (bias != nullptr)
      std::memcpy(ob, bias, OC * sizeof(float));
    else
      std::memset(ob, 0, OC * sizeof(float));
  }
  f32_gemm_packed(out, in, weight_t, B, OC, C);
}

void dense_backward(float* din, float* dweight, float* dbias, float* scratch, const float* dout,
                    const float* in, const float* weight, size_t B, size_t C, size_t OC) {
  // dout is (B, OC); in is (B, C); weight is (OC, C); scratch holds packed in
  // (B, C), then packed weight (OC, C)
  f32_pack_x8(scratch, in, B, C);
  f32_gemm_tn_packed(dweight, dout, scratch, OC, C, B);  // dweight (OC, C) += dout^T in
  if (dbias != nullptr)
    for (size_t o = 0; o < OC; ++o) {
      float s = 0.0f;
      for (size_t b = 0; b < B; ++b) s += dout[b * OC + o];
      dbias[o] += s;
    }
  if (din == nullptr) return;
  f32_pack_x8(scratch, weight, OC, C);
  f32_gemm_packed(din, dout, scratch, B, C, OC);  // din (B, C) += dout weight
}

// ---- batch norm ----------------------------------------------------------------

void batchnorm_forward_train(float* out, float* mean, float* var, float* rstd, const float* in,
                             const float* gamma, const float* beta, size_t B, size_t C, float eps) {
  // in is (B, C); out is (B, C); mean, var, rstd are (C)
  f32_colmeanvar(mean, var, in, B, C);
  for (size_t c = 0; c < C; ++c) rstd[c] = 1.0f / std::sqrt(var[c] + eps);
  for (size_t c0 = 0; c0 < C; c0 += kBlock) {
    const size_t n = std::min(kBlock, C - c0);
    float scale[kBlock], shift[kBlock];
    for (size_t j = 0; j < n; ++j) {
      scale[j] = gamma[c0 + j] * rstd[c0 + j];
      shift[j] = beta[c0 + j] - mean[c0 + j] * scale[j];
    }
    for (size_t b = 0; b < B; ++b) {
      const float* x = in + b * C + c0;
      float* y = out + b * C + c0;
      for (size_t j = 0; j < n; ++j) y[j] = x[j] * scale[j] + shift[j];
    }
  }
}

void batchnorm_forward_infer(float* out, const float* in, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, size_t B,
                             size_t C, float eps) {
  // in is (B, C); out is (B, C); running_mean, running_var are (C)
  for (size_t c0 = 0; c0 < C; c0 += kBlock) {
    const size_t n = std::min(kBlock, C - c0);
    float scale[kBlock], shift[kBlock];
    for (size_t j = 0; j < n; ++j) {
      scale[j] = gamma[c0 + j] / std::sqrt(running_var[c0 + j] + eps);
      shift[j] = beta[c0 + j] - running_mean[c0 + j] * scale[j];
    }
    for (size_t b = 0; b < B; ++b) {
      const float* x = in + b * C + c0;
      float* y = out + b * C + c0;
      for (size_t j = 0; j < n; ++j) y[j] = x[j] * scale[j] + shift[j];
    }
  }
}

namespace {

// Batch norm backward, plain (Renorm false) or renormalized (Renorm true: the
// forward was gamma * (r * xhat + d) + beta with r, d (C) held constant).
// dout, in, din are (B, C); mean, rstd are (C). With xhat = (x - mean) * rstd,
// two sums over the batch,
//   sum_dout = sum dout (= dbeta), sum_dout_xhat = sum dout * xhat,
// give dgamma = sum_dout_xhat (renorm: r * sum_dout_xhat + d * sum_dout) and
//   dx = gamma' * rstd * (dout - sum_dout / B - xhat * sum_dout_xhat / B),
// with gamma' = gamma (renorm: gamma * r); then one pass writes dx.
template <bool Renorm>
void batchnorm_backward_impl(float* din, float* dgamma, float* dbeta, const float* dout,
                             const float* in, const float* gamma, const float* mean,
                             const float* rstd, const float* r, const float* d, size_t B,
                             size_t C) {
  const float inv_b = 1.0f / static_cast<float>(B);
  for (size_t c0 = 0; c0 < C; c0 += kBlock) {
    const size_t n = std::min(kBlock, C - c0);
    float sum_dout[kBlock] = {0}, sum_dout_xhat[kBlock] = {0};
    for (size_t b = 0; b < B; ++b) {
      const float* x = in + b * C + c0;
      const float* dy = dout + b * C + c0;
      for (size_t j = 0; j < n; ++j) {
        sum_dout[j] += dy[j];
        sum_dout_xhat[j] += dy[j] * (x[j] - mean[c0 + j]) * rstd[c0 + j];
      }
    }
    for (size_t j = 0; j < n; ++j) {
      dbeta[c0 + j] += sum_dout[j];
      if constexpr (Renorm)
        dgamma[c0 + j] += r[c0 + j] * sum_dout_xhat[j] + d[c0 + j] * sum_dout[j];
      else
        dgamma[c0 + j] += sum_dout_xhat[j];
    }
    if (din == nullptr) continue;
    float k[kBlock], mdy[kBlock], mdx[kBlock];
    for (size_t j = 0; j < n; ++j) {
      k[j] = Renorm ? gamma[c0 + j] * r[c0 + j] * rstd[c0 + j] : gamma[c0 + j] * rstd[c0 + j];
      mdy[j] = sum_dout[j] * inv_b;
      mdx[j] = sum_dout_xhat[j] * inv_b;
    }
    for (size_t b = 0; b < B; ++b) {
      const float* x = in + b * C + c0;
      const float* dy = dout + b * C + c0;
      float* dx = din + b * C + c0;
      for (size_t j = 0; j < n; ++j) {
        const float xhat = (x[j] - mean[c0 + j]) * rstd[c0 + j];
        dx[j] += k[j] * (dy[j] - mdy[j] - xhat * mdx[j]);
      }
    }
  }
}

}  // namespace

void batchnorm_backward(float* din, float* dgamma, float* dbeta, const float* dout, const float* in,
                        const float* gamma, const float* mean, const float* rstd, size_t B,
                        size_t C) {
  batchnorm_backward_impl<false>(din, dgamma, dbeta, dout, in, gamma, mean, rstd, nullptr, nullptr,
                                 B, C);
}

void batchnorm_renorm_forward_train(float* out, float* mean, float* var, float* rstd, float* r,
                                    float* d, const float* in, const float* gamma,
                                    const float* beta, const float* running_mean,
                                    const float* running_var, size_t B, size_t C, float eps,
                                    float rmax, float dmax) {
  // in is (B, C); out is (B, C); mean, var, rstd, r, d are (C)
  f32_colmeanvar(mean, var, in, B, C);
  for (size_t c = 0; c < C; ++c) {
    rstd[c] = 1.0f / std::sqrt(var[c] + eps);
    const float sigma_running = std::sqrt(running_var[c] + eps);
    r[c] = std::min(rmax, std::max(1.0f / rmax, (1.0f / rstd[c]) / sigma_running));
    d[c] = std::min(dmax, std::max(-dmax, (mean[c] - running_mean[c]) / sigma_running));
  }
  for (size_t c0 = 0; c0 < C; c0 += kBlock) {
    const size_t n = std::min(kBlock, C - c0);
    float scale[kBlock], shift[kBlock];
    for (size_t j = 0; j < n; ++j) {
      const size_t c = c0 + j;
      scale[j] = gamma[c] * rstd[c] * r[c];
      shift[j] = beta[c] + gamma[c] * d[c] - mean[c] * scale[j];
    }
    for (size_t b = 0; b < B; ++b) {
      const float* x = in + b * C + c0;
      float* y = out + b * C + c0;
      for (size_t j = 0; j < n; ++j) y[j] = x[j] * scale[j] + shift[j];
    }
  }
}

void batchnorm_renorm_backward(float* din, float* dgamma, float* dbeta, const float* dout,
                               const float* in, const float* gamma, const float* mean,
                               const float* rstd, const float* r, const float* d, size_t B,
                               size_t C) {
  batchnorm_backward_impl<true>(din, dgamma, dbeta, dout, in, gamma, mean, rstd, r, d, B, C);
}

void batchnorm_update_running(float* running_mean, float* running_var, const float* mean,
                              const float* var, size_t B, size_t C, double past_weight,
                              bool unbiased) {
  // running = past_weight * running + (1 - past_weight) * batch
  const double new_weight = 1.0 - past_weight;
  const double correction = unbiased ? static_cast<double>(B) / static_cast<double>(B - 1) : 1.0;
  for (size_t c = 0; c < C; ++c) {
    running_mean[c] = static_cast<float>(past_weight * running_mean[c] + new_weight * mean[c]);
    running_var[c] =
        static_cast<float>(past_weight * running_var[c] + new_weight * (var[c] * correction));
  }
}

// ---- activations ------------------------------------------------------------------

void relu_forward(float* out, const float* in, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}
void relu_backward(float* din, const float* dout, const float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) din[i] += out[i] > 0.0f ? dout[i] : 0.0f;
}
void sigmoid_forward(float* out, const float* in, size_t n) {
  // exp of a non-positive argument only, so large |x| neither overflows nor loses the tail
  for (size_t i = 0; i < n; ++i) {
    const float x = in[i];
    if (x >= 0.0f) {
      out[i] = 1.0f / (1.0f + std::exp(-x));
    } else {
      const float e = std::exp(x);
      out[i] = e / (1.0f + e);
    }
  }
}
void sigmoid_backward(float* din, const float* dout, const float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) din[i] += dout[i] * out[i] * (1.0f - out[i]);
}
void tanh_forward(float* out, const float* in, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = std::tanh(in[i]);
}
void tanh_backward(float* din, const float* dout, const float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) din[i] += dout[i] * (1.0f - out[i] * out[i]);
}

// ---- losses ------------------------------------------------------------------------

double softmax_crossentropy_forward_backward(float* dlogits, const float* logits,
                                             const int32_t* labels, size_t B, size_t K) {
  // logits, dlogits are (B, K); labels is (B). Shifting by the row maximum
  // keeps exp() in range; the loss is logsumexp - logit[label].
  double total = 0.0;
  const float inv_b = 1.0f / static_cast<float>(B);
  for (size_t b = 0; b < B; ++b) {
    const float* z = logits + b * K;
    float* dz = dlogits + b * K;
    const float zmax = *std::max_element(z, z + K);
    float sum = 0.0f;
    for (size_t k = 0; k < K; ++k) {
      dz[k] = std::exp(z[k] - zmax);
      sum += dz[k];
    }
    const size_t y = static_cast<size_t>(labels[b]);
    total += static_cast<double>(std::log(sum)) + static_cast<double>(zmax) - z[y];
    const float inv_sum = 1.0f / sum;
    for (size_t k = 0; k < K; ++k) dz[k] = dz[k] * inv_sum * inv_b;
    dz[y] -= inv_b;
  }
  return total / static_cast<double>(B);
}

double softmax_crossentropy_forward(size_t* correct, const float* logits, const int32_t* labels,
                                    size_t B, size_t K) {
  double total = 0.0;
  size_t hits = 0;
  for (size_t b = 0; b < B; ++b) {
    const float* z = logits + b * K;
    const size_t argmax = static_cast<size_t>(std::max_element(z, z + K) - z);
    const float zmax = z[argmax];
    double sum = 0.0;
    for (size_t k = 0; k < K; ++k) sum += std::exp(static_cast<double>(z[k] - zmax));
    const size_t y = static_cast<size_t>(labels[b]);
    total += std::log(sum) + zmax - z[y];
    hits += argmax == y;
  }
  if (correct != nullptr) *correct = hits;
  return total / static_cast<double>(B);
}

double mse_forward_backward(float* dout, const float* out, const float* targets, size_t B,
                            size_t K) {
  // out, targets, dout are (B, K); loss = mean of squared errors over all B*K
  const size_t n = B * K;
  const float scale = 2.0f / static_cast<float>(n);
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const float d = out[i] - targets[i];
    total += static_cast<double>(d) * d;
    dout[i] = scale * d;
  }
  return total / static_cast<double>(n);
}

double mse_forward(const float* out, const float* targets, size_t B, size_t K) {
  const size_t n = B * K;
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(out[i]) - targets[i];
    total += d * d;
  }
  return total / static_cast<double>(n);
}

void softmax_forward(float* out, const float* in, size_t B, size_t K) {
  for (size_t b = 0; b < B; ++b) {
    const float* z = in + b * K;
    float* p = out + b * K;
    const float zmax = *std::max_element(z, z + K);
    float sum = 0.0f;
    for (size_t k = 0; k < K; ++k) {
      p[k] = std::exp(z[k] - zmax);
      sum += p[k];
    }
    const float inv = 1.0f / sum;
    for (size_t k = 0; k < K; ++k) p[k] *= inv;
  }
}

}  // namespace bnwasm
