// One thread against all, job by job, in one process: the pieces of the dense
// benchmark network's training step (784-256-BN-ReLU-256-BN-ReLU-10, batch 64)
// on the package's kernels and pool, each timed with the pool on and with
// every parallel_for run on the calling thread (set_parallel_inline), in
// alternation. Both CPUs of this VM change speed for minutes at a time, and a
// ratio of two processes carries that; a ratio of neighbouring blocks in one
// process mostly does not. Prints one JSON object, the pieces in order:
//   node build/bench/threads.cjs [reps] [threads]   (15 and 2 unless given)
// Each piece alone shows what its split gives; "pack + ..." and "chain" pieces
// show what the hand-off between two jobs costs (what one core wrote, the
// other reads).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "bnwasm/parallel.h"
#include "probe.h"

using namespace bnwasm;

namespace {

using probe::filled;
using clock_type = std::chrono::steady_clock;
bool g_first = true;

double block_us(const std::function<void()>& fn, int calls) {
  const auto t0 = clock_type::now();
  for (int i = 0; i < calls; ++i) fn();
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count() / calls;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// How many calls of fn make a block of about 5 ms, timed as the pool runs now.
int block_calls(const std::function<void()>& fn) {
  return std::max(1, static_cast<int>(5000.0 / std::max(1.0, block_us(fn, 1))));
}

// 300 ms of fn on every thread first: the pool's thread starts in V8's
// baseline compiler and reaches the optimized code only once its functions
// are hot. Returns block_calls on every thread.
int warm_up(const std::function<void()>& fn) {
  set_parallel_inline(false);
  for (const auto until = clock_type::now() + std::chrono::milliseconds(300); clock_type::now() < until;) fn();
  return block_calls(fn);
}

// One JSON entry: {"<kind>": name, "<a>": median a, "<b>": median b, the median
// ratio and its quartiles}.
void print_entry(const char* kind, const char* name, const char* a_key, const std::vector<double>& a,
                 const char* b_key, const std::vector<double>& b, std::vector<double> ratio) {
  std::sort(ratio.begin(), ratio.end());
  std::printf("%s{\"%s\":\"%s\",\"%s\":%.1f,\"%s\":%.1f,\"ratio\":%.3f,\"ratioQuartiles\":[%.3f,%.3f]}",
              g_first ? "" : ",", kind, name, a_key, median(a), b_key, median(b), ratio[ratio.size() / 2],
              ratio[ratio.size() / 4], ratio[ratio.size() * 3 / 4]);
  g_first = false;
}

// reps pairs of blocks of about 5 ms each: one thread, then every thread.
void piece(const char* name, const std::function<void()>& fn, int reps) {
  warm_up(fn);
  set_parallel_inline(true);
  fn();
  const int calls = block_calls(fn);  // blocks of about 5 ms on one thread
  std::vector<double> one, all, ratio;
  for (int r = 0; r < reps; ++r) {
    set_parallel_inline(true);
    fn();
    one.push_back(block_us(fn, calls));
    set_parallel_inline(false);
    fn();
    all.push_back(block_us(fn, calls));
    ratio.push_back(one.back() / all.back());
  }
  print_entry("piece", name, "oneThreadUs", one, "allThreadsUs", all, ratio);
}

// reps pairs of blocks on every thread: a, then b (two ways to compute the
// same thing); the ratio is b's time over a's.
void versus(const char* name, const std::function<void()>& a, const std::function<void()>& b, int reps) {
  warm_up(b);
  const int calls = warm_up(a);
  std::vector<double> ta, tb, ratio;
  for (int r = 0; r < reps; ++r) {
    a();
    ta.push_back(block_us(a, calls));
    b();
    tb.push_back(block_us(b, calls));
    ratio.push_back(tb.back() / ta.back());
  }
  print_entry("versus", name, "aUs", ta, "bUs", tb, ratio);
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::atoi(argv[1]) : 15;
  const size_t threads = set_thread_count(argc > 2 ? std::strtoul(argv[2], nullptr, 10) : 2);
  std::printf("{\"threads\":%zu,\"reps\":%d,\"pieces\":[", threads, reps);
  const size_t B = 64, C = 784, H = 256, O = 10;
  const std::vector<float> x = filled(B * C, 1), w1 = filled(H * C, 2), w2 = filled(H * H, 3),
                           dz = filled(B * H, 4), gamma(H, 1.0f), beta(H, 0.0f);
  std::vector<float> w1t(f32_packed_size(C, H)), w2t(f32_packed_size(H, H)), z(B * H), n(B * H),
      a(B * H), mean(H), var(H), rstd(H), dw1(H * C), dw2(H * H), da(B * H),
      scratch(std::max(f32_packed_size(B, C), f32_packed_size(H, C))), packed_x(f32_packed_size(B, C));
  f32_pack_t_x8(w1t.data(), w1.data(), C, H);
  f32_pack_t_x8(w2t.data(), w2.data(), H, H);
  f32_pack_x8(packed_x.data(), x.data(), B, C);

  piece("pack weight 1 for forward (784x256)", [&] { f32_pack_t_x8(w1t.data(), w1.data(), C, H); }, reps);
  piece("forward GEMM, layer 1 (64x784 by 784x256)",
        [&] { dense_forward(z.data(), x.data(), w1t.data(), nullptr, B, C, H); }, reps);
  piece("batch-norm statistics and scaling (64x256)", [&] {
    batchnorm_forward_train(n.data(), mean.data(), var.data(), rstd.data(), z.data(), gamma.data(),
                            beta.data(), B, H, 1e-5f);
  }, reps);
  piece("ReLU (64x256)", [&] { relu_forward(a.data(), n.data(), B * H); }, reps);
  piece("chain: layer 1 forward GEMM, batch norm, ReLU", [&] {
    dense_forward(z.data(), x.data(), w1t.data(), nullptr, B, C, H);
    batchnorm_forward_train(n.data(), mean.data(), var.data(), rstd.data(), z.data(), gamma.data(),
                            beta.data(), B, H, 1e-5f);
    relu_forward(a.data(), n.data(), B * H);
  }, reps);
  piece("forward GEMM, layer 2 (64x256 by 256x256)",
        [&] { dense_forward(z.data(), a.data(), w2t.data(), nullptr, B, H, H); }, reps);
  piece("chain: layer 1 forward, then layer 2's GEMM", [&] {
    dense_forward(z.data(), x.data(), w1t.data(), nullptr, B, C, H);
    batchnorm_forward_train(n.data(), mean.data(), var.data(), rstd.data(), z.data(), gamma.data(),
                            beta.data(), B, H, 1e-5f);
    relu_forward(a.data(), n.data(), B * H);
    dense_forward(z.data(), a.data(), w2t.data(), nullptr, B, H, H);
  }, reps);
  {
    // Inference through both hidden layers as the network runs it: the GEMM
    // storing through the batch norm and ReLU, the scale and shift computed on
    // every call as DenseOp::forward_fused does, against the three as passes.
    const std::vector<float> rmean = filled(H, 8), rvar(H, 1.0f);
    std::vector<float> scale(H), shift(H);
    auto fused = [&](float* h1, float* h2, const float* in, size_t rows) {
      batchnorm_infer_scale_shift(scale.data(), shift.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), H, 1e-5f);
      dense_batchnorm_relu_forward_infer(h1, in, w1t.data(), nullptr, scale.data(), shift.data(), true, rows, C, H);
      batchnorm_infer_scale_shift(scale.data(), shift.data(), gamma.data(), beta.data(), rmean.data(), rvar.data(), H, 1e-5f);
      dense_batchnorm_relu_forward_infer(h2, h1, w2t.data(), nullptr, scale.data(), shift.data(), true, rows, H, H);
    };
    auto passes = [&](float* h1, float* h2, const float* in, size_t rows) {
      dense_forward(h1, in, w1t.data(), nullptr, rows, C, H);
      batchnorm_forward_infer(h1, h1, gamma.data(), beta.data(), rmean.data(), rvar.data(), rows, H, 1e-5f);
      relu_forward(h1, h1, rows * H);
      dense_forward(h2, h1, w2t.data(), nullptr, rows, H, H);
      batchnorm_forward_infer(h2, h2, gamma.data(), beta.data(), rmean.data(), rvar.data(), rows, H, 1e-5f);
      relu_forward(h2, h2, rows * H);
    };
    // A chunk of predictBatch (512 rows).
    const size_t R = 512;
    const std::vector<float> xr = filled(R * C, 7);
    std::vector<float> h1(R * H), h2(R * H);
    versus("inference, both layers, 512 rows, every thread: fused (a) against GEMM, batch norm, ReLU each (b)",
           [&] { fused(h1.data(), h2.data(), xr.data(), R); }, [&] { passes(h1.data(), h2.data(), xr.data(), R); }, reps);
    // Single-example predict: one row, which never splits. Half the input is
    // zero, as in the Fashion-MNIST images and after a ReLU (the one-row GEMM
    // skips zero inputs).
    std::vector<float> x1 = filled(C, 9);
    for (size_t i = 0; i < C; i += 2) x1[i] = 0.0f;
    versus("inference, both layers, 1 row: fused (a) against GEMM, batch norm, ReLU each (b)",
           [&] { fused(h1.data(), h2.data(), x1.data(), 1); }, [&] { passes(h1.data(), h2.data(), x1.data(), 1); }, reps);
  }
  piece("weight gradient, layer 1: GEMM alone (256x64 by 64x784)",
        [&] { f32_gemm_tn_packed(dw1.data(), dz.data(), packed_x.data(), H, C, B); }, reps);
  piece("pack the input (64x784)", [&] { f32_pack_x8(scratch.data(), x.data(), B, C); }, reps);
  piece("pack + weight gradient, layer 1 (dense_backward)", [&] {
    dense_backward(nullptr, dw1.data(), nullptr, scratch.data(), dz.data(), x.data(), w1.data(), B, C, H);
  }, reps);
  piece("layer 2 backward: packs, weight and input gradients (dense_backward)", [&] {
    dense_backward(da.data(), dw2.data(), nullptr, scratch.data(), dz.data(), a.data(), w2.data(), B, H, H);
  }, reps);
  // Adam over every parameter of the network, as one arena.
  const size_t params = H * C + H * H + O * H + O + 4 * H;
  std::vector<float> p = filled(params, 5), m(params), v(params), g = filled(params, 6);
  piece("Adam, every parameter (269,322)", [&] {
    f32_adam(p.data(), m.data(), v.data(), g.data(), params, 0.9f, 0.999f, 0.1f, 0.001f, 1e-3f,
             1.0f, 1e-8f, 0.0f, true);
  }, reps);
  std::printf("]}\n");
  return 0;
}
