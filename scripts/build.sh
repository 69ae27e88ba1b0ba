#!/usr/bin/env bash
# Builds the wasm module into web/dist/ (bnwasm.mjs + bnwasm.wasm) and the CommonJS entry
# generated from web/src (bnwasm.cjs + its .d.cts types).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
# 3.1.6's toolchain file sets the emulator to 'node --experimental-wasm-threads',
# which Node 20 rejects.
mkdir -p build
emcmake cmake -S . -B build/wasm -DBNWASM_TESTS=OFF -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CROSSCOMPILING_EMULATOR=node >build/wasm-configure.log 2>&1 ||
  { cat build/wasm-configure.log >&2; exit 1; }
cmake --build build/wasm -j"$(nproc)" --target bnwasm_module
# Install the files of one build together: copy into a fresh folder, then rename
# it over web/dist, so a reader never sees one file of one build and one of another.
mkdir -p web
staging=$(mktemp -d web/.dist-XXXXXX)
trap 'rm -rf "$staging"' EXIT
cp build/wasm/dist/bnwasm.mjs build/wasm/dist/bnwasm.wasm "$staging/"
# The CommonJS entry (require, Jest's default configuration) is generated from web/src and this
# build's bnwasm.mjs, into the same folder.
node scripts/build-cjs.mjs "$staging"
chmod 755 "$staging"
rm -rf web/dist.old
[ -d web/dist ] && mv web/dist web/dist.old
mv "$staging" web/dist
rm -rf web/dist.old
echo "build: $(wc -c <web/dist/bnwasm.wasm) bytes of wasm, $(wasm-objdump -d web/dist/bnwasm.wasm 2>/dev/null | grep -c 'f32x4' || echo '?') f32x4 instructions"
