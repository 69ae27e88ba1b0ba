#!/usr/bin/env bash
# Debian 12's own Node 18 (the nodejs package, 18.20) beside the machine's Node, without
# installing it: downloads the .debs with apt-get, unpacks them into build/debian-node18/ and
# prints the path of a wrapper to run it with. For the Node consumer suite:
#
#   BNWASM_CONSUMER_NODES=$(bash tests/consumers/debian-node18.sh) npm test
#
# Debian's node loads cjs-module-lexer and undici from /usr/share/nodejs; the wrapper lays the
# unpacked copies over that folder in a private mount namespace (unshare + overlay, so root),
# leaving the machine's /usr/share/nodejs as it is. Debian 12 (bookworm) only.
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=$PWD/build/debian-node18
wrapper=$dir/node
if [ ! -x "$wrapper" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "debian-node18: needs root (unshare -m, mount)" >&2; exit 2; }
  version=$(apt-cache madison nodejs | awk '$3 ~ /^18\./ {print $3; exit}')
  [ -n "$version" ] || { echo "debian-node18: apt knows no nodejs 18 (Debian 12 only; apt-get update?)" >&2; exit 2; }
  rm -rf "$dir" && mkdir -p "$dir/debs"
  (cd "$dir/debs" && apt-get download -q "nodejs=$version" "libnode108=$version" node-cjs-module-lexer node-undici >/dev/null 2>&1) ||
    { echo "debian-node18: apt-get download failed" >&2; exit 1; }
  for deb in "$dir"/debs/*.deb; do dpkg -x "$deb" "$dir/root"; done
  cat >"$wrapper" <<EOF
#!/bin/sh
# Debian 12's nodejs $version, unpacked by tests/consumers/debian-node18.sh.
r=$dir/root
exec unshare -m sh -c 'mount -t overlay overlay -o lowerdir='\$r'/usr/share/nodejs:/usr/share/nodejs /usr/share/nodejs && LD_LIBRARY_PATH='\$r'/usr/lib/x86_64-linux-gnu exec '\$r'/usr/bin/node "\$@"' node "\$@"
EOF
  chmod +x "$wrapper"
  "$wrapper" -e 'process.versions.node.startsWith("18.") || process.exit(1)' ||
    { echo "debian-node18: the unpacked node does not run" >&2; exit 1; }
fi
echo "$wrapper"
