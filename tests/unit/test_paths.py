"""Where a state file lives: beside the task log, following ``[logging] log_filename_template``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.configuration import conf as airflow_conf
from airflow.utils.helpers import parse_template_string, render_template

from airflow_resume_provider.exceptions import LinkRefused
from airflow_resume_provider.state.paths import (
    StateLocation,
    StateRoot,
    folder_url,
    relative_to_roots,
    render_log_relpath,
    resolve_link,
    state_location,
    state_relpath,
    state_roots,
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


# --- following a state link: only to the expected task's file, under a configured folder -------------

LOCAL = StateRoot("file:///opt/airflow/logs")
BUCKET = StateRoot("s3://state-bucket/airflow", "aws_state")
ROOTS = [LOCAL, BUCKET]
PARENT_RUN = "scheduled__2024-01-01T00:00:00+00:00"
LINEAGE = [RUN_ID, PARENT_RUN]


def layout(run_id: str = RUN_ID, task_id: str = "transform", attempt: int = 1, dag_id: str = "etl") -> str:
    return f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={attempt}.resume.json"


def resolve(url, *, templates=(DEFAULT_TEMPLATE,), run_ids=LINEAGE, task_id="transform", map_index=-1):
    return resolve_link(
        url, ROOTS, list(templates), dag_id="etl", run_ids=list(run_ids), task_id=task_id, map_index=map_index
    )


def refusal(url, **kwargs) -> str:
    with pytest.raises(LinkRefused) as err:
        resolve(url, **kwargs)
    return str(err.value)


def test_link_to_the_tasks_state_file_is_accepted_with_its_try_number():
    url = f"{LOCAL.url}/{layout(attempt=2)}"
    assert resolve(url) == (StateLocation(url, ""), RUN_ID, 2)


def test_link_into_object_storage_uses_the_roots_connection():
    url = f"{BUCKET.url}/{layout(attempt=12)}"
    assert resolve(url) == (StateLocation(url, "aws_state"), RUN_ID, 12)


def test_link_to_an_earlier_run_of_the_lineage_names_that_run():
    # A restored task links to the state file of the run where it really ran.
    url = f"{LOCAL.url}/{layout(run_id=PARENT_RUN)}"
    assert resolve(url) == (StateLocation(url, ""), PARENT_RUN, 1)


def test_link_of_a_mapped_task_instance():
    url = f"{LOCAL.url}/dag_id=etl/run_id={RUN_ID}/task_id=transform/map_index=3/attempt=1.resume.json"
    assert resolve(url, map_index=3)[2] == 1
    refusal(url)  # not the unmapped task's file


@pytest.mark.parametrize(
    "template",
    [
        DEFAULT_TEMPLATE,
        LEGACY_TEMPLATE,
        "{{ ti.run_id }}/{{ ti.task_id }}/{{ try_number }}/{{ try_number }}.log",
    ],
)
@pytest.mark.parametrize(("map_index", "try_number"), [(-1, 1), (-1, 7), (2, 3)])
def test_every_file_the_provider_writes_is_accepted(template, map_index, try_number):
    """What a capture writes (``state_location``) is exactly what a link may point to."""
    for folder, root in (("/opt/airflow/logs/", LOCAL), ("s3://state-bucket/airflow", BUCKET)):
        written = state_location(
            folder,
            root.conn_id,
            template,
            dag_id="etl",
            run_id=RUN_ID,
            task_id="transform",
            map_index=map_index,
            try_number=try_number,
        )
        assert resolve(written.url, templates=[template], map_index=map_index) == (
            written,
            RUN_ID,
            try_number,
        )


def test_a_link_laid_out_by_an_earlier_template_of_the_deployment_is_accepted():
    # Airflow records every log template it used; state written under the old one stays readable.
    legacy = f"{LOCAL.url}/etl/transform/{RUN_ID}/3.resume.json"
    assert resolve(legacy, templates=[DEFAULT_TEMPLATE, LEGACY_TEMPLATE])[1:] == (RUN_ID, 3)


def test_a_template_without_try_number_accepts_its_single_file_for_any_try():
    template = "dag_id={{ ti.dag_id }}/run_id={{ ti.run_id }}/task_id={{ ti.task_id }}.log"
    url = f"{LOCAL.url}/dag_id=etl/run_id={RUN_ID}/task_id=transform.resume.json"
    assert resolve(url, templates=[template])[1:] == (RUN_ID, 0)


def test_a_template_the_path_cannot_be_built_from_is_skipped():
    url = f"{LOCAL.url}/{layout()}"
    assert resolve(url, templates=["{{ ts }}/{{ ti.task_id }}.log", DEFAULT_TEMPLATE])[1:] == (RUN_ID, 1)
    assert "is not where the state of task 'transform'" in refusal(url, templates=["{{ ts }}.log"])


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "/proc/self/environ",
        "/opt/airflow/logs/" + layout(),
        "http://127.0.0.1:1/x",
        f"http://169.254.169.254/latest/meta-data/{layout()}",
        f"s3://other-bucket/airflow/{layout()}",
        f"s3://attacker@state-bucket/airflow/{layout()}",
        f"s3://aws_state@state-bucket/airflow/{layout()}",
        f"file:///opt/airflow/logs-other/{layout()}",
        f"file:///opt/airflow/{layout()}",
        f"FILE:///opt/airflow/logs/{layout()}",
        "file:///opt/airflow/logs",
    ],
    ids=[
        "etc-passwd",
        "proc-environ",
        "path-without-scheme",
        "http-localhost",
        "http-metadata",
        "other-bucket",
        "userinfo",
        "userinfo-conn-id",
        "sibling-folder",
        "parent-folder",
        "scheme-case",
        "the-root-itself",
    ],
)
def test_a_link_outside_every_state_folder_is_refused(url):
    message = refusal(url)
    assert message == f"{url!r}, which lies outside the state folder"


OTHER_FILES = {
    "another-task": f"{LOCAL.url}/{layout(task_id='load')}",
    "run-outside-the-lineage": f"{LOCAL.url}/{layout(run_id='manual__2024-02-02T00:00:00+00:00')}",
    "another-dag": f"{LOCAL.url}/{layout(dag_id='other_dag')}",
    "legacy-str-format-layout-not-in-use": f"{LOCAL.url}/etl/transform/{RUN_ID}/1.resume.json",
    "no-try-number": f"{LOCAL.url}/dag_id=etl/run_id={RUN_ID}/task_id=transform.resume.json",
    "the-tasks-log": f"{LOCAL.url}/dag_id=etl/run_id={RUN_ID}/task_id=transform/attempt=1.log",
    "extra-suffix": f"{LOCAL.url}/{layout()}.bak",
    "try-0": f"{LOCAL.url}/{layout(attempt=0)}",
    "try-01": f"{LOCAL.url}/dag_id=etl/run_id={RUN_ID}/task_id=transform/attempt=01.resume.json",
    "try-x": f"{LOCAL.url}/dag_id=etl/run_id={RUN_ID}/task_id=transform/attempt=x.resume.json",
    "double-slash": f"{LOCAL.url}//{layout()}",
    "deeper-folder": f"{LOCAL.url}/nested/{layout()}",
    "trailing-newline": f"{LOCAL.url}/{layout()}\n",
}


@pytest.mark.parametrize("url", list(OTHER_FILES.values()), ids=list(OTHER_FILES))
def test_a_link_to_another_file_in_the_state_folder_is_refused(url):
    message = refusal(url)
    assert message.startswith(repr(url))
    assert (
        f"which is not where the state of task 'transform' of run {RUN_ID!r} or {PARENT_RUN!r} is kept"
        in (message)
    )


@pytest.mark.parametrize(
    "url",
    [
        f"{LOCAL.url}/dag_id=etl/run_id={RUN_ID}/task_id=transform/../../../../../../etc/passwd",
        f"{LOCAL.url}/../../../etc/passwd",
        f"{LOCAL.url}/dag_id=etl/run_id=other/../run_id={RUN_ID}/task_id=transform/attempt=1.resume.json",
        f"{LOCAL.url}/dag_id=etl/./run_id={RUN_ID}/task_id=transform/attempt=1.resume.json",
        f"{LOCAL.url}/{layout()}/..",
        f"{LOCAL.url}/{layout()}?versionId=abc",
        f"{BUCKET.url}/{layout()}#fragment",
        f"{LOCAL.url}/dag_id=etl\\..\\..\\secret",
        f"{LOCAL.url}/{layout()}\x00.txt",
    ],
    ids=[
        "dotdot-out",
        "dotdot-root",
        "dotdot-back-in",
        "dot",
        "trailing-dotdot",
        "query",
        "fragment",
        "backslash",
        "nul",
    ],
)
def test_a_link_that_is_not_a_plain_path_is_refused_before_anything_else(url):
    assert refusal(url) == f"{url!r}, which is not a plain path"


@pytest.mark.parametrize("url", [None, "", 42, {"path": "x"}, ["file:///x"]])
def test_a_link_that_is_not_a_path_is_refused(url):
    assert refusal(url) == f"{url!r}, which is not a path"


def test_a_very_long_link_is_shortened_in_the_message():
    url = f"{LOCAL.url}/{'x' * 5000}"
    message = refusal(url)
    assert message.startswith(repr(url[:300] + "..."))
    assert len(message) < 500


def test_a_long_lineage_is_shortened_in_the_message():
    runs = [f"manual__{i}" for i in range(10)]
    message = refusal(f"{LOCAL.url}/{layout(run_id='manual__99')}", run_ids=runs)
    assert message.endswith("of run 'manual__0' or 'manual__1' or 'manual__2' ... is kept")


def test_a_run_id_with_regex_characters_matches_only_itself():
    run_id = "manual__2024-01-02T03:04:05.123+00:00"
    look_alike = "manual__2024-01-02T03:04:05X123+00:00"
    refusal(f"{LOCAL.url}/{layout(run_id=look_alike)}", run_ids=[run_id])
    assert resolve(f"{LOCAL.url}/{layout(run_id=run_id)}", run_ids=[run_id])[1] == run_id


def test_state_roots_are_normalised_and_deduplicated():
    assert state_roots(
        [
            ("/opt/airflow/logs/", ""),
            ("", "ignored"),
            ("   ", ""),
            ("file:///opt/airflow/logs", "second"),
            ("s3://state-bucket/airflow/", "aws_state"),
        ]
    ) == [LOCAL, BUCKET]


def test_paths_are_shown_relative_to_their_state_folder():
    assert relative_to_roots(f"{LOCAL.url}/{layout()}", ROOTS) == layout()
    assert relative_to_roots(f"{BUCKET.url}/{layout()}", ROOTS) == layout()
    # Not under a root: shown as is (never cut at a look-alike prefix).
    assert relative_to_roots(f"file:///opt/airflow/logs-other/{layout()}", ROOTS) == (
        f"file:///opt/airflow/logs-other/{layout()}"
    )
