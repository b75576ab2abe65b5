"""The OCN flow: a stored decision or explanation receipt answers with an audit event.

``ocn.weave.audit.v1`` says the receipt is stored (``status`` ``stored``) or proven included
under a signed checkpoint (``confirmed``): ``receipt_hash`` is ``sha256:`` + SHA-256 of the
stored bytes, ``block_height`` the ``seq``, ``transaction_hash`` the RFC 9162 leaf hash. Pure:
the caller says the status and when it was verified; the event id derives from the receipt.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Final

from ..errors import ErrorDetail, ValidationError
from ..model import Receipt
from ._ocn_schemas import AUDIT, OCN_CONTENT_TYPE, OCN_DOMAIN, ocn_schema
from .convert import REQUEST_ID_NAMESPACE
from .envelope import SPECVERSION, validate_cloudevent

AUDIT_VERSION: Final = "0.1.0"
# The audit schema's own $id (the seed's example says .../audit/v1/audit.schema.json, a URI
# no schema carries): a consumer finds the schema the event is checked against by it.
AUDIT_DATASCHEMA: Final = ocn_schema(AUDIT)["$id"]
AUDITED_TYPES: Final = ("orca_decision", "orca_explanation")
STATUSES: Final = ("stored", "confirmed")


def audit_event(
    receipt: Receipt, *, source: str, status: str, verified_at: str | None
) -> dict[str, Any]:
    """The ``ocn.weave.audit.v1`` CloudEvent for a stored OCN decision or explanation.

    ``status`` is ``stored`` (sequenced) or ``confirmed`` (inclusion proven; ``verified_at``
    then required). The event's ``time`` is ``verified_at`` when confirmed, else when the
    receipt was recorded; its ``id`` is the same for the same receipt and status.
    """
    _check(receipt, status, verified_at)
    original: dict[str, Any] = receipt.payload["cloudevent"]
    verification: dict[str, Any] = {
        "verified": status == "confirmed",
        "verification_method": "merkle_proof",
    }
    if verified_at is not None:
        verification["verification_timestamp"] = verified_at
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
            },
            "verification": verification,
        },
    }
    validate_cloudevent(event, AUDIT)
    return event


def _check(receipt: Receipt, status: str, verified_at: str | None) -> None:
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
    if problems:
        raise ValidationError("cannot make an audit event", problems)
