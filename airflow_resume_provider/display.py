"""How values are shown to people (pages, API answers, messages, the terminal): secrets masked, length
bounded, control characters escaped, errors without server paths."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable


def masked(value: Any, name: str | None = None) -> Any:
    """Airflow's secrets masker on the server: sensitive key names and registered secrets hidden."""
    from airflow_resume_provider.compat import server_redact

    return server_redact(value, name)


def shortened(text: str, limit: int) -> str:
    """``text``, cut to ``limit`` characters and saying how long it was when it is longer."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def preview(value: Any, name: str | None = None, *, limit: int = 300) -> str:
    """A masked, bounded one-line rendering of a value: strings as they are, anything else as JSON."""
    value = masked(value, name)
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return shortened(text, limit)


# C0 and C1 control characters, DEL, and the Unicode line separators and bidirectional overrides that
# can move or hide text on a terminal.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: Any, *, markup: bool = False) -> str:
    r"""
    ``text`` with every control character escaped (``\x1b``, ``\n``, ``\u202e``): what reaches a
    terminal from runs, tasks, state files or markers cannot move the cursor, retitle the window or
    fake a line.

    :param markup: the text goes into a Rich table (Airflow's CLI tables): its ``[...]`` markup is
        escaped too, so a value cannot style itself or add a link.
    """
    safe = _UNSAFE.sub(lambda m: repr(m.group())[1:-1], str(text))
    if markup:
        from rich.markup import escape

        safe = escape(safe)
    return safe


def error_summary(err: BaseException, folders: Iterable[str] = ()) -> str:
    """
    An error for a message: its type and what went wrong, without server paths. An OS error says
    only its kind (``IsADirectoryError: Is a directory``), never the path it names; in any other
    error's text each of ``folders`` (URLs or paths) is cut off the paths it starts.
    """
    if isinstance(err, OSError) and err.strerror:
        return f"{type(err).__name__}: {err.strerror}"
    text = str(err)
    for folder in sorted({f.rstrip("/") for f in folders if f and f.strip("/")}, key=len, reverse=True):
        text = text.replace(folder + "/", "")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
