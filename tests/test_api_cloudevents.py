"""CloudEvents over HTTP: ``POST /events`` in structured, binary and batch modes (v1.0.2 HTTP
binding), the OCN flow (a stored decision or explanation answers with its
``ocn.weave.audit.v1`` event), idempotent retries, spec violations, unknown types, the Weave view
``GET /receipts/{trace_id}``, egress with ``?format=cloudevent``, and interoperability with the
official ``cloudevents`` SDK both ways."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import cloudevents.v1.http as sdk_v1
import pytest
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from cloudevents.v1.conversion import to_binary as v1_to_binary
from cloudevents.v1.conversion import to_structured as v1_to_structured

from receipts.cloudevents import OCN_CONTENT_TYPE, UNKNOWN_CATALOG, validate_cloudevent
from receipts.cloudevents.convert import request_id
from receipts.model import canonical_bytes
from test_api_support import (
    AUTH_A,
    EDGE_AUTH,
    SERVICE,
    USER_A,
    Api,
    assert_problem,
    event_stream,
    ocn_example,
    serve,
)

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
AUDIT = "ocn.weave.audit.v1"
REFUND_DATA = {
    "paymentIntentId": "pi_1",
    "requestedByUserId": "user_7f3a",
    "reasonCode": "event_cancelled",
}


@pytest.fixture
def api(ledger_url: str) -> Iterator[Api]:
    with serve(ledger_url) as opened:
        yield opened


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    with serve(str(tmp_path / "ce.db")) as opened:
        yield opened


def refund_event(
    event_id: str = "ce-1", subject: str = "refund:r-1", **extra: Any
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "https://shop.example.com/checkout",
        "type": "receipts.payments.refund_requested.v0",
        "subject": subject,
        "time": "2026-01-02T10:00:00Z",
        "datacontenttype": "application/json",
        "data": copy.deepcopy(REFUND_DATA),
        **extra,
    }


def post_structured(api: Api, event: Any, headers: dict[str, str] = SERVICE) -> Any:
    return api.client.post(
        "/events",
        content=json.dumps(event).encode(),
        headers={**headers, "content-type": STRUCTURED},
    )


def post_batch(api: Api, events: Any, headers: dict[str, str] = SERVICE) -> Any:
    return api.client.post(
        "/events", content=json.dumps(events).encode(), headers={**headers, "content-type": BATCH}
    )


def stored(api: Api, receipt_id: str) -> dict[str, Any]:
    response = api.client.get(f"/v0/receipts/{receipt_id}", headers=SERVICE)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def check_audit(api: Api, audit: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    """The audit event of a stored OCN decision/explanation, checked field by field."""
    validate_cloudevent(audit, AUDIT)
    assert audit["type"] == AUDIT
    assert audit["subject"] == original["subject"]
    assert audit["datacontenttype"] == OCN_CONTENT_TYPE
    data = audit["data"]
    receipt = stored(api, data["storage_metadata"]["receipt_id"])
    assert receipt["id"] == request_id(original["source"], original["id"])
    entry = {k: v for k, v in receipt.items() if k not in ("seq", "leaf_hash")}
    entry_bytes = canonical_bytes(entry)
    assert data["receipt_hash"] == "sha256:" + hashlib.sha256(entry_bytes).hexdigest()
    assert data["block_height"] == receipt["seq"]
    assert data["transaction_hash"] == receipt["leaf_hash"]
    assert data["transaction_hash"] == hashlib.sha256(b"\x00" + entry_bytes).hexdigest()
    assert data["trace_id"] == original["subject"]
    assert data["event_type"] == original["type"]
    assert data["original_event_id"] == original["id"]
    assert data["status"] in ("stored", "confirmed")
    assert data["verification"]["verification_method"] == "merkle_proof"
    assert data["verification"]["verified"] is (data["status"] == "confirmed")
    return receipt


# --- the three modes -----------------------------------------------------------------------------


def test_structured_mode_stores_a_receipt_and_answers_with_it_as_a_cloudevent(api: Api) -> None:
    event = refund_event()
    response = post_structured(api, event)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(STRUCTURED)
    answer = response.json()
    validate_cloudevent(answer)
    receipt_id = request_id(event["source"], event["id"])
    assert answer["id"] == receipt_id
    assert answer["type"] == "receipts.payments.refund_requested.v0"
    assert answer["subject"] == "refund:r-1"
    assert answer["source"] == "urn:receipts:ledger"
    assert answer["seq"] == 0 and answer["op"] == "assert" and answer["revision"] == 0
    receipt = stored(api, receipt_id)
    assert (receipt["domain"], receipt["event_type"]) == ("payments", "refund_requested")
    assert (receipt["entity_type"], receipt["entity_id"]) == ("refund", "r-1")
    assert receipt["occurred_at"] == "2026-01-02T10:00:00.000000Z"
    assert receipt["producer"] == "service_role_pipeline"
    assert receipt["payload"] == {
        **REFUND_DATA,
        "schema_version": 0,
        "source": "service_role_pipeline",
    }
    assert answer["leafhash"] == receipt["leaf_hash"]
    assert answer["data"] == receipt["payload"]


@pytest.mark.backends("sqlite")
def test_binary_mode_with_percent_encoded_headers(api: Api) -> None:
    headers = {
        **SERVICE,
        "ce-specversion": "1.0",
        "ce-id": "bin%201",  # "bin 1"
        "ce-source": "urn:shop:caf%25C3%25A9",  # a URI with a %-escape, escaped once more
        "ce-type": "receipts.payments.refund_requested.v0",
        "ce-subject": "refund:r%C3%A9-1",  # "refund:ré-1"
        "ce-time": "2026-01-02T10:00:00Z",
        "content-type": "application/json",
    }
    response = api.client.post("/events", content=json.dumps(REFUND_DATA).encode(), headers=headers)
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["id"] == request_id("urn:shop:caf%C3%A9", "bin 1")
    assert answer["subject"] == "refund:ré-1"
    assert stored(api, answer["id"])["entity_id"] == "ré-1"

    # An OCN decision in binary mode: its attributes come back decoded, as sent.
    decision = ocn_example("decision_approve")
    headers = {
        **SERVICE,
        **{f"ce-{k}": v for k, v in decision.items() if k not in ("data", "datacontenttype")},
        "ce-subject": "txn_%C3%A9t%C3%A9",  # "txn_été"
        "ce-comexampleorigin": "%22quoted%22%20and%20%25",  # an extension: '"quoted" and %'
        "content-type": OCN_CONTENT_TYPE,
    }
    response = api.client.post(
        "/events", content=json.dumps(decision["data"]).encode(), headers=headers
    )
    assert response.status_code == 201, response.text
    audit = response.json()
    assert audit["subject"] == "txn_été"
    receipt = check_audit(api, audit, {**decision, "subject": "txn_été"})
    kept = receipt["payload"]["cloudevent"]
    assert kept["subject"] == "txn_été" and kept["comexampleorigin"] == '"quoted" and %'
    assert kept["datacontenttype"] == OCN_CONTENT_TYPE


def test_batch_mode(api: Api) -> None:
    events = [
        refund_event("b-1"),
        ocn_example("decision_approve"),
        ocn_example("explanation_approve"),
        ocn_example("audit_approve"),
    ]
    response = post_batch(api, events)
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(BATCH)
    answers = response.json()
    assert [a["type"] for a in answers] == [
        "receipts.payments.refund_requested.v0",
        AUDIT,
        AUDIT,
        AUDIT,
    ]
    check_audit(api, answers[1], events[1])
    check_audit(api, answers[2], events[2])
    # A received audit event is stored as sent, and answered with itself (it is not audited).
    assert answers[3]["id"] == "evt_98765" and answers[3]["source"] == "https://weave.ocn.ai/v1"
    assert [a.get("seq", None) for a in answers] == [0, None, None, 3]
    assert api.ledger.size() == 4
    # A batch of none is a batch.
    empty = post_batch(api, [])
    assert empty.status_code == 201 and empty.json() == []
    assert api.ledger.size() == 4


@pytest.mark.parametrize("name", ["decision_approve", "explanation_approve", "audit_approve"])
def test_the_ocn_reference_examples_are_accepted(sqlite_api: Api, name: str) -> None:
    example = ocn_example(name)
    response = post_structured(sqlite_api, example)
    assert response.status_code == 201, response.text
    answer = response.json()
    if name == "audit_approve":
        assert {k: v for k, v in answer.items() if k in example} == example
    else:
        receipt = check_audit(sqlite_api, answer, example)
        assert answer["data"]["status"] == "stored"
        assert (receipt["domain"], receipt["entity_type"], receipt["entity_id"]) == (
            "ocn",
            "trace",
            "txn_67890",
        )
        assert receipt["payload"]["correlation_id"] == "txn_67890"


# --- idempotency ---------------------------------------------------------------------------------


def test_a_retried_event_returns_the_same_result_and_writes_nothing(api: Api) -> None:
    for event in (refund_event(), ocn_example("decision_approve")):
        first = post_structured(api, event)
        assert first.status_code == 201
        size = api.ledger.size()
        again = post_structured(api, event)
        assert again.status_code == 201
        assert again.json() == first.json()
        assert api.ledger.size() == size
    batch = [ocn_example("explanation_approve"), refund_event()]
    first = post_batch(api, batch)
    again = post_batch(api, batch)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert api.ledger.size() == 3
    # Same source and id, different content: a conflict, not an overwrite.
    changed = refund_event()
    changed["data"]["reasonCode"] = "other"
    assert_problem(post_structured(api, changed), 409, "id_conflict")
    # Same id from another source: another event.
    other = refund_event(source="https://other.example.com/")
    assert post_structured(api, other).status_code == 201
    assert api.ledger.size() == 4


@pytest.mark.parametrize(
    ("first", "again"),
    [
        ("2026-01-02T10:00:00Z", "2026-01-02T10:00:00+00:00"),
        ("2026-01-02T10:00:00Z", "2026-01-02T11:00:00+01:00"),
        ("2026-01-02T10:00:00.5Z", "2026-01-02T10:00:00.500000000Z"),
        ("2026-01-02T10:00:00.123456789Z", "2026-01-02T10:00:00.1234567890+00:00"),
    ],
)
def test_a_retry_whose_time_is_spelled_otherwise_is_the_same_event(
    api: Api, first: str, again: str
) -> None:
    """The time attribute is compared as the instant it names (to the nanosecond and beyond),
    not as text; the receipt keeps the first spelling. A different instant is a conflict."""
    for event in (refund_event(time=first), {**ocn_example("decision_approve"), "time": first}):
        stored = post_structured(api, event)
        assert stored.status_code == 201, stored.text
        size = api.ledger.size()
        retried = post_structured(api, {**event, "time": again})
        assert retried.status_code == 201, retried.text
        assert retried.json() == stored.json()
        batch = post_batch(api, [{**event, "time": again}])
        assert batch.status_code == 201 and batch.json() == [stored.json()]
        assert api.ledger.size() == size
    receipt = api.ledger.get(request_id(event["source"], event["id"]))
    assert receipt.payload["cloudevent"]["time"] == first
    later = {**event, "time": "2026-01-02T10:00:00.000000001Z"}  # another instant
    assert_problem(post_structured(api, later), 409, "id_conflict")


# --- who may send what ---------------------------------------------------------------------------


@pytest.mark.backends("sqlite")
def test_principals_and_producers_over_cloudevents(api: Api) -> None:
    mine = post_structured(api, refund_event("u-1"), AUTH_A)
    assert mine.status_code == 201, mine.text
    receipt = stored(api, mine.json()["id"])
    assert (receipt["producer"], receipt["owner_user_id"]) == ("client", USER_A)

    edge = post_structured(api, refund_event("e-1"), EDGE_AUTH)
    assert stored(api, edge.json()["id"])["producer"] == "edge_function"
    # OCN decisions are for servers only.
    assert_problem(
        post_structured(api, ocn_example("decision_approve"), AUTH_A),
        403,
        "forbidden",
        ["/type"],  # the event's own field, not the receipt request's
    )
    assert_problem(
        post_batch(api, [refund_event("u-2"), ocn_example("decision_approve")], AUTH_A),
        403,
        "forbidden",
        ["/1/type"],
    )
    assert post_structured(api, ocn_example("decision_approve"), EDGE_AUTH).status_code == 201
    # The payload's source must agree with the producer; the pointer is into `data`.
    lying = refund_event("u-3")
    lying["data"]["source"] = "service_role_pipeline"
    assert_problem(post_structured(api, lying, AUTH_A), 422, "validation_failed", ["/data/source"])
    assert_problem(
        post_batch(api, [refund_event("u-4"), lying], AUTH_A),
        422,
        "validation_failed",
        ["/1/data/source"],
    )
    assert api.ledger.size() == 3


# --- spec violations -----------------------------------------------------------------------------

VIOLATIONS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "specversion 0.3": ({"specversion": "0.3"}, ["/specversion"]),
    "bad time": ({"time": "yesterday"}, ["/time"]),
    "time without offset": ({"time": "2026-01-02T10:00:00"}, ["/time"]),
    "relative dataschema": ({"dataschema": "/schemas/refund.json"}, ["/dataschema"]),
    "uppercase extension": ({"myExt": "x"}, ["/myExt"]),
    "extension with a dash": ({"my-ext": "x"}, ["/my-ext"]),
    "float extension": ({"ratio": 0.5}, ["/ratio"]),
    "data and data_base64": ({"data_base64": "e30="}, ["/data_base64"]),
    "empty id": ({"id": ""}, ["/id"]),
    "source not a URI-reference": ({"source": "not a uri"}, ["/source"]),
    "bad media type": ({"datacontenttype": "json"}, ["/datacontenttype"]),
    "control character": ({"subject": "refund:r\u0007"}, ["/subject"]),
    "subject not TYPE:ID": ({"subject": "r-1"}, ["/subject"]),
    "payload against its schema": (
        {"data": {"paymentIntentId": "pi_1"}},
        ["/data/reasonCode", "/data/requestedByUserId"],
    ),
}


@pytest.mark.parametrize("change", VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_spec_violations_are_422_with_pointers(
    sqlite_api: Api, change: tuple[dict[str, Any], list[str]]
) -> None:
    attributes, pointers = change
    event = {**refund_event(), **attributes}
    problem = assert_problem(post_structured(sqlite_api, event), 422, "validation_failed")
    assert sorted({e["pointer"] for e in problem["errors"]}) == pointers
    batch = post_batch(sqlite_api, [refund_event("ok-1"), event])
    problem = assert_problem(batch, 422, "validation_failed")
    assert sorted({e["pointer"] for e in problem["errors"]}) == [f"/1{p}" for p in pointers]
    assert sqlite_api.ledger.size() == 0


def test_missing_required_attributes(sqlite_api: Api) -> None:
    event = {k: v for k, v in refund_event().items() if k not in ("id", "source")}
    assert_problem(post_structured(sqlite_api, event), 422, "validation_failed", ["/id", "/source"])
    assert_problem(post_structured(sqlite_api, [event]), 422, "validation_failed", [""])
    assert_problem(post_batch(sqlite_api, {"not": "an array"}), 422, "validation_failed", [""])
    assert_problem(post_batch(sqlite_api, [refund_event(), 7]), 422, "validation_failed", ["/1"])


def test_an_ocn_event_breaking_its_schema_is_422(sqlite_api: Api) -> None:
    decision = ocn_example("decision_approve")
    decision["data"]["decision"]["risk_score"] = "low"
    del decision["subject"]
    problem = assert_problem(post_structured(sqlite_api, decision), 422, "validation_failed")
    pointers = {e["pointer"] for e in problem["errors"]}
    assert {"/subject", "/data/decision/risk_score"} <= pointers
    explanation = ocn_example("explanation_approve")
    explanation["data"]["trace_id"] = "txn_other"
    assert_problem(
        post_structured(sqlite_api, explanation), 422, "validation_failed", ["/data/trace_id"]
    )
    assert sqlite_api.ledger.size() == 0


def _binary_headers(**override: str) -> dict[str, str]:
    headers = {
        **SERVICE,
        "ce-specversion": "1.0",
        "ce-id": "b-1",
        "ce-source": "urn:shop",
        "ce-type": "receipts.payments.refund_requested.v0",
        "ce-subject": "refund:r-1",
        "content-type": "application/json",
    }
    headers.update(override)
    return headers


@pytest.mark.parametrize(
    ("override", "pointers"),
    [
        ({"ce-datacontenttype": "application/json"}, ["/datacontenttype"]),
        ({"ce-specversion": "0.3"}, ["/specversion"]),
        ({"ce-time": "not-a-time"}, ["/time"]),
        ({"ce-subject": "refund:%ZZ"}, ["/subject"]),  # bad percent-encoding
        ({"ce-subject": "refund:%C3%28"}, ["/subject"]),  # not UTF-8
        ({"ce-dataschema": "relative/path"}, ["/dataschema"]),
        ({"ce-data": "x"}, ["/data"]),
    ],
)
def test_binary_mode_violations(
    sqlite_api: Api, override: dict[str, str], pointers: list[str]
) -> None:
    response = sqlite_api.client.post(
        "/events", content=json.dumps(REFUND_DATA).encode(), headers=_binary_headers(**override)
    )
    assert_problem(response, 422, "validation_failed", pointers)
    assert sqlite_api.ledger.size() == 0


def test_binary_mode_body_problems(sqlite_api: Api) -> None:
    client = sqlite_api.client
    response = client.post("/events", content=b"{not json", headers=_binary_headers())
    assert_problem(response, 400, "format_invalid", ["/data"])
    # Bytes that are not JSON are not a receipt payload.
    response = client.post(
        "/events",
        content=b"\x00\x01",
        headers=_binary_headers(**{"content-type": "application/octet-stream"}),
    )
    problem = assert_problem(response, 422, "validation_failed")
    assert "/data_base64" in {e["pointer"] for e in problem["errors"]}
    response = client.post(
        "/events", content=b"{}", headers={**SERVICE, "content-type": "application/json"}
    )
    assert_problem(response, 415, "unsupported_media_type")  # neither structured nor binary
    assert sqlite_api.ledger.size() == 0


def test_nul_in_event_data_is_422_on_every_backend(api: Api) -> None:
    event = refund_event()
    event["data"]["note"] = "a\u0000b"
    assert_problem(post_structured(api, event), 422, "validation_failed", ["/data/note"])
    assert_problem(
        post_batch(api, [refund_event("x"), event]), 422, "validation_failed", ["/1/data/note"]
    )
    assert api.ledger.size() == 0


# --- unknown types -------------------------------------------------------------------------------


def _ping(event_id: str = "p-1") -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:iot:sensor-7",
        "type": "com.example.sensor.ping",
        "time": "2026-01-02T10:00:00Z",
        "comexampletemp": 21,
        "data": {"celsius": 21.5},
    }


def test_unknown_types_are_422_unless_configured(tmp_path: Path) -> None:
    with serve(str(tmp_path / "strict.db")) as api:
        assert_problem(post_structured(api, _ping()), 422, "validation_failed", ["/type"])
        assert_problem(
            post_batch(api, [refund_event(), _ping()]), 422, "validation_failed", ["/1/type"]
        )
        unknown_receipt_type = refund_event(type="receipts.payments.no_such_type.v0")
        assert_problem(
            post_structured(api, unknown_receipt_type), 422, "validation_failed", ["/type"]
        )
        assert api.ledger.size() == 0


def test_unknown_types_are_stored_when_configured(tmp_path: Path) -> None:
    with serve(
        str(tmp_path / "open.db"), catalog_files=(UNKNOWN_CATALOG,), store_unknown_cloudevents=True
    ) as api:
        response = post_structured(api, _ping())
        assert response.status_code == 201, response.text
        answer = response.json()
        assert answer["type"] == "receipts.cloudevents.unknown_event.v0"
        receipt = stored(api, request_id("urn:iot:sensor-7", "p-1"))
        assert (receipt["domain"], receipt["event_type"]) == ("cloudevents", "unknown_event")
        assert (receipt["entity_type"], receipt["entity_id"]) == ("source", "urn:iot:sensor-7")
        assert receipt["occurred_at"] == "2026-01-02T10:00:00.000000Z"
        kept = receipt["payload"]
        assert kept["data"] == {"celsius": 21.5}
        assert kept["cloudevent"]["type"] == "com.example.sensor.ping"
        assert kept["cloudevent"]["comexampletemp"] == 21
        # Idempotent like any other, and spec violations are still refused.
        assert post_structured(api, _ping()).json() == answer
        assert_problem(
            post_structured(api, {**_ping("p-2"), "specversion": "0.3"}),
            422,
            "validation_failed",
            ["/specversion"],
        )
        binary = {
            **SERVICE,
            "ce-specversion": "1.0",
            "ce-id": "p-3",
            "ce-source": "urn:iot:x",
            "ce-type": "com.example.blob",
            "content-type": "application/octet-stream",
        }
        response = api.client.post("/events", content=b"\x00\xffbytes", headers=binary)
        assert response.status_code == 201, response.text
        blob = stored(api, request_id("urn:iot:x", "p-3"))["payload"]
        assert blob["data_base64"] == "AP9ieXRlcw=="
        assert api.ledger.size() == 2


# --- the Weave view and egress -------------------------------------------------------------------


def test_weave_view_of_a_trace(api: Api) -> None:
    sent = [
        ocn_example("decision_approve"),
        ocn_example("explanation_approve"),
        ocn_example("audit_approve"),
    ]
    assert post_batch(api, sent).status_code == 201
    assert post_structured(api, refund_event()).status_code == 201  # not in the trace
    response = api.client.get("/receipts/txn_67890", headers=SERVICE)
    assert response.status_code == 200
    view = response.json()
    assert view["trace_id"] == "txn_67890"
    assert [e["id"] for e in view["events"]] == ["evt_12345", "evt_54321", "evt_98765"]
    for event, original in zip(view["events"], sent, strict=True):
        validate_cloudevent(event, original["type"])
        assert {k: v for k, v in event.items() if k in original} == original
        assert event["correlationid"] == "txn_67890"
    assert [a["data"]["original_event_id"] for a in view["audits"]] == ["evt_12345", "evt_54321"]
    for audit, original in zip(view["audits"], sent, strict=False):
        check_audit(api, audit, original)
        assert audit["data"]["status"] == "stored"  # no checkpoint yet (interval 0)
    api.ledger.checkpoint()
    confirmed = api.client.get("/receipts/txn_67890", headers=SERVICE).json()["audits"]
    assert {a["data"]["status"] for a in confirmed} == {"confirmed"}
    for audit, original in zip(confirmed, sent, strict=False):
        check_audit(api, audit, original)
    # A later checkpoint changes nothing: the same id is always the same bytes.
    assert post_structured(api, refund_event("ce-2")).status_code == 201
    api.ledger.checkpoint()
    assert api.client.get("/receipts/txn_67890", headers=SERVICE).json()["audits"] == confirmed
    # End users see a trace only through receipts they may read.
    assert api.client.get("/receipts/txn_67890", headers=AUTH_A).json()["events"] == []
    assert api.client.get("/receipts/nothing-here", headers=SERVICE).json() == {
        "trace_id": "nothing-here",
        "events": [],
        "audits": [],
    }


@pytest.mark.backends("sqlite")
def test_audit_events_follow_their_receipts_on_the_stream(api: Api) -> None:
    answered = post_structured(api, ocn_example("decision_approve")).json()
    post_structured(api, refund_event())
    with event_stream(api.client, "/v0/stream?after=-1", SERVICE) as stream:
        first, audit, refund = stream.next(), stream.next(), stream.next()
    assert (first["event"], first["id"]) == ("receipt", "0")
    assert (audit["event"], audit["id"]) == ("audit", "0")  # resuming after 0 skips it too
    assert json.loads(audit["data"]) == answered
    validate_cloudevent(json.loads(audit["data"]), AUDIT)
    assert (refund["event"], refund["id"]) == ("receipt", "1")


@pytest.mark.backends("sqlite")
def test_egress_parses_with_the_official_sdk(api: Api) -> None:
    refund_answer = post_structured(api, refund_event(comexampleorder="o-1")).json()
    decision = ocn_example("decision_approve")
    post_structured(api, decision)
    decision_id = request_id(decision["source"], decision["id"])
    for receipt_id in (refund_answer["id"], decision_id):
        response = api.client.get(f"/v0/receipts/{receipt_id}?format=cloudevent", headers=SERVICE)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(STRUCTURED)
        receipt = stored(api, receipt_id)

        new = sdk_http.from_http(
            sdk_http.HTTPMessage(dict(response.headers), response.content), JSONFormat()
        )
        old = sdk_v1.from_http(dict(response.headers), response.content)
        ours = response.json()
        for event in (new.get_attributes(), old.get_attributes()):
            assert event["specversion"] == "1.0"
            assert event["id"] == ours["id"] and event["type"] == ours["type"]
            assert event["source"] == ours["source"] and event["subject"] == ours["subject"]
            assert event["seq"] == receipt["seq"] and event["leafhash"] == receipt["leaf_hash"]
        assert new.get_data() == old.get_data() == ours["data"]
    assert ours["id"] == "evt_12345" and ours["type"] == "ocn.orca.decision.v1"
    assert ours["data"] == decision["data"]
    # A receipt written through /v0/receipts has a CloudEvent face too.
    plain = api.append(
        {
            "domain": "payments",
            "event_type": "refund_requested",
            "entity_type": "refund",
            "entity_id": "r-9",
            "payload": REFUND_DATA,
        }
    )
    event = api.client.get(f"/v0/receipts/{plain['id']}?format=cloudevent", headers=SERVICE)
    parsed = sdk_v1.from_http(dict(event.headers), event.content)
    assert parsed["type"] == "receipts.payments.refund_requested.v0"
    assert parsed["dataschema"] == "urn:receipts:schema:payments:refund_requested"
    assert parsed["subject"] == "refund:r-9"


@pytest.mark.backends("sqlite")
def test_events_made_by_the_sdk_are_accepted(api: Api) -> None:
    attributes = {
        "type": "receipts.payments.refund_requested.v0",
        "source": "https://shop.example.com/sdk",
        "subject": "refund:sdk-ré",
        "datacontenttype": "application/json",
        "comexamplenote": "café 1",
    }
    sent: list[tuple[str, str]] = []

    def post(headers: dict[str, str], body: bytes) -> dict[str, Any]:
        response = api.client.post("/events", content=body, headers={**SERVICE, **headers})
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    for i, to_http in enumerate((sdk_http.to_structured, sdk_http.to_binary)):
        event = CloudEvent(attributes={**attributes, "id": f"new-{i}"}, data=dict(REFUND_DATA))
        message = to_http(event, JSONFormat())
        answer = post(message.headers, message.body)
        assert answer["subject"] == "refund:sdk-ré"
        sent.append((attributes["source"], f"new-{i}"))

    ascii_only = {**attributes, "subject": "refund:sdk-1", "comexamplenote": "plain"}
    for i, convert in enumerate((v1_to_structured, v1_to_binary)):  # the legacy API
        event = sdk_v1.CloudEvent({**ascii_only, "id": f"old-{i}"}, dict(REFUND_DATA))
        headers, body = convert(event)
        post(dict(headers), body)
        sent.append((attributes["source"], f"old-{i}"))

    decision = ocn_example("decision_approve")
    attributes = {k: v for k, v in decision.items() if k != "data"}
    attributes["time"] = datetime.fromisoformat(attributes["time"])  # the SDK wants a datetime
    ocn = CloudEvent(attributes=attributes, data=decision["data"])
    for to_http in (sdk_http.to_structured, sdk_http.to_binary):
        message = to_http(ocn, JSONFormat())
        audit = post(message.headers, message.body)  # the same event twice: one receipt
        check_audit(api, audit, decision)
    sent.append((decision["source"], decision["id"]))

    assert api.ledger.size() == len(sent) == 5
    for source, event_id in sent:
        stored(api, request_id(source, event_id))
