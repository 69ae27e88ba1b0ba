// Throughput of the wasm SIMD128 kernels at the benchmark model's shapes,
// old form against new, in GFLOP/s (median of 7 timed repetitions). Prints JSON.
//   kernels [batch]
#include "probe.h"
#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

using namespace bnwasm;

namespace {

using probe::filled;

// Median GFLOP/s over 7 timed repetitions of about 20 ms each.
double median_gflops(double flop, const std::function<void()>& fn) { return flop / probe::median_seconds(fn) / 1e9; }

bool g_first = true;
void emit(const std::string& name, double gflops) {
  std::printf("%s\"%s\":%.2f", g_first ? "" : ",", name.c_str(), gflops);
  g_first = false;
}

// One GEMM shape, every form: c (m, n) += a (m, k) * b (k, n).
void shape(const char* label, size_t m, size_t n, size_t k) {
  std::vector<float> a = filled(m * k, 1), at(m * k), b = filled(k * n, 2), c(m * n),
                     packed(f32_packed_size(k, n));
  for (size_t i = 0; i < m; ++i)
    for (size_t j = 0; j < k; ++j) at[j * m + i] = a[i * k + j];
  f32_pack_x8(packed.data(), b.data(), k, n);
  const double flop = 2.0 * m * n * k;
  const std::string s = std::string(label) + " " + std::to_string(m) + "x" + std::to_string(n) +
                        "x" + std::to_string(k);
  emit(s + " gemm_packed_4x8", median_gflops(flop, [&] {
         f32_gemm_packed_4x8__wasmsimd(c.data(), a.data(), packed.data(), m, n, k);
       }));
  emit(s + " gemm_tn_packed_4x8", median_gflops(flop, [&] {
         f32_gemm_tn_packed_4x8__wasmsimd(c.data(), at.data(), packed.data(), m, n, k);
       }));
  // The one-row kernel of single-example predict, on a row almost without zeros.
  if (m == 1)
    emit(s + " gemm_packed_1x32", median_gflops(flop, [&] {
           f32_gemm_packed_sparse_1x32__wasmsimd(c.data(), a.data(), packed.data(), m, n, k);
         }));
}

// One convolution of the CNN benchmark model (3x3 'same', stride 1, no bias),
// one image, as inference runs it: the direct kernel with the folded batch
// norm + ReLU epilogue (FLOP: 2 F K P, the useful multiply-adds), the whole
// layer (its shifted copies and packing included), and training's two
// backward GEMMs at the same shape (weight gradient dout col^T, and
// weight^T dout, the input gradient before col2im).
void conv(const char* label, size_t C, size_t H, size_t W, size_t F) {
  const Conv2dGeometry g{C, H, W, F, 3, 3, 1, 1, 1, 1, H, W};
  const size_t K = g.K(), P = g.P();
  std::vector<float> image = filled(C * H * W, 1), weight = filled(F * K, 2), out(F * P);
  std::vector<float> scale = filled(F, 3), shift = filled(F, 4), scratch(conv2d_scratch_size(g));
  const PaddedConv s{F, C, 3, 3, H + 2, W, 1, 1, P};
  std::vector<float> x(s.input_size()), wp(f32_packed_rows_x4_size(F, K));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) * 0.1f;
  f32_pack_rows_x4(wp.data(), weight.data(), F, K);
  ConvEpilogue ep;
  ep.scale = scale.data();
  ep.shift = shift.data();
  ep.relu = true;
  const double flop = 2.0 * F * K * P;
  const std::string n = std::string(label) + " " + std::to_string(F) + "x" + std::to_string(P) +
                        "x" + std::to_string(K);
  emit(n + " conv_direct_4x8", median_gflops(flop, [&] {
         f32_conv_direct_4x8__wasmsimd(out.data(), x.data(), wp.data(), ep, s);
       }));
  emit(n + " layer", median_gflops(flop, [&] {
         conv2d_batchnorm_relu_forward_infer(out.data(), scratch.data(), image.data(),
                                             weight.data(), nullptr, scale.data(), shift.data(),
                                             true, 1, g);
       }));
  // Inference through Winograd F(2x2, 3x3) with the pool that follows fused
  // (what predict runs for C >= 2): GFLOP/s of the direct form's multiply-adds
  // (2 F K P, the "effective" rate), and of the multiply-adds the kernel does,
  // 16 F C per tile over the tiles (rounded to a vector per row).
  {
    const Winograd23Conv w = Winograd23Conv::of(F, C, H, W, true);
    std::vector<float> wx(w.input_size()), u(f32_winograd23_weight_size(F, C)), v(w.v_size());
    for (size_t i = 0; i < wx.size(); ++i) wx[i] = static_cast<float>(i % 7) * 0.1f;
    f32_winograd23_weights(u.data(), weight.data(), F, C);
    const double done = 2.0 * 16 * F * C * w.tiles();
    emit(n + " winograd23_4x8 effective", median_gflops(flop, [&] {
           f32_conv3x3_winograd23_4x8__wasmsimd(out.data(), wx.data(), u.data(), v.data(), ep, w);
         }));
    emit(n + " winograd23_4x8 multiply-adds", median_gflops(done, [&] {
           f32_conv3x3_winograd23_4x8__wasmsimd(out.data(), wx.data(), u.data(), v.data(), ep, w);
         }));
    emit(n + " winograd layer effective", median_gflops(flop, [&] {
           conv2d_winograd_forward_infer(out.data(), scratch.data(), image.data(), u.data(),
                                         nullptr, scale.data(), shift.data(), true, true, 1, g);
         }));
  }
  std::vector<float> dout = filled(F * P, 5), col(K * P), packed(f32_packed_size(P, K)),
                     dw(F * K), packed_dout(f32_packed_size(F, P)), dcol(K * P);
  im2col(col.data(), image.data(), g);
  f32_pack_t_x8(packed.data(), col.data(), P, K);
  f32_pack_x8(packed_dout.data(), dout.data(), F, P);
  emit(n + " dweight gemm_packed", median_gflops(flop, [&] {
         f32_gemm_packed(dw.data(), dout.data(), packed.data(), F, K, P);
       }));
  emit(n + " dcol gemm_tn_packed", median_gflops(flop, [&] {
         f32_gemm_tn_packed(dcol.data(), weight.data(), packed_dout.data(), K, P, F);
       }));
}

}  // namespace

int main(int argc, char** argv) {
  const size_t B = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  std::printf("{\"batch\":%zu,\"gflops\":{", B);
  shape("fwd1", B, 256, 784);
  shape("fwd2", B, 256, 256);
  shape("dW1", 256, 784, B);
  shape("dW2", 256, 256, B);
  {
    // Repacking the first layer's weight, every training step: GB/s read.
    const size_t k = 784, n = 256;
    std::vector<float> bt = filled(n * k, 3), packed(f32_packed_size(k, n));
    const double bytes = 4.0 * n * k;
    emit("pack_t 784x256 scalar (GB/s)",
         median_gflops(bytes, [&] { f32_pack_t_x8__scalar(packed.data(), bt.data(), k, n); }));
    emit("pack_t 784x256 wasmsimd (GB/s)",
         median_gflops(bytes, [&] { f32_pack_t_x8__wasmsimd(packed.data(), bt.data(), k, n); }));
  }
  shape("predict1", 1, 256, 784);
  shape("predict2", 1, 256, 256);
  conv("conv1", 1, 28, 28, 16);
  conv("conv2", 16, 14, 14, 32);
  std::printf("}}\n");
  return 0;
}
