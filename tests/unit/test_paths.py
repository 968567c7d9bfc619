"""Where a state file lives: beside the task log, following ``[logging] log_filename_template``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.configuration import conf as airflow_conf
from airflow.utils.helpers import parse_template_string, render_template

from airflow_resume_provider.state.paths import (
    StateLocation,
    folder_url,
    render_log_relpath,
    state_location,
    state_relpath,
)

DEFAULT_TEMPLATE = airflow_conf.get_default_value("logging", "log_filename_template")
LEGACY_TEMPLATE = "{dag_id}/{task_id}/{run_id}/{try_number}.log"
RUN_ID = "manual__2024-01-02T03:04:05+00:00"


def airflow_render(template: str, *, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int):
    """How Airflow's FileTaskHandler renders the log file name for the same attempt."""
    str_tpl, jinja_tpl = parse_template_string(template)
    ti = SimpleNamespace(
        dag_id=dag_id, run_id=run_id, task_id=task_id, map_index=map_index, try_number=try_number
    )
    if jinja_tpl:
        return render_template(jinja_tpl, {"ti": ti, "ts": "", "try_number": try_number}, native=False)
    return str_tpl.format(dag_id=dag_id, task_id=task_id, run_id=run_id, try_number=try_number)


def test_default_template_is_airflows_default():
    assert "{{ ti.dag_id }}" in DEFAULT_TEMPLATE
    assert "map_index" in DEFAULT_TEMPLATE


def test_default_template_unmapped_task():
    rel = render_log_relpath(
        DEFAULT_TEMPLATE, dag_id="etl", run_id=RUN_ID, task_id="load", map_index=-1, try_number=1
    )
    assert rel == f"dag_id=etl/run_id={RUN_ID}/task_id=load/attempt=1.log"


def test_default_template_mapped_task_includes_map_index():
    rel = render_log_relpath(
        DEFAULT_TEMPLATE, dag_id="etl", run_id=RUN_ID, task_id="load", map_index=3, try_number=2
    )
    assert rel == f"dag_id=etl/run_id={RUN_ID}/task_id=load/map_index=3/attempt=2.log"


def test_map_index_zero_is_included():
    rel = render_log_relpath(DEFAULT_TEMPLATE, dag_id="d", run_id="r", task_id="t", map_index=0, try_number=1)
    assert "/map_index=0/" in rel


@pytest.mark.parametrize("template", [DEFAULT_TEMPLATE, LEGACY_TEMPLATE])
@pytest.mark.parametrize(("map_index", "try_number"), [(-1, 1), (0, 3), (12, 2)])
def test_matches_airflows_own_rendering(template, map_index, try_number):
    ids = {
        "dag_id": "my_dag",
        "run_id": RUN_ID,
        "task_id": "step",
        "map_index": map_index,
        "try_number": try_number,
    }
    assert render_log_relpath(template, **ids) == airflow_render(template, **ids)


def test_legacy_str_format_template():
    rel = render_log_relpath(
        LEGACY_TEMPLATE, dag_id="d", run_id="r1", task_id="t", map_index=-1, try_number=4
    )
    assert rel == "d/t/r1/4.log"


def test_legacy_template_can_use_ti_attributes():
    rel = render_log_relpath(
        "{ti.dag_id}/{ti.map_index}/{try_number}.log",
        dag_id="d",
        run_id="r",
        task_id="t",
        map_index=5,
        try_number=1,
    )
    assert rel == "d/5/1.log"


def test_special_characters_in_ids_are_not_escaped():
    rel = render_log_relpath(
        DEFAULT_TEMPLATE, dag_id="d", run_id="a&b<c>'q'", task_id="t", map_index=-1, try_number=1
    )
    assert rel == "dag_id=d/run_id=a&b<c>'q'/task_id=t/attempt=1.log"


def test_unknown_variable_gives_clear_error():
    template = "{{ ti.dag_id }}/{{ ts }}/{{ try_number }}.log"
    with pytest.raises(ValueError) as exc:
        render_log_relpath(template, dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1)
    message = str(exc.value)
    assert f"[logging] log_filename_template {template!r}" in message
    assert "'ts' is undefined" in message
    assert "ti.dag_id, ti.run_id, ti.task_id, ti.map_index and try_number" in message


def test_unknown_ti_attribute_gives_clear_error():
    with pytest.raises(ValueError, match=r"logical_date.*only uses ti.dag_id"):
        render_log_relpath(
            "{{ ti.logical_date }}.log", dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1
        )


def test_legacy_template_with_unknown_variable_gives_clear_error():
    with pytest.raises(
        ValueError, match=r"log_filename_template '\{dag_id\}/\{logical_date\}.log'.*logical_date"
    ):
        render_log_relpath(
            "{dag_id}/{logical_date}.log", dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1
        )


def test_state_relpath_replaces_log_suffix():
    assert state_relpath("dag_id=d/attempt=1.log") == "dag_id=d/attempt=1.resume.json"


def test_state_relpath_appends_suffix_when_no_log_suffix():
    assert state_relpath("d/t/1") == "d/t/1.resume.json"
    assert state_relpath("d/catalog/1.txt") == "d/catalog/1.txt.resume.json"


def test_state_relpath_only_replaces_final_suffix():
    assert state_relpath("d.log/x.log") == "d.log/x.resume.json"


@pytest.mark.parametrize(
    ("folder", "url"),
    [
        ("/var/log/airflow", "file:///var/log/airflow"),
        ("/var/log/airflow/", "file:///var/log/airflow"),
        ("  /var/log/airflow  ", "file:///var/log/airflow"),
        ("file:///var/state/", "file:///var/state"),
        ("s3://bucket/prefix/", "s3://bucket/prefix"),
        ("gs://bucket", "gs://bucket"),
    ],
)
def test_folder_url(folder, url):
    assert folder_url(folder) == url


@pytest.mark.parametrize("folder", ["", "   "])
def test_empty_folder_is_refused_with_the_settings_to_set(folder):
    with pytest.raises(
        ValueError, match=r"state folder is empty.*\[resume\] state_folder.*\[logging\] base_log_folder"
    ):
        folder_url(folder)


def test_state_location_local_default_template():
    location = state_location(
        "/logs/", "", DEFAULT_TEMPLATE, dag_id="etl", run_id="r1", task_id="load", map_index=-1, try_number=2
    )
    assert location == StateLocation(
        "file:///logs/dag_id=etl/run_id=r1/task_id=load/attempt=2.resume.json", ""
    )
    assert location.is_local
    assert location.local_path == "/logs/dag_id=etl/run_id=r1/task_id=load/attempt=2.resume.json"


def test_state_location_object_storage_keeps_connection():
    location = state_location(
        "s3://bucket/logs",
        "aws_logs",
        DEFAULT_TEMPLATE,
        dag_id="etl",
        run_id="r1",
        task_id="load",
        map_index=1,
        try_number=1,
    )
    assert (
        location.url == "s3://bucket/logs/dag_id=etl/run_id=r1/task_id=load/map_index=1/attempt=1.resume.json"
    )
    assert location.conn_id == "aws_logs"
    assert not location.is_local


def test_state_location_template_with_leading_slash_has_no_double_slash():
    location = state_location(
        "/logs",
        "",
        "/{{ ti.dag_id }}/{{ try_number }}.log",
        dag_id="d",
        run_id="r",
        task_id="t",
        map_index=-1,
        try_number=1,
    )
    assert location.url == "file:///logs/d/1.resume.json"


def test_each_attempt_has_its_own_file():
    kwargs = {"dag_id": "d", "run_id": "r", "task_id": "t", "map_index": -1}
    first = state_location("/logs", "", DEFAULT_TEMPLATE, try_number=1, **kwargs)
    second = state_location("/logs", "", DEFAULT_TEMPLATE, try_number=2, **kwargs)
    assert first.url != second.url
    assert second.url.endswith("/attempt=2.resume.json")
