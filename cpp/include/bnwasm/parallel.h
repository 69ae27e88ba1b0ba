// A process-wide pool of threads for the kernels and layers.
//
// Work is split into tasks by a partition that depends only on the sizes of
// the problem, never on the number of threads, and every task writes its own
// outputs; a sum over the batch stays in one task, in order. So the results
// are the same bits for any thread count: which thread runs a task changes
// only when it runs, not what it computes.
//
// One thread at a time calls in (the module's owner: the page's worker or
// Node's thread); a parallel_for inside a task runs inline. Builds without
// threads (wasm without -pthread) run every task on the calling thread.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

// Whether this build has threads: wasm without -pthread has none; native
// builds and the -pthread wasm build do.
#if defined(__EMSCRIPTEN__) && !defined(__EMSCRIPTEN_PTHREADS__)
#define BNWASM_THREADS 0
#else
#define BNWASM_THREADS 1
#endif

namespace bnwasm {

// Threads that parallel_for uses, the calling one included; 1 (the default)
// runs everything inline. Returns the count in effect: fewer than asked when
// threads could not start (or this build has none), never less than 1.
size_t set_thread_count(size_t n);
size_t thread_count();

// While on, every parallel_for runs on the calling thread and the threads stay
// up: one process can then time one thread against all, job by job, in
// alternation (bench/wasm/threads.cpp), which starting and stopping threads
// cannot do in a wasm program's main().
void set_parallel_inline(bool on);
// Whether the calling thread is running a task of a parallel_for (where a
// nested parallel_for runs inline). A task must not allocate: a pool thread
// that grows the memory leaves the module's owner with stale views of it.
bool parallel_inside();

// Runs fn(ctx, task, worker) for every task in [0, tasks), each once, and
// returns when all are done. worker (< thread_count()) names the thread, for
// parallel_scratch.
void parallel_run(size_t tasks, void (*fn)(void*, size_t task, size_t worker), void* ctx);

// A pool thread died in the middle of a task (in wasm, a trap: its worker's
// script reports it, bn_pool_thread_failed). That task is never counted done,
// so instead of waiting for it for ever, this and every later parallel_run
// that hands work to the pool stop (one that runs inline does not need it):
// the wasm build throws a JS error that names the fault
// (Module.bnwasmPoolFailed, web/src/threads.js), a native one aborts. Only a
// bug in a task gets here; a native thread that crashes takes its process.
void set_parallel_failed();

#if !BNWASM_THREADS
// No threads in this build: a plain loop the compiler inlines (the module
// stays as small as before the pool).
template <class F>
void parallel_for(size_t tasks, F&& f) {
  for (size_t t = 0; t < tasks; ++t) f(t, size_t(0));
}
#else
template <class F>
void parallel_for(size_t tasks, F&& f) {
  parallel_run(
      tasks, [](void* ctx, size_t task, size_t worker) { (*static_cast<F*>(ctx))(task, worker); },
      const_cast<void*>(static_cast<const void*>(&f)));
}
#endif

// Scratch of at least `floats` floats for each worker but the calling one
// (worker 0 uses the caller's own scratch). Call it before the parallel_for
// (it may allocate); inside, worker w > 0 uses parallel_scratch(w). The
// buffers stay for the next call (they grow to the largest asked); with one
// thread there are none.
#if !BNWASM_THREADS
inline void reserve_parallel_scratch(size_t) {}
inline float* parallel_scratch(size_t) { return nullptr; }  // only worker 0 runs
#else
void reserve_parallel_scratch(size_t floats);
float* parallel_scratch(size_t worker);
#endif

// Raises peak to value if value is larger: how tasks combine their maxima
// (a max is the same in any order, so the result is too).
inline void fetch_max(std::atomic<uint32_t>& peak, uint32_t value) {
  uint32_t seen = peak.load(std::memory_order_relaxed);
  while (value > seen && !peak.compare_exchange_weak(seen, value)) {
  }
}

// One buffer shared by the tasks of a parallel_for (each task its own part):
// per-image partial sums, a packed operand. Same rules as the scratch.
float* parallel_shared(size_t floats);

// ceil(n / grain) pieces of `grain` (the last shorter): piece i is
// [i * grain, min(n, (i + 1) * grain)).
inline size_t pieces(size_t n, size_t grain) { return (n + grain - 1) / grain; }
inline std::pair<size_t, size_t> piece(size_t i, size_t n, size_t grain) {
  const size_t lo = i * grain, hi = lo + grain;
  return {lo, hi < n ? hi : n};
}

// The piece size for n items of `work` operations each: pieces of at least
// kMinWork operations (smaller ones cost more to hand out than they save), at
// most kMaxPieces of them, a multiple of `align`. A function of the sizes
// only, so the partition is the same for any thread count. (No split changes
// a bit: a build without threads takes the whole range as one piece, and the
// loops fold back into the serial code.)
constexpr size_t kMinWork = size_t(1) << 15;
constexpr size_t kMaxPieces = 64;
#if !BNWASM_THREADS
inline size_t grain(size_t n, size_t, size_t = 1) { return n == 0 ? 1 : n; }
#else
inline size_t grain(size_t n, size_t work, size_t align = 1) {
  size_t g = (n + kMaxPieces - 1) / kMaxPieces;
  const size_t least = work == 0 ? n : (kMinWork + work - 1) / work;
  if (g < least) g = least;
  g = (g + align - 1) / align * align;
  return g == 0 ? align : g;
}
#endif

// Sets to +0 every float of `count` buffers, buffer(i) giving buffer i as
// {data, floats} (floats may be 0). The pool's threads share it, in pieces of
// at least kMinZero floats of the buffers taken end to end: a CNN's activation
// gradients, cleared before every backward pass, are 16 MB at batch 64 (the
// Fashion-MNIST CNN), where a dense network's few hundred KB stay on the
// calling thread.
constexpr size_t kMinZero = size_t(1) << 18;  // 1 MiB
template <class F>
void parallel_zero(size_t count, F&& buffer) {
#if !BNWASM_THREADS
  for (size_t i = 0; i < count; ++i) {
    const auto [data, floats] = buffer(i);
    if (floats != 0) std::memset(data, 0, floats * sizeof(float));
  }
#else
  size_t total = 0;
  for (size_t i = 0; i < count; ++i) total += buffer(i).second;
  const size_t most = pieces(total, kMaxPieces), g = most > kMinZero ? most : kMinZero;
  parallel_for(pieces(total, g), [&](size_t t, size_t) {
    const auto [lo, hi] = piece(t, total, g);
    size_t at = 0;  // where buffer i starts, end to end
    for (size_t i = 0; i < count && at < hi; ++i) {
      const auto [data, floats] = buffer(i);
      const size_t a = lo > at ? lo : at, b = hi < at + floats ? hi : at + floats;
      if (a < b) std::memset(data + (a - at), 0, (b - a) * sizeof(float));
      at += floats;
    }
  });
#endif
}

}  // namespace bnwasm
