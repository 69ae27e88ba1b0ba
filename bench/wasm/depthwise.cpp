// Depthwise convolution in wasm at MobileNetV2's shapes: torchvision's
// mobilenet_v2 at 3x32x32 has 17 depthwise 3x3 layers (padding 1) of 10
// shapes. One image, one thread, medians of 7 timed repetitions. Per shape:
// the kernels' GFLOP/s (2 F P 9 FLOP, padding taps included, as the core
// counts them), each variant that takes the shape; the layer's time per image
// through the depthwise kernels against the grouped convolution conv2d ran
// before them (one 1 x 9 by 9 x P GEMM per channel); and what a batch norm
// and a ReLU6 after it cost as passes of their own. Prints JSON:
//   {"shapes": [[channels, size, stride, layers], ...], "values": {"<shape> <what>": v}}
// with GFLOP/s for kernels and microseconds for "(us)" entries.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "bnwasm/depthwise.h"
#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"

using namespace bnwasm;

namespace {

std::vector<float> filled(size_t n, unsigned seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<float>((i * 2654435761u + seed) % 1000) / 1000.0f - 0.5f;
  return v;
}

// Median seconds per call.
double median_seconds(const std::function<void()>& fn) {
  using clock = std::chrono::steady_clock;
  fn();
  auto t0 = clock::now();
  fn();
  const double once = std::max(1e-7, std::chrono::duration<double>(clock::now() - t0).count());
  const int calls = std::max(1, static_cast<int>(0.02 / once));
  std::vector<double> times;
  for (int rep = 0; rep < 7; ++rep) {
    t0 = clock::now();
    for (int c = 0; c < calls; ++c) fn();
    times.push_back(std::chrono::duration<double>(clock::now() - t0).count() / calls);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
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
  std::vector<float> scale = filled(C, 4), shift = filled(C, 5), gamma = filled(C, 6),
                     beta = filled(C, 7), rmean = filled(C, 8), rvar(C, 1.0f);
  std::vector<float> scratch(std::max(s.scratch_size(), conv2d_scratch_size(g)));
  ConvEpilogue bn_relu;
  bn_relu.scale = scale.data();
  bn_relu.shift = shift.data();
  bn_relu.relu = true;
  const ConvEpilogue none;
  const double flop = 2.0 * C * P * 9;
  const std::string n = label(sh);
  const auto gflops = [&](const std::function<void()>& fn) { return flop / median_seconds(fn) / 1e9; };
  const auto us = [&](const std::function<void()>& fn) { return median_seconds(fn) * 1e6; };

  // The kernels: the one the build dispatches to, and each variant that takes the shape.
  emit(n + " forward", gflops([&] { f32_dwconv(out.data(), scratch.data(), in.data(), w.data(), bn_relu, s); }));
  emit(n + " forward w8", gflops([&] {
         f32_dwconv_w8__wasmsimd(out.data(), scratch.data(), in.data(), w.data(), bn_relu, s);
       }));
  emit(n + " forward c8", gflops([&] {
         f32_dwconv_c8__wasmsimd(out.data(), scratch.data(), in.data(), w.data(), bn_relu, s);
       }));
  emit(n + " forward scalar", gflops([&] {
         f32_dwconv__scalar(out.data(), scratch.data(), in.data(), w.data(), bn_relu, s);
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

  // The layer per image. Inference: the conv with its batch norm and ReLU
  // fused. Training: forward, then backward (weight and input gradients).
  // Grouped: what conv2d ran per channel before (ops/conv2d.cpp's group loop).
  emit(n + " inference (us)", us([&] {
         depthwise_conv2d_forward(out.data(), scratch.data(), in.data(), w.data(), bn_relu, 1, s);
       }));
  emit(n + " inference grouped (us)", us([&] {
         for (size_t c = 0; c < C; ++c)
           conv2d_batchnorm_relu_forward_infer(out.data() + c * P, scratch.data(), in.data() + c * H * W,
                                               w.data() + c * 9, nullptr, scale.data() + c, shift.data() + c,
                                               true, 1, g);
       }));
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
  // What fusing costs nothing for: the batch norm and ReLU6 as passes of
  // their own over the output (batchNorm's inference, relu6's clip loop).
  emit(n + " forward alone (us)", us([&] {
         f32_dwconv(out.data(), scratch.data(), in.data(), w.data(), none, s);
       }));
  emit(n + " batch norm pass (us)", us([&] {
         batchnorm_forward_infer(out.data(), out.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), 1,
                                 C, P, 1e-5f);
       }));
  emit(n + " relu6 pass (us)", us([&] {
         float* o = out.data();
         for (size_t i = 0; i < C * P; ++i) o[i] = std::min(std::max(o[i], 0.0f), 6.0f);
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
