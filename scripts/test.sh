#!/usr/bin/env bash
# Everything: build the wasm module, the C++ suites (native, sanitizers, wasm,
# fuzz), the JS suites (Jest), the browser end-to-end test, then the consumer
# suite (the packed package in real web apps). Each step's
# output is shown and kept in build/test-logs/; the last line sums them up.
set -euo pipefail
cd "$(dirname "$0")/.."
logs=build/test-logs
rm -rf "$logs" && mkdir -p "$logs"

bash scripts/build.sh
bash scripts/test-cpp.sh 2>&1 | tee "$logs/cpp.log"
echo "== JS (Jest, Node, through the public API)"
NODE_OPTIONS=--experimental-vm-modules npx jest --json --outputFile="$logs/jest.json" "$@"
echo "== Browser end-to-end (the demo in headless Chromium)"
node tests/e2e/demo.test.mjs 2>&1 | tee "$logs/e2e.log"
echo "== Consumers (the packed package in Vite 5-8, webpack, Rollup, esbuild, Parcel, an import map)"
# Its failures are counted by the summary below rather than stopping the script here.
node tests/consumers/run.mjs 2>&1 | tee "$logs/consumers.log" || true
node scripts/test-summary.mjs "$logs"
