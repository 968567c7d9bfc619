"""
Every configuration option the provider reads, in one place; defaults live in ``get_provider_info``.

The ``[resume]`` options are read as text on each use (so a changed environment is seen) and checked
by one cached parser, so a value is checked, and a bad one logged, once per process. A bad value never
raises where it is used:

* an option that protects data or security (``signing_key``, ``state_folder``, ``state_conn_id``)
  makes the features that need it refuse: its accessor raises :class:`ProviderConfigError` naming the
  option and what it accepts;
* any other option falls back to its default; :func:`warnings` says so (the verdict lists it).

``airflow resume check`` reports every problem (:func:`problems`), and each component logs them when
it starts (:func:`log_problems`).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_resume_provider.exceptions import ProviderConfigError
from airflow_resume_provider.get_provider_info import CONFIG_OPTIONS, SECTION

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

#: The longest retention the provider accepts (a century): later dates do not fit Airflow's datetimes.
MAX_RETENTION_DAYS = 36500
#: How a value Airflow could not read (a failing ``_cmd`` or ``_secret``) is shown.
UNREADABLE = "(unreadable)"
#: Options whose bad value makes the features that need them refuse instead of falling back.
PROTECTED_OPTIONS = ("state_folder", "state_conn_id", "signing_key")


@dataclass(frozen=True)
class Problem:
    """A ``[resume]`` option whose value the provider cannot use."""

    option: str
    value: str
    accepted: str

    @property
    def protected(self) -> bool:
        return self.option in PROTECTED_OPTIONS

    @property
    def option_text(self) -> str:
        """The option, its value and what it accepts, without what the provider does about it."""
        return f"[{SECTION}] {self.option} = {self.value!r} is not valid: {self.accepted}"

    def __str__(self) -> str:
        head = self.option_text
        if self.protected:
            return f"{head}; the features that need it refuse until it is fixed"
        return f"{head}; the default {CONFIG_OPTIONS[self.option]['default']} is used instead"


class _Invalid(ValueError):
    """A value an option does not accept; the message says what it accepts."""


def _read(option: str) -> str:
    """The option's text; raises :class:`_Invalid` when Airflow cannot read it (a failing ``_cmd``)."""
    from airflow.configuration import conf

    try:
        return conf.get(SECTION, option, fallback=CONFIG_OPTIONS[option]["default"]) or ""
    except Exception as err:  # AirflowConfigException from a `_cmd` or `_secret` that failed
        raise _Invalid(f"Airflow could not read it ({type(err).__name__}: {err})") from None


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _Invalid("a number of seconds greater than 0 is accepted") from None
    if not math.isfinite(value) or value <= 0:
        raise _Invalid("a number of seconds greater than 0 is accepted")
    return value


def _days(raw: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_RETENTION_DAYS:
        raise _Invalid(
            f"a whole number of days from 0 (keep state forever) to {MAX_RETENTION_DAYS} is accepted"
        )
    return value


def _folder(raw: str) -> str:
    folder = raw.strip()
    if "://" not in folder:
        return folder
    scheme = folder.partition("://")[0].lower()
    if scheme in ("file", "local"):
        return folder
    import fsspec

    if scheme not in fsspec.available_protocols():
        raise _Invalid(
            f"{scheme!r} is not a storage Airflow knows, so it cannot hold files; a local folder or an object "
            "store URL (s3://, gs://, wasb://, ...) of an installed provider is accepted (remote logging to "
            "CloudWatch, Elasticsearch or OpenSearch keeps log lines, not files)"
        )
    return folder


def _conn_id(raw: str) -> str:
    value = raw.strip()
    if any(ch.isspace() or ch == "/" for ch in value):
        raise _Invalid("an Airflow connection id (no spaces or slashes) is accepted")
    return value


def _signing_key(raw: str) -> bytes:
    # Surrounding whitespace is dropped, so a key read from a command (``signing_key_cmd``, with its
    # trailing newline) is the same key as one set plainly on another component.
    return raw.strip().encode()


_PARSERS: dict[str, Callable[[str], object]] = {
    "state_folder": _folder,
    "state_conn_id": _conn_id,
    "signing_key": _signing_key,
    "capture_timeout": _seconds,
    "retry_sweep_interval": _seconds,
    "retry_sweep_lookback": _seconds,
    "retention_days": _days,
}


@functools.lru_cache(maxsize=64)
def _parsed(option: str, raw: str) -> tuple[object, Problem | None]:
    """The option's value, or its default and the problem."""
    try:
        return _PARSERS[option](raw), None
    except _Invalid as err:
        return _fallback(option, raw, str(err))


@functools.lru_cache(maxsize=64)
def _fallback(option: str, raw: str, accepted: str) -> tuple[object, Problem]:
    """The option's default and what is wrong with ``raw``, logged once per process."""
    shown = "(secret)" if option == "signing_key" and raw != UNREADABLE else raw
    problem = Problem(option=option, value=shown, accepted=accepted)
    log.warning("%s", problem)
    return _PARSERS[option](CONFIG_OPTIONS[option]["default"]), problem


def _value(option: str) -> tuple[object, Problem | None]:
    try:
        raw = _read(option)
    except _Invalid as err:
        return _fallback(option, UNREADABLE, str(err))
    return _parsed(option, raw)


def problem(option: str) -> Problem | None:
    """What is wrong with ``[resume] <option>``, or None."""
    return _value(option)[1]


def problems() -> list[Problem]:
    """Every ``[resume]`` option whose value cannot be used, in the order they are declared."""
    return [p for option in CONFIG_OPTIONS if (p := problem(option)) is not None]


def warnings() -> list[str]:
    """The problems of options that fell back to their default, as the verdict lists them."""
    return [str(p) for p in problems() if not p.protected]


def log_problems() -> None:
    """Check every ``[resume]`` option now, so each problem is logged when the component starts."""
    problems()


def _protected(option: str) -> object:
    value, found = _value(option)
    if found is not None:
        raise ProviderConfigError(f"{found}. Fix it, then check it with 'airflow resume check'.")
    return value


def state_folder() -> str:
    """``[resume] state_folder``: explicit folder URL for state files, or "" to store beside the logs."""
    return str(_protected("state_folder"))


def state_conn_id() -> str:
    """``[resume] state_conn_id``: connection for an object-storage state folder, or ""."""
    return str(_protected("state_conn_id"))


def signing_key() -> bytes:
    """``[resume] signing_key`` as bytes; empty means plain SHA-256 digests."""
    value = _protected("signing_key")
    assert isinstance(value, bytes)
    return value


def _number(option: str) -> float:
    value = _value(option)[0]
    assert isinstance(value, (int, float))
    return float(value)


def capture_timeout() -> float:
    """``[resume] capture_timeout`` in seconds (> 0)."""
    return _number("capture_timeout")


def retry_sweep_interval() -> float:
    """``[resume] retry_sweep_interval`` in seconds (> 0)."""
    return _number("retry_sweep_interval")


def retry_sweep_lookback() -> float:
    """``[resume] retry_sweep_lookback`` in seconds (> 0)."""
    return _number("retry_sweep_lookback")


def retention_days() -> int:
    """``[resume] retention_days``: days a finished run's state is kept after the run ended; 0: forever."""
    return int(_number("retention_days"))


# --- Airflow's own options ------------------------------------------------------------------------------


def _airflow(section: str, option: str) -> str:
    from airflow.configuration import conf

    return conf.get(section, option, fallback="") or ""


def jwt_secret() -> bytes:
    """``[api_auth] jwt_secret``, which every component of one deployment shares; empty when unset."""
    return _airflow("api_auth", "jwt_secret").encode()


def run_record_secret() -> bytes:
    """
    The secret behind the provider's signed run records: ``[resume] signing_key``, else
    ``[api_auth] jwt_secret``. Empty when neither is set (or the signing key cannot be used).
    """
    try:
        key = signing_key()
    except ProviderConfigError:
        return b""
    return key or jwt_secret()


def allowed_run_id_pattern() -> str:
    """``[scheduler] allowed_run_id_pattern``: the run ids Airflow accepts for manual runs."""
    return _airflow("scheduler", "allowed_run_id_pattern").strip()


def api_base_url() -> str:
    """``[api] base_url`` without its trailing slash: where Airflow's UI and API are served."""
    return _airflow("api", "base_url").rstrip("/")


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


def run_conf_overrides_params() -> bool:
    """``[core] dag_run_conf_overrides_params``: whether a run's conf sets its params."""
    from airflow.configuration import conf

    return conf.getboolean("core", "dag_run_conf_overrides_params", fallback=True)


def legacy_metric_names() -> bool:
    """``[metrics] legacy_names_on``."""
    from airflow.configuration import conf

    return conf.getboolean("metrics", "legacy_names_on", fallback=True)


def remote_log_conn_id() -> str:
    return _airflow("logging", "remote_log_conn_id")


def remote_base_log_folder() -> str:
    """``[logging] remote_base_log_folder`` when remote logging is on, else ""."""
    from airflow.configuration import conf

    if not conf.getboolean("logging", "remote_logging", fallback=False):
        return ""
    return _airflow("logging", "remote_base_log_folder")


def local_log_folder() -> str:
    return _airflow("logging", "base_log_folder")


def logging_folder() -> tuple[str, str]:
    """The task log folder and its connection id: remote when remote logging is on, else local."""
    remote = remote_base_log_folder()
    if remote:
        return remote, remote_log_conn_id()
    return local_log_folder(), ""


def log_filename_template() -> str:
    from airflow.configuration import conf

    return conf.get("logging", "log_filename_template")
