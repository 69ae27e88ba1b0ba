#!/usr/bin/env bash
# The C++ test suite, three ways: native, native under AddressSanitizer +
# UBSan, and compiled with Emscripten (SIMD kernels) running under Node.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
jobs=$(nproc)

echo "== native (Release)"
cmake -S . -B build/native -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/native -j"$jobs" >/dev/null
(cd build/native && ctest --output-on-failure)

echo "== native, AddressSanitizer + UBSan"
cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=Debug -DBNWASM_SANITIZE=ON \
  -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build build/sanitize -j"$jobs" >/dev/null
(cd build/sanitize && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure)

echo "== wasm SIMD128 under Node"
emcmake cmake -S . -B build/wasm-tests -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CROSSCOMPILING_EMULATOR=node >/dev/null
cmake --build build/wasm-tests -j"$jobs" --target bnwasm_tests >/dev/null
(cd build/wasm-tests && ctest --output-on-failure)

echo "== fuzz: model loader, libFuzzer + ASan + UBSan, fixed 20,000 executions"
bash scripts/fuzz.sh
