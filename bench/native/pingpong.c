// How far apart two CPUs are, as the thread pool feels it: a cache line's round trip between
// them, and the time one CPU takes to read 256 KB (one float per 64-byte line) that the other
// has just written, against 256 KB it wrote itself. A pool's jobs hand their buffers from one
// CPU to the other; two processes that share nothing never do. Prints one line:
//   roundtrip_ns R handoff_us H own_us O
// bench/placement.mjs builds it (cc -O2 -pthread) and runs it between its blocks.
//   pingpong [cpu_a cpu_b]   (default 0 1)
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kRoundTrips = 100000, kHandoffs = 200, kFloats = 256 * 1024 / 4, kLine = 16 };

static _Alignas(64) atomic_int ball;   // 1: the other CPU's turn, 0: ours
static _Alignas(64) atomic_int stage;  // 2h + 1: buffer h written; 2h + 2: read
static float *written, *own;
static int cpu_b;
static double handoff_ns, own_ns;
static volatile float sink;

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

static int pin(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static float sum_lines(const float* x) {
  float s = 0;
  for (int i = 0; i < kFloats; i += kLine) s += x[i];
  return s;
}

static void* other_cpu(void* arg) {
  (void)arg;
  pin(cpu_b);  // main checked that it may
  for (int i = 0; i < kRoundTrips; i++) {
    while (atomic_load(&ball) != 1) {
    }
    atomic_store(&ball, 0);
  }
  for (int h = 0; h < kHandoffs; h++) {
    while (atomic_load(&stage) != 2 * h + 1) {
    }
    for (int i = 0; i < kFloats; i += kLine) own[i] = (float)h;
    const double t0 = now_ns();
    const float a = sum_lines(written);
    const double t1 = now_ns();
    const float b = sum_lines(own);
    const double t2 = now_ns();
    sink = a + b;
    handoff_ns += t1 - t0;
    own_ns += t2 - t1;
    atomic_store(&stage, 2 * h + 2);
  }
  return 0;
}

int main(int argc, char** argv) {
  const int cpu_a = argc > 2 ? atoi(argv[1]) : 0;
  cpu_b = argc > 2 ? atoi(argv[2]) : 1;
  written = aligned_alloc(64, kFloats * sizeof(float));
  own = aligned_alloc(64, kFloats * sizeof(float));
  if (written == NULL || own == NULL) return 1;
  memset(written, 0, kFloats * sizeof(float));
  memset(own, 0, kFloats * sizeof(float));
  // Both CPUs must be this process's to use: a thread that could not move would make the
  // round trips wait on themselves.
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) != 0 || cpu_a == cpu_b || !CPU_ISSET(cpu_a, &allowed) ||
      !CPU_ISSET(cpu_b, &allowed) || pin(cpu_a) != 0) {
    fprintf(stderr, "pingpong: needs two different CPUs this process may run on, got %d and %d\n", cpu_a, cpu_b);
    return 1;
  }
  pthread_t t;
  if (pthread_create(&t, NULL, other_cpu, NULL) != 0) return 1;
  const double t0 = now_ns();
  for (int i = 0; i < kRoundTrips; i++) {
    atomic_store(&ball, 1);
    while (atomic_load(&ball) != 0) {
    }
  }
  const double round_trip = (now_ns() - t0) / kRoundTrips;
  for (int h = 0; h < kHandoffs; h++) {
    for (int i = 0; i < kFloats; i += kLine) written[i] = (float)h;
    atomic_store(&stage, 2 * h + 1);
    while (atomic_load(&stage) != 2 * h + 2) {
    }
  }
  pthread_join(t, NULL);
  printf("roundtrip_ns %.0f handoff_us %.2f own_us %.2f\n", round_trip, handoff_ns / kHandoffs / 1e3,
         own_ns / kHandoffs / 1e3);
  return 0;
}
