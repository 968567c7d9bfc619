"""
The provider's metrics, sent through Airflow's own ``[metrics]`` (StatsD, Datadog or OpenTelemetry).

Names are given without the configured prefix (``[metrics] statsd_prefix``, e.g. ``airflow``). Counters
with a tag (``kind``, ``reason_code``, ``cause``) carry it as a tag; with plain StatsD, which drops tags, the counter
is also sent with the tag's value appended (``resume.created.manual``). One function per metric; none of
them ever raises into the task, the scheduler or a request.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import compat, conf
from airflow_resume_provider.persisted import (
    CAPTURE_DURATION,
    CAPTURE_FAILED,
    CAPTURE_WRITTEN,
    CREATE_DURATION,
    CREATED,
    REFUSED,
    RETRY_NOT_RETRIED,
    RETRY_SCHEDULED,
)

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

# Metric names: part of what users chart and alert on. Never rename.

_warned = False


def tag_suffix(value: str) -> str:
    """A tag value as the last part of a StatsD name: characters a name cannot hold become ``_``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", value) or "_"


def _swallow(name: str) -> None:
    global _warned
    if _warned:
        log.debug("Could not send metric %s; no impact on the task or run.", name, exc_info=True)
        return
    _warned = True
    log.warning(
        "Could not send metric %s (check [metrics]); no impact on the task or run. Further failures are "
        "logged at debug level.",
        name,
        exc_info=True,
    )


def _count(stats_of: Callable[[], Any], name: str, tag: tuple[str, str] | None = None) -> None:
    try:
        stats = stats_of()
        if tag is None:
            stats.incr(name)
            return
        key, value = tag
        stats.incr(name, tags={key: value})
        if conf.metrics_without_tags():
            stats.incr(f"{name}.{tag_suffix(value)}")
    except Exception:
        _swallow(name)


def _time(stats_of: Callable[[], Any], name: str, seconds: float) -> None:
    try:
        stats_of().timing(name, timedelta(seconds=seconds))
    except Exception:
        _swallow(name)


# --- task runner (capture) --------------------------------------------------------------------------


def capture_written() -> None:
    """An attempt's state file was written and announced."""
    _count(compat.task_stats, CAPTURE_WRITTEN)


def capture_failed() -> None:
    """An attempt's state could not be recorded: the run cannot be resumed from that task."""
    _count(compat.task_stats, CAPTURE_FAILED)


def capture_duration(seconds: float) -> None:
    """How long the task waited for its state to be recorded (written or not)."""
    _time(compat.task_stats, CAPTURE_DURATION, seconds)


# --- API server, CLI, retry worker --------------------------------------------------------------------


def created(kind: str) -> None:
    """A resumed run was created; ``kind``: ``manual`` or ``retry``."""
    _count(compat.server_stats, CREATED, ("kind", kind))


def create_duration(seconds: float) -> None:
    """How long creating a resumed run took, from reading the facts to the commit."""
    _time(compat.server_stats, CREATE_DURATION, seconds)


def refused(reason_code: str | None) -> None:
    """A resume was asked for and refused, with the verdict's reason code."""
    _count(compat.server_stats, REFUSED, ("reason_code", reason_code or "unknown"))


def retry_scheduled(cause: str) -> None:
    """An automatic retry was created for a failed run; ``cause``: the failure's cause, or ``unknown``."""
    _count(compat.server_stats, RETRY_SCHEDULED, ("cause", cause))


def retry_not_retried(cause: str) -> None:
    """A failed run of a DAG with retries was, finally, not retried (the run's note says why)."""
    _count(compat.server_stats, RETRY_NOT_RETRIED, ("cause", cause))
