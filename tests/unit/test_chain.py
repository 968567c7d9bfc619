"""
The state chain: following linked state files as the provider does, every link checked against the
run's :class:`ChainScope` before it is read, and what each earlier task restores.
"""

from __future__ import annotations

import json

import pytest

from airflow_resume_provider.exceptions import (
    StateError,
    StateMissingError,
)
from airflow_resume_provider.resumability import build_plan, decide
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.chain import StateChain, load_chain
from airflow_resume_provider.state.model import (
    StateRecord,
    StateRef,
    XComEntry,
)
from airflow_resume_provider.state.paths import StateLocation
from tests.unit.builders import (
    BASH,
    DAG_ID,
    EXTRACT_XCOMS,
    KEY,
    ORDER,
    PY,
    RESUMED_RUN,
    RUN_ID,
    TRANSFORM_XCOMS,
    facts,
    failure,
    load_chain_in_memory,
    mapped_record,
    record,
    ref,
    rel,
    scope,
    write,
    write_chain,
)

# --- the state chain ----------------------------------------------------------------------------------


def test_restored_tasks_gives_each_earlier_task_its_xcoms_and_own_state_file():
    restored = load_chain_in_memory().restored_tasks()

    assert set(restored) == {"extract", "transform"}
    assert restored["transform"].xcoms == TRANSFORM_XCOMS
    assert restored["transform"].state_ref == ref("transform", "t")
    assert restored["transform"].extra_keys == ["audit", "rejected"]
    assert restored["extract"].xcoms == EXTRACT_XCOMS
    assert restored["extract"].state_ref == ref("extract", "e")
    assert restored["extract"].extra_keys == ["row_count"]


def test_restored_task_with_only_a_return_value_has_no_extra_keys():
    only_return = [XComEntry(task_id="extract", key="return_value", value=42)]
    head = record("transform", upstream="extract", xcoms=only_return, previous=ref("extract"))
    restored = StateChain(
        head=head, head_ref=ref("transform"), records=[(head, ref("transform"))]
    ).restored_tasks()
    assert restored["extract"].xcoms == only_return
    assert restored["extract"].extra_keys == []


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The URLs of every state file read (or attempted)."""
    seen: list[str] = []
    real = storage.read_bytes

    def spy(location, **kwargs):
        seen.append(location.url)
        return real(location, **kwargs)

    monkeypatch.setattr(storage, "read_bytes", spy)
    return seen


def test_load_chain_follows_three_linked_files(tmp_path):
    refs = write_chain(tmp_path)

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)

    assert chain.head.identity.task_id == "load"
    assert chain.head.failure == failure()
    assert chain.head_ref == refs["load"]
    assert [(r.identity.task_id, ref_) for r, ref_ in chain.records] == [
        ("load", refs["load"]),
        ("transform", refs["transform"]),
        ("extract", refs["extract"]),
    ]
    restored = chain.restored_tasks()
    assert restored["transform"].xcoms == TRANSFORM_XCOMS
    assert restored["transform"].state_ref == refs["transform"]
    assert restored["extract"].xcoms == EXTRACT_XCOMS
    assert restored["extract"].state_ref == refs["extract"]
    # The plan names the files relative to the state folder.
    plan = build_plan(
        facts(failed_task_id="load", resume_task_id="load", chain=chain, roots=scope(tmp_path).roots)
    )
    assert [s.source for s in plan] == [rel("transform"), rel("load"), None]


def test_load_chain_follows_links_into_the_runs_a_resumed_run_came_from(tmp_path):
    # A resumed run's task links to the state of the restored task in the run where it really ran.
    refs = write_chain(tmp_path)
    head = write(
        tmp_path,
        record(
            "load",
            upstream="transform",
            xcoms=TRANSFORM_XCOMS,
            previous=refs["transform"],
            failed=True,
            run_id=RESUMED_RUN,
        ),
    )

    chain = load_chain(StateLocation(url=head.path), scope(tmp_path, (RESUMED_RUN, RUN_ID)), key=KEY)
    assert [(r.identity.task_id, r.identity.run_id) for r, _ in chain.records] == [
        ("load", RESUMED_RUN),
        ("transform", RUN_ID),
        ("extract", RUN_ID),
    ]

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path, (RESUMED_RUN,)), key=KEY)
    assert str(err.value) == (
        f"The state of task 'load' (run {RESUMED_RUN!r}) has a state link {refs['transform'].path!r}, which is "
        f"not where the state of task 'transform' of run {RESUMED_RUN!r} is kept: refused, not read."
    )


def test_load_chain_rejects_a_tampered_middle_file(tmp_path):
    refs = write_chain(tmp_path)
    middle = tmp_path / rel("transform")
    document = json.loads(middle.read_bytes())
    document["inputs"]["xcoms"][0]["value"] = [{"id": 1, "name": "Mallory"}]
    middle.write_text(json.dumps(document))

    with pytest.raises(StateError, match="integrity") as err:
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)
    assert f"State file {rel('transform')} " in str(err.value)
    assert str(tmp_path) not in str(err.value)
    assert not isinstance(err.value, StateMissingError)


def test_load_chain_rejects_a_file_rewritten_after_it_was_referenced(tmp_path):
    refs = write_chain(tmp_path)
    # A valid, correctly digested file, but not the one the downstream record pinned.
    other = [XComEntry(task_id="extract", key="return_value", value=[{"id": 2}])]
    write(tmp_path, record("transform", upstream="extract", xcoms=other, previous=refs["extract"]))

    with pytest.raises(StateError, match="changed after it was referenced") as err:
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)
    assert str(err.value).startswith(f"State file {rel('transform')} of task 'transform' changed")
    assert str(tmp_path) not in str(err.value)


def test_a_failure_added_after_the_next_task_linked_to_the_file_keeps_the_link_valid(tmp_path):
    # transform fails after load (trigger rule all_done) linked to its state: the link still holds.
    refs = write_chain(tmp_path)
    failed = record(
        "transform", upstream="extract", xcoms=EXTRACT_XCOMS, previous=refs["extract"], failed=True
    )
    write(tmp_path, failed)

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)

    assert [r.identity.task_id for r, _ in chain.records] == ["load", "transform", "extract"]
    assert chain.records[1][0].failure == failure()


def test_a_failure_record_edited_without_the_key_is_refused(tmp_path):
    refs = write_chain(tmp_path)
    head = tmp_path / rel("load")
    document = json.loads(head.read_bytes())
    document["failure"]["message"] = "nothing to see here"
    head.write_text(json.dumps(document))

    with pytest.raises(StateError, match="integrity"):
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)


def test_load_chain_without_the_head_file_is_missing_state(tmp_path):
    location = StateLocation(url=f"file://{tmp_path}/{rel('load')}")
    with pytest.raises(StateMissingError) as err:
        load_chain(location, scope(tmp_path), key=KEY)
    assert str(err.value) == f"State file {rel('load')} does not exist."


def test_load_chain_with_a_missing_middle_file_is_invalid_not_missing_state(tmp_path):
    refs = write_chain(tmp_path)
    (tmp_path / rel("transform")).unlink()

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY)
    assert not isinstance(err.value, StateMissingError)
    assert str(err.value) == (
        f"State file {rel('transform')} of task 'transform', needed to restore its results, does not exist."
    )


def test_load_chain_when_the_upstream_state_was_not_recorded(tmp_path):
    head = write(tmp_path, record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=None))

    with pytest.raises(StateError, match="resume_capture_error") as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)
    assert "'load'" in str(err.value)
    assert "'transform'" in str(err.value)


def test_load_chain_refuses_a_link_to_another_tasks_file_without_reading_it(tmp_path, reads):
    extract = write(tmp_path, record("extract"))
    head = write(tmp_path, record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=extract))

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)
    assert str(err.value) == (
        f"The state of task 'load' (run {RUN_ID!r}) has a state link {extract.path!r}, which is not where the "
        f"state of task 'transform' of run {RUN_ID!r} is kept: refused, not read."
    )
    assert reads == [head.path]


@pytest.mark.parametrize(
    ("stored", "at", "shown"),
    [
        (record("extract"), rel("transform"), f"({DAG_ID!r}, {RUN_ID!r}, 'extract', try 1)"),
        (
            record("transform", run_id="manual__other"),
            rel("transform"),
            f"({DAG_ID!r}, 'manual__other', 'transform', try 1)",
        ),
        (
            record("transform", try_number=1),
            rel("transform", attempt=2),
            f"({DAG_ID!r}, {RUN_ID!r}, 'transform', try 1)",
        ),
        (
            record("transform", dag_id="other_dag"),
            rel("transform"),
            f"('other_dag', {RUN_ID!r}, 'transform', try 1)",
        ),
    ],
    ids=["other-task", "other-run", "other-try", "other-dag"],
)
def test_load_chain_rejects_a_file_holding_another_task_attempt(tmp_path, stored, at, shown):
    # The link is where transform's state belongs, but the file there is someone else's.
    misplaced = write(tmp_path, stored, at=at)
    head = write(tmp_path, record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=misplaced))

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)
    assert str(err.value) == (
        f"State file {at} holds the state of another task attempt {shown}, not of task 'transform'; "
        "the state chain is corrupt."
    )


@pytest.mark.parametrize(
    "link",
    [
        "file://{elsewhere}/" + rel("transform"),
        "file://{tmp_path}/../{elsewhere_name}/" + rel("transform"),
        "file://{tmp_path}/" + rel("transform", run_id="manual__not_in_lineage"),
        "file:///etc/passwd",
        "/proc/self/environ",
        "http://127.0.0.1:1/x",
        "s3://other-bucket/" + rel("transform"),
        "file://{tmp_path}/" + rel("transform") + "?x=1",
    ],
    ids=[
        "other-folder",
        "dotdot-escape",
        "run-not-in-lineage",
        "etc-passwd",
        "proc",
        "http",
        "other-bucket",
        "query",
    ],
)
def test_load_chain_never_reads_a_link_outside_its_scope(tmp_path, tmp_path_factory, reads, link):
    # A valid state file of 'transform', pinned by the right digest, that must still not be followed.
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    planted = write(elsewhere, record("transform", upstream="extract", xcoms=EXTRACT_XCOMS))
    write(tmp_path, record("transform", run_id="manual__not_in_lineage"))
    link = link.format(tmp_path=tmp_path, elsewhere=elsewhere, elsewhere_name=elsewhere.name)
    head = write(
        tmp_path,
        record(
            "load",
            upstream="transform",
            xcoms=TRANSFORM_XCOMS,
            previous=StateRef(path=link, digest=planted.digest),
        ),
    )

    with pytest.raises(StateError) as err:
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)
    message = str(err.value)
    assert message.startswith(f"The state of task 'load' (run {RUN_ID!r}) has a state link {link!r}, which ")
    assert message.endswith(": refused, not read.")
    assert not isinstance(err.value, StateMissingError)
    assert reads == [head.path]


# --- mapped steps ---------------------------------------------------------------------------------------


def test_load_chain_follows_a_link_to_one_map_index_of_a_mapped_upstream(tmp_path):
    extract = write(tmp_path, mapped_record("extract", -1))
    at = f"dag_id={DAG_ID}/run_id={RUN_ID}/task_id=transform/map_index=2/attempt=1.resume.json"
    transform = write(tmp_path, mapped_record("transform", 2, upstream="extract", previous=extract), at=at)
    transform = transform.model_copy(update={"map_index": 2})
    xcoms = [XComEntry(task_id="transform", key="return_value", map_index=i, value=i * 10) for i in range(3)]
    load = mapped_record("load", -1, upstream="transform", xcoms=xcoms, previous=transform, failed=True)
    load = load.model_copy(update={"inputs": load.inputs.model_copy(update={"upstream_map_count": 3})})
    head = write(tmp_path, load)

    chain = load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)

    restored = chain.restored_tasks()
    assert restored["transform"].map_count == 3
    assert [(x.map_index, x.value) for x in restored["transform"].xcoms] == [(0, 0), (1, 10), (2, 20)]
    plan = build_plan(
        facts(failed_task_id="load", resume_task_id="load", chain=chain, roots=scope(tmp_path).roots)
    )
    assert plan[1].mapped and [m.map_index for m in plan[1].map_indexes] == [0, 1, 2]


def test_load_chain_refuses_a_link_naming_another_map_index_than_the_file_holds(tmp_path):
    extract = write(tmp_path, mapped_record("extract", -1))
    at = f"dag_id={DAG_ID}/run_id={RUN_ID}/task_id=transform/map_index=1/attempt=1.resume.json"
    # Index 2's record stored where index 1's belongs.
    transform = write(tmp_path, mapped_record("transform", 2, upstream="extract", previous=extract), at=at)
    load = mapped_record(
        "load", -1, upstream="transform", previous=transform.model_copy(update={"map_index": 1}), failed=True
    )
    head = write(tmp_path, load)
    with pytest.raises(StateError, match="holds the state of another task attempt"):
        load_chain(StateLocation(url=head.path), scope(tmp_path), key=KEY)


def test_a_record_claiming_an_absurd_number_of_map_indexes_does_not_match_the_schema():
    rec = record("load", upstream="transform").model_dump(mode="json")
    rec["inputs"]["upstream_map_count"] = 10**9
    with pytest.raises(ValueError, match="upstream_map_count"):
        StateRecord.model_validate(rec)


# --- reading a chain side by side ---------------------------------------------------------------------


def test_load_chain_reads_the_hinted_files_side_by_side_and_each_once(tmp_path, reads, monkeypatch):
    import threading

    refs = write_chain(tmp_path)
    threads: set[str] = set()
    real = storage.read_bytes

    def spy(location, **kwargs):
        threads.add(threading.current_thread().name)
        return real(location, **kwargs)

    monkeypatch.setattr(storage, "read_bytes", spy)
    hints = [StateLocation(url=refs[t].path) for t in ("extract", "transform")]

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY, hints=hints)

    assert [r.identity.task_id for r, _ in chain.records] == ["load", "transform", "extract"]
    assert sorted(reads) == sorted(refs[t].path for t in ("load", "transform", "extract"))
    assert all(name.startswith("resume-chain") for name in threads)


def test_a_hint_the_chain_does_not_lead_to_is_never_used(tmp_path):
    refs = write_chain(tmp_path)
    # A forged "transform" file somewhere else, hinted: the walk follows the verified link instead.
    forged = write(
        tmp_path,
        record(
            "transform",
            upstream="extract",
            xcoms=[XComEntry(task_id="extract", key="return_value", value="forged")],
        ),
        at="elsewhere/transform.resume.json",
    )
    hints = [StateLocation(url=forged.path), StateLocation(url=refs["extract"].path)]

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY, hints=hints)

    assert chain.restored_tasks()["extract"].xcoms == EXTRACT_XCOMS


def test_an_unreadable_hint_the_chain_does_not_reach_is_no_error(tmp_path):
    refs = write_chain(tmp_path)
    broken = tmp_path / "broken.resume.json"
    broken.write_text("{not json")
    hints = [StateLocation(url=f"file://{broken}"), StateLocation(url=refs["transform"].path)]

    chain = load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY, hints=hints)

    assert len(chain.records) == 3


def test_a_hinted_file_changed_after_it_was_linked_is_still_refused(tmp_path):
    refs = write_chain(tmp_path)
    # transform's file rewritten (validly signed, other content) after load linked to it.
    write(tmp_path, record("transform", upstream="extract", xcoms=[], previous=refs["extract"]))
    hints = [StateLocation(url=refs["transform"].path), StateLocation(url=refs["extract"].path)]

    with pytest.raises(StateError, match="changed after it was referenced"):
        load_chain(StateLocation(url=refs["load"].path), scope(tmp_path), key=KEY, hints=hints)


# --- the structure's task list, kept in the root task's record -----------------------------------------


def without_task_list(rec: StateRecord) -> StateRecord:
    return rec.model_copy(update={"structure": rec.structure.model_copy(update={"tasks": []})})


def test_a_chain_takes_the_task_list_from_its_root_record(tmp_path):
    extract = write(tmp_path, record("extract"))
    transform = write(
        tmp_path,
        without_task_list(record("transform", upstream="extract", xcoms=EXTRACT_XCOMS, previous=extract)),
    )
    load = write(
        tmp_path,
        without_task_list(
            record("load", upstream="transform", xcoms=TRANSFORM_XCOMS, previous=transform, failed=True)
        ),
    )

    chain = load_chain(StateLocation(url=load.path), scope(tmp_path), key=KEY)

    assert chain.head.structure.tasks == []
    assert chain.structure.tasks == ORDER
    verdict = decide(facts(failed_task_id="load", resume_task_id="load", chain=chain))
    assert verdict.resumable, verdict.reason
    assert [s.task_id for s in verdict.plan.tasks] == ["extract", "transform", "load"]


def test_a_chain_whose_root_recorded_another_structure_is_corrupt(tmp_path):
    other = [("extract", PY), ("load", BASH)]
    extract = write(tmp_path, record("extract", order=other))
    transform = write(
        tmp_path,
        without_task_list(record("transform", upstream="extract", xcoms=EXTRACT_XCOMS, previous=extract)),
    )
    with pytest.raises(StateError, match="does not hold the structure its task recorded"):
        load_chain(StateLocation(url=transform.path), scope(tmp_path), key=KEY)
