#include "bnwasm/parallel.h"

#include <vector>

#if BNWASM_THREADS
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#ifdef __EMSCRIPTEN__
#include <emscripten/em_js.h>
#include <emscripten/em_macros.h>

// Throws the facade's error if it set one (web/src/threads.js), else a plain
// Error: either way the call unwinds to JavaScript, and the next parallel_run
// throws again (bnwasm::set_parallel_failed).
EM_JS(void, bnwasm_pool_failed_js, (), {
  if (Module["bnwasmPoolFailed"]) Module["bnwasmPoolFailed"]();
  throw new Error("bnwasm: a thread of the pool stopped in the middle of a job");
});
#endif
#endif

namespace bnwasm {
namespace {

std::vector<float> g_shared;

}  // namespace

float* parallel_shared(size_t floats) {
  if (g_shared.size() < floats) g_shared.resize(floats);
  return g_shared.data();
}

#if !BNWASM_THREADS

size_t set_thread_count(size_t) { return 1; }
size_t thread_count() { return 1; }
void set_parallel_inline(bool) {}
bool parallel_inside() { return false; }
void parallel_run(size_t tasks, void (*fn)(void*, size_t, size_t), void* ctx) {
  for (size_t t = 0; t < tasks; ++t) fn(ctx, t, 0);
}
void set_parallel_failed() {}

#else

namespace {

// The current job. Its tasks are cut into one contiguous range per thread:
// thread w runs range w first, in order, then helps with the others. So the
// same thread runs the same tasks job after job (an optimizer's piece of the
// weights, a GEMM's column group, the panels it packed), and their data stays
// in its core's cache instead of moving between cores.
//
// Each range's counter holds the job's number (high 32 bits) and the range's
// next unclaimed task (low 32): a claim is one compare-exchange, which fails
// if the job changed since the thread read the fields, so a thread that woke
// late never runs a task of the wrong job. The caller publishes a job only
// after every task of the last one is done.
struct alignas(64) Range {
  std::atomic<uint64_t> next{0};
};
struct Job {
  std::atomic<uint64_t> number{0};  // what idle threads watch
  std::atomic<size_t> tasks{0};
  std::atomic<void (*)(void*, size_t, size_t)> fn{nullptr};
  std::atomic<void*> ctx{nullptr};
  alignas(64) std::atomic<size_t> done{0};
};

Job g_job;
std::unique_ptr<Range[]> g_ranges(new Range[1]);
size_t g_range_count = 1;  // the thread count; changes only while no worker runs
std::vector<std::vector<float>> g_scratch(1);
std::vector<pthread_t> g_threads;
std::atomic<bool> g_stop{false};
std::atomic<bool> g_failed{false};  // set_parallel_failed
std::atomic<int> g_sleepers{0};
std::mutex g_mutex;
std::condition_variable g_wake;
thread_local size_t t_worker = 0;
thread_local bool t_inside = false;  // running a task: nested parallel_for runs inline
bool g_inline = false;               // set_parallel_inline

constexpr uint64_t kTaskMask = 0xffffffffu;

// Where a parallel_run ends when a pool thread died (set_parallel_failed).
#ifdef __EMSCRIPTEN__
[[noreturn]] void pool_failed() {
  bnwasm_pool_failed_js();
  __builtin_unreachable();
}
#else
[[noreturn]] void pool_failed() { std::abort(); }
#endif

// Where range r of a job of n tasks starts: r * n / R (range r ends where r + 1 starts).
size_t range_start(size_t r, size_t n) { return r * n / g_range_count; }

// Claims and runs tasks while any range of the current job has some left,
// the thread's own range first. The thread counts its tasks and adds them to
// the job's done count once, when it finds none left: the count is the one
// line both threads write, and each write moves it between cores (a step's
// jobs have up to 64 tasks each).
void run_tasks(size_t worker) {
  size_t ran = 0;
  for (size_t k = 0; k < g_range_count; ++k) {
    const size_t r = (worker + k) % g_range_count;
    std::atomic<uint64_t>& counter = g_ranges[r].next;
    uint64_t v = counter.load(std::memory_order_acquire);
    for (;;) {
      // The fields are those of v's job or a later one; the exchange below
      // succeeds only if v's job is still current, so a task runs with its own.
      const size_t tasks = g_job.tasks.load(std::memory_order_acquire);
      auto* fn = g_job.fn.load(std::memory_order_acquire);
      void* ctx = g_job.ctx.load(std::memory_order_acquire);
      if ((v & kTaskMask) >= range_start(r + 1, tasks)) break;
      if (!counter.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel)) continue;
      t_inside = true;
      fn(ctx, static_cast<size_t>(v & kTaskMask), worker);
      t_inside = false;
      ++ran;
      v = counter.load(std::memory_order_acquire);
    }
  }
  if (ran != 0) g_job.done.fetch_add(ran, std::memory_order_release);
}

// How long an idle thread watches for the next job before it sleeps: a
// training step publishes a few dozen jobs, microseconds apart, and waking a
// sleeping thread (a futex, Atomics.wait in wasm) costs tens of microseconds.
constexpr auto kSpin = std::chrono::microseconds(300);

// The job number when set_thread_count started the threads: a thread that
// read g_job.number itself could read a job published after it started and
// take it as finished.
uint64_t g_start_number = 0;

void* worker_main(void* arg) {
  t_worker = reinterpret_cast<size_t>(arg);
  uint64_t finished = g_start_number;
  for (;;) {
    const auto until = std::chrono::steady_clock::now() + kSpin;
    for (unsigned i = 1; g_job.number.load(std::memory_order_acquire) == finished; ++i) {
      if (g_stop.load(std::memory_order_relaxed)) return nullptr;
      if ((i & 1023) != 0 || std::chrono::steady_clock::now() < until) continue;
      std::unique_lock<std::mutex> lock(g_mutex);
      g_sleepers.fetch_add(1);
      while (g_job.number.load() == finished && !g_stop.load()) g_wake.wait(lock);
      g_sleepers.fetch_sub(1);
    }
    if (g_stop.load(std::memory_order_acquire)) return nullptr;
    finished = g_job.number.load(std::memory_order_acquire);
    run_tasks(t_worker);
  }
}

void stop_threads() {
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_stop.store(true);
  }
  g_wake.notify_all();
  for (pthread_t t : g_threads) pthread_join(t, nullptr);
  g_threads.clear();
  g_stop.store(false);
}

// Joins the threads when the program exits. Static objects are destroyed in
// the reverse order of their definitions, so this runs before g_wake's
// destructor, which waits for every thread asleep on it: a native program
// that returned from main with the pool's threads idle past kSpin hung there.
// (Emscripten's builds run no static destructors.)
struct StopAtExit {
  ~StopAtExit() { stop_threads(); }
} g_stop_at_exit;

}  // namespace

void reserve_parallel_scratch(size_t floats) {
  g_scratch.resize(thread_count());
  for (size_t w = 1; w < g_scratch.size(); ++w)
    if (g_scratch[w].size() < floats) g_scratch[w].resize(floats);
}

float* parallel_scratch(size_t worker) { return g_scratch[worker].data(); }

size_t thread_count() { return g_threads.size() + 1; }

void set_parallel_inline(bool on) { g_inline = on; }

bool parallel_inside() { return t_inside; }

size_t set_thread_count(size_t n) {
  if (n < 1) n = 1;
  if (n == thread_count()) return n;
  stop_threads();
  g_start_number = g_job.number.load();
  // pthread_create rather than std::thread: a thread that cannot start (no
  // worker for it in a page) is a status here, while std::thread would throw,
  // and the wasm build has no exceptions to catch it with.
  for (size_t i = 1; i < n; ++i) {
    pthread_t t;
    if (pthread_create(&t, nullptr, worker_main, reinterpret_cast<void*>(i)) != 0) break;
    g_threads.push_back(t);
  }
  g_scratch.resize(thread_count());
  g_scratch.shrink_to_fit();
  g_range_count = thread_count();
  g_ranges.reset(new Range[g_range_count]);
  return thread_count();
}

void set_parallel_failed() { g_failed.store(true); }

void parallel_run(size_t tasks, void (*fn)(void*, size_t, size_t), void* ctx) {
  if (tasks == 0) return;
  if (g_threads.empty() || tasks == 1 || t_inside || g_inline) {
    for (size_t t = 0; t < tasks; ++t) fn(ctx, t, t_worker);
    return;
  }
  if (g_failed.load(std::memory_order_relaxed)) pool_failed();
  // Close every range of the last job first, under the new job's number. A
  // thread that read a range's counter (every task claimed) and then some of
  // the fields below could otherwise see a task left under them, claim it with
  // its stale counter, and run one job's function with another's context.
  // (Release stores: a thread that reads a field reads the closed counters too.)
  const uint64_t job = g_job.number.load() + 1;
  for (size_t r = 0; r < g_range_count; ++r) g_ranges[r].next.store(job << 32 | kTaskMask);
  g_job.tasks.store(tasks, std::memory_order_release);
  g_job.fn.store(fn, std::memory_order_release);
  g_job.ctx.store(ctx, std::memory_order_release);
  g_job.done.store(0, std::memory_order_relaxed);
  for (size_t r = 0; r < g_range_count; ++r) g_ranges[r].next.store(job << 32 | range_start(r, tasks));
  g_job.number.store(job);  // seq_cst: after the ranges, and before the sleepers check below
  if (g_sleepers.load() > 0) {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_wake.notify_all();
  }
  run_tasks(0);
  // Every task is claimed; wait for the ones other threads are running.
  while (g_job.done.load(std::memory_order_acquire) < tasks) {
    if (g_failed.load(std::memory_order_relaxed)) pool_failed();
  }
}

#endif

}  // namespace bnwasm
