#!/usr/bin/env bash
# Creates .venv (if missing) and installs the provider with its test tools, pinned by constraints.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "pip==26.3"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[s3,test,celery,openlineage]"
  touch "$stamp"
fi
# The editable install leaves build metadata in the checkout. With the checkout on sys.path (pytest, the
# test stacks) Python would then see the provider twice, and Airflow would log "Plugin 'resume' already
# registered" and list it as a plugin import error.
rm -rf airflow_resume_provider.egg-info
