#include "bnwasm/layers.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "bnwasm/fdlibm.h"
#include "bnwasm/kernels.h"
#include "bnwasm/parallel.h"

namespace bnwasm {
namespace {
// Per-feature reductions walk the features in blocks of this many, keeping the
// block's sums in a stack array: rows stay the outer loop (contiguous inner
// loop the compiler vectorizes) and nothing is allocated.
constexpr size_t kBlock = 64;

// The epilogue of the inference chain layer -> batch norm (scale, shift; null
// for none) -> ReLU, with the layer's bias as its init.
ConvEpilogue epilogue_of(const float* bias, const float* scale, const float* shift, bool relu) {
  ConvEpilogue ep;
  ep.init = bias;
  ep.scale = scale;
  ep.shift = shift;
  ep.relu = relu;
  return ep;
}

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

void dense_batchnorm_relu_forward_infer(float* out, const float* in, const float* weight_t,
                                        const float* bias, const float* scale, const float* shift,
                                        bool relu, size_t B, size_t C, size_t OC) {
  // in is (B, C); weight_t as dense_forward's; bias, scale, shift are (OC) or null; out is (B, OC)
  const ConvEpilogue ep = epilogue_of(bias, scale, shift, relu);
  f32_gemm_packed_epilogue(out, in, weight_t, B, OC, C, ep);
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
// Every function works on (B, C, S): channel c of example b is the run of S
// values at (b * C + c) * S. Channels go in blocks of kBlock with the block's
// per-channel constants in stack arrays. For S = 1 (dense features) the inner
// loop runs across the block's channels, contiguous in a row; for S > 1 it
// runs along a channel's S positions.

namespace {

// out = in * scale[c] + shift[c] for the channels [c0, c0 + n).
void scale_shift_block(float* out, const float* in, const float* scale, const float* shift,
                       size_t B, size_t C, size_t S, size_t c0, size_t n) {
  for (size_t b = 0; b < B; ++b) {
    if (S == 1) {
      const float* x = in + b * C + c0;
      float* y = out + b * C + c0;
      for (size_t j = 0; j < n; ++j) y[j] = x[j] * scale[j] + shift[j];
      continue;
    }
    for (size_t j = 0; j < n; ++j) {
      const float* x = in + (b * C + c0 + j) * S;
      float* y = out + (b * C + c0 + j) * S;
      const float a = scale[j], t = shift[j];
      for (size_t i = 0; i < S; ++i) y[i] = x[i] * a + t;
    }
  }
}

// Calls f(c0, n) for blocks of at most kBlock channels, pieces of them in
// parallel; every channel's arithmetic is its own, so where the blocks and
// pieces fall changes no bit. `work` is the operations per value.
template <class F>
void for_channel_blocks(size_t B, size_t C, size_t S, size_t work, F&& f) {
  const size_t g = grain(C, work * B * S, S == 1 ? 16 : 1);
  parallel_for(pieces(C, g), [&](size_t t, size_t) {
    const auto [p0, p1] = piece(t, C, g);
    for (size_t c0 = p0; c0 < p1; c0 += kBlock) f(c0, std::min(kBlock, p1 - c0));
  });
}

void mean_var(float* mean, float* var, const float* in, size_t B, size_t C, size_t S) {
  if (S == 1)
    f32_colmeanvar(mean, var, in, B, C);
  else
    f32_chanmeanvar(mean, var, in, B, C, S);
}

}  // namespace

void batchnorm_forward_train(float* out, float* mean, float* var, float* rstd, const float* in,
                             const float* gamma, const float* beta, size_t B, size_t C, size_t S,
                             float eps) {
  // in is (B, C, S); out is (B, C, S); mean, var, rstd are (C)
  mean_var(mean, var, in, B, C, S);
  for (size_t c = 0; c < C; ++c) rstd[c] = 1.0f / std::sqrt(var[c] + eps);
  for_channel_blocks(B, C, S, 1, [&](size_t c0, size_t n) {
    float scale[kBlock], shift[kBlock];
    for (size_t j = 0; j < n; ++j) {
      scale[j] = gamma[c0 + j] * rstd[c0 + j];
      shift[j] = beta[c0 + j] - mean[c0 + j] * scale[j];
    }
    scale_shift_block(out, in, scale, shift, B, C, S, c0, n);
  });
}

void batchnorm_forward_train(float* out, float* mean, float* var, float* rstd, const float* in,
                             const float* gamma, const float* beta, size_t B, size_t C, float eps) {
  batchnorm_forward_train(out, mean, var, rstd, in, gamma, beta, B, C, 1, eps);
}

void batchnorm_infer_scale_shift(float* __restrict scale, float* __restrict shift,
                                 const float* __restrict gamma, const float* __restrict beta,
                                 const float* __restrict running_mean,
                                 const float* __restrict running_var, size_t C, float eps) {
  // all (C), none overlapping (restrict: the loop is vectorized without runtime checks; the
  // single-example forward computes it for every call)
  for (size_t c = 0; c < C; ++c) {
    scale[c] = gamma[c] / std::sqrt(running_var[c] + eps);
    shift[c] = beta[c] - running_mean[c] * scale[c];
  }
}

void batchnorm_forward_infer(float* out, const float* in, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, size_t B,
                             size_t C, size_t S, float eps) {
  // in is (B, C, S); out is (B, C, S); running_mean, running_var are (C)
  for_channel_blocks(B, C, S, 1, [&](size_t c0, size_t n) {
    float scale[kBlock], shift[kBlock];
    batchnorm_infer_scale_shift(scale, shift, gamma + c0, beta + c0, running_mean + c0,
                                running_var + c0, n, eps);
    scale_shift_block(out, in, scale, shift, B, C, S, c0, n);
  });
}

void batchnorm_forward_infer(float* out, const float* in, const float* gamma, const float* beta,
                             const float* running_mean, const float* running_var, size_t B,
                             size_t C, float eps) {
  batchnorm_forward_infer(out, in, gamma, beta, running_mean, running_var, B, C, 1, eps);
}

namespace {

// Batch norm backward, plain (Renorm false) or renormalized (Renorm true: the
// forward was gamma * (r * xhat + d) + beta with r, d (C) held constant).
// dout, in, din are (B, C, S); mean, rstd are (C); m = B * S. With
// xhat = (x - mean) * rstd, two sums over the batch and positions,
//   sum_dout = sum dout (= dbeta), sum_dout_xhat = sum dout * xhat,
// give dgamma = sum_dout_xhat (renorm: r * sum_dout_xhat + d * sum_dout) and
//   dx = gamma' * rstd * (dout - sum_dout / m - xhat * sum_dout_xhat / m),
// with gamma' = gamma (renorm: gamma * r); then one pass writes dx. For S > 1
// the sums come from f32_chandsums (runs of S in float, the runs in double, as
// the forward's statistics).
template <bool Renorm>
void batchnorm_backward_impl(float* din, float* dgamma, float* dbeta, const float* dout,
                             const float* in, const float* gamma, const float* mean,
                             const float* rstd, const float* r, const float* d, size_t B, size_t C,
                             size_t S) {
  const float inv_m = 1.0f / static_cast<float>(B * S);
  for_channel_blocks(B, C, S, 4, [&](size_t c0, size_t n) {
    float sum_dout[kBlock] = {0}, sum_dout_xhat[kBlock] = {0};
    if (S == 1) {
      for (size_t b = 0; b < B; ++b) {
        const float* x = in + b * C + c0;
        const float* dy = dout + b * C + c0;
        for (size_t j = 0; j < n; ++j) {
          sum_dout[j] += dy[j];
          sum_dout_xhat[j] += dy[j] * (x[j] - mean[c0 + j]) * rstd[c0 + j];
        }
      }
    } else {
      double total[kBlock], total_xc[kBlock];
      f32_chandsums(total, total_xc, dout + c0 * S, in + c0 * S, mean + c0, B, n, S, C * S);
      for (size_t j = 0; j < n; ++j) {
        sum_dout[j] = static_cast<float>(total[j]);
        sum_dout_xhat[j] = static_cast<float>(total_xc[j] * rstd[c0 + j]);
      }
    }
    for (size_t j = 0; j < n; ++j) {
      dbeta[c0 + j] += sum_dout[j];
      if constexpr (Renorm)
        dgamma[c0 + j] += r[c0 + j] * sum_dout_xhat[j] + d[c0 + j] * sum_dout[j];
      else
        dgamma[c0 + j] += sum_dout_xhat[j];
    }
    if (din == nullptr) return;
    float k[kBlock], mdy[kBlock], mdx[kBlock];
    for (size_t j = 0; j < n; ++j) {
      k[j] = Renorm ? gamma[c0 + j] * r[c0 + j] * rstd[c0 + j] : gamma[c0 + j] * rstd[c0 + j];
      mdy[j] = sum_dout[j] * inv_m;
      mdx[j] = sum_dout_xhat[j] * inv_m;
    }
    for (size_t b = 0; b < B; ++b) {
      if (S == 1) {
        const float* x = in + b * C + c0;
        const float* dy = dout + b * C + c0;
        float* dx = din + b * C + c0;
        for (size_t j = 0; j < n; ++j) {
          const float xhat = (x[j] - mean[c0 + j]) * rstd[c0 + j];
          dx[j] += k[j] * (dy[j] - mdy[j] - xhat * mdx[j]);
        }
        continue;
      }
      for (size_t j = 0; j < n; ++j) {
        const float* x = in + (b * C + c0 + j) * S;
        const float* dy = dout + (b * C + c0 + j) * S;
        float* dx = din + (b * C + c0 + j) * S;
        const float mu = mean[c0 + j], rs = rstd[c0 + j];
        for (size_t i = 0; i < S; ++i) {
          const float xhat = (x[i] - mu) * rs;
          dx[i] += k[j] * (dy[i] - mdy[j] - xhat * mdx[j]);
        }
      }
    }
  });
}

}  // namespace

void batchnorm_backward(float* din, float* dgamma, float* dbeta, const float* dout, const float* in,
                        const float* gamma, const float* mean, const float* rstd, size_t B,
                        size_t C, size_t S) {
  batchnorm_backward_impl<false>(din, dgamma, dbeta, dout, in, gamma, mean, rstd, nullptr, nullptr,
                                 B, C, S);
}

void batchnorm_backward(float* din, float* dgamma, float* dbeta, const float* dout, const float* in,
                        const float* gamma, const float* mean, const float* rstd, size_t B,
                        size_t C) {
  batchnorm_backward(din, dgamma, dbeta, dout, in, gamma, mean, rstd, B, C, 1);
}

void batchnorm_renorm_forward_train(float* out, float* mean, float* var, float* rstd, float* r,
                                    float* d, const float* in, const float* gamma,
                                    const float* beta, const float* running_mean,
                                    const float* running_var, size_t B, size_t C, size_t S,
                                    float eps, float rmax, float dmax) {
  // in is (B, C, S); out is (B, C, S); mean, var, rstd, r, d are (C)
  mean_var(mean, var, in, B, C, S);
  for (size_t c = 0; c < C; ++c) {
    rstd[c] = 1.0f / std::sqrt(var[c] + eps);
    const float sigma_running = std::sqrt(running_var[c] + eps);
    r[c] = std::min(rmax, std::max(1.0f / rmax, (1.0f / rstd[c]) / sigma_running));
    d[c] = std::min(dmax, std::max(-dmax, (mean[c] - running_mean[c]) / sigma_running));
  }
  for_channel_blocks(B, C, S, 1, [&](size_t c0, size_t n) {
    float scale[kBlock], shift[kBlock];
    for (size_t j = 0; j < n; ++j) {
      const size_t c = c0 + j;
      scale[j] = gamma[c] * rstd[c] * r[c];
      shift[j] = beta[c] + gamma[c] * d[c] - mean[c] * scale[j];
    }
    scale_shift_block(out, in, scale, shift, B, C, S, c0, n);
  });
}

void batchnorm_renorm_forward_train(float* out, float* mean, float* var, float* rstd, float* r,
                                    float* d, const float* in, const float* gamma,
                                    const float* beta, const float* running_mean,
                                    const float* running_var, size_t B, size_t C, float eps,
                                    float rmax, float dmax) {
  batchnorm_renorm_forward_train(out, mean, var, rstd, r, d, in, gamma, beta, running_mean,
                                 running_var, B, C, 1, eps, rmax, dmax);
}

void batchnorm_renorm_backward(float* din, float* dgamma, float* dbeta, const float* dout,
                               const float* in, const float* gamma, const float* mean,
                               const float* rstd, const float* r, const float* d, size_t B,
                               size_t C, size_t S) {
  batchnorm_backward_impl<true>(din, dgamma, dbeta, dout, in, gamma, mean, rstd, r, d, B, C, S);
}

void batchnorm_renorm_backward(float* din, float* dgamma, float* dbeta, const float* dout,
                               const float* in, const float* gamma, const float* mean,
                               const float* rstd, const float* r, const float* d, size_t B,
                               size_t C) {
  batchnorm_renorm_backward(din, dgamma, dbeta, dout, in, gamma, mean, rstd, r, d, B, C, 1);
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

// ---- conv2d ----------------------------------------------------------------------

namespace {

// The output columns [lo, hi) whose input column ox * SW + kx * DW - PL lies inside [0, W).
void valid_columns(const Conv2dGeometry& g, size_t kx, size_t* lo, size_t* hi) {
  kx *= g.DW;  // the tap's column offset
  // ox * SW + kx >= PL  <=>  ox >= ceil((PL - kx) / SW)
  *lo = kx >= g.PL ? 0 : (g.PL - kx + g.SW - 1) / g.SW;
  // ox * SW + kx - PL < W  <=>  ox < ceil((W + PL - kx) / SW)
  *hi = g.W + g.PL <= kx ? 0 : (g.W + g.PL - kx + g.SW - 1) / g.SW;
  *hi = std::min(*hi, g.OW);
  *lo = std::min(*lo, *hi);
}

}  // namespace

void im2col(float* col, const float* in, const Conv2dGeometry& g) { im2col(col, in, g, g.P()); }

void im2col(float* col, const float* in, const Conv2dGeometry& g, size_t ld) {
  // in is (C, H, W); col is (K, P) with rows ld apart, K = C * KH * KW, P = OH * OW
  for (size_t c = 0; c < g.C; ++c)
    for (size_t ky = 0; ky < g.KH; ++ky)
      for (size_t kx = 0; kx < g.KW; ++kx, col += ld - g.P()) {
        const float* plane = in + c * g.H * g.W;
        size_t lo, hi;
        valid_columns(g, kx, &lo, &hi);
        for (size_t oy = 0; oy < g.OH; ++oy, col += g.OW) {
          // Unsigned arithmetic: a row above the input wraps to a huge value, >= H.
          const size_t y = oy * g.SH + ky * g.DH - g.PT;
          if (y >= g.H) {
            for (size_t ox = 0; ox < g.OW; ++ox) col[ox] = 0.0f;
            continue;
          }
          // row[ox * SW] is column ox's value. Plain loops, not memcpy/memset:
          // the runs are a few to a few dozen floats, shorter than a call costs.
          const float* row = plane + y * g.W + kx * g.DW - g.PL;
          for (size_t ox = 0; ox < lo; ++ox) col[ox] = 0.0f;
          if (g.SW == 1)
            for (size_t ox = lo; ox < hi; ++ox) col[ox] = row[ox];
          else
            for (size_t ox = lo; ox < hi; ++ox) col[ox] = row[ox * g.SW];
          for (size_t ox = hi; ox < g.OW; ++ox) col[ox] = 0.0f;
        }
      }
}

void col2im_add(float* din, const float* dcol, const Conv2dGeometry& g) { col2im_add(din, dcol, g, g.P()); }

void col2im_add(float* din, const float* dcol, const Conv2dGeometry& g, size_t ld) {
  // dcol is (K, P) with rows ld apart; din is (C, H, W)
  for (size_t c = 0; c < g.C; ++c)
    for (size_t ky = 0; ky < g.KH; ++ky)
      for (size_t kx = 0; kx < g.KW; ++kx, dcol += ld - g.P()) {
        float* plane = din + c * g.H * g.W;
        size_t lo, hi;
        valid_columns(g, kx, &lo, &hi);
        for (size_t oy = 0; oy < g.OH; ++oy, dcol += g.OW) {
          const size_t y = oy * g.SH + ky * g.DH - g.PT;
          if (y >= g.H) continue;
          float* row = plane + y * g.W + kx * g.DW - g.PL;
          for (size_t ox = lo; ox < hi; ++ox) row[ox * g.SW] += dcol[ox];
        }
      }
}

namespace {

// The direct path (f32_conv_direct) needs output columns one input column
// apart and taps one row and column apart; other strides in width and
// dilations go through im2col and the packed GEMM.
bool direct(const Conv2dGeometry& g) { return g.SW == 1 && g.DH == 1 && g.DW == 1; }

// What the direct path reads: KW shifted copies of OW columns, every row an
// output touches (padding included). For stride 1 the output is one long row
// (kernels.h).
PaddedConv padded_conv(const Conv2dGeometry& g) {
  const size_t HP = (g.OH - 1) * g.SH + g.KH;
  if (g.SH == 1) return {g.F, g.C, g.KH, g.KW, HP, g.OW, 1, 1, g.OH * g.OW};
  return {g.F, g.C, g.KH, g.KW, HP, g.OW, g.SH, g.OH, g.OW};
}

// x (C, KW, HP, OW): copy kx of channel c holds, at (yy, ox), the input at row
// yy - PT and column ox + kx - PL, 0 outside the input; then the kernel's slack.
void shifted_copies(float* x, const float* in, const Conv2dGeometry& g, const PaddedConv& s) {
  for (size_t c = 0; c < g.C; ++c)
    for (size_t kx = 0; kx < g.KW; ++kx) {
      size_t lo, hi;
      valid_columns(g, kx, &lo, &hi);
      for (size_t yy = 0; yy < s.HP; ++yy, x += g.OW) {
        const size_t y = yy - g.PT;  // unsigned: rows above the input wrap to >= H
        if (yy < g.PT || y >= g.H) {
          for (size_t ox = 0; ox < g.OW; ++ox) x[ox] = 0.0f;
          continue;
        }
        const float* row = in + (c * g.H + y) * g.W + kx - g.PL;  // row[ox]: column ox's tap
        for (size_t ox = 0; ox < lo; ++ox) x[ox] = 0.0f;
        for (size_t ox = lo; ox < hi; ++ox) x[ox] = row[ox];
        for (size_t ox = hi; ox < g.OW; ++ox) x[ox] = 0.0f;
      }
    }
  for (size_t j = 0; j < 8; ++j) x[j] = 0.0f;
}

// What conv2d_winograd_forward_infer can compute (whether it pays is
// conv2d_winograd_applies).
bool winograd_shape(const Conv2dGeometry& g) {
  return g.KH == 3 && g.KW == 3 && g.SH == 1 && g.SW == 1 && g.DH == 1 && g.DW == 1;
}

// out (B, F, P) = epilogue(conv(in, weight)): the direct path, or im2col +
// the packed GEMM with the epilogue as passes over the output (the same
// operations on the same values, so both give the same bits).
void conv2d_forward_epilogue(float* out, float* scratch, const float* in, const float* weight,
                             const ConvEpilogue& ep, size_t B, const Conv2dGeometry& g) {
  // Images in parallel, each with its own scratch (worker 0: the caller's).
  const size_t K = g.K(), P = g.P();
  if (direct(g)) {
    const PaddedConv s = padded_conv(g);
    float* wp = scratch;
    float* own = scratch + f32_packed_rows_x4_size(g.F, K);
    f32_pack_rows_x4(wp, weight, g.F, K);
    reserve_parallel_scratch(s.input_size());
    parallel_for(B, [&](size_t b, size_t w) {
      float* x = w == 0 ? own : parallel_scratch(w);
      shifted_copies(x, in + b * g.C * g.H * g.W, g, s);
      f32_conv_direct(out + b * g.F * P, x, wp, ep, s);
    });
    return;
  }
  reserve_parallel_scratch(conv2d_scratch_size(g));
  parallel_for(B, [&](size_t b, size_t w) {
    float* col = w == 0 ? scratch : parallel_scratch(w);
    float* packed = col + K * P;
    const float* image = in + b * g.C * g.H * g.W;
    float* o = out + b * g.F * P;
    for (size_t f = 0; f < g.F; ++f)
      std::fill_n(o + f * P, P, ep.init != nullptr ? ep.init[f] : 0.0f);
    const float* c = image;
    if (!g.pointwise()) {
      im2col(col, image, g);
      c = col;
    }
    f32_pack_x8(packed, c, K, P);
    f32_gemm_packed_every_term(o, weight, packed, g.F, P, K);  // out (F, P) += weight (F, K) col (K, P)
    for (size_t f = 0; f < g.F; ++f) {
      float* v = o + f * P;
      if (ep.scale != nullptr)
        for (size_t p = 0; p < P; ++p) v[p] = v[p] * ep.scale[f] + ep.shift[f];
      if (ep.relu)
        for (size_t p = 0; p < P; ++p) v[p] = v[p] > 0.0f ? v[p] : 0.0f;
    }
  });
}

}  // namespace

size_t conv2d_backward_images(const Conv2dGeometry& g) {
  // Enough images for 32 columns (four 8-column panels); at 1x1 outputs a
  // per-image GEMM would use one column of each panel.
  const size_t P = g.P();
  return P >= 32 ? 1 : (32 + P - 1) / P;
}

size_t conv2d_scratch_size(const Conv2dGeometry& g) {
  // Forward: the packed weight and the shifted copies (direct path) or col
  // (K, P) and packed col. Backward, for N = conv2d_backward_images * P
  // columns: col (K, N), then one packed operand: col (K, N), col^T (N, K) or
  // dout (F, N), then dcol (K, N), then dout (F, N) gathered when N > P.
  const size_t K = g.K(), P = g.P(), N = conv2d_backward_images(g) * P;
  const size_t packed =
      std::max({f32_packed_size(K, N), f32_packed_size(N, K), f32_packed_size(g.F, N)});
  const size_t direct_size =
      direct(g) ? f32_packed_rows_x4_size(g.F, K) + padded_conv(g).input_size() : 0;
  size_t winograd_size = 0;
  if (winograd_shape(g)) {
    const Winograd23Conv s = Winograd23Conv::of(g.F, g.C, g.OH, g.OW, false);
    winograd_size = s.input_size() + s.v_size();
  }
  return std::max({2 * K * N + packed + (N > P ? g.F * N : 0), direct_size, winograd_size});
}

bool conv2d_winograd_applies(const Conv2dGeometry& g) {
  // With one input channel the transforms outweigh the multiplies they save:
  // the Fashion-MNIST CNN's first layer (1 -> 16 channels, 28 x 28) took 17.5 us
  // this way against 14.3 us direct (with its separate pool), while its second
  // (16 -> 32, 14 x 14) went from 56.6 to 31.7 us (docs/performance.md).
  // At 16 outputs or fewer the rows path reads fewer weights (conv2d_rows_applies).
  return winograd_shape(g) && g.C >= 2 && !conv2d_rows_applies(g);
}

void conv2d_winograd_forward_infer(float* out, float* scratch, const float* in, const float* u,
                                   const float* bias, const float* scale, const float* shift,
                                   bool relu, bool pool, size_t B, const Conv2dGeometry& g) {
  // in is (B, C, H, W); out is (B, F, OH, OW), or (B, F, OH / 2, OW / 2) with pool
  const Winograd23Conv s = Winograd23Conv::of(g.F, g.C, g.OH, g.OW, pool);
  const size_t HP = s.HP(), WP = s.WP();
  const ConvEpilogue ep = epilogue_of(bias, scale, shift, relu);
  const size_t out_size = pool ? g.F * (g.OH / 2) * (g.OW / 2) : g.F * g.P();
  // Images in parallel, each with its own padded copy and transformed input.
  reserve_parallel_scratch(s.input_size() + s.v_size());
  parallel_for(B, [&](size_t b, size_t w) {
    float* x = w == 0 ? scratch : parallel_scratch(w);
    float* v = x + s.input_size();
    std::fill_n(x, s.input_size(), 0.0f);  // the padding; the image goes inside it
    const float* image = in + b * g.C * g.H * g.W;
    for (size_t c = 0; c < g.C; ++c)
      for (size_t y = 0; y < g.H; ++y)
        std::copy_n(image + (c * g.H + y) * g.W, g.W, x + (c * HP + y + g.PT) * WP + g.PL);
    f32_conv3x3_winograd23(out + b * out_size, x, u, v, ep, s);
  });
}

void conv2d_forward(float* out, float* scratch, const float* in, const float* weight,
                    const float* bias, size_t B, const Conv2dGeometry& g) {
  // in is (B, C, H, W); weight is (F, K); out is (B, F, P)
  ConvEpilogue ep;
  ep.init = bias;
  conv2d_forward_epilogue(out, scratch, in, weight, ep, B, g);
}

void conv2d_batchnorm_relu_forward_infer(float* out, float* scratch, const float* in,
                                         const float* weight, const float* bias,
                                         const float* scale, const float* shift, bool relu,
                                         size_t B, const Conv2dGeometry& g) {
  // in is (B, C, H, W); weight is (F, K); scale, shift are (F); out is (B, F, P)
  const ConvEpilogue ep = epilogue_of(bias, scale, shift, relu);
  conv2d_forward_epilogue(out, scratch, in, weight, ep, B, g);
}

namespace {
// Rows of X per GEMM: enough four-row tiles to share each weight panel among
// them, few enough that X stays in cache; a chunk holds whole images.
constexpr size_t kRowsPerChunk = 64;
size_t rows_chunk_images(const Conv2dGeometry& g) { return std::max<size_t>(1, kRowsPerChunk / g.P()); }
}  // namespace

bool conv2d_rows_applies(const Conv2dGeometry& g) { return g.P() <= 16; }

std::vector<uint32_t> conv2d_live_taps(const Conv2dGeometry& g) {
  std::vector<uint32_t> taps;
  for (size_t ky = 0; ky < g.KH; ++ky)
    for (size_t kx = 0; kx < g.KW; ++kx) {
      bool live = false;
      for (size_t oy = 0; oy < g.OH && !live; ++oy)
        for (size_t ox = 0; ox < g.OW && !live; ++ox) {
          // Unsigned: a place above or left of the input wraps to >= H or W.
          const size_t y = oy * g.SH + ky * g.DH - g.PT, x = ox * g.SW + kx * g.DW - g.PL;
          live = y < g.H && x < g.W;
        }
      if (live) taps.push_back(uint32_t(ky * g.KW + kx));
    }
  return taps;
}

void conv2d_rows_weights(float* packed, const float* weight, const std::vector<uint32_t>& taps,
                         const Conv2dGeometry& g) {
  // Panel j0 / 8 is (k, 8): row (c, t) holds filters j0 .. j0 + 7 at channel c, tap t.
  const size_t T = taps.size(), k = g.C * T, KK = g.KH * g.KW;
  for (size_t j0 = 0; j0 < g.F; j0 += kPanel, packed += k * kPanel)
    for (size_t c = 0; c < g.C; ++c)
      for (size_t t = 0; t < T; ++t)
        for (size_t j = 0; j < kPanel; ++j)
          packed[(c * T + t) * kPanel + j] = j0 + j < g.F ? weight[(j0 + j) * g.K() + c * KK + taps[t]] : 0.0f;
}

size_t conv2d_rows_scratch_size(const Conv2dGeometry& g, size_t taps) {
  const size_t rows = rows_chunk_images(g) * g.P();
  return rows * (g.C * taps + g.F);  // X, then out^T
}

void conv2d_rows_forward(float* out, float* scratch, const float* in, const float* packed,
                         const std::vector<uint32_t>& taps, const ConvEpilogue& ep, size_t B,
                         const Conv2dGeometry& g) {
  const size_t T = taps.size(), k = g.C * T, P = g.P(), chunk = rows_chunk_images(g);
  for (size_t b0 = 0; b0 < B; b0 += chunk) {
    const size_t n = std::min(chunk, B - b0), rows = n * P;
    float* x = scratch;
    float* ot = x + rows * k;
    for (size_t i = 0; i < n; ++i) {
      const float* image = in + (b0 + i) * g.C * g.H * g.W;
      for (size_t oy = 0; oy < g.OH; ++oy)
        for (size_t ox = 0; ox < g.OW; ++ox) {
          float* row = x + ((i * g.OH + oy) * g.OW + ox) * k;
          for (size_t t = 0; t < T; ++t) {
            const size_t ky = taps[t] / g.KW, kx = taps[t] % g.KW;
            const size_t y = oy * g.SH + ky * g.DH - g.PT, xx = ox * g.SW + kx * g.DW - g.PL;
            const bool inside = y < g.H && xx < g.W;  // unsigned: above or left wraps
            for (size_t c = 0; c < g.C; ++c)
              row[c * T + t] = inside ? image[(c * g.H + y) * g.W + xx] : 0.0f;
          }
        }
    }
    for (size_t r = 0; r < rows; ++r)
      for (size_t f = 0; f < g.F; ++f) ot[r * g.F + f] = ep.init != nullptr ? ep.init[f] : 0.0f;
    f32_gemm_packed(ot, x, packed, rows, g.F, k);
    for (size_t i = 0; i < n; ++i) {
      float* o = out + (b0 + i) * g.F * P;
      for (size_t f = 0; f < g.F; ++f)
        for (size_t q = 0; q < P; ++q) o[f * P + q] = ep.finish(ot[(i * P + q) * g.F + f], f);
    }
  }
}

void conv2d_backward(float* din, float* dweight, float* dbias, float* scratch, const float* dout,
                     const float* in, const float* weight, size_t B, const Conv2dGeometry& g) {
  // dout is (B, F, P); in, din are (B, C, H, W); weight, dweight are (F, K).
  // Groups of n = conv2d_backward_images images in parallel, their columns side
  // by side (N = n P): each group writes its own input gradients and its own
  // dweight and dbias terms into a shared buffer; then the terms are added
  // group by group, in order, per weight. Each group's term is the sum the
  // GEMM would have added to dweight directly (a GEMM's sum is never -0, so
  // 0 + term is the term), so the bits are those of adding them in a loop,
  // whatever the threads. Groups depend on the shape only.
  const size_t K = g.K(), P = g.P(), image_size = g.C * g.H * g.W, FK = g.F * K;
  const size_t FB = dbias != nullptr ? g.F : 0;
  const size_t n = std::min(conv2d_backward_images(g), B), groups = (B + n - 1) / n, N_max = n * P;
  float* terms = parallel_shared(groups * (FK + FB));
  std::fill_n(terms, groups * (FK + FB), 0.0f);
  reserve_parallel_scratch(conv2d_scratch_size(g));
  parallel_for(groups, [&](size_t t, size_t w) {
    const size_t b0 = t * n, count = std::min(n, B - b0), N = count * P;
    float* col = w == 0 ? scratch : parallel_scratch(w);
    float* packed = col + K * N_max;
    float* dcol = packed + std::max({f32_packed_size(K, N_max), f32_packed_size(N_max, K), f32_packed_size(g.F, N_max)});
    const float* image = in + b0 * image_size;
    const float* dy = dout + b0 * g.F * P;
    const float* c = image;
    if (count > 1) {
      // dout (F, N): image j's (F, P) in columns [j P, (j + 1) P).
      float* gathered = dcol + K * N_max;
      for (size_t j = 0; j < count; ++j)
        for (size_t f = 0; f < g.F; ++f)
          std::copy_n(dy + (j * g.F + f) * P, P, gathered + f * N + j * P);
      dy = gathered;
      for (size_t j = 0; j < count; ++j) im2col(col + j * P, image + j * image_size, g, N);
      c = col;
    } else if (!g.pointwise()) {
      im2col(col, image, g);
      c = col;
    }
    f32_pack_t_x8(packed, c, N, K);                       // col^T (N, K)
    f32_gemm_packed_every_term(terms + t * FK, dy, packed, g.F, K, N);  // dout (F, N) col^T
    float* db = terms + groups * FK + t * FB;
    for (size_t f = 0; f < FB; ++f) {
      float s = 0.0f;
      for (size_t p = 0; p < N; ++p) s += dy[f * N + p];
      db[f] = s;
    }
    if (din == nullptr) return;
    f32_pack_x8(packed, dy, g.F, N);
    float* dimage = din + b0 * image_size;
    if (count == 1 && g.pointwise()) {
      f32_gemm_tn_packed(dimage, weight, packed, K, P, g.F);  // din (C, P) += weight^T dout
      return;
    }
    std::memset(dcol, 0, K * N * sizeof(float));
    f32_gemm_tn_packed(dcol, weight, packed, K, N, g.F);  // dcol (K, N) = weight^T dout
    for (size_t j = 0; j < count; ++j) col2im_add(dimage + j * image_size, dcol + j * P, g, N);
  });
  const size_t gr = grain(FK + FB, groups, 4);
  parallel_for(pieces(FK + FB, gr), [&](size_t t, size_t) {
    const auto [i0, i1] = piece(t, FK + FB, gr);
    for (size_t i = i0; i < i1; ++i) {
      float* d = i < FK ? dweight + i : dbias + (i - FK);
      const float* term = i < FK ? terms + i : terms + groups * FK + (i - FK);
      const size_t step = i < FK ? FK : FB;
      for (size_t k = 0; k < groups; ++k) *d += term[k * step];
    }
  });
}

// ---- pooling ---------------------------------------------------------------------

namespace {

// Calls f(plane) for the B * C planes, pieces of them in parallel; `work` is
// the operations per plane. Planes are independent.
template <class F>
void for_planes(size_t planes, size_t work, F&& f) {
  const size_t g = grain(planes, work);
  parallel_for(pieces(planes, g), [&](size_t t, size_t) {
    const auto [p0, p1] = piece(t, planes, g);
    for (size_t plane = p0; plane < p1; ++plane) f(plane);
  });
}

// Calls f(i0, i1) for pieces of n elements in parallel; `work` per element.
template <class F>
void for_elements(size_t n, size_t work, F&& f) {
  const size_t g = grain(n, work, 16);
  parallel_for(pieces(n, g), [&](size_t t, size_t) {
    const auto [i0, i1] = piece(t, n, g);
    f(i0, i1);
  });
}

}  // namespace

void maxpool2d_forward(float* out, int32_t* argmax, const float* in, size_t B,
                       const Pool2dGeometry& g) {
  // in is (B, C, H, W); out, argmax are (B, C, OH, OW). The first maximum of
  // a window wins (inputs are finite: the network checks them).
  const bool two_by_two = g.KH == 2 && g.KW == 2;
  // Inference needs no winner's position: the usual window and stride go
  // through the SIMD kernel, which keeps the same (first) maximum.
  if (argmax == nullptr && g.two_by_two_stride_two()) {
    f32_maxpool2x2(out, in, B * g.C, g.H, g.W, g.OH, g.OW);
    return;
  }
  const size_t P = g.OH * g.OW;
  for_planes(B * g.C, P * g.KH * g.KW, [&](size_t plane) {
    const float* x = in + plane * g.H * g.W;
    float* o = out + plane * P;
    int32_t* am = argmax != nullptr ? argmax + plane * P : nullptr;
    for (size_t oy = 0; oy < g.OH; ++oy)
      for (size_t ox = 0; ox < g.OW; ++ox) {
        const float* window = x + oy * g.SH * g.W + ox * g.SW;
        const float* best = window;
        if (two_by_two) {  // the usual window, unrolled; same order, same winner
          if (window[1] > *best) best = window + 1;
          if (window[g.W] > *best) best = window + g.W;
          if (window[g.W + 1] > *best) best = window + g.W + 1;
        } else {
          for (size_t ky = 0; ky < g.KH; ++ky) {
            const float* row = window + ky * g.W;
            for (size_t kx = 0; kx < g.KW; ++kx)
              if (row[kx] > *best) best = row + kx;
          }
        }
        *o++ = *best;
        if (am != nullptr) *am++ = static_cast<int32_t>(best - x);
      }
  });
}

void maxpool2d_backward(float* din, const float* dout, const int32_t* argmax, size_t B,
                        const Pool2dGeometry& g) {
  // dout, argmax are (B, C, OH, OW); din is (B, C, H, W)
  const size_t P = g.OH * g.OW;
  for_planes(B * g.C, P, [&](size_t plane) {
    float* dx = din + plane * g.H * g.W;
    for (size_t p = 0; p < P; ++p) dx[argmax[plane * P + p]] += dout[plane * P + p];
  });
}

void avgpool2d_forward(float* out, const float* in, size_t B, const Pool2dGeometry& g) {
  // in is (B, C, H, W); out is (B, C, OH, OW)
  const float inv = 1.0f / static_cast<float>(g.KH * g.KW);
  const size_t P = g.OH * g.OW;
  for_planes(B * g.C, P * g.KH * g.KW, [&](size_t plane) {
    const float* x = in + plane * g.H * g.W;
    float* o = out + plane * P;
    for (size_t oy = 0; oy < g.OH; ++oy)
      for (size_t ox = 0; ox < g.OW; ++ox) {
        float s = 0.0f;
        for (size_t ky = 0; ky < g.KH; ++ky)
          for (size_t kx = 0; kx < g.KW; ++kx) s += x[(oy * g.SH + ky) * g.W + ox * g.SW + kx];
        *o++ = s * inv;
      }
  });
}

void avgpool2d_backward(float* din, const float* dout, size_t B, const Pool2dGeometry& g) {
  // dout is (B, C, OH, OW); din is (B, C, H, W)
  const float inv = 1.0f / static_cast<float>(g.KH * g.KW);
  const size_t P = g.OH * g.OW;
  for_planes(B * g.C, P * g.KH * g.KW, [&](size_t plane) {
    float* dx = din + plane * g.H * g.W;
    const float* dy = dout + plane * P;
    for (size_t oy = 0; oy < g.OH; ++oy)
      for (size_t ox = 0; ox < g.OW; ++ox) {
        const float v = *dy++ * inv;
        for (size_t ky = 0; ky < g.KH; ++ky)
          for (size_t kx = 0; kx < g.KW; ++kx) dx[(oy * g.SH + ky) * g.W + ox * g.SW + kx] += v;
      }
  });
}

void global_avgpool_forward(float* out, const float* in, size_t B, size_t C, size_t S) {
  // in is (B, C, S); out is (B, C)
  const float inv = 1.0f / static_cast<float>(S);
  for_planes(B * C, S, [&](size_t plane) {
    const float* x = in + plane * S;
    float s = 0.0f;
    for (size_t i = 0; i < S; ++i) s += x[i];
    out[plane] = s * inv;
  });
}

void global_avgpool_backward(float* din, const float* dout, size_t B, size_t C, size_t S) {
  // dout is (B, C); din is (B, C, S)
  const float inv = 1.0f / static_cast<float>(S);
  for_planes(B * C, S, [&](size_t plane) {
    float* dx = din + plane * S;
    const float v = dout[plane] * inv;
    for (size_t i = 0; i < S; ++i) dx[i] += v;
  });
}

// ---- activations ------------------------------------------------------------------
// Element-wise, pieces of elements in parallel.

void relu_forward(float* out, const float* in, size_t n) {
  for_elements(n, 1, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
  });
}
void relu_backward(float* din, const float* dout, const float* out, size_t n) {
  for_elements(n, 1, [&](size_t i0, size_t i1) {
    // Both loads every time and distinct arrays: a select the compiler
    // vectorizes (a branch on the sign of a trained activation mispredicts
    // half the time).
    float* __restrict d = din;
    const float* __restrict g = dout;
    const float* __restrict y = out;
    for (size_t i = i0; i < i1; ++i) {
      const float gi = g[i];
      d[i] += y[i] > 0.0f ? gi : 0.0f;
    }
  });
}
void sigmoid_forward(float* out, const float* in, size_t n) {
  // exp of a non-positive argument only, so large |x| neither overflows nor loses the tail
  for_elements(n, 20, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) {
      const float x = in[i];
      if (x >= 0.0f) {
        out[i] = 1.0f / (1.0f + std::exp(-x));
      } else {
        const float e = std::exp(x);
        out[i] = e / (1.0f + e);
      }
    }
  });
}
void sigmoid_backward(float* din, const float* dout, const float* out, size_t n) {
  for_elements(n, 2, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) din[i] += dout[i] * out[i] * (1.0f - out[i]);
  });
}
void tanh_forward(float* out, const float* in, size_t n) {
  for_elements(n, 20, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) out[i] = std::tanh(in[i]);
  });
}
void tanh_backward(float* din, const float* dout, const float* out, size_t n) {
  for_elements(n, 2, [&](size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; ++i) din[i] += dout[i] * (1.0f - out[i] * out[i]);
  });
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
    // The log in double (fdlibm_log, already in the wasm for the evaluation loss): logf would
    // bring its own table; the loss only reports, no gradient reads it.
    total += fdlibm_log(static_cast<double>(sum)) + static_cast<double>(zmax) - z[y];
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
    for (size_t k = 0; k < K; ++k) sum += fdlibm_exp(static_cast<double>(z[k] - zmax));
    const size_t y = static_cast<size_t>(labels[b]);
    total += fdlibm_log(sum) + zmax - z[y];
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
