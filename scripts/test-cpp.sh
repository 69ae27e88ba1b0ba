#!/usr/bin/env bash
# The C++ test suite, three ways: native, native under AddressSanitizer +
# UBSan, and compiled with Emscripten (SIMD kernels) running under Node.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
jobs=$(nproc)
mkdir -p build/test-logs

# Runs a build step quietly; shows its output only when it fails.
quiet() {
  local log=build/test-logs/step.log
  if ! "$@" >"$log" 2>&1; then
    cat "$log"
    return 1
  fi
}

# Runs CTest verbosely into a log; prints GoogleTest's summary lines, or the
# whole log when something failed.
run_ctest() {  # build-dir name [env...]
  local dir=$1 name=$2 log=build/test-logs/ctest-$2.log
  shift 2
  if (cd "$dir" && env "$@" ctest -V) >"$log" 2>&1; then
    grep -E '\[  PASSED  \]|tests passed' "$log"
  else
    cat "$log"
    return 1
  fi
}

echo "== native (Release)"
quiet cmake -S . -B build/native -DCMAKE_BUILD_TYPE=Release
quiet cmake --build build/native -j"$jobs"
run_ctest build/native native

echo "== native, AddressSanitizer + UBSan"
quiet cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=Debug -DBNWASM_SANITIZE=ON \
  -DCMAKE_CXX_COMPILER=clang++
quiet cmake --build build/sanitize -j"$jobs"
run_ctest build/sanitize sanitize ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1

echo "== wasm SIMD128 under Node"
quiet emcmake cmake -S . -B build/wasm-tests -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CROSSCOMPILING_EMULATOR=node
quiet cmake --build build/wasm-tests -j"$jobs" --target bnwasm_tests
run_ctest build/wasm-tests wasm

echo "== fuzz: model loader, libFuzzer + ASan + UBSan, fixed 20,000 executions"
bash scripts/fuzz.sh
