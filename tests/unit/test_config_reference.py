"""docs/configuration.md: generated from the provider's ``[resume]`` definitions, never edited by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from airflow_resume_provider.get_provider_info import CONFIG_OPTIONS
from tools import config_reference

REPO = Path(__file__).resolve().parents[2]


def _generator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools.config_reference", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_committed_reference_matches_the_config_definitions():
    committed = config_reference.REFERENCE.read_text(encoding="utf-8")
    assert committed == config_reference.render(), (
        "docs/configuration.md is out of date with CONFIG_OPTIONS in "
        "airflow_resume_provider/get_provider_info.py: run `python -m tools.config_reference`"
    )


def test_reference_documents_every_option_as_airflow_describes_it():
    text = config_reference.render()
    for name, option in CONFIG_OPTIONS.items():
        assert f"\n## `{name}`\n" in text, name
        # The same words `airflow config list --include-descriptions` shows, with Markdown literals.
        assert option["description"].strip().replace("``", "`") in text, name
        assert f"- Environment variable: `AIRFLOW__RESUME__{name.upper()}`" in text, name
        default = f"`{option['default']}`" if option["default"] else "(empty)"
        assert f"| [`{name}`](#{name}) | {option['type']} | {default} |" in text, name
    assert "`AIRFLOW__RESUME__SIGNING_KEY_CMD`" in text
    assert text.count("- Sensitive:") == sum(bool(o.get("sensitive")) for o in CONFIG_OPTIONS.values())


def test_check_fails_on_a_missing_or_stale_file_and_passes_once_written(tmp_path):
    target = tmp_path / "configuration.md"
    missing = _generator("--check", "--output", str(target))
    assert missing.returncode == 1
    assert f"{target} is missing" in missing.stderr
    assert "python -m tools.config_reference" in missing.stderr

    target.write_text(config_reference.render().replace("30", "31"), encoding="utf-8")
    stale = _generator("--check", "--output", str(target))
    assert stale.returncode == 1
    assert f"{target} is out of date" in stale.stderr

    written = _generator("--output", str(target))
    assert written.returncode == 0, written.stderr
    assert target.read_text(encoding="utf-8") == config_reference.render()
    assert _generator("--check", "--output", str(target)).returncode == 0
