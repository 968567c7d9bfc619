#!/usr/bin/env bash
# Runs the integration suite and the `release` set of end-to-end tests (SQLite, LocalExecutor, local
# state) on older Airflow releases, one release at a time, each in its own virtualenv .venv-<release>
# pinned by constraints/airflow-<release>.txt (the main .venv and constraints.txt hold the newest
# release). scripts/test.sh runs the same two suites as parts of its own.
#
#   bash scripts/test_matrix.sh                  # every release that has a pins file (3.2)
#   bash scripts/test_matrix.sh 3.2              # one release
#   bash scripts/test_matrix.sh --install-only 3.2   # only create or update .venv-3.2
#
# Extra pytest arguments go after "--", e.g. `bash scripts/test_matrix.sh 3.2 -- -x tests/e2e/test_page_e2e.py`
# (given paths replace the default suites; the whole end-to-end suite also runs there this way).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

install_only=false
if [ "${1:-}" = "--install-only" ]; then
  install_only=true
  shift
fi
releases=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  releases+=("$1")
  shift
done
[ "${1:-}" = "--" ] && shift
if [ ${#releases[@]} -eq 0 ]; then
  for pins in constraints/airflow-*.txt; do
    release=${pins#constraints/airflow-}
    releases+=("${release%.txt}")
  done
fi
pytest_args=("$@")
given_paths=false
if printf '%s\n' "${pytest_args[@]}" | grep -q '^tests/'; then
  given_paths=true
fi
for release in "${releases[@]}"; do
  if [ ! -f "constraints/airflow-$release.txt" ]; then
    echo "No pins for Airflow $release: constraints/airflow-$release.txt is missing." >&2
    exit 2
  fi
done

# Creates (or reuses) .venv-<release>; reinstalls when pyproject.toml or the release's pins changed.
setup_venv() {
  local release=$1 venv=".venv-$1" pins="constraints/airflow-$1.txt"
  if [ ! -x "$venv/bin/python" ]; then
    "$PYTHON" -m venv "$venv"
  fi
  local stamp
  stamp="$venv/.installed-$(cat pyproject.toml "$pins" | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "Installing Airflow $release into $venv (pinned by $pins)"
    if ! { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pip==26.3" &&
      "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c "$pins" -e ".[s3,test]"; } \
      >"$venv/install.log" 2>&1; then
      cat "$venv/install.log" >&2
      return 1
    fi
    rm -f "$venv"/.installed-*
    touch "$stamp"
  fi
  rm -rf airflow_resume_provider.egg-info # as in scripts/setup.sh
}

# The test tools start the airflow commands of the interpreter that runs pytest (sys.executable).
run_pytest() {
  PATH="$PWD/.venv-$release/bin:$PATH" RESUME_TEST_DB=sqlite \
    ".venv-$release/bin/python" -m pytest -p no:cacheprovider "$@"
}

summary=()
status=0
for release in "${releases[@]}"; do
  setup_venv "$release"
  $install_only && continue
  installed=$(".venv-$release/bin/python" -c 'from importlib.metadata import version; print(version("apache-airflow"))')
  echo "=== Airflow $installed (.venv-$release)"
  started=$SECONDS
  if $given_paths; then
    # The cluster suite (CeleryExecutor, PostgreSQL) is not part of the matrix (SQLite, LocalExecutor).
    run_pytest -m "not cluster" "${pytest_args[@]}" && result=passed || result=FAILED
  elif run_pytest "${pytest_args[@]}" tests/integration && run_pytest "${pytest_args[@]}" -m release tests/e2e; then
    result=passed
  else
    result=FAILED
  fi
  [ "$result" = passed ] || status=1
  summary+=("Airflow $installed: $result in $((SECONDS - started)) s")
done
$install_only && exit 0
echo "=== Matrix (SQLite, LocalExecutor, local state)"
printf '%s\n' "${summary[@]}"
exit $status
