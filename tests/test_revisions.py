"""Revisions: the only mutations are inserts that supersede the current head of a logical
event (assert, amend, void, restate), checked under optimistic concurrency."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from receipts import (
    ConflictError,
    Ledger,
    NotFoundError,
    PermissionDeniedError,
    Receipt,
    RevisionConflictError,
    ValidationError,
    open_store,
)

ENTITY = "payment_intent:pi_1"
MakeRequest = Callable[..., dict[str, Any]]


def pointers(error: Exception) -> list[str]:
    return [e.pointer for e in getattr(error, "errors", [])]


@pytest.fixture
def captured(ledger: Ledger, request_for: MakeRequest) -> Receipt:
    """A stored ``payment_captured`` assert about ``payment_intent:pi_1``."""
    return ledger.append(
        request_for(
            "payment_captured",
            entity_id="pi_1",
            owner_user_id="user_7f3a",
            occurred_at="2026-01-02T10:00:00Z",
        )
    )


def amended_payload(receipt: Receipt, amount: int) -> dict[str, Any]:
    return {"amount": amount, "providerChargeId": receipt.payload["providerChargeId"]}


def test_assert_starts_a_logical_event(captured: Receipt) -> None:
    assert captured.op == "assert"
    assert captured.logical_id == captured.id
    assert captured.revision == 0
    assert captured.supersedes_id is None


def test_amend_continues_the_chain(ledger: Ledger, captured: Receipt) -> None:
    amended = ledger.amend(captured.id, amended_payload(captured, 4000))
    assert amended.op == "amend"
    assert amended.logical_id == captured.id
    assert amended.revision == 1
    assert amended.supersedes_id == captured.id
    assert amended.id != captured.id
    assert amended.payload["amount"] == 4000

    again = ledger.amend(amended.id, amended_payload(captured, 3900))
    assert (again.logical_id, again.revision, again.supersedes_id) == (
        captured.id,
        2,
        amended.id,
    )


def test_amend_through_a_raw_request(
    ledger: Ledger, captured: Receipt, request_for: MakeRequest
) -> None:
    request = request_for("payment_captured", entity_id="pi_1", op="amend")
    request["supersedes_id"] = captured.id.upper()
    amended = ledger.append(request)
    assert amended.supersedes_id == captured.id
    assert amended.revision == 1


def test_amend_of_a_non_head_is_a_revision_conflict(ledger: Ledger, captured: Receipt) -> None:
    head = ledger.amend(captured.id, amended_payload(captured, 4000))
    with pytest.raises(RevisionConflictError) as caught:
        ledger.amend(captured.id, amended_payload(captured, 3000))
    error = caught.value
    assert error.code == "revision_conflict"
    assert isinstance(error, ConflictError)
    assert error.http_status == 409
    assert pointers(error) == ["/supersedes_id"]
    assert head.id in error.errors[0].message
    assert ledger.size() == 2


def test_void_carries_reason_and_who(ledger: Ledger, captured: Receipt) -> None:
    voided = ledger.void(captured.id, "duplicate charge", "ops_oncall")
    assert voided.op == "void"
    assert voided.revision == 1
    assert voided.supersedes_id == captured.id
    assert voided.payload["void_reason"] == "duplicate charge"
    assert voided.payload["voided_by"] == "ops_oncall"
    assert voided.payload["source"] == "service_role_pipeline"
    assert voided.payload["schema_version"] == 0


@pytest.mark.parametrize("missing", ["void_reason", "voided_by"])
def test_void_without_reason_or_who_is_rejected(
    ledger: Ledger, captured: Receipt, request_for: MakeRequest, missing: str
) -> None:
    payload = {"void_reason": "duplicate", "voided_by": "ops"}
    del payload[missing]
    request = request_for(
        "payment_captured", entity_id="pi_1", op="void", supersedes_id=captured.id, payload=payload
    )
    with pytest.raises(ValidationError) as caught:
        ledger.append(request)
    assert pointers(caught.value) == [f"/payload/{missing}"]
    assert ledger.size() == 1


def test_void_with_empty_reason_is_rejected(ledger: Ledger, captured: Receipt) -> None:
    with pytest.raises(ValidationError) as caught:
        ledger.void(captured.id, "", "ops")
    assert pointers(caught.value) == ["/payload/void_reason"]


def test_restate_of_a_live_head_is_a_conflict(ledger: Ledger, captured: Receipt) -> None:
    with pytest.raises(ConflictError) as caught:
        ledger.restate(captured.id, amended_payload(captured, 4500))
    assert caught.value.code == "conflict"
    assert pointers(caught.value) == ["/op"]
    assert "use amend" in caught.value.message


@pytest.mark.parametrize("op", ["amend", "void"])
def test_a_voided_head_can_only_be_restated(ledger: Ledger, captured: Receipt, op: str) -> None:
    voided = ledger.void(captured.id, "duplicate", "ops")
    with pytest.raises(ConflictError) as caught:
        if op == "amend":
            ledger.amend(voided.id, amended_payload(captured, 4000))
        else:
            ledger.void(voided.id, "again", "ops")
    assert caught.value.code == "conflict"
    assert pointers(caught.value) == ["/op"]
    assert "restate it first" in caught.value.message


def test_restate_after_void_revives_the_event(ledger: Ledger, captured: Receipt) -> None:
    voided = ledger.void(captured.id, "mistaken void", "ops")
    restated = ledger.restate(voided.id, amended_payload(captured, 4500))
    assert restated.op == "restate"
    assert (restated.logical_id, restated.revision, restated.supersedes_id) == (
        captured.id,
        2,
        voided.id,
    )
    assert [r.id for r in ledger.current(ENTITY)] == [restated.id]
    amended = ledger.amend(restated.id, amended_payload(captured, 4400))
    assert amended.revision == 3


def test_restate_payload_is_validated_like_an_assert(ledger: Ledger, captured: Receipt) -> None:
    voided = ledger.void(captured.id, "mistaken void", "ops")
    with pytest.raises(ValidationError) as caught:
        ledger.restate(voided.id, {"amount": 4500})
    assert pointers(caught.value) == ["/payload/providerChargeId"]


def test_amend_payload_is_validated_like_an_assert(ledger: Ledger, captured: Receipt) -> None:
    with pytest.raises(ValidationError) as caught:
        ledger.amend(captured.id, {"amount": "lots", "providerChargeId": "ch_1"})
    assert pointers(caught.value) == ["/payload/amount"]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"entity_id": "pi_other"}, ["/entity_id"]),
        ({"entity_type": "event"}, ["/entity_type"]),
        ({"event_type": "payment_failed"}, ["/event_type"]),
        (
            {"domain": "moderation", "event_type": "moderation_action_lifted"},
            ["/domain", "/event_type", "/entity_type"],
        ),
    ],
)
def test_a_revision_cannot_change_what_the_event_is_about(
    ledger: Ledger,
    captured: Receipt,
    request_for: MakeRequest,
    changes: dict[str, str],
    expected: list[str],
) -> None:
    name = changes.get("event_type", "payment_captured")
    request = request_for(name, entity_id="pi_1", op="amend", supersedes_id=captured.id)
    request.update(changes)
    if changes.get("domain") == "moderation":
        request["entity_type"] = "moderation_action"
    with pytest.raises(ValidationError) as caught:
        ledger.append(request)
    assert sorted(pointers(caught.value)) == sorted(expected)
    for detail in caught.value.errors:
        assert "a revision keeps" in detail.message
    assert ledger.size() == 1


def test_a_revision_cannot_claim_another_logical_id(
    ledger: Ledger, captured: Receipt, request_for: MakeRequest
) -> None:
    other = ledger.append(request_for("payment_captured", entity_id="pi_1"))
    request = request_for(
        "payment_captured",
        entity_id="pi_1",
        op="amend",
        supersedes_id=captured.id,
        logical_id=other.id,
    )
    with pytest.raises(ValidationError) as caught:
        ledger.append(request)
    assert pointers(caught.value) == ["/logical_id"]


def test_an_assert_cannot_join_another_logical_event(
    ledger: Ledger, captured: Receipt, request_for: MakeRequest
) -> None:
    with pytest.raises(ValidationError) as caught:
        ledger.append(request_for("payment_captured", logical_id=captured.id))
    assert pointers(caught.value) == ["/logical_id"]


def test_an_assert_cannot_supersede(
    ledger: Ledger, captured: Receipt, request_for: MakeRequest
) -> None:
    with pytest.raises(ValidationError) as caught:
        ledger.append(request_for("payment_captured", supersedes_id=captured.id))
    assert pointers(caught.value) == ["/supersedes_id"]


@pytest.mark.parametrize("op", ["amend", "void", "restate"])
@pytest.mark.parametrize("given", [{}, {"supersedes_id": None}])
def test_a_revision_needs_supersedes_id(
    ledger: Ledger, request_for: MakeRequest, op: str, given: dict[str, Any]
) -> None:
    request = request_for("payment_captured", op=op, **given)
    if op == "void":
        request["payload"] = {"void_reason": "x", "voided_by": "y"}
    with pytest.raises(ValidationError) as caught:
        ledger.append(request)
    assert pointers(caught.value) == ["/supersedes_id"]
    assert "required for op" in caught.value.errors[0].message


def test_supersedes_an_unknown_id_is_not_found(ledger: Ledger, request_for: MakeRequest) -> None:
    unknown = "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"
    request = request_for("payment_captured", op="amend", supersedes_id=unknown)
    with pytest.raises(NotFoundError) as caught:
        ledger.append(request)
    assert caught.value.code == "not_found"
    assert pointers(caught.value) == ["/supersedes_id"]
    assert unknown in caught.value.message
    with pytest.raises(NotFoundError):
        ledger.amend(unknown, {"amount": 1, "providerChargeId": "ch"})


def test_a_revision_by_a_producer_not_allowed_to_write_the_type_is_forbidden(
    ledger: Ledger, captured: Receipt
) -> None:
    with pytest.raises(PermissionDeniedError):
        ledger.void(captured.id, "client says so", "user_7f3a", producer="client")
    assert ledger.size() == 1


def test_a_revision_may_come_from_another_allowed_producer(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    joined = ledger.append(
        request_for("community_joined", entity_id="cm_1", owner_user_id="u1"), producer="client"
    )
    voided = ledger.void(joined.id, "duplicate tap", "dedupe_job", producer="service_role_pipeline")
    assert (joined.producer, voided.producer) == ("client", "service_role_pipeline")
    assert voided.payload["source"] == "service_role_pipeline"


# --- views -------------------------------------------------------------------------------------


def test_current_view_shows_the_latest_revision_and_hides_voided(
    ledger: Ledger, captured: Receipt, request_for: MakeRequest
) -> None:
    second = ledger.append(request_for("payment_captured", entity_id="pi_1"))
    third = ledger.append(request_for("payment_failed", entity_id="pi_1"))
    elsewhere = ledger.append(request_for("payment_captured", entity_id="pi_2"))
    amended = ledger.amend(captured.id, amended_payload(captured, 4000))
    amended_again = ledger.amend(amended.id, amended_payload(captured, 3900))
    voided = ledger.void(second.id, "duplicate", "ops")

    assert [r.id for r in ledger.current(ENTITY)] == [third.id, amended_again.id]
    assert [r.id for r in ledger.current(ENTITY, include_voided=True)] == [
        third.id,
        amended_again.id,
        voided.id,
    ]
    assert [r.id for r in ledger.current("payment_intent:pi_2")] == [elsewhere.id]
    assert ledger.current("payment_intent:nobody") == []


def test_history_shows_every_revision_in_seq_order(
    ledger: Ledger, captured: Receipt, request_for: MakeRequest
) -> None:
    amended = ledger.amend(captured.id, amended_payload(captured, 4000))
    ledger.append(request_for("payment_captured", entity_id="pi_other"))
    voided = ledger.void(amended.id, "refunded outside", "ops")
    restated = ledger.restate(voided.id, amended_payload(captured, 4000))

    history = list(ledger.history(ENTITY))
    assert [r.id for r in history] == [captured.id, amended.id, voided.id, restated.id]
    assert [r.op for r in history] == ["assert", "amend", "void", "restate"]
    assert [r.revision for r in history] == [0, 1, 2, 3]
    assert [r.seq for r in history] == sorted(r.seq for r in history)


def test_entity_ids_may_contain_colons(ledger: Ledger, request_for: MakeRequest) -> None:
    stored = ledger.append(
        request_for("expertise_level_asserted", entity_id="user_1:music"), producer="edge_function"
    )
    assert stored.entity == "expertise:user_1:music"
    assert [r.id for r in ledger.history("expertise:user_1:music")] == [stored.id]
    assert [r.id for r in ledger.current("expertise:user_1:music")] == [stored.id]


def test_entity_reference_must_be_type_and_id(ledger: Ledger) -> None:
    with pytest.raises(ValidationError) as caught:
        ledger.current("payment_intent")
    assert pointers(caught.value) == ["/entity"]


# --- revisions inside one batch ----------------------------------------------------------------


def test_assert_then_amend_then_void_in_one_batch(ledger: Ledger, request_for: MakeRequest) -> None:
    first_id = "0190b2a4-0000-7000-8000-000000000001"
    amend_id = "0190b2a4-0000-7000-8000-000000000002"
    batch = [
        request_for("payment_captured", id=first_id, entity_id="pi_1"),
        request_for("payment_captured", id=amend_id, entity_id="pi_1", op="amend"),
        request_for("payment_captured", entity_id="pi_1", op="void"),
    ]
    batch[1]["supersedes_id"] = first_id
    batch[1]["payload"]["amount"] = 1
    batch[2]["supersedes_id"] = amend_id
    batch[2]["payload"] = {"void_reason": "test", "voided_by": "ops"}

    first, amended, voided = ledger.append_batch(batch)
    assert (first.revision, amended.revision, voided.revision) == (0, 1, 2)
    assert amended.logical_id == voided.logical_id == first.id
    assert amended.supersedes_id == first.id and voided.supersedes_id == amended.id
    assert ledger.current(ENTITY) == []


def test_two_amends_of_one_head_in_a_batch_conflict_and_write_nothing(
    ledger: Ledger, captured: Receipt, request_for: MakeRequest
) -> None:
    batch = [
        request_for("payment_captured", entity_id="pi_2"),
        request_for("payment_captured", entity_id="pi_1", op="amend", supersedes_id=captured.id),
        request_for("payment_captured", entity_id="pi_1", op="amend", supersedes_id=captured.id),
    ]
    with pytest.raises(RevisionConflictError) as caught:
        ledger.append_batch(batch)
    assert pointers(caught.value) == ["/2/supersedes_id"]
    assert ledger.size() == 1


# --- what a revision keeps ---------------------------------------------------------------------


def test_a_revision_keeps_occurred_at_and_owner_of_the_head(
    ledger: Ledger, captured: Receipt, request_for: MakeRequest
) -> None:
    via_facade = ledger.amend(captured.id, amended_payload(captured, 4000))
    assert via_facade.occurred_at == captured.occurred_at == "2026-01-02T10:00:00.000000Z"
    assert via_facade.owner_user_id == "user_7f3a"

    raw = request_for("payment_captured", entity_id="pi_1", op="amend")
    raw["supersedes_id"] = via_facade.id
    via_request = ledger.append(raw)
    assert via_request.occurred_at == captured.occurred_at
    assert via_request.owner_user_id == "user_7f3a"
    assert via_request.recorded_at != via_request.occurred_at


def test_a_revision_may_give_its_own_occurred_at_and_owner(
    ledger: Ledger, captured: Receipt
) -> None:
    amended = ledger.amend(
        captured.id,
        amended_payload(captured, 4000),
        occurred_at="2026-01-03T09:00:00+01:00",
        owner_user_id="user_other",
    )
    assert amended.occurred_at == "2026-01-03T08:00:00.000000Z"
    assert amended.owner_user_id == "user_other"


def test_occurred_at_defaults_to_the_recorded_time(
    tmp_path: Path, request_for: MakeRequest
) -> None:
    moment = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)
    with Ledger(open_store(str(tmp_path / "clock.db")), clock=lambda: moment) as ledger:
        receipt = ledger.append(request_for("payment_captured"))
    assert receipt.recorded_at == receipt.occurred_at == "2026-05-04T03:02:01.123456Z"
