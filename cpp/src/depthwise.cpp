// Depthwise convolution over a batch: the per-image kernels of
// bnwasm/depthwise.h, image after image.
#include "bnwasm/depthwise.h"

namespace bnwasm {

void depthwise_conv2d_forward(float* out, float* scratch, const float* in, const float* weight,
                              const ConvEpilogue& ep, size_t B, const DepthwiseConv& s) {
  // in is (B, C, H, W); weight is (F, KH, KW); out is (B, F, OH, OW)
  for (size_t b = 0; b < B; ++b)
    f32_dwconv(out + b * s.F() * s.P(), scratch, in + b * s.C * s.H * s.W, weight, ep, s);
}

void depthwise_conv2d_backward(float* din, float* dweight, float* dbias, float* scratch,
                               const float* dout, const float* in, const float* weight, size_t B,
                               const DepthwiseConv& s) {
  // dout is (B, F, OH, OW); in, din are (B, C, H, W); weight, dweight are (F, KH, KW)
  const size_t F = s.F(), P = s.P(), image = s.C * s.H * s.W;
  for (size_t b = 0; b < B; ++b) {
    const float* dy = dout + b * F * P;
    f32_dwconv_dweight(dweight, scratch, dy, in + b * image, s);
    if (dbias != nullptr)
      for (size_t f = 0; f < F; ++f) {
        float sum = 0.0f;
        for (size_t p = 0; p < P; ++p) sum += dy[f * P + p];
        dbias[f] += sum;
      }
    if (din != nullptr) f32_dwconv_dinput(din + b * image, scratch, dy, weight, s);
  }
}

}  // namespace bnwasm
