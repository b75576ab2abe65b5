"""Derived states over HTTP: /v0/state, /v0/why, /v0/states; rule violations as 409 problems;
answers under the same read rules as the receipts (docs/doors.md). Both backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from test_api_support import (
    ANON,
    AUTH_A,
    SERVICE,
    USER_A,
    USER_B,
    Api,
    assert_problem,
    refund,
    request,
    serve,
)


@pytest.fixture
def api(ledger_url: str) -> Iterator[Api]:
    with serve(ledger_url) as served:
        yield served


def test_a_state_with_its_evidence(api: Api) -> None:
    requested = api.append(refund("rf-1"))
    approved = api.append(request("refund_approved", "rf-1"))
    response = api.client.get("/v0/state/refund/refund:rf-1", headers=SERVICE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["state"] == "refund" and body["key"] == ["refund:rf-1"]
    assert body["value"]["status"] == "approved"
    assert [e["id"] for e in body["evidence"]] == [requested["id"], approved["id"]]
    earlier = api.client.get(f"/v0/state/refund/refund:rf-1?at_seq={approved['seq']}",
                             headers=SERVICE).json()  # fmt: skip
    assert earlier["value"]["status"] == "requested" and earlier["as_of"]["seq"] == approved["seq"]


def test_a_rule_violation_is_a_409_problem_and_nothing_is_stored(api: Api) -> None:
    api.append(refund("rf-1"))
    response = api.post([request("refund_approved", "rf-1"), request("refund_completed", "rf-2")])
    body = assert_problem(response, 409, "rule_violated")
    assert body["rule"] == "refund" and body["found"] == "none"
    assert [e["pointer"] for e in body["errors"]] == ["/1/event_type"]
    assert api.ledger.size() == 1


def test_keys_of_several_parts_and_encoded_slashes(api: Api) -> None:
    applied = request("moderation_action_applied", "ma-1", payload={
        "action": "ban", "targetType": "user", "targetId": "a/b", "policyRule": "p"})  # fmt: skip
    api.append(applied)
    body = api.client.get("/v0/state/sanctions/user/a%2Fb", headers=SERVICE).json()
    assert body["key"] == ["user", "a/b"]
    [active] = body["value"]["sanctions"]["active"]
    assert active["action"] == "ban" and active["until"] is None
    wrong = api.client.get("/v0/state/sanctions/user", headers=SERVICE)
    assert_problem(wrong, 422, "validation_failed", ["/key"])
    unknown = api.client.get("/v0/state/nope/x", headers=SERVICE)
    assert_problem(unknown, 404, "not_found", ["/state"])


def test_an_end_user_sees_states_only_from_its_receipts(api: Api) -> None:
    api.append(request("community_joined", "c-1", owner_user_id=USER_A))
    api.append(request("community_joined", "c-1", owner_user_id=USER_B))
    everyone = api.client.get("/v0/state/community_membership/community:c-1", headers=SERVICE)
    assert sorted(everyone.json()["value"]["members"]) == sorted([USER_A, USER_B])
    mine = api.client.get("/v0/state/community_membership/community:c-1", headers=AUTH_A)
    assert list(mine.json()["value"]["members"]) == [USER_A]
    assert len(mine.json()["evidence"]) == 1
    why = api.client.get("/v0/why/community:c-1", headers=AUTH_A).json()
    assert [s["state"] for s in why["states"]] == ["community_membership"]
    assert_problem(api.client.get("/v0/state/refund/refund:x", headers=ANON), 403,
                   "forbidden")  # fmt: skip


def test_why_and_the_list_of_states(api: Api) -> None:
    api.append(request("age_verification_submitted", "u-1"))
    why = api.client.get("/v0/why/user:u-1", headers=SERVICE).json()
    assert why["entity"] == "user:u-1"
    assert [(s["state"], s["value"]["status"]) for s in why["states"]] == [
        ("age_verification", "submitted")
    ]
    states = api.client.get("/v0/states").json()
    assert {"refund", "sanctions", "age_verification"} <= {s["name"] for s in states}
    bad = api.client.get("/v0/why/user:u-1?as_of=soon", headers=SERVICE)
    assert_problem(bad, 422, "validation_failed", ["/as_of"])


def test_a_rule_violation_in_a_large_array_points_at_its_item(api: Api) -> None:
    """Arrays of 16 and more have their receipts made ahead of the commit (on SQLite, in the
    HTTP process): the refusal still names the item."""
    batch = [refund(f"rf-{i}") for i in range(20)]
    batch[17] = request("refund_completed", "rf-done")
    body = assert_problem(api.post(batch), 409, "rule_violated", ["/17/event_type"])
    assert body["rule"] == "refund" and api.ledger.size() == 0


def test_a_rule_violation_over_cloudevents_points_at_the_type(api: Api) -> None:
    from test_api_cloudevents import post_batch, post_structured, refund_event

    done = refund_event("ce-done", "refund:rf-9", type="receipts.payments.refund_completed.v0",
                        data={})  # fmt: skip
    body = assert_problem(post_structured(api, done), 409, "rule_violated", ["/type"])
    assert body["found"] == "none"
    events = [refund_event(f"ce-{i}", f"refund:rf-{i}") for i in range(20)] + [done]
    assert_problem(post_batch(api, events), 409, "rule_violated", ["/20/type"])
    assert api.ledger.size() == 0
