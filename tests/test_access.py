"""The ownership and visibility rules (receipts.access), on their own; test_api_auth.py and
test_ownership.py hold them at every edge."""

from __future__ import annotations

import pytest

from receipts import PermissionDeniedError
from receipts.access import Principal, may_reuse_id, may_revise, readable
from receipts.model import Receipt

USER, OTHER = "user-a", "user-b"
ID = "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"


def receipt(owner: str | None, entity_id: str = "r-1") -> Receipt:
    return Receipt.from_entry(0, {
        "id": ID, "domain": "payments", "event_type": "refund_requested",
        "entity_type": "refund", "entity_id": entity_id, "owner_user_id": owner,
        "occurred_at": "2026-01-01T00:00:00.000000Z",
        "recorded_at": "2026-01-01T00:00:00.000000Z", "op": "assert", "logical_id": ID,
        "supersedes_id": None, "revision": 0, "producer": "client", "payload": {},
    })  # fmt: skip


def test_an_end_user_claims_its_requests() -> None:
    user = Principal("authenticated", USER)
    for raw in ({}, {"owner_user_id": None}, {"owner_user_id": USER}):
        user.claim(raw, "/0")
        assert raw["owner_user_id"] == USER
    with pytest.raises(PermissionDeniedError) as caught:
        user.claim({"owner_user_id": OTHER}, "/3")
    assert caught.value.message == "an end user may only write receipts it owns"
    assert [(e.pointer, e.message) for e in caught.value.errors] == [
        ("/3/owner_user_id", "expected 'user-a' or absent")
    ]


def test_the_pipeline_writes_for_anyone() -> None:
    raw = {"owner_user_id": OTHER}
    Principal("service_role").claim(raw, "")
    Principal("edge_function", "edge_function").claim(raw, "")
    assert raw == {"owner_user_id": OTHER}


def test_producers_and_readers_by_role() -> None:
    assert Principal("authenticated", USER).producer == "client"
    assert Principal("service_role").producer == "service_role_pipeline"
    assert Principal("edge_function", "edge_function").producer == "edge_function"
    with pytest.raises(PermissionDeniedError, match="role 'anon' may not write receipts"):
        Principal("anon").producer  # noqa: B018
    with pytest.raises(PermissionDeniedError, match="role 'anon' may not read receipts"):
        Principal("anon").require_reader()
    assert Principal("service_role").visible_to is None
    assert Principal("authenticated", USER).visible_to == USER


def test_visibility_fails_closed() -> None:
    """A caller that neither reads everything nor is a user never gets the unfiltered view."""
    with pytest.raises(PermissionDeniedError, match="role 'anon' may not read receipts"):
        Principal("anon").visible_to  # noqa: B018


def test_readable_by_owner_grant_or_everything() -> None:
    asked: list[tuple[str, str, str]] = []

    def granted(entity_type: str, entity_id: str, user_id: str) -> bool:
        asked.append((entity_type, entity_id, user_id))
        return entity_id == "shared"

    assert readable(receipt(USER), USER, granted)
    assert readable(receipt(OTHER), None, granted)
    assert asked == []  # neither needs a lookup
    assert not readable(receipt(OTHER), USER, granted)
    assert readable(receipt(OTHER, "shared"), USER, granted)
    assert not readable(receipt(None), USER, granted)
    assert asked[0] == ("refund", "r-1", USER)


def test_an_end_user_revises_and_retries_only_its_own() -> None:
    mine, theirs = receipt(USER), receipt(OTHER)
    assert may_revise("client", USER, mine, mine)
    assert not may_revise("client", USER, theirs, theirs)
    assert not may_revise("client", USER, mine, theirs)  # the head moved to another owner
    assert not may_revise("client", None, receipt(None), receipt(None))
    assert may_revise("service_role_pipeline", None, theirs, theirs)
    assert may_reuse_id("client", USER, mine)
    assert not may_reuse_id("client", USER, theirs)
    assert may_reuse_id("edge_function", None, theirs)
