#!/usr/bin/env bash
# Sets everything up (.venv, pinned packages) and runs the quickstart: fail -> resume -> success.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/quickstart.py "$@"
