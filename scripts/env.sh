# Sourced by the build scripts: finds em++ and works around Debian's packaging.
# Debian's emcc needs the acorn module from /usr/share/nodejs, where the
# NodeSource node does not look.
if [ -d /usr/share/nodejs ]; then
  export NODE_PATH="/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}"
fi
if ! command -v em++ >/dev/null; then
  echo "em++ not found: run 'npm run setup' (Debian) or activate emsdk (README.md, \"Elsewhere\")" >&2
  exit 1
fi
