// Native Google Benchmark of the kernels at the benchmark model's shapes, for
// comparison with the same kernels in wasm (bench/wasm/kernels.cpp). A native
// build has only the scalar references (the SIMD variants are wasm SIMD128);
// the compiler vectorizes them for the host. Counters report GFLOP/s.
//   npm run bench:native
#include <benchmark/benchmark.h>

#include <vector>

#include "bnwasm/kernels.h"

namespace {

using namespace bnwasm;

std::vector<float> filled(size_t n, unsigned seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<float>((i * 2654435761u + seed) % 1000) / 1000.0f - 0.5f;
  return v;
}

void set_flops(benchmark::State& state, double flop) {
  state.counters["GFLOP/s"] = benchmark::Counter(
      flop * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

// c (m, n) += a (m, k) * b (k, n), b packed.
void BM_gemm_packed(benchmark::State& state) {
  const size_t m = state.range(0), n = state.range(1), k = state.range(2);
  std::vector<float> a = filled(m * k, 1), b = filled(k * n, 2), c(m * n),
                     packed(f32_packed_size(k, n));
  f32_pack_x8(packed.data(), b.data(), k, n);
  for (auto _ : state) {
    f32_gemm_packed(c.data(), a.data(), packed.data(), m, n, k);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, 2.0 * m * n * k);
}

// c (m, n) += a^T b with a (k, m): the weight gradient.
void BM_gemm_tn_packed(benchmark::State& state) {
  const size_t m = state.range(0), n = state.range(1), k = state.range(2);
  std::vector<float> a = filled(k * m, 1), b = filled(k * n, 2), c(m * n),
                     packed(f32_packed_size(k, n));
  f32_pack_x8(packed.data(), b.data(), k, n);
  for (auto _ : state) {
    f32_gemm_tn_packed(c.data(), a.data(), packed.data(), m, n, k);
    benchmark::DoNotOptimize(c.data());
  }
  set_flops(state, 2.0 * m * n * k);
}

void BM_pack_t_x8(benchmark::State& state) {
  const size_t k = state.range(0), n = state.range(1);
  std::vector<float> bt = filled(n * k, 3), packed(f32_packed_size(k, n));
  for (auto _ : state) {
    f32_pack_t_x8(packed.data(), bt.data(), k, n);
    benchmark::DoNotOptimize(packed.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n * k * sizeof(float)));
}

void BM_adam(benchmark::State& state) {
  const size_t n = state.range(0);
  std::vector<float> p = filled(n, 1), m(n), v(n), g = filled(n, 2);
  for (auto _ : state) {
    benchmark::DoNotOptimize(f32_adam(p.data(), m.data(), v.data(), g.data(), n, 0.9f, 0.999f, 0.1f,
                                      0.001f, 1e-3f, 1.0f, 1e-8f, 0.0f, true));
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * n));
}

}  // namespace

// Forward (B x 256 x 784, B x 256 x 256), weight gradients (256 x 784 x B), one row.
BENCHMARK(BM_gemm_packed)
    ->Args({64, 256, 784})
    ->Args({64, 256, 256})
    ->Args({256, 256, 784})
    ->Args({1, 256, 784});
BENCHMARK(BM_gemm_tn_packed)->Args({256, 784, 64})->Args({256, 256, 64})->Args({256, 784, 256});
BENCHMARK(BM_pack_t_x8)->Args({784, 256});
BENCHMARK(BM_adam)->Arg(784 * 256 + 256 * 256 + 256 * 10 + 10 + 4 * 256);

BENCHMARK_MAIN();
