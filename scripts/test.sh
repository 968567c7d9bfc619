#!/usr/bin/env bash
# Lint, type-check and run every test suite: unit, integration and end-to-end (SQLite, then PostgreSQL),
# the browser tests, then the integration and end-to-end suites on the older supported Airflow releases.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  # The browser tests drive Debian's chromium (no browser download at run time).
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy
bash scripts/check_package.sh
# The cluster suite (tests/e2e/test_cluster_e2e.py) always uses PostgreSQL of its own: it runs once,
# in the PostgreSQL pass.
pytest -p no:cacheprovider tests/unit tests/integration tests/e2e tests/browser \
  --ignore=tests/e2e/test_cluster_e2e.py
RESUME_TEST_DB=postgres pytest -p no:cacheprovider tests/integration tests/e2e
# The older supported releases (today 3.2), each in its own virtualenv with its own pins.
bash scripts/test_matrix.sh
