#!/usr/bin/env bash
# Builds the wasm module into web/dist/ (bnwasm.mjs + bnwasm.wasm).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# 3.1.6's toolchain file sets the emulator to 'node --experimental-wasm-threads',
# which Node 20 rejects.
mkdir -p build
emcmake cmake -S . -B build/wasm -DBNWASM_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CROSSCOMPILING_EMULATOR=node >build/wasm-configure.log 2>&1 ||
  { cat build/wasm-configure.log >&2; exit 1; }
cmake --build build/wasm -j"$(nproc)"
echo "build: $(wc -c <web/dist/bnwasm.wasm) bytes of wasm, $(wasm-objdump -d web/dist/bnwasm.wasm 2>/dev/null | grep -c 'f32x4' || echo '?') f32x4 instructions"
