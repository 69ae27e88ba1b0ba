// Peak f32x4 throughput of this machine's WebAssembly engine: N independent
// chains of acc = acc * y + x (wasm SIMD128 has no fused multiply-add, so a
// GEMM's inner step is this same mul + add pair). With enough chains the
// multiply and add units, not the latency of one chain, set the rate; too many
// chains spill registers. The best N is the peak. Prints JSON.
#include <wasm_simd128.h>

#include <chrono>
#include <cstdio>

namespace {

// volatile inputs keep the compiler from folding the chains away.
volatile float g_x = 1e-7f, g_y = 0.9999999f;

template <int N>
__attribute__((noinline)) float chains(long iters) {
  v128_t acc[N];
  for (int i = 0; i < N; ++i) acc[i] = wasm_f32x4_splat(static_cast<float>(i));
  const v128_t x = wasm_f32x4_splat(g_x), y = wasm_f32x4_splat(g_y);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < N; ++i) acc[i] = wasm_f32x4_add(wasm_f32x4_mul(acc[i], y), x);
  v128_t s = x;
  for (int i = 0; i < N; ++i) s = wasm_f32x4_add(s, acc[i]);
  return wasm_f32x4_extract_lane(s, 0);
}

template <int N>
double gflops() {
  using clock = std::chrono::steady_clock;
  double best = 0;
  // The first calls run in V8's baseline tier; the best of several is the
  // optimized code's rate.
  for (int rep = 0; rep < 6; ++rep) {
    const long iters = 2000000;
    const auto t0 = clock::now();
    volatile float sink = chains<N>(iters);
    (void)sink;
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    const double rate = 8.0 * N * iters / s / 1e9;  // 4 lanes x (mul + add)
    if (rate > best) best = rate;
  }
  return best;
}

}  // namespace

int main() {
  const double r[] = {gflops<4>(),  gflops<8>(),  gflops<10>(), gflops<12>(),
                      gflops<13>(), gflops<14>(), gflops<16>()};
  const int n[] = {4, 8, 10, 12, 13, 14, 16};
  double peak = 0;
  int best = 0;
  std::printf("{\"chains\":{");
  for (int i = 0; i < 7; ++i) {
    std::printf("%s\"%d\":%.2f", i ? "," : "", n[i], r[i]);
    if (r[i] > peak) peak = r[i], best = n[i];
  }
  std::printf("},\"peakGflops\":%.2f,\"bestChains\":%d}\n", peak, best);
  return 0;
}
