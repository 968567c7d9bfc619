"""What the benchmarks share: timing, statistics, a throw-away metadata DB, and quiet Airflow output."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
RESULTS_DIR = REPO / "benchmarks" / "results"


def p95(values: list[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    return {
        "n": len(seconds),
        "median_ms": statistics.median(seconds) * 1000,
        "p95_ms": p95(seconds) * 1000,
        "min_ms": min(seconds) * 1000,
        "max_ms": max(seconds) * 1000,
    }


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def migrate_db() -> None:
    """``airflow db migrate`` of the metadata DB the environment names."""
    subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=dict(os.environ), capture_output=True, check=True
    )


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send everything written to fds 1 and 2 (Airflow's task logs included) to a file."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
