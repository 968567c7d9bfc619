"""The facts about the machine and versions that benchmark results are recorded with."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from typing import Any


def machine_facts(metadata_db: str, executor: str | None = None) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python": platform.python_version(),
        "airflow": importlib.metadata.version("apache-airflow"),
        "provider": importlib.metadata.version("airflow-resume-provider"),
        "platform": platform.platform(),
        "metadata_db": metadata_db,
    }
    if executor:
        facts["executor"] = executor
    return facts
