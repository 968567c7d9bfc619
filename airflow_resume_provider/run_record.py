"""
The provider's record in a resumed run's conf: where the run comes from and the original context.

It lives under ``conf["__resume__"]``, a place anyone who may trigger a run can also write. So the
record is signed (HMAC-SHA256 over the DAG id, the run id and the record) with a secret that only the
deployment's components hold (:func:`airflow_resume_provider.conf.run_record_secret`), and only a record
whose signature verifies for *that* run is trusted. Any other ``__resume__`` value is ignored, and
said to be ignored. The same secret tags the ids of resumed runs, so nobody can create a run under
the id the provider will use for the resumed run of another (run-id squatting).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from airflow_resume_provider import conf
from airflow_resume_provider.exceptions import SigningUnavailableError
from airflow_resume_provider.models import InputChange  # noqa: TC001 - pydantic resolves it at runtime
from airflow_resume_provider.persisted import CONF_KEY, RESUME_RUN_PREFIX, SIGNATURE_KEY

MAX_RUN_ID_LENGTH = 250
_TAG_CHARS = 10
_DEFAULT_RUN_ID_PATTERN = r"^[A-Za-z0-9_.~:+-]+$"

#: How a resumed run was asked for: by a person (UI, REST, CLI) or by resume on retry.
Kind = Literal["manual", "retry"]
KIND_MANUAL: Kind = "manual"
KIND_RETRY: Kind = "retry"


class ParentLineage(BaseModel):
    """
    What the OpenLineage provider derived the failed run's run ids from, so that the ``airflowResume``
    facet can name them (``lineage.py``): the run's logical date (else its ``run_after``), its clear
    number, and the try of each task (map index) that runs again and had run in the failed run.
    Persisted JSON keys: never rename.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    logical_date: StrictStr | None = None
    run_after: StrictStr | None = None
    clear_number: StrictInt = 0
    #: ``[task_id, map_index, try_number]`` of each attempt of the failed run that the new run makes again.
    tries: list[tuple[StrictStr, StrictInt, StrictInt]] = Field(default_factory=list)


class RunRecord(BaseModel):
    """What the provider records in a run it created. Persisted JSON keys: never rename."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    parent_run_id: StrictStr
    root_run_id: StrictStr
    resume_count: StrictInt = Field(ge=1)
    resumed_at_task_id: StrictStr | None = None
    kind: Kind = KIND_MANUAL
    retry_attempt: StrictInt = Field(default=0, ge=0)
    logical_date: StrictStr | None = None
    data_interval_start: StrictStr | None = None
    data_interval_end: StrictStr | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] | None = None
    #: ``[task_id, exception_type, message]`` of the failure this run retries (automatic retries).
    parent_failure: list[Any] | None = None
    #: The failed run's OpenLineage identity (absent in records of earlier versions).
    parent_lineage: ParentLineage | None = None
    #: The inputs the resume changed (``params`` holds the new values), sensitive values masked.
    changes: list[InputChange] = Field(default_factory=list)
    #: Trigger steps that wait for a resumed child run instead of triggering one (absent before 0.3).
    attach: list[ChildAttachment] = Field(default_factory=list)
    #: The resumed parent run whose trigger step waits for this run (a child resumed with its parent).
    parent_tree_run: TreeRun | None = None

    def attachment(self, task_id: str, map_index: int) -> ChildAttachment | None:
        """The child run step ``task_id`` (map index ``map_index``) waits for, or None."""
        for entry in self.attach:
            if entry.task_id == task_id and entry.map_index == map_index:
                return entry
        return None


class ChildAttachment(BaseModel):
    """
    A trigger step of a resumed run that waits for a resumed child run instead of triggering a new one
    (``attach.py``). Persisted JSON keys: never rename.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    task_id: StrictStr
    map_index: StrictInt = -1
    dag_id: StrictStr
    run_id: StrictStr


class TreeRun(BaseModel):
    """The resumed run one level up in a tree (the parent whose trigger step waits for this run)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    dag_id: StrictStr
    run_id: StrictStr
    task_id: StrictStr
    map_index: StrictInt = -1


@dataclass(frozen=True)
class RunRecordCheck:
    """The outcome of reading a run's conf: the trusted run record, or why a ``__resume__`` entry was ignored."""

    record: RunRecord | None = None
    ignored: str | None = None

    @property
    def lineage(self) -> dict[str, Any]:
        if self.record is None:
            return {}
        lineage = self.record.model_dump(
            include={
                "parent_run_id",
                "root_run_id",
                "resume_count",
                "resumed_at_task_id",
                "kind",
                "retry_attempt",
            }
        )
        if self.record.parent_tree_run is not None:
            # A child resumed with its parent: the resumed run one level up in the tree.
            lineage["parent_tree_run"] = self.record.parent_tree_run.model_dump()
        return lineage


def _secret() -> bytes:
    secret = conf.run_record_secret()
    if not secret:
        raise SigningUnavailableError(
            "Neither [resume] signing_key nor [api_auth] jwt_secret is set on this component, so resumed "
            "runs cannot be signed or verified. Set [api_auth] jwt_secret (or [resume] signing_key) to the "
            "same value on every Airflow component."
        )
    # The derivation label and the payload's "marker" key below are persisted in every signature: never change.
    return hmac.new(secret, b"airflow-resume-provider/run-marker", hashlib.sha256).digest()


def _signature(key: bytes, dag_id: str, run_id: str, body: dict[str, Any]) -> str:
    payload = json.dumps(
        {"dag_id": dag_id, "run_id": run_id, "marker": body},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def sign(dag_id: str, run_id: str, record: RunRecord) -> dict[str, Any]:
    """The conf value for ``record`` in run ``run_id``: its JSON form plus a signature bound to the run."""
    body = record.model_dump(mode="json")
    return {**body, SIGNATURE_KEY: _signature(_secret(), dag_id, run_id, body)}


def check(dag_id: str, run_id: str, run_conf: Any) -> RunRecordCheck:
    """The run record of a run, trusted only when the provider signed it for this very run."""
    if not isinstance(run_conf, dict) or CONF_KEY not in run_conf:
        return RunRecordCheck()
    raw = run_conf[CONF_KEY]
    ignored = (
        f"The run's conf has a {CONF_KEY!r} entry that this provider did not write for this run; it was "
        "ignored and the run is treated as a normal run."
    )
    if not isinstance(raw, dict) or not isinstance(raw.get(SIGNATURE_KEY), str):
        return RunRecordCheck(ignored=ignored)
    body = {k: v for k, v in raw.items() if k != SIGNATURE_KEY}
    expected = _signature(_secret(), dag_id, run_id, body).encode()
    if not hmac.compare_digest(expected, raw[SIGNATURE_KEY].encode("utf-8", "replace")):
        return RunRecordCheck(ignored=ignored)
    try:
        return RunRecordCheck(record=RunRecord.model_validate(body))
    except ValidationError:
        return RunRecordCheck(ignored=ignored)


def check_quietly(dag_id: str, run_id: str, run_conf: Any) -> RunRecordCheck:
    """:func:`check`, where a component without the secret treats every entry as not verifiable."""
    try:
        return check(dag_id, run_id, run_conf)
    except SigningUnavailableError as err:
        if isinstance(run_conf, dict) and CONF_KEY in run_conf:
            return RunRecordCheck(ignored=str(err))
        return RunRecordCheck()


def looks_resumed(run_id: str) -> bool:
    """Whether a run id has the shape of the provider's resumed runs (not proof: see :func:`check`)."""
    return run_id.startswith(RESUME_RUN_PREFIX)


def _run_id_acceptable(run_id: str) -> bool:
    pattern = conf.allowed_run_id_pattern() or _DEFAULT_RUN_ID_PATTERN
    try:
        return len(run_id) <= MAX_RUN_ID_LENGTH and re.match(pattern, run_id) is not None
    except re.error:
        return re.match(_DEFAULT_RUN_ID_PATTERN, run_id) is not None


def resumed_run_id(dag_id: str, source_run_id: str, root_run_id: str, count: int) -> str:
    """
    The id of the run that resumes ``source_run_id``: deterministic, so concurrent requests meet on
    it, and tagged with the secret, so nobody else can create a run under it in advance.
    """
    tag = hmac.new(_secret(), f"{dag_id}\0{source_run_id}\0{count}".encode(), hashlib.sha256).hexdigest()[
        :_TAG_CHARS
    ]
    run_id = f"{RESUME_RUN_PREFIX}{root_run_id}__{count}__{tag}"
    if not _run_id_acceptable(run_id):
        run_id = f"{RESUME_RUN_PREFIX}{hashlib.sha256(root_run_id.encode()).hexdigest()[:24]}__{count}__{tag}"
    return run_id


def next_in_chain(source_run_id: str, source: RunRecordCheck) -> tuple[str, int]:
    """The root run and resume count of the run that resumes ``source_run_id``."""
    if source.record is not None:
        return source.record.root_run_id, source.record.resume_count + 1
    return source_run_id, 1
