#!/usr/bin/env bash
# Builds the wasm module into web/dist/ (bnwasm.mjs + bnwasm.wasm).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
trap 'bash scripts/setup.sh give-back' EXIT
# 3.1.6's toolchain file sets the emulator to 'node --experimental-wasm-threads',
# which Node 20 rejects.
mkdir -p build
emcmake cmake -S . -B build/wasm -DBNWASM_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CROSSCOMPILING_EMULATOR=node >build/wasm-configure.log 2>&1 ||
  { cat build/wasm-configure.log >&2; exit 1; }
cmake --build build/wasm -j"$(nproc)" --target bnwasm_module
# Install the .mjs/.wasm pair together: copy into a fresh folder, then rename
# it over web/dist, so a reader never sees one file of one build and one of another.
mkdir -p web
staging=$(mktemp -d web/.dist-XXXXXX)
cp build/wasm/dist/bnwasm.mjs build/wasm/dist/bnwasm.wasm "$staging/"
chmod 755 "$staging"
rm -rf web/dist.old
[ -d web/dist ] && mv web/dist web/dist.old
mv "$staging" web/dist
rm -rf web/dist.old
if command -v wasm-objdump >/dev/null; then
  echo "build: $(wc -c <web/dist/bnwasm.wasm) bytes of wasm, $(wasm-objdump -d web/dist/bnwasm.wasm | grep -c 'f32x4') f32x4 instructions"
else
  echo "build: $(wc -c <web/dist/bnwasm.wasm) bytes of wasm"
fi
