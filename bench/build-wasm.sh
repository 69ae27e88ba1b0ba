#!/usr/bin/env bash
# Builds the benchmark's own wasm programs into build/bench/: the peak-FLOPs probe, the
# kernel throughput probes and the per-layer convolution timer (the same kernel and layer sources
# as the package).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
mkdir -p build/bench
flags=(-O3 -msimd128 -sENVIRONMENT=node -sWASM_ASYNC_COMPILATION=0 -sALLOW_MEMORY_GROWTH=1)
em++ -std=c++17 "${flags[@]}" bench/wasm/peak.cpp -o build/bench/peak.cjs
em++ -std=c++17 "${flags[@]}" -Icpp/include bench/wasm/kernels.cpp cpp/kernels/scalar.cpp \
  cpp/kernels/wasmsimd.cpp cpp/kernels/dispatch.cpp cpp/src/parallel.cpp cpp/src/layers.cpp \
  -o build/bench/kernels.cjs
em++ -std=c++17 "${flags[@]}" -Icpp/include bench/wasm/depthwise.cpp cpp/kernels/scalar.cpp \
  cpp/kernels/wasmsimd.cpp cpp/kernels/dispatch.cpp cpp/kernels/depthwise_scalar.cpp \
  cpp/kernels/depthwise_wasmsimd.cpp cpp/src/parallel.cpp cpp/src/layers.cpp cpp/src/depthwise.cpp \
  -o build/bench/depthwise.cjs
em++ -std=c++17 "${flags[@]}" -Icpp/include bench/wasm/conv_layers.cpp cpp/kernels/scalar.cpp \
  cpp/kernels/wasmsimd.cpp cpp/kernels/dispatch.cpp cpp/kernels/depthwise_scalar.cpp \
  cpp/kernels/depthwise_wasmsimd.cpp cpp/src/parallel.cpp cpp/src/layers.cpp cpp/src/depthwise.cpp \
  -o build/bench/conv_layers.cjs
# One thread against two in one process, job by job (the pool's thread a Node worker:
# Emscripten's threads.worker.js is CommonJS, and the package's type is module).
echo '{ "type": "commonjs" }' > build/bench/package.json
em++ -std=c++17 -O3 -msimd128 -sENVIRONMENT=node,worker -sWASM_ASYNC_COMPILATION=0 -sINITIAL_MEMORY=64MB -sEXIT_RUNTIME=1 \
  -pthread "-sPTHREAD_POOL_SIZE=require('os').cpus().length" -Icpp/include \
  bench/wasm/threads.cpp cpp/kernels/scalar.cpp cpp/kernels/wasmsimd.cpp cpp/kernels/dispatch.cpp \
  cpp/src/parallel.cpp cpp/src/layers.cpp -o build/bench/threads.cjs
# The same probes as ES modules for a browser page (npm run bench -- --browser runs them in
# each engine): main() runs when the module is instantiated; its line arrives through `print`.
web=(-O3 -msimd128 -sENVIRONMENT=web -sMODULARIZE -sEXPORT_ES6 -sALLOW_MEMORY_GROWTH=1)
em++ -std=c++17 "${web[@]}" bench/wasm/peak.cpp -o build/bench/peak.web.mjs
em++ -std=c++17 "${web[@]}" -Icpp/include bench/wasm/kernels.cpp cpp/kernels/scalar.cpp \
  cpp/kernels/wasmsimd.cpp cpp/kernels/dispatch.cpp cpp/src/parallel.cpp cpp/src/layers.cpp \
  -o build/bench/kernels.web.mjs
