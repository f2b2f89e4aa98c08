#!/usr/bin/env bash
# Make sure `python -m venv` works (Debian splits venv into python3-venv).
set -euo pipefail
python=${1:-python3}
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c "import ensurepip" >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi
