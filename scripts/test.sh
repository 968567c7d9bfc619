#!/usr/bin/env bash
# Lint, type-check and run every test suite: unit, integration (SQLite and PostgreSQL), end-to-end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check .
ruff format --check .
mypy
pytest -p no:cacheprovider tests/unit tests/integration tests/e2e
RESUME_TEST_DB=postgres pytest -p no:cacheprovider tests/integration tests/e2e
