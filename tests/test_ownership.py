"""An end user revises only its own receipts, checked in the write transaction: racing the commit
of another user's receipt never wins (issue 13, item 2), whatever the id's origin — chosen by the
client or derived from a CloudEvent's (source, id) — on both backends."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from receipts.cloudevents.convert import request_id
from test_api_support import SECRET, Api, refund, serve, wait_until, writes_held

ROUNDS = 15


def user(sub: str) -> dict[str, str]:
    claims = {
        "role": "authenticated",
        "aud": "authenticated",
        "sub": sub,
        "exp": int(time.time()) + 3600,
    }
    return {"Authorization": "Bearer " + jwt.encode(claims, SECRET, algorithm="HS256")}


@pytest.fixture
def api(ledger_url: str) -> Iterator[Api]:
    with serve(ledger_url) as opened:
        yield opened


def _in_thread(call: Any) -> tuple[threading.Thread, list[httpx.Response]]:
    out: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    return thread, out


def _post_own(api: Api, round_: int, via: str) -> tuple[str, Any]:
    """User A's write of a new receipt, as a call to run in a thread, and its receipt id."""
    if via == "receipts":
        receipt_id = str(uuid.uuid4())
        body = refund(f"r-{round_}", id=receipt_id)
        return receipt_id, lambda: api.client.post("/v0/receipts", json=body, headers=user("a"))
    event = {
        "specversion": "1.0",
        "id": f"ce-{round_}",
        "source": "urn:shop",
        "subject": f"refund:r-{round_}",
        "type": "receipts.payments.refund_requested.v0",
        "datacontenttype": "application/json",
        "data": refund(f"r-{round_}")["payload"],
    }
    headers = {**user("a"), "content-type": "application/cloudevents+json"}
    return request_id("urn:shop", f"ce-{round_}"), lambda: api.client.post(
        "/events", json=event, headers=headers
    )


@pytest.mark.parametrize("via", ["receipts", "cloudevents"])
def test_racing_the_commit_of_another_users_receipt_never_wins(api: Api, via: str) -> None:
    for round_ in range(ROUNDS):
        receipt_id, write = _post_own(api, round_, via)
        amend = {**refund(f"r-{round_}"), "op": "amend", "supersedes_id": receipt_id}
        amend["payload"]["reasonCode"] = "stolen"
        with writes_held(api):
            own, own_answer = _in_thread(write)
            # A's receipt waits for the commit, unstored, when B's revision of it comes in.
            wait_until(lambda: api.service.committer.waiting >= 1, what="A's write queued")
            steal, steal_answer = _in_thread(
                lambda body=amend: api.client.post("/v0/receipts", json=body, headers=user("b"))
            )
            wait_until(lambda: api.service.committer.waiting >= 2, what="B's revision queued")
        own.join(30)
        steal.join(30)
        assert own_answer[0].status_code == 201, own_answer[0].text
        assert steal_answer[0].status_code == 404, steal_answer[0].text
        assert steal_answer[0].json()["errors"][0]["pointer"] == "/supersedes_id"
        history = list(api.ledger.history(f"refund:r-{round_}"))
        assert [(r.owner_user_id, r.op) for r in history] == [("a", "assert")]


def test_the_owner_still_revises_its_receipt_in_flight(api: Api) -> None:
    receipt_id = str(uuid.uuid4())
    amend = {**refund("r-own"), "op": "amend", "supersedes_id": receipt_id}
    with writes_held(api):
        own, answer = _in_thread(
            lambda: api.client.post(
                "/v0/receipts", json=refund("r-own", id=receipt_id), headers=user("a")
            )
        )
        wait_until(lambda: api.service.committer.waiting >= 1, what="A's write queued")
        revise, revised = _in_thread(
            lambda: api.client.post("/v0/receipts", json=amend, headers=user("a"))
        )
        wait_until(lambda: api.service.committer.waiting >= 2, what="A's revision queued")
    own.join(30)
    revise.join(30)
    assert (answer[0].status_code, revised[0].status_code) == (201, 201), revised[0].text
    assert revised[0].json()["revision"] == 1


def test_another_users_id_is_answered_without_its_content(api: Api) -> None:
    receipt_id = str(uuid.uuid4())
    assert (
        api.client.post(
            "/v0/receipts", json=refund("r-1", id=receipt_id), headers=user("a")
        ).status_code
        == 201
    )
    response = api.client.post("/v0/receipts", json=refund("r-1", id=receipt_id), headers=user("b"))
    assert response.status_code == 409
    assert response.json()["errors"] == [
        {"pointer": "/id", "message": "already used; choose another id"}
    ]
