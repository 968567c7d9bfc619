"""Integrity digests of state documents: plain SHA-256, or HMAC-SHA256 with ``[resume] signing_key``."""

from __future__ import annotations

import copy
import hashlib
import hmac
import re

import pytest

from airflow_resume_provider.exceptions import StateError
from airflow_resume_provider.state.integrity import canonical_bytes, compute, verify

KEY = b"secret-key"
WHERE = "file:///logs/dag_id=d/attempt=1.resume.json"


def document() -> dict:
    return {
        "schema_version": 1,
        "identity": {"dag_id": "d", "run_id": "r", "task_id": "t", "try_number": 1},
        "inputs": {"conf": {"city": "Zürich", "n": 3}},
    }


def sealed(key: bytes) -> dict:
    doc = document()
    doc["integrity"] = compute(doc, key)
    return doc


def test_canonical_bytes_excludes_integrity_and_ignores_key_order():
    doc = document()
    reordered = dict(reversed(list(doc.items())))
    reordered["integrity"] = {"algorithm": "sha256", "digest": "x"}
    assert canonical_bytes(doc) == canonical_bytes(reordered)
    assert b"integrity" not in canonical_bytes(reordered)


def test_without_key_plain_sha256():
    block = compute(document(), b"")
    assert block == {"algorithm": "sha256", "digest": hashlib.sha256(canonical_bytes(document())).hexdigest()}


def test_with_key_hmac_sha256():
    block = compute(document(), KEY)
    expected = hmac.new(KEY, canonical_bytes(document()), hashlib.sha256).hexdigest()
    assert block == {"algorithm": "hmac-sha256", "digest": expected}


def test_different_keys_give_different_signatures():
    assert compute(document(), b"k1")["digest"] != compute(document(), b"k2")["digest"]


@pytest.mark.parametrize("key", [b"", KEY])
def test_intact_document_verifies_and_returns_digest(key):
    doc = sealed(key)
    assert verify(doc, key, where=WHERE) == doc["integrity"]["digest"]


@pytest.mark.parametrize("key", [b"", KEY])
@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["inputs"]["conf"].__setitem__("n", 4),
        lambda d: d["identity"].__setitem__("task_id", "other"),
        lambda d: d.__setitem__("extra", True),
        lambda d: d["inputs"].pop("conf"),
    ],
)
def test_changed_content_is_refused(key, tamper):
    doc = sealed(key)
    tamper(doc)
    with pytest.raises(StateError) as exc:
        verify(doc, key, where=WHERE)
    assert f"State file {WHERE} failed its integrity check" in str(exc.value)
    assert "tampering" in str(exc.value)


@pytest.mark.parametrize("key", [b"", KEY])
def test_changed_digest_is_refused(key):
    doc = sealed(key)
    doc["integrity"]["digest"] = "0" * 64
    with pytest.raises(StateError, match="failed its integrity check"):
        verify(doc, key, where=WHERE)


def test_signed_with_another_key_is_refused():
    with pytest.raises(StateError, match="signed with another key"):
        verify(sealed(b"other-key"), KEY, where=WHERE)


def test_signed_file_is_refused_without_key():
    with pytest.raises(StateError) as exc:
        verify(sealed(KEY), b"", where=WHERE)
    message = str(exc.value)
    assert f"State file {WHERE} is signed" in message
    assert "[resume] signing_key is not set here" in message


def test_unsigned_file_is_refused_when_key_is_set():
    with pytest.raises(StateError) as exc:
        verify(sealed(b""), KEY, where=WHERE)
    message = str(exc.value)
    assert f"State file {WHERE} is not signed, but [resume] signing_key is set" in message
    assert "not trusted" in message


def test_tampered_and_resealed_without_key_is_refused_when_key_is_set():
    doc = sealed(KEY)
    doc["inputs"]["conf"]["n"] = 999
    doc["integrity"] = compute(doc, b"")  # an attacker without the key can only write a plain digest
    with pytest.raises(StateError, match="is not signed"):
        verify(doc, KEY, where=WHERE)


@pytest.mark.parametrize("block", [None, "abc", {}, {"algorithm": "sha256"}])
def test_missing_integrity_block_is_refused(block):
    doc = document()
    if block is not None:
        doc["integrity"] = block
    with pytest.raises(StateError, match=re.escape(f"State file {WHERE} has no integrity digest")):
        verify(doc, b"", where=WHERE)


def test_verify_does_not_modify_the_document():
    doc = sealed(KEY)
    before = copy.deepcopy(doc)
    verify(doc, KEY, where=WHERE)
    assert doc == before
