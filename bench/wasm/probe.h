// What the wasm probes share: deterministic inputs and a median timer.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <vector>

namespace probe {

// n values in [-0.5, 0.5), the same for a given seed on every run.
inline std::vector<float> filled(size_t n, unsigned seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i)
    v[i] = static_cast<float>((i * 2654435761u + seed) % 1000) / 1000.0f - 0.5f;
  return v;
}

// Median seconds per call over `reps` timed repetitions, after one warm-up call. With
// `calibrate`, each repetition makes enough calls for about 20 ms (for calls of microseconds);
// without, one call each (a layer at batch 32 takes milliseconds, long enough to time alone).
inline double median_seconds(const std::function<void()>& fn, int reps = 7, bool calibrate = true) {
  using clock = std::chrono::steady_clock;
  fn();
  int calls = 1;
  if (calibrate) {
    const auto t0 = clock::now();
    fn();
    const double once = std::max(1e-7, std::chrono::duration<double>(clock::now() - t0).count());
    calls = std::max(1, static_cast<int>(0.02 / once));
  }
  std::vector<double> times;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = clock::now();
    for (int c = 0; c < calls; ++c) fn();
    times.push_back(std::chrono::duration<double>(clock::now() - t0).count() / calls);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace probe
