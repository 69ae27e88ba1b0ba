#!/usr/bin/env bash
# npm pack / npm publish run this first: web/dist must hold a module built from the current
# C++ sources, or the package would ship without (or with a stale) wasm. Builds only when needed;
# the build's output goes to stderr so `npm pack --json` keeps a clean stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f web/dist/bnwasm.wasm ] && [ -f web/dist/bnwasm.mjs ] &&
  [ -z "$(find cpp CMakeLists.txt scripts/build.sh -type f -newer web/dist/bnwasm.wasm | head -n1)" ]; then
  exit 0
fi
bash scripts/build.sh >&2
