#!/usr/bin/env bash
# Builds and runs the native Google Benchmark of the kernels (needs Debian's
# libbenchmark-dev); writes bench/results/native-<time>.json.
set -euo pipefail
cd "$(dirname "$0")/../.."
cmake -S . -B build/bench-native -DCMAKE_BUILD_TYPE=Release -DBNWASM_TESTS=OFF -DBNWASM_BENCH=ON >/dev/null
cmake --build build/bench-native -j"$(nproc)" --target bnwasm_kernels_bench >/dev/null
mkdir -p bench/results
out="bench/results/native-$(date -u +%Y-%m-%dT%H-%M-%SZ).json"
build/bench-native/bnwasm_kernels_bench --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  --benchmark_out="$out" --benchmark_out_format=json "$@"
echo "wrote $out"
