#!/usr/bin/env bash
# Fuzzes the model loader with libFuzzer + ASan + UBSan.
#   scripts/fuzz.sh             a fixed 20,000 executions over the committed seeds (npm test)
#   scripts/fuzz.sh 600         as long as you like, in seconds; new inputs go to build/fuzz/corpus
# A crash prints the whole report and leaves the input in build/fuzz/ (crash-*).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/fuzz/corpus
log=build/fuzz/fuzz.log
build() {
  cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DBNWASM_FUZZ=ON -DBNWASM_TESTS=OFF \
    -DCMAKE_CXX_COMPILER=clang++ &&
    cmake --build build/fuzz -j"$(nproc)" --target bnwasm_load_fuzzer
}
build >"$log" 2>&1 || { cat "$log"; exit 1; }
if [ $# -eq 0 ]; then
  # A fixed count from a fresh copy of the seeds (libFuzzer writes new inputs
  # into its first corpus folder): the same work on every run.
  rm -rf build/fuzz/run && cp -r tests/fuzz/corpus build/fuzz/run
  args=(-runs=20000 -seed=1 -max_len=4096 -artifact_prefix=build/fuzz/ build/fuzz/run)
else
  args=(-max_total_time="$1" -max_len=4096 -artifact_prefix=build/fuzz/ build/fuzz/corpus tests/fuzz/corpus)
fi
build/fuzz/bnwasm_load_fuzzer "${args[@]}" >"$log" 2>&1 || { cat "$log"; exit 1; }
grep -E "Done [0-9]+ runs" "$log"
