"""Where a state file lives: pure functions of configuration values and the task attempt's identity."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import jinja2

from airflow_resume_provider.exceptions import LinkRefused
from airflow_resume_provider.persisted import STATE_SUFFIX

LOG_SUFFIX = ".log"


@dataclass(frozen=True)
class StateLocation:
    """A state file's URL (``file://`` or an object-storage scheme) and the connection to reach it."""

    url: str
    conn_id: str = ""

    @property
    def is_local(self) -> bool:
        return self.url.startswith("file://")

    @property
    def local_path(self) -> str:
        return self.url[len("file://") :]


def folder_url(folder: str) -> str:
    """Normalise a folder setting to a URL without trailing slash; plain paths become ``file://``."""
    folder = folder.strip()
    if not folder:
        raise ValueError("The state folder is empty: set [resume] state_folder or [logging] base_log_folder.")
    if "://" not in folder:
        folder = "file://" + folder
    scheme, _, rest = folder.partition("://")
    return f"{scheme}://{rest.rstrip('/')}"


@functools.lru_cache(maxsize=8)
def _compiled(template: str) -> jinja2.Template:
    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False).from_string(template)


def render_log_relpath(
    template: str, *, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int
) -> str:
    """
    Render ``[logging] log_filename_template`` for one attempt, as Airflow does for the task's log.

    Only the attempt's identity is available; a template that uses other variables is reported by name.
    """
    ti = SimpleNamespace(
        dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number
    )
    try:
        if "{{" not in template:  # the legacy str.format style
            return template.format(
                dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number, ti=ti
            )
        return _compiled(template).render(ti=ti, try_number=try_number)
    except (jinja2.UndefinedError, KeyError, AttributeError, IndexError) as err:
        raise ValueError(
            f"[logging] log_filename_template {template!r} uses a value the state path cannot be built from "
            f"({err}); use a template that only uses ti.dag_id, ti.run_id, ti.task_id, ti.map_index and "
            "try_number."
        ) from err


def state_relpath(log_relpath: str) -> str:
    """The state file beside a log file: ``.log`` replaced by ``.resume.json``."""
    base = log_relpath[: -len(LOG_SUFFIX)] if log_relpath.endswith(LOG_SUFFIX) else log_relpath
    return base + STATE_SUFFIX


def state_location(
    folder: str,
    conn_id: str,
    template: str,
    *,
    dag_id: str,
    run_id: str,
    task_id: str,
    map_index: int,
    try_number: int,
) -> StateLocation:
    """Where the state file of one attempt lives."""
    rel = attempt_state_relpath(
        template, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number
    )
    return StateLocation(url=f"{folder_url(folder)}/{rel}", conn_id=conn_id)


def attempt_state_relpath(
    template: str, *, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: Any
) -> str:
    """The state file of one attempt relative to the state folder: its log's path, ``.resume.json``."""
    rel = render_log_relpath(
        template, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number
    )
    return state_relpath(rel).lstrip("/")


# --- links between state files: only files of the expected tasks, under a known folder ------------


class _TrySlot:
    """Rendered where a template puts the try number: text no id can contain (ids never hold NUL)."""

    TEXT = "\0try\0"

    def __str__(self) -> str:
        return self.TEXT

    def __format__(self, spec: str) -> str:
        return self.TEXT


@dataclass(frozen=True)
class StateRoot:
    """A folder state files may be read from (configured, not taken from any record) and its connection."""

    url: str
    conn_id: str = ""


def state_roots(folders: list[tuple[str, str]]) -> list[StateRoot]:
    """Normalised, de-duplicated roots from ``(folder, conn_id)`` settings; empty folders are skipped."""
    roots: list[StateRoot] = []
    for folder, conn_id in folders:
        if not folder or not folder.strip():
            continue
        root = StateRoot(folder_url(folder), conn_id)
        if all(r.url != root.url for r in roots):
            roots.append(root)
    return roots


def relative_to_roots(url: str, roots: list[StateRoot]) -> str:
    """``url`` relative to the root it lies under (for messages: no server paths), else ``url``."""
    for root in roots:
        if url.startswith(root.url + "/"):
            return url[len(root.url) + 1 :]
    return url


@functools.lru_cache(maxsize=256)
def _layout(template: str, dag_id: str, run_id: str, task_id: str, map_index: int) -> re.Pattern[str]:
    rel = attempt_state_relpath(
        template, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=_TrySlot()
    )
    slot = re.escape(_TrySlot.TEXT)
    escaped = re.escape(rel).replace(slot, r"(?P<try_number>[1-9][0-9]{0,5})", 1)
    return re.compile(escaped.replace(slot, r"(?P=try_number)"))


def resolve_link(
    url: Any,
    roots: list[StateRoot],
    templates: list[str],
    *,
    dag_id: str,
    run_ids: list[str],
    task_id: str,
    map_index: int = -1,
) -> tuple[StateLocation, str, int]:
    """
    Check that ``url`` is the state file of ``task_id`` in one of ``run_ids``, under one of ``roots``
    and laid out by one of ``templates``; nothing is read.

    :return: the location (with the root's connection), the run id and the try number it belongs to.
    :raises LinkRefused: naming the link and why it is refused.
    """
    if not isinstance(url, str) or not url:
        raise LinkRefused(f"{url!r}, which is not a path")
    shown = url if len(url) <= 300 else url[:300] + "..."
    if any(ch in url for ch in "\0\\?#") or "/../" in url or "/./" in url or url.endswith(("/..", "/.")):
        raise LinkRefused(f"{shown!r}, which is not a plain path")
    root = next((r for r in roots if url.startswith(r.url + "/")), None)
    if root is None:
        raise LinkRefused(f"{shown!r}, which lies outside the state folder")
    rel = url[len(root.url) + 1 :]
    for run_id in run_ids:
        for template in templates:
            try:
                match = _layout(template, dag_id, run_id, task_id, map_index).fullmatch(rel)
            except ValueError:
                continue  # a template the path cannot be built from: it laid out no state file
            if match:
                return (
                    StateLocation(url=url, conn_id=root.conn_id),
                    run_id,
                    int(match.groupdict().get("try_number") or 0),
                )
    raise LinkRefused(
        f"{shown!r}, which is not where the state of task {task_id!r} of run "
        f"{' or '.join(map(repr, run_ids[:3]))}{' ...' if len(run_ids) > 3 else ''} is kept"
    )
