// Depthwise convolution over a batch: the per-image kernels of
// bnwasm/depthwise.h on slices of channels, split over the thread pool
// (parallel.h) by a partition fixed by the sizes. Every output value, input
// gradient and per-image weight gradient is computed whole by one task, and
// each weight's gradient adds the images' terms in order within one task, so
// the bits are the same for any thread count and any split.
#include "bnwasm/depthwise.h"
#include "bnwasm/parallel.h"

namespace bnwasm {
namespace {

// Channels [c0, c0 + n) of the layer, as a layer of their own.
DepthwiseConv slice(const DepthwiseConv& s, size_t n) {
  DepthwiseConv t = s;
  t.C = n;
  return t;
}

// Pieces of channels a multiple of 8, the step of the channel variants.
size_t channel_grain(const DepthwiseConv& s, size_t work_per_channel) {
  return grain(s.C, work_per_channel, 8);
}

}  // namespace

void depthwise_conv2d_forward(float* out, float* scratch, const float* in, const float* weight,
                              const DepthwiseEpilogue& ep, size_t B, const DepthwiseConv& s) {
  // in is (B, C, H, W); weight is (F, KH, KW); out is (B, F, OH, OW). Images
  // and pieces of channels in parallel, each task with its own scratch.
  const size_t M = s.M, K = s.K(), P = s.P(), HW = s.H * s.W;
  const size_t g = channel_grain(s, 2 * M * P * K), np = pieces(s.C, g);
  reserve_parallel_scratch(s.scratch_size());
  parallel_for(B * np, [&](size_t task, size_t w) {
    const size_t b = task / np;
    const auto [c0, c1] = piece(task % np, s.C, g);
    DepthwiseEpilogue e = ep;
    if (e.init != nullptr) e.init += c0 * M;
    if (e.scale != nullptr) {
      e.scale += c0 * M;
      e.shift += c0 * M;
    }
    f32_dwconv(out + (b * s.F() + c0 * M) * P, w == 0 ? scratch : parallel_scratch(w),
               in + (b * s.C + c0) * HW, weight + c0 * M * K, e, slice(s, c1 - c0));
  });
}

void depthwise_conv2d_backward(float* din, float* dweight, float* dbias, float* scratch,
                               const float* dout, const float* in, const float* weight, size_t B,
                               const DepthwiseConv& s) {
  // dout is (B, F, OH, OW); in, din are (B, C, H, W); weight, dweight are (F, KH, KW).
  // Pieces of channels in parallel; within a piece, image after image.
  const size_t M = s.M, F = s.F(), K = s.K(), P = s.P(), HW = s.H * s.W;
  const size_t g = channel_grain(s, 2 * B * M * P * K * (din != nullptr ? 2 : 1));
  reserve_parallel_scratch(s.scratch_size());
  parallel_for(pieces(s.C, g), [&](size_t t, size_t w) {
    const auto [c0, c1] = piece(t, s.C, g);
    const DepthwiseConv part = slice(s, c1 - c0);
    float* own = w == 0 ? scratch : parallel_scratch(w);
    for (size_t b = 0; b < B; ++b) {
      const float* dy = dout + (b * F + c0 * M) * P;
      f32_dwconv_dweight(dweight + c0 * M * K, own, dy, in + (b * s.C + c0) * HW, part);
      if (dbias != nullptr)
        for (size_t f = 0; f < part.F(); ++f) {
          float sum = 0.0f;
          for (size_t p = 0; p < P; ++p) sum += dy[f * P + p];
          dbias[c0 * M + f] += sum;
        }
      if (din != nullptr)
        f32_dwconv_dinput(din + (b * s.C + c0) * HW, own, dy, weight + c0 * M * K, part);
    }
  });
}

}  // namespace bnwasm
