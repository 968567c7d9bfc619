"""The ``airflowResume`` OpenLineage run facet of a resumed run's task instances, on a real metadata DB."""

from __future__ import annotations

import logging

import pytest

from tests.helpers import run_dag, run_existing_run, unique_logical_date

pytest.importorskip("airflow.providers.openlineage", reason="the [openlineage] extra is not installed")

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("airflow_db")]

DAG_ID = "resume_test_lineage"


def resume(dag_id: str, run_id: str):
    from airflow.utils.session import create_session

    from airflow_resume_provider.resume import resume as _resume

    with create_session(scoped=False) as session:
        return _resume(session, dag_id, run_id, user="tester")


def facets_of(dag_id: str, run_id: str, task_id: str, map_index: int = -1):
    """``resume_run_facets`` for a task instance as the scheduler holds it (an ORM row with its task)."""
    from airflow.models.dagbag import DBDagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_resume_provider.lineage import resume_run_facets

    with create_session(scoped=False) as session:
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.run_id == run_id,
                TaskInstance.task_id == task_id,
                TaskInstance.map_index == map_index,
            )
        )
        ti.task = DBDagBag().get_latest_version_of_dag(dag_id, session=session).get_task(task_id)
        return resume_run_facets(ti, ti.state)


def serialized(facets: dict) -> dict:
    from openlineage.client.serde import Serde

    return {name: Serde.to_dict(facet) for name, facet in facets.items()}


def ol_task_run_id(dag_id, task_id, try_number, date, map_index=-1):
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    return OpenLineageAdapter.build_task_instance_run_id(
        dag_id=dag_id, task_id=task_id, try_number=try_number, logical_date=date, map_index=map_index
    )


def ol_dag_run_id(dag_id, date, clear_number=0):
    from airflow.providers.openlineage.plugins.adapter import OpenLineageAdapter

    return OpenLineageAdapter.build_dag_run_id(dag_id=dag_id, logical_date=date, clear_number=clear_number)


def test_a_resumed_runs_task_gets_the_facet_linking_it_to_the_failed_run(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_LINEAGE_FAIL", "true")
    failed = run_dag(DAG_ID, logical_date=unique_logical_date())
    assert failed.state == "failed"
    outcome = resume(DAG_ID, failed.run_id)

    facet = serialized(facets_of(DAG_ID, outcome.dag_run_id, "load"))["airflowResume"]
    assert facet["_schemaURL"] == "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunFacet"
    assert facet["failedRun"] == {
        "dagId": DAG_ID,
        "dagRunId": failed.run_id,
        # What the OpenLineage provider named the failed attempt of load, and the failed DAG run.
        "openlineageRunId": ol_task_run_id(DAG_ID, "load", 1, failed.logical_date),
        "openlineageDagRunId": ol_dag_run_id(DAG_ID, failed.logical_date),
    }
    assert facet["rootRun"] == {"dagId": DAG_ID, "dagRunId": failed.run_id}
    assert (facet["resumeCount"], facet["resumePoint"], facet["kind"]) == (1, "load", "manual")
    assert facet["restoredTasks"] == ["extract"]
    assert "changedInputs" not in facet


def test_a_normal_run_gets_no_facet(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_LINEAGE_FAIL", "false")
    run = run_dag(DAG_ID)
    assert run.state == "success"
    assert facets_of(DAG_ID, run.run_id, "load") == {}


def test_a_second_resume_links_to_the_first_resumed_run_by_its_own_identity(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "second")
    root = run_dag("resume_test_chain", logical_date=unique_logical_date())
    first = resume("resume_test_chain", root.run_id)
    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_FAIL_AT", "fourth")
    assert run_existing_run("resume_test_chain", first.dag_run_id) == "failed"
    second = resume("resume_test_chain", first.dag_run_id)

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session(scoped=False) as session:
        first_run = DagRun.find(dag_id="resume_test_chain", run_id=first.dag_run_id, session=session)[0]
        run_after = first_run.run_after
    facet = serialized(facets_of("resume_test_chain", second.dag_run_id, "fourth"))["airflowResume"]
    # The first resumed run has no logical date of its own: OpenLineage named its events after run_after.
    assert facet["failedRun"]["dagRunId"] == first.dag_run_id
    assert facet["failedRun"]["openlineageRunId"] == ol_task_run_id(
        "resume_test_chain", "fourth", 1, run_after
    )
    assert facet["failedRun"]["openlineageDagRunId"] == ol_dag_run_id("resume_test_chain", run_after)
    assert facet["rootRun"]["dagRunId"] == root.run_id
    assert (facet["resumeCount"], facet["resumePoint"]) == (2, "fourth")
    assert facet["restoredTasks"] == ["first", "second", "stamp"]
    # fifth never ran in the failed run: it has no OpenLineage run there to link to.
    later = serialized(facets_of("resume_test_chain", second.dag_run_id, "fifth"))["airflowResume"]
    assert "openlineageRunId" not in later["failedRun"]


def test_a_mapped_resume_point_links_each_map_index_to_its_own_failed_attempt():
    failed = run_dag("resume_test_mapped", logical_date=unique_logical_date())
    assert failed.state == "failed"  # square[3] failed; the other map indexes succeeded
    outcome = resume("resume_test_mapped", failed.run_id)

    facet = serialized(facets_of("resume_test_mapped", outcome.dag_run_id, "square", 3))["airflowResume"]
    assert facet["failedRun"]["openlineageRunId"] == ol_task_run_id(
        "resume_test_mapped", "square", 1, failed.logical_date, map_index=3
    )
    assert (facet["resumePoint"], facet["restoredTasks"]) == ("square", ["numbers"])
    # total never ran in the failed run (upstream failed): no OpenLineage run there to link to.
    later = serialized(facets_of("resume_test_mapped", outcome.dag_run_id, "total"))["airflowResume"]
    assert "openlineageRunId" not in later["failedRun"]


def test_a_record_that_does_not_verify_gives_no_facet(monkeypatch):
    from airflow.models.dagbag import DBDagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_resume_provider.lineage import resume_run_facets
    from airflow_resume_provider.persisted import CONF_KEY

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_LINEAGE_FAIL", "true")
    failed = run_dag(DAG_ID, logical_date=unique_logical_date())
    outcome = resume(DAG_ID, failed.run_id)
    with create_session(scoped=False) as session:
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == DAG_ID,
                TaskInstance.run_id == outcome.dag_run_id,
                TaskInstance.task_id == "load",
            )
        )
        ti.task = DBDagBag().get_latest_version_of_dag(DAG_ID, session=session).get_task("load")
        assert resume_run_facets(ti, ti.state)  # as the provider signed it
        record = dict(ti.dag_run.conf[CONF_KEY])
        ti.dag_run.conf = {CONF_KEY: {**record, "resume_count": 7}}  # tampered, never committed
        assert resume_run_facets(ti, ti.state) == {}
        ti.dag_run.conf = {CONF_KEY: {k: v for k, v in record.items() if k != "signature"}}  # unsigned
        assert resume_run_facets(ti, ti.state) == {}
        session.rollback()


def test_a_broken_database_read_or_record_gives_no_facet_and_raises_nothing(monkeypatch, caplog):
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from airflow_resume_provider import run_record
    from airflow_resume_provider.lineage import resume_run_facets
    from airflow_resume_provider.persisted import CONF_KEY

    monkeypatch.setenv("AIRFLOW_VAR_RESUME_TEST_LINEAGE_FAIL", "true")
    failed = run_dag(DAG_ID, logical_date=unique_logical_date())
    outcome = resume(DAG_ID, failed.run_id)
    query = select(TaskInstance).where(
        TaskInstance.dag_id == DAG_ID,
        TaskInstance.run_id == outcome.dag_run_id,
        TaskInstance.task_id == "load",
    )
    with caplog.at_level(logging.WARNING, logger="airflow_resume_provider.guard"):
        with create_session(scoped=False) as session:
            ti = session.scalar(query)
            # A record the provider signed that this version cannot use (e.g. a date it cannot read).
            record = run_record.check(DAG_ID, outcome.dag_run_id, ti.dag_run.conf).record
            assert record is not None and record.parent_lineage is not None
            broken = record.model_copy(
                update={
                    "parent_lineage": record.parent_lineage.model_copy(update={"logical_date": "tomorrow"})
                }
            )
            ti.dag_run.conf = {CONF_KEY: run_record.sign(DAG_ID, outcome.dag_run_id, broken)}
            assert resume_run_facets(ti, ti.state) is None
            session.rollback()
            # A row whose session is gone: nothing of it can be read any more.
            ti = session.scalar(query)
            session.expire(ti)
            session.expunge(ti)
        assert resume_run_facets(ti, None) is None
    assert caplog.text.count("The airflowResume OpenLineage facet failed; no impact on the task.") == 2
