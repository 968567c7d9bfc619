"""Linear order, structure hash and structure differences, on real SDK DAGs."""

from __future__ import annotations

import hashlib
import itertools
import json

import pytest
from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_resume_provider.exceptions import NonLinearDagError
from airflow_resume_provider.structure import TaskShape, describe_changes, linear_order, structure_hash

E = "EmptyOperator"
B = "BashOperator"


def chain_dag(dag_id: str, spec: list[tuple[str, str]], *, define_reversed: bool = False, cmd: str = "echo"):
    """A linear DAG whose tasks follow ``spec`` (task_id, "Empty"/"Bash") from root to leaf."""
    with DAG(dag_id, schedule=None) as dag:
        tasks = {}
        for task_id, kind in reversed(spec) if define_reversed else spec:
            if kind == B:
                tasks[task_id] = BashOperator(task_id=task_id, bash_command=cmd)
            else:
                tasks[task_id] = EmptyOperator(task_id=task_id)
        for (up, _), (down, _) in itertools.pairwise(spec):
            tasks[up] >> tasks[down]
    return dag


def shapes(spec: list[tuple[str, str]]) -> list[TaskShape]:
    return [TaskShape(t, k) for t, k in spec]


ABC = [("a", B), ("b", E), ("c", E)]


def test_linear_order_is_root_to_leaf():
    assert linear_order(chain_dag("lin", ABC)) == shapes(ABC)


def test_linear_order_ignores_definition_order():
    dag = chain_dag("lin_reversed", ABC, define_reversed=True)
    assert list(dag.task_dict) == ["c", "b", "a"]  # defined leaf first
    assert linear_order(dag) == shapes(ABC)


def test_linear_order_follows_dependencies_not_names():
    spec = [("zeta", E), ("alpha", B), ("mid", E)]
    assert [t.task_id for t in linear_order(chain_dag("lin_names", spec))] == ["zeta", "alpha", "mid"]


def test_linear_order_uses_operator_class_names():
    assert [t.task_type for t in linear_order(chain_dag("lin_types", ABC))] == [
        "BashOperator",
        "EmptyOperator",
        "EmptyOperator",
    ]


def test_single_task_dag_is_linear():
    assert linear_order(chain_dag("lin_single", [("only", E)])) == [TaskShape("only", E)]


def test_branching_dag_is_refused_naming_the_branching_task():
    with DAG("branchy", schedule=None) as dag:
        a = EmptyOperator(task_id="a")
        a >> [EmptyOperator(task_id="b"), EmptyOperator(task_id="c")]
    with pytest.raises(NonLinearDagError) as exc:
        linear_order(dag)
    message = str(exc.value)
    assert "DAG 'branchy' has resume enabled but is not linear" in message
    assert "branching (more than one downstream task) at 'a'" in message
    assert "joining" not in message
    assert "root tasks" not in message
    assert "a >> b >> c" in message
    assert "params={'resume': False}" in message


def test_joining_dag_is_refused_naming_the_join_and_the_roots():
    with DAG("joiny", schedule=None) as dag:
        [EmptyOperator(task_id="x"), EmptyOperator(task_id="y")] >> EmptyOperator(task_id="z")
    with pytest.raises(NonLinearDagError) as exc:
        linear_order(dag)
    message = str(exc.value)
    assert "DAG 'joiny'" in message
    assert "joining (more than one upstream task) at 'z'" in message
    assert "2 root tasks ('x', 'y') instead of exactly one" in message
    assert "branching" not in message


def test_diamond_names_both_branch_and_join():
    with DAG("diamond", schedule=None) as dag:
        start, end = EmptyOperator(task_id="start"), EmptyOperator(task_id="end")
        left, right = EmptyOperator(task_id="left"), EmptyOperator(task_id="right")
        start >> [left, right] >> end
    with pytest.raises(NonLinearDagError) as exc:
        linear_order(dag)
    message = str(exc.value)
    assert "branching (more than one downstream task) at 'start'" in message
    assert "joining (more than one upstream task) at 'end'" in message


def test_disconnected_tasks_are_refused_naming_every_root():
    with DAG("two_chains", schedule=None) as dag:
        EmptyOperator(task_id="a") >> EmptyOperator(task_id="b")
        EmptyOperator(task_id="c")
    with pytest.raises(NonLinearDagError, match=r"2 root tasks \('a', 'c'\) instead of exactly one"):
        linear_order(dag)


def test_several_branch_points_are_all_named_sorted():
    with DAG("many_branches", schedule=None) as dag:
        r = EmptyOperator(task_id="r")
        q = EmptyOperator(task_id="q")
        r >> [q, EmptyOperator(task_id="r2")]
        q >> [EmptyOperator(task_id="q1"), EmptyOperator(task_id="q2")]
    with pytest.raises(NonLinearDagError, match=r"branching \(more than one downstream task\) at 'q', 'r'"):
        linear_order(dag)


def test_dag_without_tasks_is_refused():
    with DAG("empty_dag", schedule=None) as dag:
        pass
    with pytest.raises(NonLinearDagError, match=r"DAG 'empty_dag' has no tasks"):
        linear_order(dag)


def test_structure_hash_is_sha256_of_ordered_pairs():
    order = shapes(ABC)
    expected = hashlib.sha256(
        json.dumps([[t, k] for t, k in ABC], separators=(",", ":")).encode()
    ).hexdigest()
    assert structure_hash(order) == expected


def test_structure_hash_ignores_task_arguments_and_definition_order():
    one = linear_order(chain_dag("hash_one", ABC, cmd="echo 1"))
    two = linear_order(chain_dag("hash_two", ABC, cmd="echo 2", define_reversed=True))
    assert structure_hash(one) == structure_hash(two)


@pytest.mark.parametrize(
    "other",
    [
        [("b", E), ("a", B), ("c", E)],  # reordered
        [("a", E), ("b", E), ("c", E)],  # operator type changed
        [("a", B), ("b", E)],  # removed
        [("a", B), ("b", E), ("c", E), ("d", E)],  # added
        [("a", B), ("renamed", E), ("c", E)],  # renamed
    ],
)
def test_structure_hash_changes_with_structure(other):
    assert structure_hash(shapes(other)) != structure_hash(shapes(ABC))


def test_describe_changes_empty_for_equal_structures():
    recorded = linear_order(chain_dag("equal_one", ABC, cmd="echo old"))
    current = linear_order(chain_dag("equal_two", ABC, cmd="echo new"))
    assert describe_changes(recorded, current) == []


def test_describe_changes_names_reorder():
    recorded = shapes([("a", E), ("b", E), ("c", E)])
    current = shapes([("a", E), ("c", E), ("b", E)])
    assert describe_changes(recorded, current) == ["tasks were reordered: was a >> b >> c, now a >> c >> b"]


def test_describe_changes_names_added_task():
    assert describe_changes(shapes(ABC), shapes([*ABC, ("d", B)])) == ["task 'd' was added"]


def test_describe_changes_names_removed_task():
    assert describe_changes(shapes(ABC), shapes([("a", B), ("c", E)])) == ["task 'b' was removed"]


def test_describe_changes_names_operator_type_change():
    current = shapes([("a", B), ("b", B), ("c", E)])
    assert describe_changes(shapes(ABC), current) == [
        "task 'b' changed operator type from EmptyOperator to BashOperator"
    ]


def test_describe_changes_rename_is_remove_plus_add_without_reorder():
    current = shapes([("a", B), ("b2", E), ("c", E)])
    assert describe_changes(shapes(ABC), current) == ["task 'b' was removed", "task 'b2' was added"]


def test_describe_changes_reports_several_changes_on_real_dags():
    recorded = linear_order(chain_dag("changes_old", [("extract", B), ("transform", E), ("load", E)]))
    current = linear_order(chain_dag("changes_new", [("transform", B), ("extract", B), ("publish", E)]))
    changes = describe_changes(recorded, current)
    assert changes == [
        "task 'load' was removed",
        "task 'publish' was added",
        "task 'transform' changed operator type from EmptyOperator to BashOperator",
        "tasks were reordered: was extract >> transform, now transform >> extract",
    ]


def mapped_dag(dag_id: str, *, mapped: bool):
    """``a >> b >> c`` with ``b`` a BashOperator, mapped over two commands when ``mapped``."""
    with DAG(dag_id, schedule=None) as dag:
        a = EmptyOperator(task_id="a")
        if mapped:
            b = BashOperator.partial(task_id="b").expand(bash_command=["echo 1", "echo 2"])
        else:
            b = BashOperator(task_id="b", bash_command="echo 1")
        a >> b >> EmptyOperator(task_id="c")
    return dag


def test_a_mapped_step_is_one_step_of_the_chain():
    order = linear_order(mapped_dag("mapped_chain", mapped=True))
    assert order == [TaskShape("a", E), TaskShape("b", B, mapped=True), TaskShape("c", E)]


def test_structure_hash_of_a_chain_without_mapped_steps_is_unchanged_and_mapping_changes_it():
    plain = linear_order(mapped_dag("mapped_plain", mapped=False))
    mapped = linear_order(mapped_dag("mapped_hash", mapped=True))
    assert (
        structure_hash(plain)
        == hashlib.sha256(
            json.dumps([["a", E], ["b", B], ["c", E]], separators=(",", ":")).encode()
        ).hexdigest()
    )
    assert structure_hash(mapped) != structure_hash(plain)


def test_describe_changes_names_a_step_that_became_or_stopped_being_mapped():
    plain = linear_order(mapped_dag("mapped_before", mapped=False))
    mapped = linear_order(mapped_dag("mapped_after", mapped=True))
    assert describe_changes(plain, mapped) == ["task 'b' became mapped (.expand)"]
    assert describe_changes(mapped, plain) == ["task 'b' stopped being mapped"]
