"""Integrity digests of state records: SHA-256, or HMAC-SHA256 when ``[resume] signing_key`` is set."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from airflow_resume_provider.exceptions import StateError

INTEGRITY_KEY = "integrity"
#: Added to a state file when its task fails, after later tasks may have linked to the file.
FAILURE_KEY = "failure"


def canonical_bytes(document: dict[str, Any]) -> bytes:
    """The bytes the digest covers: the document without its integrity block, keys sorted, compact."""
    body = {k: v for k, v in document.items() if k != INTEGRITY_KEY}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def compute(document: dict[str, Any], key: bytes) -> dict[str, str]:
    """The integrity block for a document."""
    data = canonical_bytes(document)
    if key:
        return {"algorithm": "hmac-sha256", "digest": hmac.new(key, data, hashlib.sha256).hexdigest()}
    return {"algorithm": "sha256", "digest": hashlib.sha256(data).hexdigest()}


def verify(document: dict[str, Any], key: bytes, *, where: str, what: str = "State file") -> str:
    """
    Check a document's integrity block and return its digest.

    :param where: the file's location, for the error message.
    :param what: what kind of file it is, for the error message.
    :raises StateError: when the block is missing, of the wrong kind, or does not match.
    """
    block = document.get(INTEGRITY_KEY)
    if not isinstance(block, dict) or "digest" not in block:
        raise StateError(f"{what} {where} has no integrity digest; it was not written by this provider.")
    if key and block.get("algorithm") != "hmac-sha256":
        raise StateError(
            f"{what} {where} is not signed, but [resume] signing_key is set: it was written without "
            "the key or replaced by someone without it, and is not trusted."
        )
    if not key and block.get("algorithm") == "hmac-sha256":
        raise StateError(
            f"{what} {where} is signed, but [resume] signing_key is not set here: set the same "
            "signing_key on this component to verify it."
        )
    expected = compute(document, key)
    if not hmac.compare_digest(expected["digest"], str(block["digest"])):
        raise StateError(
            f"{what} {where} failed its integrity check: its content was changed after it was written "
            "(corruption or tampering), or it was signed with another key."
        )
    return expected["digest"]


def link_digest(document: dict[str, Any], key: bytes) -> str:
    """
    The digest a link to this file pins: the file's digest as it was written, before a failure record
    was added. A task's failure is added after the next task (e.g. an ``all_done`` one) may have linked
    to the file; the link stays valid, while the file's own integrity block covers the failure too.
    ``document`` must have passed :func:`verify`, or have just been given its block by :func:`compute`.
    """
    if document.get(FAILURE_KEY) is None:
        block = document.get(INTEGRITY_KEY)
        if isinstance(block, dict) and isinstance(block.get("digest"), str):
            return block["digest"]  # verified or just computed over this very content
        return compute(document, key)["digest"]
    return compute({**document, FAILURE_KEY: None}, key)["digest"]
