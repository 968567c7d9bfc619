"""Which Airflow releases the provider runs on, and what it does below its floor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from airflow_resume_provider.compat import MIN_AIRFLOW_VERSION, unsupported_reason

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("installed", ["3.2.0", "3.2.2", "3.3.2", "3.10.0", "4.0.0", "3.2.0rc1"])
def test_releases_from_the_floor_up_are_supported(installed):
    assert unsupported_reason(installed, required="3.2") is None


@pytest.mark.parametrize("installed", ["3.1.8", "3.1.0", "3.0.6", "2.11.0", "2.10.5"])
def test_an_older_release_is_refused_naming_both_versions(installed):
    reason = unsupported_reason(installed, required="3.2")
    assert reason is not None
    assert f"Airflow {installed} is installed" in reason
    assert "apache-airflow>=3.2" in reason
    assert "the provider is disabled" in reason


def test_a_pre_release_counts_as_its_release():
    assert unsupported_reason("3.2.0rc1", required="3.2") is None
    assert unsupported_reason("3.2.0.dev0", required="3.2") is None
    assert unsupported_reason("3.1.9", required="3.2") is not None


def test_an_unreadable_version_disables_the_provider_and_says_so():
    reason = unsupported_reason("not-a-version", required="3.2")
    assert reason is not None
    assert "'not-a-version' cannot be read" in reason


def test_the_floor_is_the_one_the_package_requires():
    (airflow,) = [
        req
        for req in map(Requirement, requires("airflow-resume-provider") or [])
        if req.name == "apache-airflow" and not req.marker
    ]
    floors = [Version(spec.version) for spec in airflow.specifier if spec.operator == ">="]
    assert floors == [Version(MIN_AIRFLOW_VERSION)]


def test_below_the_floor_the_provider_registers_nothing_and_warns_once(tmp_path):
    # An older Airflow as the package metadata reports it: a distribution record found first on the
    # path. Then load everything a process would load (plugin, policy, CLI) and use it twice.
    record = tmp_path / "apache_airflow_core-3.0.6.dist-info"
    record.mkdir()
    (record / "METADATA").write_text("Metadata-Version: 2.1\nName: apache-airflow-core\nVersion: 3.0.6\n")
    code = """
import json, logging
records = []
class Keep(logging.Handler):
    def emit(self, record):
        records.append(record.getMessage())
logging.getLogger("airflow_resume_provider").addHandler(Keep())
from airflow.sdk import DAG
from airflow_resume_provider import cli, plugin, policy

dag = DAG("nightly", schedule=None, params={"resume": {"retries": 2}})
for _ in range(2):
    p = plugin.ResumePlugin()
    policy.dag_policy(dag)
    result = {
        "listeners": len(p.listeners), "fastapi_apps": p.fastapi_apps, "external_views": p.external_views,
        "cli": cli.get_cli_commands(), "tags": sorted(dag.tags or ()),
    }
print(json.dumps({"result": result, "warnings": records}))
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["result"] == {"listeners": 0, "fastapi_apps": [], "external_views": [], "cli": [], "tags": []}
    assert len(out["warnings"]) == 1
    assert out["warnings"][0].startswith(
        f"airflow-resume-provider needs apache-airflow>={MIN_AIRFLOW_VERSION}, but Airflow 3.0.6 is installed"
    )


def test_at_the_installed_release_the_provider_registers_its_parts():
    from airflow_resume_provider import cli, plugin
    from airflow_resume_provider.compat import airflow_supported

    assert airflow_supported()
    p = plugin.ResumePlugin()
    assert len(p.listeners) == 1
    assert [view["url_route"] for view in p.external_views][:1] == ["resume"]
    assert [group.name for group in cli.get_cli_commands()] == ["resume"]
