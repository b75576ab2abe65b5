"""The OCN flow on a real ledger: decision and explanation CloudEvents stored as receipts, each
answered by an ``ocn.weave.audit.v1`` event that the OCN audit schema accepts; the ``ocn``
catalog domain loads and exports self-contained schemas."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import schema_refs
from receipts import Catalog, Ledger, PermissionDeniedError, Receipt, ValidationError
from receipts.cloudevents import (
    OCN_CONTENT_TYPE,
    OCN_EVENT_TYPES,
    audit_event,
    cloudevent_to_request,
    from_http,
    ocn_schema,
    to_binary,
    to_structured,
    validate_cloudevent,
)
from receipts.model import canonical_bytes
from receipts.tlog import Signer

SOURCE = "https://ledger.example.test/weave"
FIXTURES = Path(__file__).parent / "fixtures" / "ocn"
VERIFIED_AT = "2024-01-21T12:00:05Z"


def ocn_example(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return event


def store(ledger: Ledger, name: str) -> Receipt:
    """Receive the reference example over HTTP (structured mode) and store it."""
    (event,) = from_http(*to_structured(ocn_example(name)))
    return ledger.append(cloudevent_to_request(event, ledger.catalog), producer="edge_function")


def audit_schema_errors(event: dict[str, Any]) -> list[str]:
    """The shipped audit schema, applied by an independent validator (jsonschema)."""
    validator = jsonschema.Draft202012Validator(
        ocn_schema("ocn.weave.audit.v1"),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )
    return [e.message for e in validator.iter_errors(event)]


@pytest.mark.parametrize("name", ["decision_approve", "explanation_approve"])
def test_stored_receipt_yields_an_audit_event(ledger: Ledger, name: str) -> None:
    if name == "explanation_approve":
        store(ledger, "decision_approve")  # so the explanation is not at seq 0
    receipt = store(ledger, name)
    original = ocn_example(name)

    event = audit_event(receipt, source=SOURCE, status="stored", verified_at=None)
    assert audit_schema_errors(event) == []
    validate_cloudevent(event, "ocn.weave.audit.v1")
    # The dataschema is the $id of the schema that checks it: OCN's events/v1 naming.
    assert event["dataschema"] == ocn_schema("ocn.weave.audit.v1")["$id"]
    assert event["dataschema"] == "https://schemas.ocn.ai/events/v1/weave.audit.v1.schema.json"
    assert {k: event[k] for k in ("specversion", "source", "type", "subject", "time")} == {
        "specversion": "1.0",
        "source": SOURCE,
        "type": "ocn.weave.audit.v1",
        "subject": "txn_67890",
        "time": receipt.recorded_at,
    }
    assert event["datacontenttype"] == OCN_CONTENT_TYPE
    data = event["data"]
    assert data["trace_id"] == "txn_67890"
    assert data["receipt_hash"] == "sha256:" + hashlib.sha256(receipt.entry_bytes).hexdigest()
    assert receipt.entry_bytes == canonical_bytes(receipt.entry())  # the hash is reproducible
    assert data["block_height"] == receipt.seq
    assert data["transaction_hash"] == receipt.leaf_hash.hex()
    assert data["event_type"] == original["type"]
    assert data["original_event_id"] == original["id"]
    assert data["status"] == "stored"
    assert data["storage_metadata"]["storage_provider"] == "receipts"
    assert data["storage_metadata"]["receipt_id"] == receipt.id
    assert data["verification"] == {"verified": False, "verification_method": "merkle_proof"}


def proof_of(ledger: Ledger, receipt: Receipt) -> str:
    """The receipt's inclusion proof in a checkpoint signed now (with a key made for it)."""
    checkpoint = ledger.checkpoint(Signer.generate("example.com/ocn-log"))
    return ledger.prove(receipt.id, checkpoint.size).proof


def confirm(ledger: Ledger, receipt: Receipt) -> dict[str, Any]:
    proof = proof_of(ledger, receipt)
    return audit_event(
        receipt, source=SOURCE, status="confirmed", verified_at=VERIFIED_AT, proof=proof
    )


def test_confirmed_audit_event(ledger: Ledger) -> None:
    receipt = store(ledger, "decision_approve")
    event = confirm(ledger, receipt)
    assert audit_schema_errors(event) == []
    assert event["time"] == VERIFIED_AT
    assert event["data"]["status"] == "confirmed"
    verification = event["data"]["verification"]
    checkpoint = ledger.latest_checkpoint()
    assert checkpoint is not None
    assert verification == {
        "verified": True,
        "verification_method": "merkle_proof",
        "verification_timestamp": VERIFIED_AT,
        "proof_format": "c2sp.org/tlog-proof",
        "inclusion_proof": ledger.prove(receipt.id, checkpoint.size).proof,
        "tree_size": 1,
        "root_hash": checkpoint.root_hash.hex(),
        "checkpoint_origin": checkpoint.origin,
        "key_id": verification["key_id"],
    }
    assert len(verification["key_id"]) == 8
    assert base64.b64decode(event["data"]["storage_metadata"]["entry_base64"]) == (
        receipt.entry_bytes
    )
    with pytest.raises(ValidationError) as raised:  # confirmed says proven: the proof is due
        audit_event(receipt, source=SOURCE, status="confirmed", verified_at=VERIFIED_AT)
    assert [e.pointer for e in raised.value.errors] == ["/proof"]


def test_audit_event_is_pure_and_its_id_stable(ledger: Ledger) -> None:
    receipt = store(ledger, "decision_approve")
    stored = audit_event(receipt, source=SOURCE, status="stored", verified_at=None)
    assert audit_event(receipt, source=SOURCE, status="stored", verified_at=None) == stored
    confirmed = confirm(ledger, receipt)
    assert confirmed["id"] != stored["id"]


def test_the_audit_event_is_itself_a_receipt_of_the_trace(ledger: Ledger) -> None:
    decision = store(ledger, "decision_approve")
    explanation = store(ledger, "explanation_approve")
    for receipt in (decision, explanation):
        event = audit_event(receipt, source=SOURCE, status="stored", verified_at=None)
        (sent,) = from_http(*to_binary(event))  # e.g. published, then received again
        ledger.append(cloudevent_to_request(sent, ledger.catalog))
    trace = list(ledger.trace("txn_67890"))
    assert [r.event_type for r in trace] == [
        "orca_decision",
        "orca_explanation",
        "weave_audit",
        "weave_audit",
    ]
    audits = [r.payload["data"] for r in trace[2:]]
    assert [a["original_event_id"] for a in audits] == ["evt_12345", "evt_54321"]


@pytest.mark.parametrize(
    ("status", "verified_at", "pointer"),
    [
        ("failed", None, "/status"),
        ("pending", None, "/status"),
        ("confirmed", None, "/verified_at"),
    ],
)  # a confirmed audit without its proof: tests/test_cloudevents_ocn.py::test_confirmed_audit_event
def test_audit_event_arguments(
    ledger: Ledger, status: str, verified_at: str | None, pointer: str
) -> None:
    receipt = store(ledger, "decision_approve")
    proof = proof_of(ledger, receipt) if status == "confirmed" else None
    with pytest.raises(ValidationError) as caught:
        audit_event(receipt, source=SOURCE, status=status, verified_at=verified_at, proof=proof)
    assert [e.pointer for e in caught.value.errors] == [pointer]


def test_a_bad_verification_time_or_source_is_refused(ledger: Ledger) -> None:
    receipt = store(ledger, "decision_approve")
    with pytest.raises(ValidationError) as caught:
        audit_event(receipt, source="not a uri", status="confirmed", verified_at="soon",
                    proof=proof_of(ledger, receipt))  # fmt: skip
    assert {e.pointer for e in caught.value.errors} >= {"/source", "/time"}


def test_only_decisions_and_explanations_are_audited(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    others = [store(ledger, "audit_approve"), ledger.append(request_for("payment_captured"))]
    for receipt in others:
        with pytest.raises(ValidationError) as caught:
            audit_event(receipt, source=SOURCE, status="stored", verified_at=None)
        assert [e.pointer for e in caught.value.errors] == ["/event_type"]


# --- the ocn catalog domain ----------------------------------------------------------------------


def test_ocn_domain_in_the_catalog() -> None:
    catalog = Catalog.load()
    assert catalog.domains["ocn"].event_types == (
        "orca_decision",
        "orca_explanation",
        "weave_audit",
    )
    assert set(OCN_EVENT_TYPES.values()) == set(catalog.domains["ocn"].event_types)
    for event_type in catalog.event_types("ocn"):
        assert event_type.entity_types == ("trace",)
        assert event_type.writers == ("edge_function", "service_role_pipeline")
        assert event_type.why and event_type.why.startswith("Emitted when")
        assert event_type.required == ["data", "cloudevent"]


def test_clients_cannot_write_ocn_receipts(ledger: Ledger) -> None:
    request = cloudevent_to_request(ocn_example("decision_approve"), ledger.catalog)
    with pytest.raises(PermissionDeniedError):
        ledger.append(request, producer="client")


def test_exported_ocn_schemas_are_self_contained(tmp_path: Path) -> None:
    catalog = Catalog.load()
    catalog.export(tmp_path)
    index = {
        entry["event_type"]: entry for entry in json.loads((tmp_path / "index.json").read_text())
    }
    for name in catalog.domains["ocn"].event_types:
        schema = json.loads((tmp_path / index[name]["schema"]).read_text())
        assert schema_refs(schema) == []
        assert schema["$id"] == f"urn:receipts:schema:ocn:{name}"
        jsonschema.Draft202012Validator.check_schema(schema)
        validator = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        example = catalog.get(name).example
        assert [e.message for e in validator.iter_errors(example)] == []
        assert not validator.is_valid({**(example or {}), "data": {}})


def test_a_voided_decision_has_no_event_to_audit(ledger: Ledger) -> None:
    voided = ledger.void(store(ledger, "decision_approve").id, "sent in error", "orca")
    with pytest.raises(ValidationError) as caught:
        audit_event(voided, source=SOURCE, status="stored", verified_at=None)
    assert [e.pointer for e in caught.value.errors] == ["/op"]
