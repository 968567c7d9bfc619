"""How values are shown to people (pages, API answers, messages): secrets masked, length bounded."""

from __future__ import annotations

import json
from typing import Any


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
