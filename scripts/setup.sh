#!/usr/bin/env bash
# Installs what a fresh machine lacks for `npm start` or `npm test`; both run it first, so a
# new clone needs no other command. Idempotent: with nothing to install it prints nothing and
# runs neither apt-get nor npm (one dpkg-query; about 0.1 s).
#   bash scripts/setup.sh start       the demo: Emscripten, CMake, Fashion-MNIST (no npm packages)
#   bash scripts/setup.sh [test]      everything: also the C++ test tools, the browsers (Chromium,
#                                     Firefox ESR, WebKitGTK), then npm ci
#                                     when node_modules is missing or older than package-lock.json
#   bash scripts/setup.sh give-back   run as root in another user's clone: hands the files root
#                                     made there (node_modules, build outputs) back to that user
# Debian as root: apt-get installs what is missing. Debian without root: prints the one command
# that installs it. Elsewhere: says what to install (README, "Elsewhere").
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-test}

# Root working in a clone owned by someone else (sudo npm test) must not leave root-owned files
# there: chown what root created, outside .git, back to the owner of the clone.
give_back() {
  [ "$(id -u)" -eq 0 ] || return 0
  local owner
  owner=$(stat -c %u:%g . 2>/dev/null) || return 0
  [ "${owner%%:*}" != 0 ] || return 0
  find . -path ./.git -prune -o -uid 0 -print0 | xargs -0 -r chown -h "$owner"
}

# What each command needs, as Debian packages.
START_PACKAGES=(
  emscripten            # em++ 3.1.6, clang-14, lld, binaryen (the wasm build)
  cmake make            # drive the build
  dataset-fashion-mnist # the data the demo and the tests train on
)
TEST_PACKAGES=(
  "${START_PACKAGES[@]}"
  g++                   # native build of the core and its tests
  googletest libgtest-dev   # GoogleTest sources (wasm tests) and native library
  libbenchmark-dev      # Google Benchmark (npm run bench:native)
  clang libclang-rt-14-dev  # libFuzzer and sanitizers for the C++ core
  wabt                  # wasm-objdump: the build counts the module's SIMD instructions
  chromium              # the browser tests' engines: Chromium (playwright-core),
  firefox-esr           #   Firefox ESR (puppeteer-core over WebDriver BiDi)
  webkit2gtk-driver     #   and WebKitGTK (WebKitWebDriver + MiniBrowser, from libwebkit2gtk-4.1-0)
  xvfb xauth            #   MiniBrowser has no headless mode: it runs in a virtual X display
  python3-torch python3-onnx  # interop: PyTorch fixtures, DDP script, onnx.checker
  python3-torchvision   # resnet18 and mobilenet_v2: the torchvision parity fixtures and bench
)

case $mode in
  start) wanted=("${START_PACKAGES[@]}") ;;
  test) wanted=("${TEST_PACKAGES[@]}") ;;
  give-back) give_back; exit 0 ;;
  *) echo "usage: bash scripts/setup.sh [start|test|give-back]" >&2; exit 2 ;;
esac

if [ -r /etc/debian_version ] && command -v dpkg-query >/dev/null; then
  # An em++ already on PATH (emsdk) and a FASHION_MNIST_DIR of one's own replace their packages.
  packages=()
  for p in "${wanted[@]}"; do
    case $p in
      emscripten) command -v em++ >/dev/null && continue ;;
      dataset-fashion-mnist) [ -n "${FASHION_MNIST_DIR:-}" ] && continue ;;
    esac
    packages+=("$p")
  done
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${packages[@]}" 2>/dev/null || true)
  missing=()
  for p in "${packages[@]}"; do
    [[ $'\n'$installed$'\n' == *$'\n'"$p ii "$'\n'* ]] || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "setup: npm $mode needs these Debian packages: ${missing[*]}" >&2
      echo "setup: install them, then run npm $mode again:" >&2
      install="apt-get install -y --no-install-recommends ${missing[*]}"
      if command -v sudo >/dev/null; then
        echo "  sudo apt-get update && sudo $install" >&2
      else
        echo "  su -c 'apt-get update && $install'" >&2
      fi
      exit 1
    fi
    echo "setup: installing Debian packages (the first time takes a few minutes): ${missing[*]}"
    log=$(mktemp)
    if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
      tail -n 30 "$log" >&2
      echo "setup: apt-get failed (full log: $log)" >&2
      exit 1
    fi
    rm -f "$log"
  fi
else
  command -v em++ >/dev/null || {
    echo "setup: em++ not found. Install emsdk (https://emscripten.org/docs/getting_started/downloads.html)" >&2
    echo "       and activate it so em++ is on PATH; see README.md, \"Elsewhere\", for the rest." >&2
    exit 1
  }
  data=${FASHION_MNIST_DIR:-/usr/share/datasets/fashion-mnist}
  [ -f "$data/t10k-labels-idx1-ubyte.gz" ] || {
    echo "setup: Fashion-MNIST not found in $data: put its four IDX .gz files in a folder and set FASHION_MNIST_DIR to it" >&2
    exit 1
  }
fi

command -v node >/dev/null || { echo "setup: Node.js >= 18 is required" >&2; exit 1; }
node_version=$(node --version)
node_major=${node_version#v}
node_major=${node_major%%.*}
[ "$node_major" -ge 18 ] || { echo "setup: Node.js >= 18 is required, found $node_version" >&2; exit 1; }

# The npm packages from the lockfile (the tests need them; the demo does not). npm writes
# node_modules/.package-lock.json last, so a missing or older one means a missing, partial or
# stale install.
if [ "$mode" = test ] &&
  { [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; }; then
  echo "setup: npm ci (the npm packages of package-lock.json)"
  # onnxruntime-node's install script downloads extras this project does not use.
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund
  give_back
fi
