#!/usr/bin/env bash
# What CI runs (`.ci/run`): set-up, lint, type-check, the package check and every test suite, with each
# behaviour proven at least once end to end. Two lanes run side by side on the 2 cores, each with its
# own port range (RESUME_TEST_PORTS) and its own temporary Airflow homes and databases:
#
#   lane postgres: the end-to-end suite and the browser tests on one shared stack (Airflow 3.3,
#                  PostgreSQL, state on S3 served by moto_server), then the Celery cluster suite and
#                  the quickstart (the README's first command, on SQLite)
#   lane sqlite:   the quick tier (unit + integration on SQLite), the integration suite on PostgreSQL,
#                  then Airflow 3.2 (.venv-3.2): the integration suite and the `release` end-to-end set
#                  on SQLite with local state
#
# It ends with a table of the parts and their times, and the 25 slowest tests of all parts. Each
# part's output is in .test-logs/<part>.log (shown in full when the part fails).
set -euo pipefail
cd "$(dirname "$0")/.."
logs=$PWD/.test-logs
rm -rf "$logs"
mkdir -p "$logs"
: >"$logs/times"

# part NAME COMMAND...: runs the command with its output in .test-logs/NAME.log, records its time.
part() {
  local name=$1 started=$SECONDS status=0
  shift
  echo "[$(date +%T)] start  $name"
  "$@" >"$logs/$name.log" 2>&1 || status=$?
  echo "$name $((SECONDS - started)) $status" >>"$logs/times"
  if [ "$status" -eq 0 ]; then
    echo "[$(date +%T)] passed $name ($((SECONDS - started)) s)"
  else
    echo "[$(date +%T)] FAILED $name ($((SECONDS - started)) s): .test-logs/$name.log follows" >&2
    cat "$logs/$name.log" >&2
  fi
  return "$status"
}

# pytest_part NAME PYTHON [ENV=VALUE...] -- PYTEST-ARGS...: a pytest run with its durations and a
# JUnit report (for the slowest-tests list at the end).
pytest_part() {
  local name=$1 python=$2
  shift 2
  local envs=()
  while [ "$1" != "--" ]; do
    envs+=("$1")
    shift
  done
  shift
  part "$name" env "${envs[@]}" "$python" -m pytest -p no:cacheprovider --durations=25 \
    --junitxml="$logs/$name.xml" "$@"
}

install_chromium() {
  # The browser tests drive Debian's chromium (no browser download at run time).
  command -v chromium >/dev/null 2>&1 && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
}

lint() {
  .venv/bin/ruff check .
  .venv/bin/ruff format --check .
  .venv/bin/mypy
}

lane_postgres() {
  export RESUME_TEST_PORTS=20000-24999
  local status=0
  pytest_part e2e-postgres .venv/bin/python RESUME_TEST_DB=postgres -- \
    -m "not cluster" tests/e2e tests/browser || status=1
  pytest_part cluster .venv/bin/python RESUME_TEST_DB=postgres -- -m cluster tests/e2e || status=1
  part quickstart bash scripts/quickstart.sh || status=1
  return $status
}

lane_sqlite() {
  export RESUME_TEST_PORTS=25000-29999
  local status=0
  pytest_part quick-tier .venv/bin/python RESUME_TEST_DB=sqlite -- || status=1
  pytest_part integration-postgres .venv/bin/python RESUME_TEST_DB=postgres -- tests/integration || status=1
  pytest_part airflow-3.2-integration .venv-3.2/bin/python RESUME_TEST_DB=sqlite PATH="$PWD/.venv-3.2/bin:$PATH" -- \
    tests/integration || status=1
  pytest_part airflow-3.2-release-e2e .venv-3.2/bin/python RESUME_TEST_DB=sqlite PATH="$PWD/.venv-3.2/bin:$PATH" -- \
    -m release tests/e2e || status=1
  return $status
}

status=0
started=$SECONDS
# Set-up: the main .venv (Airflow 3.3) while Debian's chromium installs.
install_chromium >"$logs/chromium.log" 2>&1 &
chromium=$!
part setup bash scripts/setup.sh || exit 1
# Lint and the package check while the Airflow 3.2 virtualenv installs.
part install-airflow-3.2 bash scripts/test_matrix.sh --install-only 3.2 &
venv32=$!
part lint lint || status=1
part package bash scripts/check_package.sh || status=1
wait $venv32 || exit 1
if ! wait $chromium; then
  cat "$logs/chromium.log" >&2
  exit 1
fi

lane_postgres &
postgres=$!
lane_sqlite || status=1
wait $postgres || status=1

echo
echo "=== scripts/test.sh: $((SECONDS - started)) s in all"
.venv/bin/python tools/test_report.py "$logs"
exit $status
