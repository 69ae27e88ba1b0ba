#!/usr/bin/env bash
# Fuzzes the model loader with libFuzzer + ASan + UBSan.
#   scripts/fuzz.sh             a fixed 20,000 executions over the committed seeds (npm test)
#   scripts/fuzz.sh 600         as long as you like, in seconds; new inputs go to build/fuzz/corpus
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DBNWASM_FUZZ=ON -DBNWASM_TESTS=OFF \
  -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build/fuzz -j"$(nproc)" --target bnwasm_load_fuzzer >/dev/null
mkdir -p build/fuzz/corpus
if [ $# -eq 0 ]; then
  # A fixed count from a fresh copy of the seeds (libFuzzer writes new inputs
  # into its first corpus folder): the same work on every run.
  rm -rf build/fuzz/run && cp -r tests/fuzz/corpus build/fuzz/run
  build/fuzz/bnwasm_load_fuzzer -runs=20000 -seed=1 -max_len=4096 build/fuzz/run 2>&1 | tail -3
else
  build/fuzz/bnwasm_load_fuzzer -max_total_time="$1" -max_len=4096 build/fuzz/corpus tests/fuzz/corpus 2>&1 | tail -5
fi
