"""
The one guard for every callback the provider runs inside Airflow or user code.

Listener hooks, cluster policies, the XCom key tracker and the provider's background threads run in a
task process, the scheduler or the API server: a failure of the provider's there must never fail a
task, a request or the scheduler. Each such callback runs under :func:`never_raises` (a decorator) or
:func:`guarded` (a ``with`` block), which log a warning naming what failed and that nothing else is
affected, and carry on. ``BaseException`` (a task's timeout, a kill) is not caught: it is Airflow's.

The one deliberate exception is not raised through here: a resumed run's task refuses to run when its
original context cannot be applied (``ResumedContextError`` in ``resumed_context.py``).
"""

from __future__ import annotations

import functools
import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

F = TypeVar("F", bound="Callable[..., Any]")

TASK = "the task"
SCHEDULER = "the scheduler"
API_SERVER = "the request"
DAG = "the DAG"


def _report(what: str, impact: str) -> None:
    log.warning("%s failed; no impact on %s.", what, impact, exc_info=True)


@contextmanager
def guarded(what: str, impact: str = TASK) -> Iterator[None]:
    """Run the block; an exception in it is logged as a warning ("<what> failed; no impact on
    <impact>.") and goes no further."""
    try:
        yield
    except Exception:
        _report(what, impact)


def never_raises(what: str, impact: str = TASK) -> Callable[[F], F]:
    """Decorate a callback: an exception in it is logged as :func:`guarded` does, and it returns None."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception:
                _report(what, impact)
                return None

        return wrapper  # type: ignore[return-value]

    return decorate
