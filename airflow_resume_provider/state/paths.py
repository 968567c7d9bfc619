"""Where a state file lives: pure functions of configuration values and the task attempt's identity."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import SimpleNamespace

import jinja2

STATE_SUFFIX = ".resume.json"
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
    rel = render_log_relpath(
        template, dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number
    )
    return StateLocation(url=f"{folder_url(folder)}/{state_relpath(rel).lstrip('/')}", conn_id=conn_id)
