"""The package's entry modules stay cheap: the build reads the version without importing Airflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_importing_the_package_and_its_provider_info_loads_no_airflow():
    # pyproject.toml reads airflow_resume_provider.__version__, and Airflow's providers manager calls
    # get_provider_info in every process: neither may pull in Airflow or pydantic.
    code = (
        "import sys, airflow_resume_provider, airflow_resume_provider.get_provider_info; "
        "print(sorted(m for m in sys.modules if m.partition('.')[0] in ('airflow', 'pydantic')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
