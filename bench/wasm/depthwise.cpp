// Depthwise convolution in wasm at MobileNetV2's shapes: torchvision's
// mobilenet_v2 at 3x32x32 has 17 depthwise 3x3 layers (padding 1) of 10
// shapes. One image, one thread, medians of 7 timed repetitions. Per shape:
// the kernels' GFLOP/s (2 F P 9 FLOP, padding taps included, as the core
// counts them), each variant that takes the shape; the layer's time per image
// through the depthwise kernels against the grouped convolution conv2d ran
// before them (one 1 x 9 by 9 x P GEMM per channel, and relu6 as a layer of
// its own at inference). Prints JSON:
//   {"shapes": [[channels, size, stride, layers], ...], "values": {"<shape> <what>": v}}
// with GFLOP/s for kernels and microseconds for "(us)" entries.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "probe.h"
#include "bnwasm/depthwise.h"
#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"

using namespace bnwasm;

namespace {

using probe::filled;
using probe::median_seconds;

// The relu6 layer's loop (ops/elementwise.cpp's clip) as the module compiles
// it: the registry files are built at -Oz, which minsize stands for here.
__attribute__((noinline, minsize)) void relu6_layer(float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) x[i] = std::min(std::max(x[i], 0.0f), 6.0f);
}

bool g_first = true;
void emit(const std::string& name, double v) {
  std::printf("%s\"%s\":%.3f", g_first ? "" : ",", name.c_str(), v);
  g_first = false;
}

struct Shape {
  size_t C, HW, stride, layers;
};
// (channels, input size, stride, how many layers of the network have it)
const Shape kShapes[] = {{32, 16, 1, 1},  {96, 16, 2, 1},  {144, 8, 1, 1}, {144, 8, 2, 1},
                         {192, 4, 1, 2},  {192, 4, 2, 1},  {384, 2, 1, 4}, {576, 2, 1, 2},
                         {576, 2, 2, 1},  {960, 1, 1, 3}};

std::string label(const Shape& s) {
  return std::to_string(s.C) + "x" + std::to_string(s.HW) + "x" + std::to_string(s.HW) + " s" +
         std::to_string(s.stride);
}

void shape(const Shape& sh) {
  const size_t C = sh.C, H = sh.HW, W = sh.HW, S = sh.stride;
  const size_t OH = (H + 2 - 3) / S + 1, OW = (W + 2 - 3) / S + 1, P = OH * OW;
  DepthwiseConv s{C, H, W, 1, 3, 3, S, S, 1, 1, OH, OW};
  const Conv2dGeometry g{1, H, W, 1, 3, 3, S, S, 1, 1, OH, OW};  // one group
  std::vector<float> in = filled(C * H * W, 1), w = filled(C * 9, 2), out(C * P),
                     dout = filled(C * P, 3), din(C * H * W), dw(C * 9);
  std::vector<float> scale = filled(C, 4), shift = filled(C, 5);
  std::vector<float> scratch(std::max(s.scratch_size(), conv2d_scratch_size(g)));
  // MobileNetV2's: the batch norm and ReLU6 after the conv, fused.
  DepthwiseEpilogue bn_relu6;
  bn_relu6.scale = scale.data();
  bn_relu6.shift = shift.data();
  bn_relu6.clip = true;
  bn_relu6.lo = 0.0f;
  bn_relu6.hi = 6.0f;
  const DepthwiseEpilogue none;
  const double flop = 2.0 * C * P * 9;
  const std::string n = label(sh);
  const auto gflops = [&](const std::function<void()>& fn) { return flop / median_seconds(fn) / 1e9; };
  const auto us = [&](const std::function<void()>& fn) { return median_seconds(fn) * 1e6; };

  // The kernels: the one the build dispatches to, and each variant that takes the shape.
  emit(n + " forward", gflops([&] { f32_dwconv(out.data(), scratch.data(), in.data(), w.data(), bn_relu6, s); }));
  emit(n + " forward w8", gflops([&] {
         f32_dwconv_w8__wasmsimd(out.data(), scratch.data(), in.data(), w.data(), bn_relu6, s);
       }));
  emit(n + " forward c8", gflops([&] {
         f32_dwconv_c8__wasmsimd(out.data(), scratch.data(), in.data(), w.data(), bn_relu6, s);
       }));
  emit(n + " forward scalar", gflops([&] {
         f32_dwconv__scalar(out.data(), scratch.data(), in.data(), w.data(), bn_relu6, s);
       }));
  emit(n + " dinput", gflops([&] { f32_dwconv_dinput(din.data(), scratch.data(), dout.data(), w.data(), s); }));
  emit(n + " dinput w8", gflops([&] {
         f32_dwconv_dinput_w8__wasmsimd(din.data(), scratch.data(), dout.data(), w.data(), s);
       }));
  emit(n + " dinput c8", gflops([&] {
         f32_dwconv_dinput_c8__wasmsimd(din.data(), scratch.data(), dout.data(), w.data(), s);
       }));
  emit(n + " dweight", gflops([&] { f32_dwconv_dweight(dw.data(), scratch.data(), dout.data(), in.data(), s); }));
  emit(n + " dweight w4", gflops([&] {
         f32_dwconv_dweight_w4__wasmsimd(dw.data(), scratch.data(), dout.data(), in.data(), s);
       }));
  emit(n + " dweight c8", gflops([&] {
         f32_dwconv_dweight_c8__wasmsimd(dw.data(), scratch.data(), dout.data(), in.data(), s);
       }));

  // The layer per image. Inference: the conv with the batch norm and ReLU6
  // after it fused. Before: conv2d's group loop (ops/conv2d.cpp) with the
  // batch norm fused, then relu6 as a layer of its own. Training: forward,
  // then backward (weight and input gradients); before, the group loop.
  emit(n + " inference (us)", us([&] {
         depthwise_conv2d_forward(out.data(), scratch.data(), in.data(), w.data(), bn_relu6, 1, s);
       }));
  emit(n + " inference grouped (us)", us([&] {
         for (size_t c = 0; c < C; ++c)
           conv2d_batchnorm_relu_forward_infer(out.data() + c * P, scratch.data(), in.data() + c * H * W,
                                               w.data() + c * 9, nullptr, scale.data() + c, shift.data() + c,
                                               false, 1, g);
         relu6_layer(out.data(), C * P);
       }));
  emit(n + " relu6 layer (us)", us([&] { relu6_layer(out.data(), C * P); }));
  emit(n + " training (us)", us([&] {
         depthwise_conv2d_forward(out.data(), scratch.data(), in.data(), w.data(), none, 1, s);
         depthwise_conv2d_backward(din.data(), dw.data(), nullptr, scratch.data(), dout.data(), in.data(),
                                   w.data(), 1, s);
       }));
  emit(n + " training grouped (us)", us([&] {
         for (size_t c = 0; c < C; ++c)
           conv2d_forward(out.data() + c * P, scratch.data(), in.data() + c * H * W, w.data() + c * 9, nullptr,
                          1, g);
         for (size_t c = 0; c < C; ++c)
           conv2d_backward(din.data() + c * H * W, dw.data() + c * 9, nullptr, scratch.data(),
                           dout.data() + c * P, in.data() + c * H * W, w.data() + c * 9, 1, g);
       }));
}

}  // namespace

int main() {
  std::printf("{\"shapes\":[");
  for (size_t i = 0; i < sizeof(kShapes) / sizeof(kShapes[0]); ++i)
    std::printf("%s[%zu,%zu,%zu,%zu]", i ? "," : "", kShapes[i].C, kShapes[i].HW, kShapes[i].stride,
                kShapes[i].layers);
  std::printf("],\"values\":{");
  for (const Shape& s : kShapes) shape(s);
  std::printf("}}\n");
  return 0;
}
