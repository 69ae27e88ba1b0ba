#!/usr/bin/env bash
# Builds the wasm module into web/dist/ (bnwasm.mjs + bnwasm.wasm; bnwasm-dense.wasm + its entry
# bnwasm-dense.mjs; bnwasm-mt.mjs + bnwasm-mt.wasm) and the CommonJS entry
# generated from web/src (bnwasm.cjs + its .d.cts types).
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
cmake --build build/wasm -j"$(nproc)" --target bnwasm_module bnwasm_module_dense bnwasm_module_mt
# Install the files of one build together: copy into a fresh folder, then rename
# it over web/dist, so a reader never sees one file of one build and one of another.
mkdir -p web
staging=$(mktemp -d web/.dist-XXXXXX)
trap 'rm -rf "$staging"; bash scripts/setup.sh give-back' EXIT
cp build/wasm/dist/bnwasm.mjs build/wasm/dist/bnwasm.wasm "$staging/"
# The dense build (no convolution or pooling layers) exports the same functions, so its glue is
# the full one's but for the wasm's name: only its wasm ships, which bnwasm.mjs instantiates.
cmp -s <(sed 's/bnwasm-dense\.wasm/bnwasm.wasm/g' build/wasm/dist/bnwasm-dense.mjs) build/wasm/dist/bnwasm.mjs ||
  { echo "build: the dense build's glue differs from the full one's (other imports or exports?); web/src/module.js shares one glue" >&2; exit 1; }
cp build/wasm/dist/bnwasm-dense.wasm "$staging/"
# Not bnwasm-mt.worker.js: web/src/pthread-worker.js speaks its protocol as a module worker.
cp build/wasm/dist/bnwasm-mt.mjs build/wasm/dist/bnwasm-mt.wasm "$staging/"
# The glue finds its wasm with new URL("bnwasm.wasm", import.meta.url); webpack reads a
# specifier without ./ as a package name. "./bnwasm.wasm" is the form every bundler rewrites.
sed -i 's|new URL("bnwasm.wasm",import.meta.url)|new URL("./bnwasm.wasm",import.meta.url)|' "$staging/bnwasm.mjs"
grep -q 'new URL("./bnwasm.wasm",import.meta.url)' "$staging/bnwasm.mjs" ||
  { echo "build: the glue no longer has new URL(\"bnwasm.wasm\", import.meta.url); update scripts/build.sh" >&2; exit 1; }
# Its export wrappers as one table (about 0.5 KiB of the single-thread download).
node scripts/compact-glue.mjs "$staging/bnwasm.mjs"
# The threaded glue (bnwasm-mt.mjs): the same URL fix, and two settings the facade passes
# (web/src/threads.js): how many pool workers to start with the module (PTHREAD_POOL_SIZE is a
# build-time number in 3.1.6) and the function that spawns one (web/src/pthread-worker.js in a
# module Web Worker or a Node worker thread), so a worker that fails ends in an error, not a hang.
patch_mt() {  # pattern replacement
  grep -qF "$1" "$staging/bnwasm-mt.mjs" ||
    { echo "build: the threaded glue no longer has '$1'; update scripts/build.sh" >&2; exit 1; }
  F="$1" R="$2" perl -0pi -e 's/\Q$ENV{F}\E/$ENV{R}/' "$staging/bnwasm-mt.mjs"
}
patch_mt 'new URL("bnwasm-mt.wasm",import.meta.url)' 'new URL("./bnwasm-mt.wasm",import.meta.url)'
patch_mt 'var pthreadPoolSize=1;' 'var pthreadPoolSize=Module["pthreadPoolSize"];'
patch_mt 'allocateUnusedWorker:function(){if(!Module["locateFile"]){PThread.unusedWorkers.push(new Worker(new URL("bnwasm-mt.worker.js",import.meta.url)));return}var pthreadMainJs=locateFile("bnwasm-mt.worker.js");PThread.unusedWorkers.push(new Worker(pthreadMainJs))}' \
  'allocateUnusedWorker:function(){PThread.unusedWorkers.push(Module["pthreadWorker"]())}'
# bnwasm-dense.mjs: the dense build's layer types (asked of it) and its wasm's URL.
node scripts/build-dense.mjs "$staging"
if grep -q 'new Function\|eval(' "$staging/bnwasm.mjs" "$staging/bnwasm-mt.mjs"; then
  echo "build: the glue calls eval or new Function (a strict Content-Security-Policy forbids both)" >&2; exit 1
fi
# The CommonJS entry (require, Jest's default configuration) is generated from web/src and this
# build's bnwasm.mjs, into the same folder, with esbuild from node_modules. npm start needs no
# npm package (the demo is ES modules), so on a machine without node_modules it is left out;
# prepack (BNWASM_REQUIRE_CJS=1) and npm test (after npm ci) always make it.
if [ -x node_modules/.bin/esbuild ] || [ "${BNWASM_REQUIRE_CJS:-}" = 1 ]; then
  node scripts/build-cjs.mjs "$staging"
else
  echo "build: no node_modules, so no CommonJS entry (npm ci installs esbuild, which makes it)"
fi
chmod 755 "$staging"
rm -rf web/dist.old
[ -d web/dist ] && mv web/dist web/dist.old
mv "$staging" web/dist
rm -rf web/dist.old
if command -v wasm-objdump >/dev/null; then
  echo "build: $(wc -c <web/dist/bnwasm.wasm) bytes of wasm, $(wasm-objdump -d web/dist/bnwasm.wasm | grep -c 'f32x4') f32x4 instructions; dense: $(wc -c <web/dist/bnwasm-dense.wasm) bytes; threaded: $(wc -c <web/dist/bnwasm-mt.wasm) bytes"
else
  echo "build: $(wc -c <web/dist/bnwasm.wasm) bytes of wasm; dense: $(wc -c <web/dist/bnwasm-dense.wasm) bytes; threaded: $(wc -c <web/dist/bnwasm-mt.wasm) bytes"
fi
