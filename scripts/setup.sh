#!/usr/bin/env bash
# Installs what a fresh machine lacks to build and test bnwasm. Idempotent:
# safe to run again; it only installs what is missing.
#   Debian (as root): apt-get installs the toolchain and data; npm ci installs
#   the npm packages from the lockfile.
#   Elsewhere: says what to install, then installs the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  emscripten            # em++ 3.1.6, clang-14, lld, binaryen (wasm build)
  cmake g++ make        # native build of the core and its tests
  googletest libgtest-dev   # GoogleTest sources (wasm tests) and native library
  libbenchmark-dev      # Google Benchmark (native kernel benchmarks)
  clang libclang-rt-14-dev  # libFuzzer and sanitizers for the C++ core
  wabt                  # wasm-objdump: checks the module really uses SIMD
  dataset-fashion-mnist # the data the tests and the demo train on
  chromium              # headless browser for the end-to-end tests
  python3-torch python3-onnx  # interop: PyTorch fixtures, DDP script, onnx.checker
)

missing=()
if [ -r /etc/debian_version ] && command -v dpkg-query >/dev/null; then
  for p in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
      echo "setup: installing Debian packages: ${missing[*]}"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      echo "setup: missing Debian packages: ${missing[*]}" >&2
      echo "setup: run as root: apt-get install ${missing[*]}" >&2
      exit 1
    fi
  fi
else
  command -v em++ >/dev/null || {
    echo "setup: em++ not found. Install emsdk (https://emscripten.org/docs/getting_started/downloads.html)," >&2
    echo "       activate it so em++ is on PATH, and install CMake, a C++17 compiler and GoogleTest." >&2
    echo "       Fashion-MNIST: put the four IDX .gz files in a folder and set FASHION_MNIST_DIR." >&2
    exit 1
  }
fi

command -v node >/dev/null || { echo "setup: Node.js >= 18 is required" >&2; exit 1; }
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
  { echo "setup: Node.js >= 18 is required, found $(node --version)" >&2; exit 1; }

# npm packages from the lockfile; skipped when node_modules already matches it.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi
echo "setup: done"
