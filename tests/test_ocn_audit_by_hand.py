"""An OCN audit event checked as docs/ocn-audit.md tells an outsider to, with code of its own:
hashlib, base64, json and the cryptography package's Ed25519 — none of the project's verifier.
Then ``receipts verify-audit`` on the same event, and on every way it can be wrong."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from receipts import VerificationError
from receipts.cloudevents import verify_audit
from receipts.tlog import Signer
from test_api_support import SERVICE, Api, ocn_example, serve
from test_cli import Cli

STRUCTURED = {**SERVICE, "content-type": "application/cloudevents+json"}
POSITION = {"seq", "logicalid", "revision", "op", "correlationid", "leafhash"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    with serve(str(tmp_path / "ocn.db")) as opened:
        yield opened


def confirmed_audit(api: Api) -> tuple[dict[str, Any], dict[str, Any]]:
    """The decision sent, and its confirmed audit: a few receipts around it, then a checkpoint
    (so the proof has hashes on both sides)."""
    decision = ocn_example("decision_approve")
    for i in range(3):
        api.client.post("/events", content=json.dumps({**decision, "id": f"before-{i}"}),
                        headers=STRUCTURED)  # fmt: skip
    stored = api.client.post("/events", content=json.dumps(decision), headers=STRUCTURED)
    assert stored.status_code == 201 and stored.json()["data"]["status"] == "stored"
    for i in range(2):
        api.client.post("/events", content=json.dumps({**decision, "id": f"after-{i}"}),
                        headers=STRUCTURED)  # fmt: skip
    api.ledger.checkpoint()
    again = api.client.post("/events", content=json.dumps(decision), headers=STRUCTURED)
    assert again.status_code == 201
    audit = again.json()
    assert audit["data"]["status"] == "confirmed"
    return decision, audit


def inclusion_root(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2, as the page words it."""
    assert index < size
    fn, sn, r = index, size - 1, leaf
    for p in path:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = hashlib.sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = hashlib.sha256(b"\x01" + r + p).digest()
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r


def check_by_hand(audit: dict[str, Any], sent: dict[str, Any], vkey: str) -> None:
    data = audit["data"]
    # 1. the bytes
    entry = base64.b64decode(data["storage_metadata"]["entry_base64"])
    assert data["receipt_hash"] == "sha256:" + hashlib.sha256(entry).hexdigest()
    # 2. the leaf
    leaf = hashlib.sha256(b"\x00" + entry).digest()
    assert data["transaction_hash"].lower().removeprefix("0x") == leaf.hex()
    # 3. the event
    payload = json.loads(entry)["payload"]
    held = payload["cloudevent"]
    assert (held["id"], held["subject"], held["type"]) == (
        data["original_event_id"], data["trace_id"], data["event_type"])  # fmt: skip
    assert {k: v for k, v in sent.items() if k != "data" and k not in POSITION} == held
    assert payload["data"] == sent["data"]
    # 4. the proof
    head, _, note = data["verification"]["inclusion_proof"].partition("\n\n")
    lines = head.split("\n")
    assert lines[0] == "c2sp.org/tlog-proof@v1"
    index = int(lines[1].removeprefix("index "))
    assert index == data["block_height"]
    path = [base64.b64decode(line) for line in lines[2:]]
    # 6. the checkpoint
    text, _, signatures = note.rpartition("\n\n")
    text += "\n"
    origin, size, root = text.rstrip("\n").split("\n")[:3]
    # 5. the inclusion
    assert inclusion_root(leaf, index, int(size), path) == base64.b64decode(root)
    # 7. the signature
    name, key_id, key = vkey.split("+", 2)  # base64 may hold "+"
    public = base64.b64decode(key)
    assert public[0] == 1 and len(public) == 33
    assert hashlib.sha256(name.encode() + b"\n" + public).digest()[:4].hex() == key_id
    mine = [line for line in signatures.splitlines() if line.startswith(f"\u2014 {name} ")]
    blob = base64.b64decode(mine[0].split(" ")[2])
    assert blob[:4].hex() == key_id
    Ed25519PublicKey.from_public_bytes(public[1:]).verify(blob[4:], text.encode())
    assert origin == name


def test_the_page_checks_a_confirmed_audit_with_independent_code(api: Api) -> None:
    sent, audit = confirmed_audit(api)
    vkey = api.signer.verifier().to_key_string()
    check_by_hand(audit, sent, vkey)
    forged = copy.deepcopy(audit)
    note = forged["data"]["verification"]["inclusion_proof"]
    size_line = note.split("\n\n")[1].split("\n")[1]
    forged["data"]["verification"]["inclusion_proof"] = note.replace(
        f"\n{size_line}\n", f"\n{int(size_line) + 1}\n"
    )
    with pytest.raises((AssertionError, InvalidSignature)):
        check_by_hand(forged, sent, vkey)


def test_verify_audit_proves_what_the_page_proves(api: Api, tmp_path: Path) -> None:
    sent, audit = confirmed_audit(api)
    verifier = api.signer.verifier()
    proven = verify_audit(audit, verifier, sent)
    assert proven["verified"] is True
    assert proven["block_height"] == audit["data"]["block_height"] == 3
    assert proven["tree_size"] == audit["data"]["verification"]["tree_size"] == 6
    assert proven["root_hash"] == audit["data"]["verification"]["root_hash"]
    (tmp_path / "audit.json").write_text(json.dumps(audit))
    (tmp_path / "sent.json").write_text(json.dumps(sent))
    cli = Cli(tmp_path, tmp_path / "unused.db")
    run = cli("verify-audit", "audit.json", "--key", verifier.to_key_string(),
              "--event", "sent.json", db=False)  # fmt: skip
    assert run.code == 0, run.err
    assert run.json == proven


def altered(audit: dict[str, Any], where: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(audit)
    *path, last = where.split("/")
    target = out["data"]
    for part in path:
        target = target[part]
    target[last] = value(target[last]) if callable(value) else value
    return out


def flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def test_every_way_an_audit_can_be_wrong_is_named(api: Api) -> None:
    sent, audit = confirmed_audit(api)
    verifier = api.signer.verifier()
    other = Signer.generate(verifier.name).verifier()
    cases = [
        (altered(audit, "storage_metadata/entry_base64", flip), "/data/receipt_hash"),
        (altered(audit, "storage_metadata/entry_base64", "not base64!"),
         "/data/storage_metadata/entry_base64"),
        (altered(audit, "receipt_hash", "sha256:" + "0" * 64), "/data/receipt_hash"),
        (altered(audit, "transaction_hash", "0" * 64), "/data/transaction_hash"),
        (altered(audit, "block_height", 2), "/data/block_height"),
        (altered(audit, "original_event_id", "evt_other"), "/data/original_event_id"),
        ({**altered(audit, "trace_id", "txn_other"), "subject": "txn_other"}, "/data/trace_id"),
    ]  # fmt: skip
    for event, pointer in cases:
        with pytest.raises(VerificationError) as raised:
            verify_audit(event, verifier, sent)
        assert [e.pointer for e in raised.value.errors] == [pointer], pointer
    with pytest.raises(VerificationError):  # another key, the same name
        verify_audit(audit, other, sent)
    with pytest.raises(VerificationError) as raised:  # another event than the one audited
        verify_audit(audit, verifier, {**sent, "data": {**sent["data"], "extra": 1}})
    assert raised.value.errors[0].pointer == "/data/storage_metadata/entry_base64"
    hashes = audit["data"]["verification"]["inclusion_proof"].split("\n\n")[0].split("\n")
    bent = audit["data"]["verification"]["inclusion_proof"].replace(hashes[2], flip(hashes[2]))
    with pytest.raises(VerificationError):
        verify_audit(altered(audit, "verification/inclusion_proof", bent), verifier, sent)
    stored = altered(audit, "status", "stored")
    del stored["data"]["verification"]["inclusion_proof"]
    with pytest.raises(VerificationError, match="no inclusion proof yet") as raised:
        verify_audit(stored, verifier, sent)
    assert raised.value.errors[0].pointer == "/data/status"
