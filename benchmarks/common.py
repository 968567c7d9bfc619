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


# --- a throw-away Airflow in this process -------------------------------------------------------------


def pg_connect(dbname: str) -> Any:
    """A connection to a database of the local PostgreSQL (127.0.0.1:5432, trust auth)."""
    import psycopg2

    return psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=dbname)


def pg_admin(sql: str) -> None:
    """Run ``sql`` (CREATE/DROP DATABASE) outside a transaction."""
    conn = pg_connect("test")
    conn.autocommit = True
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


@contextlib.contextmanager
def throwaway_airflow(name: str, dag_source: str, *, postgres: bool) -> Iterator[tuple[Path, str | None]]:
    """
    An Airflow home in a temporary folder with one DAG file, set in this process's environment before
    airflow is imported, and its migrated metadata DB: SQLite in the folder, or, with ``postgres``, a
    new PostgreSQL database. Yields the folder and the PostgreSQL database's name; removes both after.
    """
    import shutil
    import tempfile
    import uuid

    from tools.airflow_home import in_process_env

    workdir = Path(tempfile.mkdtemp(prefix=f"resume-{name}-"))
    database = f"resume_bench_{name}_{uuid.uuid4().hex[:10]}" if postgres else None
    try:
        dags = workdir / "dags"
        dags.mkdir(parents=True)
        (dags / f"bench_{name}_dags.py").write_text(dag_source)
        os.environ.update(
            in_process_env(workdir / "home", dags, jwt_secret="resume-bench-jwt-secret-0123456789abcdef"),
            AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING",
        )
        if database:
            pg_admin(f"CREATE DATABASE {database}")
            os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = (
                f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
            )
        migrate_db()
        yield workdir, database
    finally:
        if database:
            from airflow import settings

            settings.dispose_orm()
            pg_admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        shutil.rmtree(workdir, ignore_errors=True)


def serialize_dag_folder(expected: set[str]) -> dict[str, Any]:
    """
    Parse the DAG folder and store its DAGs as the dag-processor does (they must be ``expected``);
    returns dag_id -> its DAG version id.
    """
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.dag_version import DagVersion
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session
    from sqlalchemy import select

    bag = DagBag(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if set(bag.dags) != expected:
        raise RuntimeError(f"parsed {sorted(bag.dags)}; import errors: {bag.import_errors}")
    with create_session() as session:
        DagBundlesManager().sync_bundles_to_db(session=session)
    with create_session() as session:
        update_dag_parsing_results_in_db(
            "dags-folder",
            None,
            [LazyDeserializedDAG.from_dag(dag) for dag in bag.dags.values()],
            {},
            None,
            set(),
            session=session,
        )
    with create_session() as session:
        return dict(session.execute(select(DagVersion.dag_id, DagVersion.id)).all())
