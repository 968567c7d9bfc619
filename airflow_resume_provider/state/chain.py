"""
Following a state file back to the root task: every earlier task's XComs, each link verified.

A task's state file holds the XComs of its direct upstream task and a reference (path + digest) to
the upstream's own state file, and so on to the root. Loading the chain from the resume point gives
everything needed to restore the tasks before it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_resume_provider.exceptions import StateError, StateMissingError
from airflow_resume_provider.persisted import RETURN_KEY
from airflow_resume_provider.state import storage
from airflow_resume_provider.state.model import StateRecord, StateRef, StructureSnapshot, XComEntry
from airflow_resume_provider.state.paths import (
    LinkRefused,
    StateLocation,
    StateRoot,
    relative_to_roots,
    resolve_link,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

#: How many state files of a chain are read at the same time (object stores answer each read after a
#: round trip; a long chain read one file after the other would take the sum of them).
READ_PARALLELISM = 8


@dataclass(frozen=True)
class RestoredTask:
    """What a task before the resume point gets in the resumed run."""

    task_id: str
    xcoms: list[XComEntry]
    #: The task's own state file (of one of its map indexes when it is mapped), announced again so
    #: later captures link to it.
    state_ref: StateRef | None
    #: How many map indexes the task ran as when it is mapped; None when it is not.
    map_count: int | None = None

    @property
    def extra_keys(self) -> list[str]:
        return sorted({x.key for x in self.xcoms if x.key != RETURN_KEY})


@dataclass
class StateChain:
    """The resume point's state record and every record it links back to, verified."""

    head: StateRecord
    head_ref: StateRef
    records: list[tuple[StateRecord, StateRef]] = field(default_factory=list)

    @property
    def structure(self) -> StructureSnapshot:
        """The run's recorded structure with its task list (kept in the root task's record)."""
        return next(r.structure for r, _ in self.records if r.structure.tasks)

    def restored_tasks(self) -> dict[str, RestoredTask]:
        """task_id -> what to restore, for every task before the resume point."""
        restored = {}
        for record, _ref in self.records:
            upstream = record.inputs.upstream_task_id
            if upstream is None:
                continue
            restored[upstream] = RestoredTask(
                task_id=upstream,
                xcoms=[x for x in record.inputs.xcoms if x.task_id == upstream],
                state_ref=record.previous,
                map_count=record.inputs.upstream_map_count,
            )
        return restored


@dataclass(frozen=True)
class ChainScope:
    """Where the links of one run's state may lead: configured folders, known log templates, its lineage."""

    dag_id: str
    #: The run and the runs it was resumed from (restored tasks link to the files where they ran).
    run_ids: list[str]
    roots: list[StateRoot]
    templates: list[str]

    def display(self, url: str) -> str:
        """A state file's path as shown to users: relative to its folder, never a full server path."""
        return relative_to_roots(url, self.roots)

    def resolve(self, url: object, task_id: str, map_index: int = -1) -> tuple[StateLocation, str, int]:
        """The location of a linked state file of ``task_id`` (map index ``map_index``); :class:`StateError`
        if it is refused."""
        try:
            return resolve_link(
                url,
                self.roots,
                self.templates,
                dag_id=self.dag_id,
                run_ids=self.run_ids,
                task_id=task_id,
                map_index=map_index,
            )
        except LinkRefused as err:
            raise StateError(f"state link {err}: refused, not read.") from None


class _Prefetched:
    """State files read ahead of the walk along the chain, by URL: ``(record, digest)``, None (missing)
    or the error reading it raised. The walk takes a file from here only when a verified link leads to
    that very URL, so what is read ahead never decides anything by itself."""

    def __init__(self, loads: dict[str, Any]) -> None:
        self._loads = loads

    @classmethod
    def read(cls, hints: Iterable[StateLocation], key: bytes | None, scope: ChainScope) -> _Prefetched:
        locations = {location.url: location for location in hints}
        if len(locations) < 2:
            return cls({})

        def load(location: StateLocation) -> Any:
            try:
                return storage.load(location, key, where=scope.display(location.url))
            except Exception as err:  # raised if and when the walk reaches this file
                return err

        with ThreadPoolExecutor(max_workers=READ_PARALLELISM, thread_name_prefix="resume-chain") as pool:
            return cls(dict(zip(locations, pool.map(load, locations.values()), strict=True)))

    def load(self, location: StateLocation, key: bytes | None, where: str) -> tuple[StateRecord, str] | None:
        if location.url not in self._loads:
            return storage.load(location, key, where=where)
        loaded = self._loads.pop(location.url)
        if isinstance(loaded, Exception):
            raise loaded
        return loaded


def load_chain(
    location: StateLocation,
    scope: ChainScope,
    *,
    key: bytes | None = None,
    max_links: int = 10_000,
    hints: Iterable[StateLocation] = (),
) -> StateChain:
    """
    Load and verify the state file at ``location`` and every file it links back to.

    Each link is checked against ``scope`` before anything is read from it.

    :param hints: where the earlier tasks' state files are expected (e.g. what the run's tasks
        announced, checked against ``scope``); they are read side by side first. A link that leads
        elsewhere is read when it is reached.
    :raises StateError: a file is missing, corrupt, fails its integrity check, or a link is broken or
        leads somewhere a state file of the expected task cannot be.
    """
    shown = scope.display(location.url)
    prefetched = _Prefetched.read([location, *hints], key, scope)
    loaded = prefetched.load(location, key, where=shown)
    if loaded is None:
        raise StateMissingError(f"State file {shown} does not exist.")
    head, digest = loaded
    head_ref = StateRef(path=location.url, digest=digest)
    chain = StateChain(head=head, head_ref=head_ref, records=[(head, head_ref)])
    record = head
    while record.inputs.upstream_task_id is not None:
        upstream = record.inputs.upstream_task_id
        ref = record.previous
        if ref is None:
            raise StateError(
                f"The state of task {record.identity.task_id!r} (run {record.identity.run_id!r}) does not link "
                f"to the state of its upstream task {upstream!r}: that task's state was not recorded "
                "(see its 'resume_capture_error' XCom), so its results cannot be restored."
            )
        if len(chain.records) >= max_links:
            raise StateError(f"State chain from {shown} is longer than {max_links} links; it is corrupt.")
        try:
            linked_location, run_id, try_number = scope.resolve(ref.path, upstream, ref.map_index)
        except StateError as err:
            raise StateError(
                f"The state of task {record.identity.task_id!r} (run {record.identity.run_id!r}) has a {err}"
            ) from None
        linked_shown = scope.display(ref.path)
        linked = prefetched.load(linked_location, key, where=linked_shown)
        if linked is None:
            raise StateError(
                f"State file {linked_shown} of task {upstream!r}, needed to restore its results, does not exist."
            )
        record, linked_digest = linked
        if linked_digest != ref.digest:
            raise StateError(
                f"State file {linked_shown} of task {upstream!r} changed after it was referenced "
                f"(digest {linked_digest[:12]}..., expected {ref.digest[:12]}...); it is not trusted."
            )
        identity = record.identity
        if (identity.dag_id, identity.run_id, identity.task_id, identity.map_index) != (
            scope.dag_id,
            run_id,
            upstream,
            ref.map_index,
        ) or (try_number and identity.try_number != try_number):
            raise StateError(
                f"State file {linked_shown} holds the state of another task attempt ({identity.dag_id!r}, "
                f"{identity.run_id!r}, {identity.task_id!r}, try {identity.try_number}), not of task "
                f"{upstream!r}; the state chain is corrupt."
            )
        chain.records.append((record, ref))
    listed = [r for r, _ in chain.records if r.structure.tasks]
    if not listed or any(r.structure.hash != head.structure.hash for r in listed):
        raise StateError(
            f"The state chain from {shown} does not hold the structure its task recorded (hash "
            f"{head.structure.hash[:12]}...); it is corrupt."
        )
    return chain
