"""Reading and writing state files: local files directly, object storage through ObjectStoragePath."""

from __future__ import annotations

import json
import os
import tempfile
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import conf
from airflow_resume_provider.exceptions import StateError, StateStorageError
from airflow_resume_provider.state import integrity
from airflow_resume_provider.state.model import SCHEMA_VERSION, StateRecord
from airflow_resume_provider.state.paths import StateLocation, StateRoot, state_location, state_roots

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def configured_folder() -> tuple[str, str]:
    """The state folder and its connection id, from ``[resume]`` or else the logging settings."""
    folder = conf.state_folder()
    if folder:
        is_local = "://" not in folder or folder.startswith("file://")
        return folder, conf.state_conn_id() or ("" if is_local else conf.remote_log_conn_id())
    log_folder, log_conn_id = conf.logging_folder()
    return log_folder, conf.state_conn_id() or log_conn_id


def roots() -> list[StateRoot]:
    """
    Every folder a state file may be read from: the configured state folder first, then the local and
    the remote log folders (where state was kept before a change of configuration). Links recorded in
    state files and XComs are only followed into these.
    """
    remote = conf.remote_base_log_folder()
    return state_roots(
        [
            configured_folder(),
            (conf.local_log_folder(), ""),
            (remote, conf.state_conn_id() or conf.remote_log_conn_id()),
        ]
    )


def location_for(
    *, dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int, template: str | None = None
) -> StateLocation:
    """Where the state file of one attempt lives under the current configuration."""
    folder, conn_id = configured_folder()
    return state_location(
        folder,
        conn_id,
        template or conf.log_filename_template(),
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        map_index=map_index,
        try_number=try_number,
    )


def object_path(location: StateLocation) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(location.url, conn_id=location.conn_id or None)


def encode(record: StateRecord, key: bytes) -> tuple[bytes, str]:
    """The file content of a record, with a fresh integrity block, and its digest."""
    document = record.model_dump(mode="json", exclude={"integrity"})
    document["integrity"] = integrity.compute(document, key)
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode(), document["integrity"][
        "digest"
    ]


def decode(data: bytes, key: bytes, *, where: str) -> tuple[StateRecord, str]:
    """Parse and verify a state file's content; returns the record and its digest."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise StateError(f"State file {where} is not valid JSON ({err}); it is corrupt.") from None
    if not isinstance(document, dict):
        raise StateError(f"State file {where} does not hold a JSON object; it is corrupt.")
    version = document.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise StateError(f"State file {where} has no valid schema_version; it is corrupt.")
    if version > SCHEMA_VERSION:
        raise StateError(
            f"State file {where} has schema version {version}, newer than this provider reads "
            f"({SCHEMA_VERSION}); upgrade airflow-resume-provider on this component."
        )
    digest = integrity.verify(document, key, where=where)
    try:
        return StateRecord.model_validate(document), digest
    except ValueError as err:
        raise StateError(f"State file {where} does not match the state schema: {err}") from None


def prepare(location: StateLocation) -> Any:
    """
    Resolve the storage handle for a location (for object storage this looks up the connection).

    Done before a bounded write, so that the write itself touches no Airflow API.
    """
    if location.is_local:
        return location.local_path
    path = object_path(location)
    _ = path.fs  # resolves the filesystem and its connection now
    return path


def write_bytes(handle: Any, data: bytes) -> None:
    """Write a file completely or not at all (local: temp file + rename; object stores: one PUT)."""
    if isinstance(handle, str):
        directory = os.path.dirname(handle)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".resume.json")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, handle)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    handle.write_bytes(data)


def read_bytes(location: StateLocation, *, where: str | None = None) -> bytes | None:
    """A state file's bytes, or None when it does not exist. Storage failures raise StateStorageError."""
    where = where or location.url
    try:
        if location.is_local:
            try:
                with open(location.local_path, "rb") as fh:
                    return fh.read()
            except (FileNotFoundError, NotADirectoryError):
                return None
        path = object_path(location)
        if not path.exists():
            return None
        return path.read_bytes()
    except OSError as err:
        raise StateStorageError(f"Could not read state file {where}: {err}") from err
    except Exception as err:
        raise StateStorageError(f"Could not read state file {where}: {type(err).__name__}: {err}") from err


def load(
    location: StateLocation, key: bytes | None = None, *, where: str | None = None
) -> tuple[StateRecord, str] | None:
    """
    Read and verify a state file; None when it does not exist.

    :param where: how messages name the file (default: its URL).
    """
    data = read_bytes(location, where=where)
    if data is None:
        return None
    return decode(data, conf.signing_key() if key is None else key, where=where or location.url)
