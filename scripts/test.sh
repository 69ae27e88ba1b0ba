#!/usr/bin/env bash
# Everything: install what is missing (scripts/setup.sh test: Debian packages,
# then npm ci), build the wasm module, the C++ suites (native, sanitizers, wasm,
# fuzz), the JS suites (Jest), the browser end-to-end tests in Chromium, Firefox ESR and WebKitGTK
# (BNWASM_BROWSERS=... picks some), then the packed package in real
# web apps (tests/consumers/run.mjs) and Node apps (tests/consumers/node-consumers.mjs;
# BNWASM_CONSUMER_NODES adds Node binaries). Each step's
# output is shown and kept in build/test-logs/; the last line sums them up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
trap 'bash scripts/setup.sh give-back' EXIT
logs=build/test-logs
rm -rf "$logs" && mkdir -p "$logs"

bash scripts/build.sh
bash scripts/test-cpp.sh 2>&1 | tee "$logs/cpp.log"
echo "== JS (Jest, Node, through the public API)"
NODE_OPTIONS=--experimental-vm-modules npx jest --json --outputFile="$logs/jest.json" "$@"
echo "== Browser end-to-end in Chromium, Firefox ESR and WebKitGTK, one engine at a time (the harness's own check, the demo, ONNX export in onnxruntime-web and importONNX in the page)"
timeout --kill-after=30 1800 node --test --test-concurrency=1 tests/browsers/harness.test.mjs tests/e2e/demo.test.mjs tests/e2e/interop.test.mjs 2>&1 | tee "$logs/e2e.log" || true
# The browser and consumer steps' failures are counted by the summary below rather than stopping
# the script, so one failed page does not hide the results of the others.
# Each is bounded (timeout): a process left hanging is a failure in minutes, not a stalled CI.
echo "== Consumers (the packed package in Vite 5-8, webpack, Rollup, esbuild, Parcel, an import map; each page in Chromium, Firefox ESR and WebKitGTK, plain and cross-origin isolated)"
timeout --kill-after=30 1800 node tests/consumers/run.mjs 2>&1 | tee "$logs/consumers.log" || true
echo "== Node consumers (the packed package in fresh Node, Jest, Vitest, node --test, TypeScript apps)"
timeout --kill-after=30 1200 node tests/consumers/node-consumers.mjs --json "$logs/consumers-node.json" 2>&1 | tee "$logs/consumers-node.log" || true
node scripts/test-summary.mjs "$logs"
