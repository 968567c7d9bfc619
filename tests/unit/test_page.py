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
