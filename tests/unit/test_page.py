"""How the Resume page and the CLI show a plan."""

from __future__ import annotations

from types import SimpleNamespace


def test_map_indexes_are_shown_as_short_ranges():
    from airflow_resume_provider.models import MapIndexStep, PlanStep
    from airflow_resume_provider.ui.page import index_ranges, map_summary

    assert index_ranges([4, 0, 1, 2, 7, 8]) == "0-2, 4, 7-8"
    assert index_ranges([]) == ""
    step = PlanStep(
        task_id="t",
        task_type="X",
        action="run",
        mapped=True,
        map_indexes=[
            MapIndexStep(map_index=i, action="run" if i == 3 else "restored", state=None) for i in range(5)
        ],
    )
    assert map_summary(step) == "restored 0-2, 4; run 3"


def test_the_failure_cause_is_shown_on_the_page():
    from airflow_resume_provider.resumability import decide
    from airflow_resume_provider.state.chain import StateChain
    from airflow_resume_provider.ui import page
    from airflow_resume_provider.ui.routes import _templates
    from tests.unit.builders import facts, record, ref, transform_chain

    def rendered(run_facts) -> str:
        verdict = decide(run_facts)
        model = page.build(verdict, run_facts, {"transform": "failed"}, show_xcom_values=True)
        client = {"resume_url": "", "csrf_token": "", "failed_task_id": "transform"}
        return (
            _templates()
            .get_template("resume.html")
            .render(
                nonce="n",
                dag_id="etl",
                run_id="r",
                page=model,
                client=client,
                can_trigger=True,
                can_choose=True,
                page_url=lambda run_id: run_id,
            )
        )

    html = rendered(facts(chain=transform_chain()))
    assert '<span class="tag" id="failure-cause">error</span>' in html
    assert "an exception raised by the task's code" in html
    killed = record("transform", upstream="extract")
    html = rendered(
        facts(chain=StateChain(head=killed, head_ref=ref("transform"), records=[(killed, ref("t"))]))
    )
    assert '<span class="tag" id="failure-cause">infrastructure</span>' in html
    assert "No error recorded by the task itself" in html


def test_the_change_inputs_form_has_one_field_per_run_level_param_by_its_schema():
    from airflow.serialization.definitions.param import SerializedParam, SerializedParamsDict

    from airflow_resume_provider.inputs import fields
    from airflow_resume_provider.resumability import decide
    from airflow_resume_provider.ui import page
    from airflow_resume_provider.ui.routes import _templates
    from tests.unit.builders import facts, transform_chain

    dag = SimpleNamespace(
        params=SerializedParamsDict(
            {
                "resume": SerializedParam(True),
                "threshold": SerializedParam(
                    10, type="integer", minimum=1, description="Most rows accepted."
                ),
                "region": SerializedParam("eu", enum=["eu", "us"]),
                "dry": SerializedParam(False, type="boolean"),
                "columns": SerializedParam(["id", "amount"], type="array"),
                "label": SerializedParam("nightly", type="string"),
                "api_key": SerializedParam("k-123", type="string"),
            }
        )
    )
    run_facts = facts(chain=transform_chain())
    form = fields(dag, {"threshold": 10, "region": "us", "api_key": "k-123"})
    assert [(f.name, f.kind) for f in form] == [
        ("threshold", "integer"),
        ("region", "enum"),
        ("dry", "boolean"),
        ("columns", "json"),
        ("label", "string"),
        ("api_key", "string"),
    ]

    def rendered(can_change: bool, allowed: bool = True) -> str:
        model = page.build(
            decide(run_facts), run_facts, {"transform": "failed"}, show_xcom_values=True, param_fields=form
        )
        return (
            _templates()
            .get_template("resume.html")
            .render(
                nonce="n",
                dag_id="etl",
                run_id="r",
                page=model,
                client={},
                can_trigger=can_change,
                can_choose=True,
                can_change_inputs=can_change,
                input_changes_allowed=allowed,
                page_url=lambda run_id: run_id,
            )
        )

    html = rendered(True)
    assert '<input type="number" id="param-1" step="1" value="10">' in html
    assert "Most rows accepted." in html
    assert '<option value="&#34;us&#34;" selected>us</option>' in html  # the failed run's value
    assert '<input type="checkbox" id="param-3">' in html
    assert ">[&#34;id&#34;, &#34;amount&#34;]</textarea>" in html
    assert "k-123" not in html  # a sensitive value is never on the page
    assert 'placeholder="unchanged (hidden)"' in html
    read_only = rendered(False)
    assert (
        'id="inputs-read-only"' in read_only
        and '<input type="number" id="param-1" step="1" value="10" disabled>' in read_only
    )
    assert 'id="inputs-disabled"' in rendered(True, allowed=False)
