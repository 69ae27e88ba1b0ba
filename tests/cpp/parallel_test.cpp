// The thread pool (parallel.h) and what rests on it: every kernel and layer
// that splits its work gives the same bits for 1, 2, 3, 4 and 8 threads, and
// so does a whole training run (weights, running averages, outputs).
#include "bnwasm/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#if !defined(__EMSCRIPTEN__)
#include <csignal>  // SIGABRT
#include <unistd.h>  // alarm
#endif

#include "bnwasm/kernels.h"
#include "bnwasm/layers.h"
#include "bnwasm/network.h"
#include "test_util.h"

using namespace bnwasm;
using namespace bnwasm_test;

namespace {

const size_t kThreadCounts[] = {1, 2, 3, 4, 8};

// Sets the pool for one scope and back to one thread after it.
struct Threads {
  explicit Threads(size_t n) { count = set_thread_count(n); }
  ~Threads() { set_thread_count(1); }
  size_t count;
};

// f() run at each thread count returns the same floats as at one thread.
template <class F>
void ExpectSameBitsAtEveryThreadCount(const std::string& what, F&& f) {
  std::vector<float> reference;
  {
    Threads t(1);
    reference = f();
  }
  ASSERT_FALSE(reference.empty()) << what;
  for (size_t n : kThreadCounts) {
    Threads t(n);
#if !defined(__EMSCRIPTEN__)
    ASSERT_EQ(t.count, n) << "threads did not start";
#endif
    const std::vector<float> got = f();
    ASSERT_EQ(got.size(), reference.size()) << what;
    EXPECT_TRUE(BitEqual(what + " with " + std::to_string(n) + " threads", reference.data(),
                         got.data(), got.size()));
  }
}

}  // namespace

// ---- the pool ------------------------------------------------------------------------

TEST(ThreadPool, RunsEveryTaskOnceOnAWorkerInRange) {
  for (size_t n : kThreadCounts) {
    Threads t(n);
    for (size_t tasks : {size_t(0), size_t(1), size_t(2), size_t(7), size_t(1000)}) {
      std::vector<std::atomic<int>> runs(tasks);
      std::atomic<size_t> bad_worker{0};
      parallel_for(tasks, [&](size_t task, size_t worker) {
        runs[task].fetch_add(1);
        if (worker >= thread_count()) bad_worker.fetch_add(1);
      });
      for (size_t i = 0; i < tasks; ++i)
        ASSERT_EQ(runs[i].load(), 1) << "task " << i << " of " << tasks << ", " << n << " threads";
      EXPECT_EQ(bad_worker.load(), 0u);
    }
  }
}

TEST(ThreadPool, ManySmallJobsInARow) {
  // Jobs a few microseconds apart: a thread that wakes late must not run a
  // task of the next job with the last one's function.
  Threads t(4);
  std::vector<std::atomic<int>> sums(5);
  for (int job = 0; job < 20000; ++job) {
    const int add = job % 3 + 1;
    parallel_for(sums.size(), [&](size_t task, size_t) { sums[task].fetch_add(add); });
  }
  int expected = 0;
  for (int job = 0; job < 20000; ++job) expected += job % 3 + 1;
  for (size_t i = 0; i < sums.size(); ++i) EXPECT_EQ(sums[i].load(), expected) << "task " << i;
}

TEST(ThreadPool, JobsWithDifferentFunctionsInARowDoNotMix) {
  // Two kinds of job, with their own function, context and task count, one
  // after the other: a thread that paired one job's function with the other's
  // context, or claimed a task of a job already done, would run some task twice
  // or with an index past its job's tasks.
  Threads t(3);
  if (thread_count() < 2) GTEST_SKIP() << "no threads in this build";
  size_t bad = 0;
  for (int job = 0; job < 100000; ++job) {
    if (job % 2 == 0) {
      std::atomic<int> runs[3] = {};
      std::atomic<size_t> past{0};
      parallel_for(3, [&](size_t task, size_t) { task < 3 ? void(runs[task].fetch_add(1)) : void(past.fetch_add(1)); });
      for (auto& r : runs) bad += r.load() != 1;
      bad += past.load();
    } else {
      std::atomic<int> runs[7] = {};
      parallel_for(7, [&runs](size_t task, size_t) {
        if (task < 7) runs[task].fetch_add(2);
      });
      for (auto& r : runs) bad += r.load() != 2;
    }
    ASSERT_EQ(bad, 0u) << "job " << job;
  }
}

TEST(ThreadPool, NestedParallelForRunsInline) {
  Threads t(3);
  std::vector<std::atomic<int>> runs(8 * 9);
  parallel_for(8, [&](size_t outer, size_t worker) {
    parallel_for(9, [&](size_t inner, size_t inner_worker) {
      runs[outer * 9 + inner].fetch_add(1);
      EXPECT_EQ(inner_worker, worker);  // on the thread that runs the outer task
    });
  });
  for (size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i].load(), 1) << i;
}

TEST(ThreadPool, InlineRunsEveryTaskOnTheCallingThreadAndKeepsTheThreads) {
  // What bench/wasm/threads.cpp times one thread with, between blocks on all.
  Threads t(3);
  const size_t count = thread_count();
  for (bool on : {true, false, true, false}) {
    set_parallel_inline(on);
    std::vector<std::atomic<int>> runs(100);
    std::atomic<size_t> elsewhere{0};
    parallel_for(runs.size(), [&](size_t task, size_t worker) {
      runs[task].fetch_add(1);
      if (worker != 0) elsewhere.fetch_add(1);
    });
    for (size_t i = 0; i < runs.size(); ++i) ASSERT_EQ(runs[i].load(), 1) << "task " << i << ", inline " << on;
    if (on) EXPECT_EQ(elsewhere.load(), 0u);
    EXPECT_EQ(thread_count(), count);
  }
}

TEST(ThreadPool, CountIsAtLeastOneAndBackToOne) {
  EXPECT_EQ(set_thread_count(0), 1u);
  EXPECT_EQ(thread_count(), 1u);
  {
    Threads t(3);
#if !defined(__EMSCRIPTEN__)
    EXPECT_EQ(thread_count(), 3u);
#endif
  }
  EXPECT_EQ(thread_count(), 1u);
}

#if !defined(__EMSCRIPTEN__)
// A program that exits while the pool's threads sleep (idle past their spin)
// ends: the pool joins them before its condition variable is destroyed, whose
// destructor waits for its sleepers. A hang ends in SIGALRM, which fails this.
// (Wasm has no processes to fork, and Emscripten runs no static destructors.)
TEST(ThreadPoolDeathTest, ProgramExitsWhileThreadsSleep) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        alarm(20);
        if (set_thread_count(2) != 2) std::_Exit(3);
        parallel_for(8, [](size_t, size_t) {});
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

// A pool thread that dies in a task (in wasm a trap, whose worker then marks
// the pool: set_parallel_failed) never finishes it, and the caller waiting for
// it stops instead of waiting for ever: natively it aborts (the wasm build
// throws to JavaScript: tests/js/threads.test.js). Here the "dead" thread just
// never returns, and another thread marks the pool. A hang ends in SIGALRM.
TEST(ThreadPoolDeathTest, CallerStopsWhenAThreadDied) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        alarm(20);
        if (set_thread_count(2) != 2) std::_Exit(3);
        static std::atomic<bool> stuck{false};
        std::thread([] {
          while (!stuck.load()) {
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(50));
          set_parallel_failed();
        }).detach();
        parallel_for(64, [](size_t, size_t worker) {
          if (worker != 0) {
            stuck.store(true);
            for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
          }
          while (!stuck.load()) {
          }
        });
        std::_Exit(0);  // not reached: the job cannot finish
      },
      ::testing::KilledBySignal(SIGABRT), "");
}
#endif

// A pool's first job, published right after its threads started, reaches
// them: a thread that took the job counter it found at its start for the last
// finished job could skip that first job, and the caller ran it alone.
TEST(ThreadPool, FirstJobAfterStartRunsOnEveryThread) {
  using namespace std::chrono;
  for (int attempt = 0; attempt < 20; ++attempt) {
    set_thread_count(1);
    Threads t(2);
    if (thread_count() < 2) GTEST_SKIP() << "no threads in this build";
    // Each task waits until both threads hold one (at most 1 s).
    std::atomic<int> in{0};
    std::vector<size_t> workers(2, 99);
    parallel_for(2, [&](size_t task, size_t worker) {
      in.fetch_add(1);
      const auto until = steady_clock::now() + seconds(1);
      while (in.load() < 2 && steady_clock::now() < until) {
      }
      workers[task] = worker;
    });
    ASSERT_NE(workers[0], workers[1]) << "attempt " << attempt;
  }
}

TEST(ThreadPool, PiecesDependOnSizesOnly) {
  // The partition is a function of the sizes: the same at every thread count.
#if !BNWASM_THREADS
  EXPECT_EQ(grain(1000, 1 << 20, 4), 1000u);  // no threads in this build: one piece
#else
  EXPECT_EQ(grain(1000, 1 << 20, 4), 16u);  // 64 pieces at most, a multiple of 4
  EXPECT_EQ(grain(1000, 1, 16), size_t(1) << 15);  // at least kMinWork operations
#endif
  EXPECT_EQ(pieces(10, 4), 3u);
  EXPECT_EQ(piece(2, 10, 4), (std::pair<size_t, size_t>(8, 10)));
}

TEST(ThreadPool, ZeroClearsEveryBufferAndNothingBetween) {
  // Buffers laid out in one vector with guards between them, sized so that
  // pieces of kMinZero floats start and end inside buffers, at a buffer's
  // edge, and span a buffer of 0 and short ones.
  const size_t sizes[] = {5, kMinZero + 3, 0, 17, 2 * kMinZero - 1, kMinZero, 1};
  constexpr size_t kGuard = 16;
  constexpr float kSentinel = 7.0f;
  size_t total = kGuard;
  for (size_t s : sizes) total += s + kGuard;
  for (size_t n : kThreadCounts) {
    Threads t(n);
    std::vector<float> memory(total, kSentinel);
    std::vector<std::pair<float*, size_t>> buffers;
    size_t at = kGuard;
    for (size_t s : sizes) {
      buffers.push_back({memory.data() + at, s});
      std::fill_n(memory.data() + at, s, -std::numeric_limits<float>::quiet_NaN());
      at += s + kGuard;
    }
    parallel_zero(buffers.size(), [&](size_t i) { return buffers[i]; });
    at = 0;
    for (size_t b = 0; b <= buffers.size(); ++b) {
      for (size_t i = 0; i < kGuard; ++i)
        ASSERT_EQ(memory[at + i], kSentinel) << n << " threads: guard before buffer " << b;
      at += kGuard;
      if (b == buffers.size()) break;
      for (size_t i = 0; i < sizes[b]; ++i)
        ASSERT_TRUE(memory[at + i] == 0.0f && !std::signbit(memory[at + i]))
            << n << " threads: buffer " << b << " float " << i << " is " << memory[at + i];
      at += sizes[b];
    }
  }
}

// ---- kernels and layers ------------------------------------------------------------------

TEST(ParallelKernels, SameBitsAtEveryThreadCount) {
  Rng rng(1800);
  // GEMMs of odd sizes, large enough to split into many row pieces.
  const size_t m = 67, n = 45, k = 301;
  const std::vector<float> a = rng.normal_vec(m * k, 0, 1), at = rng.normal_vec(k * m, 0, 1);
  const std::vector<float> b = rng.normal_vec(k * n, 0, 1), c0 = rng.normal_vec(m * n, 0, 1);
  std::vector<float> packed(f32_packed_size(k, n));
  f32_pack_x8(packed.data(), b.data(), k, n);
  ExpectSameBitsAtEveryThreadCount("gemm_packed", [&] {
    std::vector<float> c = c0;
    f32_gemm_packed(c.data(), a.data(), packed.data(), m, n, k);
    return c;
  });
  ExpectSameBitsAtEveryThreadCount("gemm_tn_packed", [&] {
    std::vector<float> c = c0;
    f32_gemm_tn_packed(c.data(), at.data(), packed.data(), m, n, k);
    return c;
  });
  const size_t pk = 700, pn = 301;
  const std::vector<float> big = rng.normal_vec(pk * pn, 0, 1);
  ExpectSameBitsAtEveryThreadCount("pack_x8", [&] {
    std::vector<float> p(f32_packed_size(pk, pn), -1.0f);
    f32_pack_x8(p.data(), big.data(), pk, pn);
    return p;
  });
  ExpectSameBitsAtEveryThreadCount("pack_t_x8", [&] {
    std::vector<float> p(f32_packed_size(pn, pk), -1.0f);
    f32_pack_t_x8(p.data(), big.data(), pn, pk);
    return p;
  });
  // Statistics over rows (dense) and over batch and positions (channels).
  const std::vector<float> x = rng.normal_vec(300 * 203, 3, 2);
  ExpectSameBitsAtEveryThreadCount("colmeanvar", [&] {
    std::vector<float> mv(2 * 203);
    f32_colmeanvar(mv.data(), mv.data() + 203, x.data(), 300, 203);
    return mv;
  });
  ExpectSameBitsAtEveryThreadCount("chanmeanvar", [&] {
    std::vector<float> mv(2 * 29);
    f32_chanmeanvar(mv.data(), mv.data() + 29, x.data(), 21, 29, 100);
    return mv;
  });
  const std::vector<float> dy = rng.normal_vec(300 * 203, 0, 1);
  const std::vector<float> mean = rng.normal_vec(29, 3, 1);
  ExpectSameBitsAtEveryThreadCount("chandsums", [&] {
    std::vector<double> s(2 * 29);
    f32_chandsums(s.data(), s.data() + 29, dy.data(), x.data(), mean.data(), 21, 29, 100,
                  29 * 100);
    return std::vector<float>(s.begin(), s.end());
  });
  // The optimizers and the finiteness check, element-wise over many pieces.
  const size_t np = 300001;
  const std::vector<float> p0 = rng.normal_vec(np, 0, 1), g = rng.normal_vec(np, 0, 1);
  const std::vector<float> m0 = rng.normal_vec(np, 0, 0.1), v0 = rng.uniform_vec(np, 0, 0.1);
  ExpectSameBitsAtEveryThreadCount("adam", [&] {
    std::vector<float> out = p0;
    out.insert(out.end(), m0.begin(), m0.end());
    out.insert(out.end(), v0.begin(), v0.end());
    EXPECT_TRUE(f32_adam(out.data(), out.data() + np, out.data() + 2 * np, g.data(), np, 0.9f,
                         0.999f, 0.1f, 0.001f, 0.01f, 1.2f, 1e-8f, 0.01f, true));
    return out;
  });
  ExpectSameBitsAtEveryThreadCount("sgd", [&] {
    std::vector<float> out = p0;
    out.insert(out.end(), m0.begin(), m0.end());
    EXPECT_TRUE(f32_sgd(out.data(), out.data() + np, g.data(), np, 0.01f, 0.9f, 0.001f, true, true));
    return out;
  });
  for (size_t n : kThreadCounts) {
    Threads t(n);
    std::vector<float> y = p0;
    EXPECT_TRUE(f32_all_finite(y.data(), np));
    // The largest magnitude in any piece, found by every thread count.
    for (size_t at : {size_t(0), np / 3, np - 1}) {
      std::vector<float> z = y;
      z[at] = -1e6f;
      EXPECT_EQ(from_peak_bits(f32_abs_peak(z.data(), np)), 1e6f) << n << " threads, at " << at;
    }
    y[np - 2] = std::numeric_limits<float>::infinity();  // in the last piece
    EXPECT_FALSE(f32_all_finite(y.data(), np)) << n << " threads";
    EXPECT_GE(f32_abs_peak(y.data(), np), kNotFinite) << n << " threads";
    std::vector<float> gi = g;
    gi[np / 2] = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> pm = p0;
    pm.insert(pm.end(), m0.begin(), m0.end());
    pm.insert(pm.end(), v0.begin(), v0.end());
    const std::vector<float> before = pm;
    EXPECT_FALSE(f32_adam(pm.data(), pm.data() + np, pm.data() + 2 * np, gi.data(), np, 0.9f,
                          0.999f, 0.1f, 0.001f, 0.01f, 1.2f, 1e-8f, 0.0f, false))
        << n << " threads";
    EXPECT_TRUE(BitEqual("adam without write", before.data(), pm.data(), pm.size()));
  }
  const std::vector<float> planes = rng.normal_vec(200 * 12 * 14, 0, 1);
  ExpectSameBitsAtEveryThreadCount("maxpool2x2", [&] {
    std::vector<float> out(200 * 6 * 7);
    f32_maxpool2x2(out.data(), planes.data(), 200, 12, 14, 6, 7);
    return out;
  });
}

// ---- whole networks ------------------------------------------------------------------------

namespace {

LayerSpec Layer(const char* type) { return LayerSpec::of(type); }
LayerSpec Dense(int32_t units, bool use_bias = true) {
  return LayerSpec::of("dense").set("units", units).set("useBias", use_bias);
}
LayerSpec Conv(int32_t filters, int32_t kernel, int32_t stride, int32_t pad, bool same,
               bool use_bias) {
  LayerSpec l = LayerSpec::of("conv2d").set("filters", filters).set("useBias", use_bias);
  l.set("kernelSize", kernel, 0).set("kernelSize", kernel, 1);
  l.set("stride", stride, 0).set("stride", stride, 1);
  l.set("padding", static_cast<double>(same ? PadMode::Same : PadMode::Explicit));
  for (size_t k = 1; k <= 4; ++k) l.set("padding", same ? 0 : pad, k);
  return l;
}
LayerSpec Pool(const char* type, int32_t size, int32_t stride) {
  LayerSpec l = LayerSpec::of(type);
  l.set("poolSize", size, 0).set("poolSize", size, 1).set("stride", stride, 0).set("stride", stride, 1);
  return l;
}
OptimizerSpec Optimizer(OptimizerType type) {
  OptimizerSpec o;
  o.type = type;
  o.learning_rate = type == OptimizerType::Adam ? 0.01 : 0.05;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 1e-3;
  return o;
}

// A dense network wide enough that its GEMMs, batch norms and optimizer
// step split into several pieces.
NetworkSpec DenseSpec(OptimizerType opt) {
  LayerSpec bn_corrected = Layer("batchNorm");
  bn_corrected.set("biasCorrection", 1);
  NetworkSpec s;
  s.input_size = 300;
  s.layers = {Dense(200, false), Layer("batchNorm"), Layer("relu"),
              Dense(150),        bn_corrected,       Layer("tanh"),
              Dense(40),         Layer("sigmoid"),   Dense(10)};
  s.optimizer = Optimizer(opt);
  s.seed = 11;
  return s;
}

// Every conv-side layer: direct and im2col convolutions, Winograd and the
// fused conv + batch norm + ReLU at inference, batch renorm, both poolings.
NetworkSpec ConvSpec(OptimizerType opt) {
  LayerSpec renorm = Layer("batchNorm");
  renorm.set("renorm", 1).set("renorm", 2, 1).set("renorm", 1, 2);  // rMax 2, dMax 1
  NetworkSpec s;
  s.input_channels = 3;
  s.input_height = 20;
  s.input_width = 20;
  s.input_size = 3 * 20 * 20;
  s.layers = {Conv(8, 3, 1, 0, true, false), Layer("batchNorm"),     Layer("relu"),
              Pool("maxPool2d", 2, 2),       Conv(12, 3, 1, 0, false, true), renorm,
              Layer("tanh"),                 Pool("avgPool2d", 2, 1),  Conv(6, 3, 2, 1, false, true),
              Layer("flatten"),              Dense(16, false),         Layer("batchNorm"),
              Layer("relu"),                 Dense(5)};
  s.optimizer = Optimizer(opt);
  s.seed = 12;
  return s;
}

// Trains `steps` mini-batches of `rows` from a fixed seed, then returns every
// tensor (weights, running averages, optimizer state), the last loss and the
// outputs of predict_batch and of predict_one.
std::vector<float> TrainAndPredict(const NetworkSpec& spec, size_t steps, size_t rows) {
  std::unique_ptr<Network> net;
  ErrorInfo error;
  EXPECT_EQ(Network::create(spec, &net, &error), Status::Ok) << error.message;
  if (!net) return {};
  Rng rng(1801);
  const size_t d = net->input_size(), k = net->output_size();
  std::vector<float> out;
  for (size_t s = 0; s < steps; ++s) {
    const std::vector<float> x = rng.normal_vec(rows * d, 0, 1);
    std::copy(x.begin(), x.end(), net->input(rows));
    int32_t* labels = net->labels(rows);
    for (size_t i = 0; i < rows; ++i) labels[i] = static_cast<int32_t>(rng.next() % k);
    double loss = 0;
    EXPECT_EQ(net->train_step(rows, &loss), Status::Ok) << net->last_error().message;
    out.push_back(static_cast<float>(loss));
  }
  for (const TensorView& t : net->tensors()) out.insert(out.end(), t.data, t.data + t.size);
  const std::vector<float> x = rng.normal_vec(33 * d, 0, 1);
  std::copy(x.begin(), x.end(), net->input(33));
  EXPECT_EQ(net->predict_batch(33), Status::Ok) << net->last_error().message;
  out.insert(out.end(), net->output(33), net->output(33) + 33 * k);
  std::copy(x.begin(), x.begin() + d, net->input(1));
  EXPECT_EQ(net->predict_one(), Status::Ok);
  out.insert(out.end(), net->output(1), net->output(1) + k);
  return out;
}

}  // namespace

TEST(ParallelTraining, DenseNetworkSameBitsAtEveryThreadCount) {
  for (OptimizerType opt : {OptimizerType::Adam, OptimizerType::Sgd})
    ExpectSameBitsAtEveryThreadCount(opt == OptimizerType::Adam ? "dense, Adam" : "dense, SGD",
                                     [&] { return TrainAndPredict(DenseSpec(opt), 4, 300); });
}

TEST(ParallelTraining, ConvNetworkSameBitsAtEveryThreadCount) {
  for (OptimizerType opt : {OptimizerType::Adam, OptimizerType::Sgd})
    ExpectSameBitsAtEveryThreadCount(opt == OptimizerType::Adam ? "conv, Adam" : "conv, SGD",
                                     [&] { return TrainAndPredict(ConvSpec(opt), 3, 24); });
}
