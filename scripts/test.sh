#!/usr/bin/env bash
# Everything: build the wasm module, the C++ suites, then the JS suites.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
bash scripts/test-cpp.sh
echo "== JS (Jest, Node, through the public API)"
NODE_OPTIONS=--experimental-vm-modules npx jest "$@"
echo "== Browser end-to-end (the demo in headless Chromium)"
node tests/e2e/demo.test.mjs
