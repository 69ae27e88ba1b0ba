#!/usr/bin/env bash
# npm run fixtures: regenerates the PyTorch reference fixtures (tests/fixtures/) with a Python
# that has torch: $BNWASM_PYTHON if set; else /usr/bin/python3 when it has torch (Debian's
# python3-torch installs only for the system Python, which another python3 on PATH may hide);
# else the python3 first on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${BNWASM_PYTHON:-}
if [ -z "$python" ]; then
  python=python3
  if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("torch") is None)' 2>/dev/null; then
    python=/usr/bin/python3
  fi
fi
exec "$python" scripts/make_fixtures.py "$@"
