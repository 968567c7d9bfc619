"""Reading and writing state files: local files directly, object storage through ObjectStoragePath."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
from typing import TYPE_CHECKING, Any

from airflow_resume_provider import conf
from airflow_resume_provider.display import error_summary
from airflow_resume_provider.exceptions import StateError, StateFolderUnsupportedError, StateStorageError
from airflow_resume_provider.state import integrity
from airflow_resume_provider.state.model import SCHEMA_VERSION, StateRecord
from airflow_resume_provider.state.paths import (
    StateLocation,
    StateRoot,
    relative_to_roots,
    state_location,
    state_roots,
)

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def _scheme(folder: str) -> str:
    return folder.partition("://")[0].lower() if "://" in folder else "file"


def _conn_for(folder: str) -> str:
    """``[resume] state_conn_id``, else the remote log connection when the folder is on the same storage."""
    if conf.state_conn_id():
        return conf.state_conn_id()
    remote = conf.remote_base_log_folder()
    if _scheme(folder) != "file" and _scheme(folder) == _scheme(remote):
        return conf.remote_log_conn_id()
    return ""


def configured_folder() -> tuple[str, str]:
    """The state folder and its connection id, from ``[resume]`` or else the logging settings."""
    folder = conf.state_folder() or conf.logging_folder()[0]
    return folder, _conn_for(folder)


def roots() -> list[StateRoot]:
    """
    Every folder a state file may be read from: the configured state folder first, then the local and
    the remote log folders (where state was kept before a change of configuration). Links recorded in
    state files and XComs are only followed into these.
    """
    remote = conf.remote_base_log_folder()
    return state_roots([configured_folder(), (conf.local_log_folder(), ""), (remote, _conn_for(remote))])


def _roots_or_none() -> list[StateRoot]:
    try:
        return roots()
    except Exception:  # an unusable folder option: messages still never show a server path
        return []


def shown(url: str) -> str:
    """A state file's path as messages, pages and logs show it: relative to its folder. A file outside
    every folder (nothing the provider writes) is named by its last part only, never a server path."""
    rel = relative_to_roots(url, _roots_or_none())
    return rel if rel != url else ".../" + url.rstrip("/").rpartition("/")[2]


def describe_error(err: BaseException) -> str:
    """A storage error for a message: its kind, without the server paths it may name."""
    folders = [r.url for r in _roots_or_none()]
    return error_summary(
        err, folders + [url[len("file://") :] for url in folders if url.startswith("file://")]
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
    """The file content of a record, with a fresh integrity block, and the digest links to it pin."""
    document = record.model_dump(mode="json", exclude={"integrity"})
    document["integrity"] = integrity.compute(document, key)
    data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    return data, integrity.link_digest(document, key)


def decode(data: bytes, key: bytes, *, where: str) -> tuple[StateRecord, str]:
    """Parse and verify a state file's content; returns the record and the digest links to it pin."""
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
    integrity.verify(document, key, where=where)
    try:
        return StateRecord.model_validate(document), integrity.link_digest(document, key)
    except ValueError as err:
        raise StateError(f"State file {where} does not match the state schema: {err}") from None


#: Errors of network storage that mean "down or unreachable, try again later".
_UNREACHABLE_ERROR_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ClientConnectorError",
        "ServerDisconnectedError",
        "ServerTimeoutError",
        "ServiceUnavailable",
        "TransportError",
    }
)


@functools.cache
def folder_problem(url: str) -> str | None:
    """
    Why state files cannot be kept at ``url`` at all (a log backend without files), or None.

    Decided once per process and folder, without any network call.
    """
    scheme = url.partition("://")[0] if "://" in url else "file"
    if scheme in ("file", "local"):
        return None
    try:
        from airflow.sdk import ObjectStoragePath

        ObjectStoragePath(url)
    except ValueError as err:
        return (
            f"the state folder is on {scheme!r}, which cannot hold files ({err}): remote logging to CloudWatch, Elasticsearch "
            "or OpenSearch keeps log lines, not files. Set [resume] state_folder to an object store URL "
            "(s3://, gs://, wasb://) or a folder every worker and API server shares, then check it with "
            "'airflow resume check'"
        )
    return None


def _check_folder(location: StateLocation) -> None:
    if location.is_local:
        return
    problem = folder_problem(location.url)
    if problem:
        raise StateFolderUnsupportedError(problem[0].upper() + problem[1:] + ".")


def _is_unreachable(err: BaseException) -> bool:
    """Whether a storage error means the storage is down or unreachable (not a refusal or a bug)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if (
            isinstance(current, (ConnectionError, TimeoutError))
            or type(current).__name__ in _UNREACHABLE_ERROR_NAMES
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def prepare(location: StateLocation) -> Any:
    """
    Resolve the storage handle for a location (for object storage this looks up the connection).

    Done before a bounded write, so that the write itself touches no Airflow API.

    :raises StateFolderUnsupportedError: the folder is on a backend that cannot hold files.
    """
    if location.is_local:
        return location.local_path
    _check_folder(location)
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
    where = where or shown(location.url)
    _check_folder(location)
    try:
        if location.is_local:
            try:
                with open(location.local_path, "rb") as fh:
                    return fh.read()
            except (FileNotFoundError, NotADirectoryError):
                return None
        try:
            # One request: asking whether the file exists first would be a second round trip.
            return object_path(location).read_bytes()
        except FileNotFoundError:
            return None
    except Exception as err:
        reason = f"Could not read state file {where}: {describe_error(err)}"
        if _is_unreachable(err):
            raise StateStorageError(reason) from err
        raise StateError(reason) from err


def delete(location: StateLocation) -> None:
    """Remove a file; a missing one is fine."""
    if location.is_local:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(location.local_path)
        return
    path = object_path(location)
    if path.exists():
        path.unlink()


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
    return decode(data, conf.signing_key() if key is None else key, where=where or shown(location.url))
