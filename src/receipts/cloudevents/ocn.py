"""The OCN flow: a stored decision or explanation receipt answers with an audit event.

``ocn.weave.audit.v1`` says the receipt is stored (``status`` ``stored``) or proven included
under a signed checkpoint (``confirmed``): ``receipt_hash`` is ``sha256:`` + SHA-256 of the
stored bytes, ``block_height`` the ``seq``, ``transaction_hash`` the RFC 9162 leaf hash. It
carries what a third party needs to check it with no access to the ledger (docs/ocn-audit.md):
the stored bytes themselves (``storage_metadata.entry_base64``) and, once confirmed, the
inclusion proof with its signed checkpoint (``verification.inclusion_proof``). Pure: the
caller says the status, when it was verified and the proof; the event id derives from the
receipt and the status.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from typing import Any, Final

import orjson

from ..errors import ErrorDetail, ValidationError, VerificationError
from ..model import Receipt
from ..tlog import Checkpoint, TlogProof, Verifier, parse_note
from ._ocn_schemas import AUDIT, OCN_CONTENT_TYPE, OCN_DOMAIN, ocn_schema
from .convert import LEDGER_EXTENSIONS, REQUEST_ID_NAMESPACE
from .envelope import DATA_MEMBERS, SPECVERSION, validate_cloudevent

AUDIT_VERSION: Final = "0.1.0"
# The audit schema's own $id (the seed's example says .../audit/v1/audit.schema.json, a URI
# no schema carries): a consumer finds the schema the event is checked against by it.
AUDIT_DATASCHEMA: Final = ocn_schema(AUDIT)["$id"]
AUDITED_TYPES: Final = ("orca_decision", "orca_explanation")
STATUSES: Final = ("stored", "confirmed")


def audit_event(
    receipt: Receipt,
    *,
    source: str,
    status: str,
    verified_at: str | None,
    proof: str | None = None,
) -> dict[str, Any]:
    """The ``ocn.weave.audit.v1`` CloudEvent for a stored OCN decision or explanation.

    ``status`` is ``stored`` (sequenced) or ``confirmed`` (inclusion proven: ``verified_at``
    and ``proof``, the receipt's C2SP tlog-proof in the checkpoint signed then, required). The
    event's ``time`` is ``verified_at`` when confirmed, else when the receipt was recorded;
    the same receipt and status always give the same event.
    """
    _check(receipt, status, verified_at, proof)
    original: dict[str, Any] = receipt.payload["cloudevent"]
    verification: dict[str, Any] = {
        "verified": status == "confirmed",
        "verification_method": "merkle_proof",
    }
    if verified_at is not None:
        verification["verification_timestamp"] = verified_at
    if proof is not None:
        verification.update(_proof_fields(proof))
    event = {
        "specversion": SPECVERSION,
        "id": str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"audit\n{receipt.id}\n{status}")),
        "source": source,
        "type": AUDIT,
        "subject": original["subject"],
        "time": verified_at if status == "confirmed" else receipt.recorded_at,
        "datacontenttype": OCN_CONTENT_TYPE,
        "dataschema": AUDIT_DATASCHEMA,
        "data": {
            "audit_version": AUDIT_VERSION,
            "trace_id": original["subject"],
            "receipt_hash": "sha256:" + hashlib.sha256(receipt.entry_bytes).hexdigest(),
            "event_type": original["type"],
            "block_height": receipt.seq,
            "transaction_hash": receipt.leaf_hash.hex(),
            "status": status,
            "original_event_id": original["id"],
            "storage_metadata": {
                "storage_provider": "receipts",
                "receipt_id": receipt.id,
                "recorded_at": receipt.recorded_at,
                "canonicalization": "RFC 8785",
                "leaf_hash": "RFC 9162 SHA-256(0x00 || entry bytes)",
                "entry_base64": base64.b64encode(receipt.entry_bytes).decode("ascii"),
            },
            "verification": verification,
        },
    }
    validate_cloudevent(event, AUDIT)
    return event


def _proof_fields(proof: str) -> dict[str, Any]:
    """What a verifier reads off the proof, beside the proof itself (which is what it checks)."""
    parsed = TlogProof.from_text(proof)
    text, signatures = parse_note(parsed.checkpoint_note)
    checkpoint = Checkpoint.from_text(text)
    return {
        "proof_format": "c2sp.org/tlog-proof",
        "inclusion_proof": proof,
        "tree_size": checkpoint.size,
        "root_hash": checkpoint.root_hash.hex(),
        "checkpoint_origin": checkpoint.origin,
        "key_id": f"{signatures[0].key_id:08x}",
    }


def _check(receipt: Receipt, status: str, verified_at: str | None, proof: str | None) -> None:
    problems = []
    if receipt.domain != OCN_DOMAIN or receipt.event_type not in AUDITED_TYPES:
        expected = f"expected an {OCN_DOMAIN} receipt of {list(AUDITED_TYPES)}"
        problems.append(ErrorDetail("/event_type", f"{expected}, got {receipt.event_type!r}"))
    elif "cloudevent" not in receipt.payload:
        problems.append(ErrorDetail("/op", f"a {receipt.op} receipt holds no OCN event"))
    if status not in STATUSES:
        problems.append(ErrorDetail("/status", f"expected one of {list(STATUSES)}"))
    if status == "confirmed" and verified_at is None:
        problems.append(ErrorDetail("/verified_at", "required when status is confirmed"))
    if (status == "confirmed") != (proof is not None):
        problems.append(ErrorDetail("/proof", "given exactly when status is confirmed"))
    if problems:
        raise ValidationError("cannot make an audit event", problems)


def verify_audit(
    event: Any, verifier: Verifier, original: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Check an ``ocn.weave.audit.v1`` event offline (docs/ocn-audit.md): the stored bytes it
    carries hash to its ``receipt_hash`` and ``transaction_hash`` and hold the audited event;
    its inclusion proof leads to a checkpoint signed by ``verifier``'s key at its
    ``block_height``; and, given the ``original`` event, the bytes hold exactly that event.
    Returns what was proven; ``VerificationError`` names the first field that does not hold."""
    validate_cloudevent(event, AUDIT)
    data = event["data"]
    entry = _entry(data)
    _same(data, "receipt_hash", "sha256:" + hashlib.sha256(entry).hexdigest())
    leaf = hashlib.sha256(b"\x00" + entry).digest()
    _same(data, "transaction_hash", leaf.hex(), data["transaction_hash"].lower().removeprefix("0x"))
    stored = _payload(entry)
    held = stored["cloudevent"]
    for field, attribute in (("original_event_id", "id"), ("trace_id", "subject"),
                             ("event_type", "type")):  # fmt: skip
        _same(data, field, held.get(attribute))
    kept = {k: v for k, v in (original or {}).items() if k not in DATA_MEMBERS}
    kept = {k: v for k, v in kept.items() if k not in LEDGER_EXTENSIONS and v is not None}
    if original is not None and (kept != held or original.get("data") != stored.get("data")):
        raise VerificationError(
            "the audited receipt does not hold the event given",
            [ErrorDetail(_ENTRY, "holds another event")],
        )
    if data["status"] != "confirmed":
        raise VerificationError(
            f"the audit says {data['status']!r}: it carries no inclusion proof yet (ask for it "
            "again after the next checkpoint)",
            [ErrorDetail("/data/status", "expected confirmed")],
        )
    proof = TlogProof.from_text(_field(data, "verification", "inclusion_proof"))
    _same(data, "block_height", proof.index)
    checkpoint = proof.verify(leaf, verifier)
    return {"verified": True, "trace_id": data["trace_id"], "event_type": data["event_type"],
            "original_event_id": data["original_event_id"], "block_height": proof.index,
            "tree_size": checkpoint.size, "root_hash": checkpoint.root_hash.hex(),
            "origin": checkpoint.origin}  # fmt: skip


_ENTRY: Final = "/data/storage_metadata/entry_base64"


def _entry(data: dict[str, Any]) -> bytes:
    """The stored bytes the audit carries."""
    try:
        return base64.b64decode(_field(data, "storage_metadata", "entry_base64"), validate=True)
    except ValueError:  # binascii.Error
        raise VerificationError(
            "the audit's stored bytes are not base64", [ErrorDetail(_ENTRY, "expected base64")]
        ) from None


def _payload(entry: bytes) -> dict[str, Any]:
    """The payload of the receipt entry ``entry``, if it holds an OCN event."""
    try:
        payload = orjson.loads(entry)["payload"]
        if isinstance(payload, dict) and isinstance(payload.get("cloudevent"), dict):
            return payload
    except (ValueError, TypeError, KeyError):
        pass
    raise VerificationError(
        "the audit's stored bytes are not a receipt of an OCN event",
        [ErrorDetail(_ENTRY, "expected a receipt entry holding a CloudEvent")],
    )


def _field(data: dict[str, Any], group: str, name: str) -> Any:
    value = data.get(group, {}).get(name) if isinstance(data.get(group), dict) else None
    if not isinstance(value, str):
        raise VerificationError(
            f"the audit event has no {group}.{name}: it cannot be checked offline",
            [ErrorDetail(f"/data/{group}/{name}", "required, a string")],
        )
    return value


def _same(data: dict[str, Any], field: str, expected: Any, found: Any = None) -> None:
    found = data.get(field) if found is None else found
    if found != expected:
        raise VerificationError(
            f"the audit's {field} does not match: {found!r}, the bytes say {expected!r}",
            [ErrorDetail(f"/data/{field}", f"expected {expected!r}")],
        )
