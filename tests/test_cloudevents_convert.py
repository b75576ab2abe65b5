"""Receipts as CloudEvents and CloudEvents as receipt requests, on real ledgers: the DESIGN's
mapping, round trips through HTTP, idempotent retries by (source, id), the OCN domain."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import Sample, catalog_without_rules
from receipts import Catalog, Ledger, PermissionDeniedError, Receipt, ValidationError
from receipts.cloudevents import (
    cloudevent_to_request,
    from_http,
    receipt_to_cloudevent,
    to_binary,
    to_structured,
    validate_cloudevent,
)

SOURCE = "https://ledger.example.test/receipts"
FIXTURES = Path(__file__).parent / "fixtures" / "ocn"
CATALOG = Catalog.load()
LEDGER_TYPES = sorted(t.name for t in CATALOG if t.domain != "ocn")


def ocn_example(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return event


@pytest.fixture(scope="module")
def two_ledgers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, Ledger]]:
    """A ledger and a second one to copy its receipts into (shared: opening one compiles the
    catalog's validators). Every type's example goes in on its own: no lifecycle rules."""
    folder = tmp_path_factory.mktemp("two")
    one, two = (
        Ledger.open(folder / name, catalog=catalog_without_rules()) for name in ("one.db", "two.db")
    )
    with one, two:
        yield one, two


def pointers(error: ValidationError) -> list[str]:
    return [e.pointer for e in error.errors]


def request_problems(event: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        cloudevent_to_request(event, CATALOG)
    return pointers(caught.value)


# --- receipts of the catalog domains -------------------------------------------------------------


def test_receipt_as_cloudevent_follows_the_design(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    request = request_for("payment_captured", entity_id="pi_1", occurred_at="2026-01-02T10:00:00Z")
    request["payload"]["correlation_id"] = "checkout-7"
    receipt = ledger.append(request)

    event = receipt_to_cloudevent(receipt, source=SOURCE, catalog=ledger.catalog)
    assert event == {
        "specversion": "1.0",
        "id": receipt.id,
        "source": SOURCE,
        "type": "receipts.payments.payment_captured.v0",
        "subject": "payment_intent:pi_1",
        "time": "2026-01-02T10:00:00.000000Z",
        "datacontenttype": "application/json",
        "dataschema": "urn:receipts:schema:payments:payment_captured",
        "seq": 0,
        "logicalid": receipt.id,
        "revision": 0,
        "op": "assert",
        "correlationid": "checkout-7",
        "leafhash": receipt.leaf_hash.hex(),
        "data": receipt.payload,
    }
    validate_cloudevent(event)


def test_correlationid_only_when_the_receipt_has_one(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    receipt = ledger.append(request_for("payment_captured"))
    assert "correlationid" not in receipt_to_cloudevent(receipt, source=SOURCE, catalog=CATALOG)


@pytest.mark.parametrize("name", LEDGER_TYPES)
def test_every_catalog_type_round_trips_through_a_cloudevent(
    two_ledgers: tuple[Ledger, Ledger], sample_for: Callable[..., Sample], name: str
) -> None:
    ledger, other_ledger = two_ledgers
    sample = sample_for(name, entity_id="e:1", occurred_at="2026-01-02T10:00:00Z")
    receipt = ledger.append(sample.request, producer=sample.producer)
    event = receipt_to_cloudevent(receipt, source=SOURCE, catalog=ledger.catalog)

    (received,) = from_http(*to_binary(event))
    request = cloudevent_to_request(received, other_ledger.catalog)
    copied = other_ledger.append(request, producer=sample.producer)
    same = ("domain", "event_type", "entity_type", "entity_id", "occurred_at", "payload")
    assert {k: getattr(copied, k) for k in same} == {k: getattr(receipt, k) for k in same}
    assert copied.entity_id == "e:1"  # the id keeps its own colons


def test_a_cloudevent_sent_twice_is_one_receipt(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    payload = request_for("payment_captured")["payload"]
    event = {"specversion": "1.0", "id": "evt-1", "source": "/payments", "subject": "event:e1",
             "type": "receipts.payments.payment_captured.v0", "data": payload}  # fmt: skip
    first = ledger.append(cloudevent_to_request(event, ledger.catalog))
    again = ledger.append(cloudevent_to_request(copy.deepcopy(event), ledger.catalog))
    assert again == first and ledger.size() == 1
    assert first.id == str(uuid.uuid5(uuid.UUID("2920aebe-fbb2-439d-9606-8dc9f98b84bd"),
                                       "/payments\nevt-1"))  # fmt: skip

    elsewhere = ledger.append(cloudevent_to_request({**event, "source": "/other"}, ledger.catalog))
    assert elsewhere.id != first.id and ledger.size() == 2


def test_a_revision_is_shown_with_its_chain(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    first = ledger.append(request_for("payment_captured"))
    amended = ledger.amend(first.id, {**first.payload, "amount": 1})
    voided = ledger.void(amended.id, "duplicate", "ops")

    shown = receipt_to_cloudevent(amended, source=SOURCE, catalog=CATALOG)
    assert (shown["op"], shown["revision"], shown["logicalid"], shown["seq"]) == (
        "amend", 1, first.id, 1,
    )  # fmt: skip
    void = receipt_to_cloudevent(voided, source=SOURCE, catalog=CATALOG)
    assert void["op"] == "void" and void["data"]["void_reason"] == "duplicate"
    assert "dataschema" not in void  # a void's payload is not the event type's schema

    assert request_problems(shown) == ["/op"]


def test_a_seq_beyond_32_bits_goes_as_a_string(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    stored = ledger.append(request_for("payment_captured"))
    far = Receipt.from_entry(2**31, stored.entry())
    event = receipt_to_cloudevent(far, source=SOURCE, catalog=CATALOG)
    assert event["seq"] == "2147483648" and event["revision"] == 0


def test_the_ledger_source_must_be_a_uri_reference(
    ledger: Ledger, request_for: Callable[..., dict[str, Any]]
) -> None:
    receipt = ledger.append(request_for("payment_captured"))
    with pytest.raises(ValidationError) as caught:
        receipt_to_cloudevent(receipt, source="not a uri", catalog=CATALOG)
    assert pointers(caught.value) == ["/source"]


# --- cloudevents that are not receipt requests ---------------------------------------------------


def _event(**attributes: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": "1",
        "source": "/s",
        "type": "receipts.payments.payout_completed.v0",
        "subject": "payout:p1",
        "data": {},
    }
    event.update(attributes)
    return {k: v for k, v in event.items() if v is not None}


@pytest.mark.parametrize(
    "ce_type",
    [
        "com.example.someevent",
        "receipts.payments.no_such_type.v0",
        "receipts.identity.payout_completed.v0",  # a type of another domain
        "receipts.payments.payout_completed",
        "receipts.payments.payout_completed.v01",
        "ocn.orca.decision.v2",
    ],
)
def test_unknown_types_are_refused_at_type(ce_type: str) -> None:
    assert request_problems(_event(type=ce_type)) == ["/type"]


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ({"subject": None}, ["/subject"]),
        ({"subject": "no-colon"}, ["/subject"]),
        ({"subject": ":id"}, ["/subject"]),
        ({"subject": "type:"}, ["/subject"]),
        ({"data": None}, ["/data"]),
        ({"data": [1]}, ["/data"]),
        ({"data": None, "data_base64": "e30="}, ["/data_base64"]),
        ({"data": "text", "datacontenttype": "text/plain"}, ["/data", "/datacontenttype"]),
        ({"data": {"schema_version": 1}}, ["/data/schema_version"]),
        ({"op": "void"}, ["/op"]),
    ],
)
def test_cloudevents_that_are_not_requests(attributes: dict[str, Any], expected: list[str]) -> None:
    event = _event(**attributes)
    if attributes.get("data", 0) is None and "data_base64" not in attributes:
        event.pop("data", None)
    assert request_problems(event) == expected


def test_an_invalid_cloudevent_is_refused_with_its_pointers() -> None:
    assert request_problems(_event(specversion="0.3", time="noon")) == ["/specversion", "/time"]


def test_request_fields() -> None:
    request = cloudevent_to_request(
        _event(time="2026-01-02T10:00:00+02:00", data={"amount": 5}), CATALOG
    )
    assert request == {
        "id": request["id"],
        "domain": "payments",
        "event_type": "payout_completed",
        "entity_type": "payout",
        "entity_id": "p1",
        "payload": {"schema_version": 0, "amount": 5},
        "occurred_at": "2026-01-02T10:00:00+02:00",
    }
    assert "occurred_at" not in cloudevent_to_request(_event(), CATALOG)


def test_payload_problems_are_the_ledgers(ledger: Ledger) -> None:
    event = _event(type="receipts.payments.payment_captured.v0", subject="event:e1",
                   data={"amount": "lots", "providerChargeId": "ch_1"})  # fmt: skip
    request = cloudevent_to_request(event, ledger.catalog)
    with pytest.raises(ValidationError) as caught:
        ledger.append(request)
    assert pointers(caught.value) == ["/payload/amount"]


def test_catalog_without_the_type() -> None:
    bare = Catalog.load(builtin=False)
    assert request_problems_in(bare, _event()) == ["/type"]
    assert request_problems_in(bare, ocn_example("decision_approve")) == ["/type"]


def request_problems_in(catalog: Catalog, event: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        cloudevent_to_request(event, catalog)
    return pointers(caught.value)


# --- the ocn domain ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "event_type"),
    [("decision_approve", "orca_decision"), ("explanation_approve", "orca_explanation"),
     ("audit_approve", "weave_audit")],
)  # fmt: skip
def test_ocn_event_is_kept_whole(ledger: Ledger, name: str, event_type: str) -> None:
    event = ocn_example(name)
    request = cloudevent_to_request(event, ledger.catalog)
    attributes = {k: v for k, v in event.items() if k != "data"}
    assert request == {
        "id": str(uuid.uuid5(uuid.UUID("2920aebe-fbb2-439d-9606-8dc9f98b84bd"),
                             f"{event['source']}\n{event['id']}")),
        "domain": "ocn",
        "event_type": event_type,
        "entity_type": "trace",
        "entity_id": "txn_67890",
        "payload": {"data": event["data"], "cloudevent": attributes, "correlation_id": "txn_67890"},
        "occurred_at": event["time"],
    }  # fmt: skip
    receipt = ledger.append(request, producer="edge_function")
    assert receipt.payload["cloudevent"] == attributes
    assert receipt.occurred_at == event["time"].replace("Z", ".000000Z")

    shown = receipt_to_cloudevent(receipt, source=SOURCE, catalog=ledger.catalog)
    ledger_extensions = {
        "seq": 0,
        "logicalid": receipt.id,
        "revision": 0,
        "op": "assert",
        "correlationid": "txn_67890",
        "leafhash": receipt.leaf_hash.hex(),
    }
    assert shown == {**event, **ledger_extensions}  # the original id, source, time, data
    validate_cloudevent(shown, event["type"])

    # Our export, sent back (any mode), is a retry of the same event: the same receipt.
    for headers, body in (to_structured(shown), to_binary(shown)):
        (again,) = from_http(headers, body)
        retry = cloudevent_to_request(again, ledger.catalog)
        assert ledger.append(retry, producer="edge_function") == receipt
    assert ledger.size() == 1


def test_ocn_trace_holds_the_whole_flow(ledger: Ledger) -> None:
    for name in ("decision_approve", "explanation_approve", "audit_approve"):
        ledger.append(cloudevent_to_request(ocn_example(name), ledger.catalog))
    trace = list(ledger.trace("txn_67890"))
    assert [r.event_type for r in trace] == ["orca_decision", "orca_explanation", "weave_audit"]
    assert [r.entity for r in ledger.history("trace:txn_67890")] == ["trace:txn_67890"] * 3


def test_ocn_event_with_extensions_and_nulls(ledger: Ledger) -> None:
    event = ocn_example("decision_approve")
    event.update(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                 dataschema=None, seq=99, leafhash="forged")  # fmt: skip
    receipt = ledger.append(cloudevent_to_request(event, ledger.catalog))
    stored = receipt.payload["cloudevent"]
    assert stored["traceparent"].startswith("00-")
    assert "dataschema" not in stored  # null is unset
    assert "seq" not in stored and "leafhash" not in stored  # the ledger's own, re-derived
    shown = receipt_to_cloudevent(receipt, source=SOURCE, catalog=ledger.catalog)
    assert shown["seq"] == 0 and shown["leafhash"] == receipt.leaf_hash.hex()


def test_ocn_event_is_validated_before_conversion() -> None:
    event = ocn_example("decision_approve")
    del event["subject"]
    event["data"]["decision"]["result"] = "MAYBE"
    assert request_problems(event) == ["/subject", "/data/decision/result"]


def test_ocn_receipts_are_server_written(ledger: Ledger) -> None:
    request = cloudevent_to_request(ocn_example("decision_approve"), ledger.catalog)
    with pytest.raises(PermissionDeniedError):
        ledger.append(request, producer="client")


def test_ocn_revisions_take_the_receipts_form(ledger: Ledger) -> None:
    decision = ledger.append(cloudevent_to_request(ocn_example("decision_approve"), CATALOG))
    voided = ledger.void(decision.id, "sent in error", "orca")
    event = receipt_to_cloudevent(voided, source=SOURCE, catalog=CATALOG)
    assert event["type"] == "receipts.ocn.orca_decision.v0"
    assert (event["id"], event["subject"], event["op"]) == (voided.id, "trace:txn_67890", "void")
    assert event["data"]["void_reason"] == "sent in error"
