"""Every ``[resume]`` option, read in one place. Defaults live in ``get_provider_info.CONFIG_OPTIONS``."""

from __future__ import annotations

import math

from airflow_resume_provider.get_provider_info import CONFIG_OPTIONS, SECTION


def _get(option: str) -> str:
    from airflow.configuration import conf

    return conf.get(SECTION, option, fallback=CONFIG_OPTIONS[option]["default"]) or ""


def state_folder() -> str:
    """``[resume] state_folder``: explicit folder URL for state files, or "" to store beside the logs."""
    return _get("state_folder").strip()


def state_conn_id() -> str:
    """``[resume] state_conn_id``: connection for an object-storage state folder, or ""."""
    return _get("state_conn_id").strip()


def signing_key() -> bytes:
    """
    ``[resume] signing_key`` as bytes; empty means plain SHA-256 digests. Surrounding whitespace is
    dropped, so a key read from a file or a command (``signing_key_cmd``, with its trailing newline) is
    the same key as one set plainly on another component.
    """
    return _get("signing_key").strip().encode()


def marker_secret() -> bytes:
    """
    The secret behind the provider's signed run records: ``[resume] signing_key``, else
    ``[api_auth] jwt_secret`` (which every component of one deployment shares). Empty when neither is set.
    """
    key = signing_key()
    if key:
        return key
    from airflow.configuration import conf

    return (conf.get("api_auth", "jwt_secret", fallback="") or "").encode()


def allowed_run_id_pattern() -> str:
    """``[scheduler] allowed_run_id_pattern``: the run ids Airflow accepts for manual runs."""
    from airflow.configuration import conf

    return (conf.get("scheduler", "allowed_run_id_pattern", fallback="") or "").strip()


def _seconds(option: str) -> float:
    raw = _get(option)
    try:
        value = float(raw)
    except ValueError as err:
        raise ValueError(f"[resume] {option} must be a number of seconds, got {raw!r}") from err
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"[resume] {option} must be a finite number of seconds greater than 0, got {raw!r}")
    return value


def capture_timeout() -> float:
    """``[resume] capture_timeout`` in seconds (> 0)."""
    return _seconds("capture_timeout")


def retry_sweep_interval() -> float:
    """``[resume] retry_sweep_interval`` in seconds (> 0)."""
    return _seconds("retry_sweep_interval")


def retry_sweep_lookback() -> float:
    """``[resume] retry_sweep_lookback`` in seconds (> 0)."""
    return _seconds("retry_sweep_lookback")


def retention_days() -> int:
    """``[resume] retention_days``: days a finished run's state is kept after the run ended; 0: forever."""
    raw = _get("retention_days").strip()
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(
            f"[resume] retention_days must be a whole number of days, 0 or more (0 keeps state forever), "
            f"got {raw!r}"
        )
    return value


def metrics_without_tags() -> bool:
    """
    Whether Airflow's metrics go to plain StatsD, which drops tags: ``[metrics] statsd_on`` without
    ``statsd_datadog_enabled`` or ``statsd_influxdb_enabled``. Tag values are then appended to the name.
    """
    from airflow.configuration import conf

    return (
        conf.getboolean("metrics", "statsd_on", fallback=False)
        and not conf.getboolean("metrics", "statsd_datadog_enabled", fallback=False)
        and not conf.getboolean("metrics", "statsd_influxdb_enabled", fallback=False)
    )


def remote_log_conn_id() -> str:
    from airflow.configuration import conf

    return conf.get("logging", "remote_log_conn_id", fallback="") or ""


def remote_base_log_folder() -> str:
    """``[logging] remote_base_log_folder`` when remote logging is on, else ""."""
    from airflow.configuration import conf

    if not conf.getboolean("logging", "remote_logging", fallback=False):
        return ""
    return conf.get("logging", "remote_base_log_folder", fallback="") or ""


def local_log_folder() -> str:
    from airflow.configuration import conf

    return conf.get("logging", "base_log_folder", fallback="") or ""


def logging_folder() -> tuple[str, str]:
    """The task log folder and its connection id: remote when remote logging is on, else local."""
    remote = remote_base_log_folder()
    if remote:
        return remote, remote_log_conn_id()
    return local_log_folder(), ""


def log_filename_template() -> str:
    from airflow.configuration import conf

    return conf.get("logging", "log_filename_template")
