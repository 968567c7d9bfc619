"""
Which Airflow releases the provider runs on: the one place that decides.

On an Airflow older than the floor the provider stays inert (no listener, no routes or views, no DAG
policy, no CLI commands) and says so once per process, instead of failing in odd places.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

#: The lowest Airflow release the provider runs on: pyproject.toml requires the same (``apache-airflow>=``).
MIN_AIRFLOW_VERSION = "3.2"


def version_tuple(version: str) -> tuple[int, int, int]:
    """``(major, minor, micro)`` of a version; a pre-release or dev build counts as its release."""
    from packaging.version import Version

    parsed = Version(version)
    return parsed.major, parsed.minor, parsed.micro


def unsupported_reason(installed: str, required: str = MIN_AIRFLOW_VERSION) -> str | None:
    """Why the provider does not run on Airflow ``installed``, or None when it does."""
    from packaging.version import InvalidVersion

    try:
        if version_tuple(installed) >= version_tuple(required):
            return None
        problem = f"Airflow {installed} is installed"
    except InvalidVersion:
        problem = f"the installed Airflow's version {installed!r} cannot be read"
    return (
        f"airflow-resume-provider needs apache-airflow>={required}, but {problem}: the provider is "
        f"disabled (no state capture, no Resume page or API, no DAG policy, no CLI). Upgrade Airflow to "
        f"{required} or later to use it."
    )


def installed_airflow_version() -> str:
    """
    The installed Airflow's version, from its distribution's metadata: importing Airflow to ask would
    load the provider's policy module while this package may still be importing.
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("apache-airflow-core")  # Airflow 3: the distribution that holds the code
    except PackageNotFoundError:
        return version("apache-airflow")  # Airflow 2


@functools.cache
def airflow_supported() -> bool:
    """Whether the installed Airflow is at or above the floor; logs why not, once per process."""
    reason = unsupported_reason(installed_airflow_version())
    if reason is not None:
        log.warning("%s", reason)
    return reason is None


def airflow_at_least(version: str) -> bool:
    """Whether the installed Airflow is ``version`` or later (pre-releases count as their release)."""
    return version_tuple(installed_airflow_version()) >= version_tuple(version)
