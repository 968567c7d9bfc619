"""How the Resume page and the CLI show a plan."""

from __future__ import annotations


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
