"""Who may do what over HTTP: credentials (401), the write matrix per principal and event type,
ownership of end users' receipts, and what each principal may read (own + granted rows for an
end user; everything for the service role and edge functions; nothing for anon)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jwt
import pytest

from receipts.bundle import Bundle
from receipts.tlog import TlogProof
from test_api_support import (
    ANON,
    AUTH_A,
    AUTH_B,
    EDGE_AUTH,
    OTHER_SECRET,
    SECRET,
    SERVICE,
    USER_A,
    USER_B,
    Api,
    Bearer,
    api_key,
    assert_problem,
    bearer,
    captured,
    event_stream,
    refund,
    serve,
    token,
    user_token,
)


@pytest.fixture
def api(ledger_url: str) -> Iterator[Api]:
    with serve(ledger_url, checkpoint_interval=0.05) as opened:
        yield opened


@pytest.fixture
def sqlite_api(tmp_path: Any) -> Iterator[Api]:
    with serve(str(tmp_path / "auth.db")) as opened:
        yield opened


# --- 401: no valid credentials -------------------------------------------------------------------


def _minted(mint: Callable[[], str]) -> Bearer:
    return Bearer(mint)


# name: (headers, what the problem's detail says). Tokens are minted when sent.
BAD_CREDENTIALS: dict[str, tuple[Mapping[str, str], str]] = {
    "missing": ({}, "missing Authorization: Bearer token"),
    "empty bearer": ({"Authorization": "Bearer "}, "expected Authorization: Bearer <token>"),
    "basic scheme": ({"Authorization": "Basic dXNlcjpwYXNz"}, "expected Authorization: Bearer"),
    "malformed jwt": (bearer("not-a.jwt"), "invalid token: Not enough segments"),
    "garbage": (bearer("garbage"), "invalid token: Not enough segments"),
    "expired": (_minted(lambda: user_token(USER_A, ttl=-120)), "token expired"),
    "expired api key": (_minted(lambda: api_key("service_role", ttl=-120)), "token expired"),
    "wrong secret": (
        _minted(lambda: api_key("service_role", secret=OTHER_SECRET)),
        "invalid token: Signature verification failed",
    ),
    "unknown role": (_minted(lambda: token("admin", "root")), "unknown role 'admin'"),
    "no role claim": (
        _minted(lambda: user_token(USER_A, role=None)),
        'invalid token: Token is missing the "role" claim',
    ),
    "no exp claim": (
        _minted(lambda: user_token(USER_A, exp=None)),
        'invalid token: Token is missing the "exp" claim',
    ),
    "authenticated without sub": (
        _minted(lambda: user_token(USER_A, sub=None)),
        "an authenticated token needs a `sub` claim",
    ),
    "authenticated without aud": (
        _minted(lambda: user_token(USER_A, aud=None)),
        "an end user's token needs an `aud` claim",
    ),
    "another audience": (
        _minted(lambda: user_token(USER_A, aud="storage")),
        "token audience 'storage' is not accepted (expected authenticated)",
    ),
    "issued in the future": (
        _minted(lambda: user_token(USER_A, iat=int(time.time()) + 3600)),
        "invalid token: The token is not yet valid (iat)",
    ),
    "not valid before": (
        _minted(lambda: user_token(USER_A, nbf=int(time.time()) + 3600)),
        "invalid token: The token is not yet valid (nbf)",
    ),
    "alg none": (
        bearer(jwt.encode({"role": "service_role"}, None, algorithm="none")),
        "invalid token: The specified alg value is not allowed",
    ),
    "HS512": (
        bearer(jwt.encode({"role": "service_role"}, SECRET + SECRET, algorithm="HS512")),
        "invalid token: The specified alg value is not allowed",
    ),
}


@pytest.mark.parametrize("case", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
def test_missing_invalid_or_expired_credentials_are_401_with_www_authenticate(
    sqlite_api: Api, case: tuple[Mapping[str, str], str]
) -> None:
    headers, detail = case
    client = sqlite_api.client
    for response in (
        client.get("/v0/receipts", headers=headers),
        client.post("/v0/receipts", json=refund(), headers=headers),
        client.get("/v0/stream", headers=headers),
        client.post(
            "/events",
            headers={**headers, "content-type": "application/cloudevents+json"},
            content=b"{}",
        ),
    ):
        body = assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert body["detail"].startswith(detail), body["detail"]
        assert body["errors"] == []
    assert sqlite_api.ledger.size() == 0


def test_an_edge_function_key_is_only_accepted_exactly(sqlite_api: Api) -> None:
    from test_api_support import EDGE

    for wrong in (EDGE[:-1], EDGE + "x", EDGE.upper()):
        response = sqlite_api.client.get("/v0/receipts", headers=bearer(wrong))
        assert_problem(response, 401, "unauthorized")
    assert sqlite_api.client.get("/v0/receipts", headers=EDGE_AUTH).status_code == 200


# --- writing -------------------------------------------------------------------------------------

WRITERS = {
    # principal: (headers, producer, may write refund_requested, may write payment_captured)
    "anon": (ANON, None, False, False),
    "authenticated": (AUTH_A, "client", True, False),
    "edge": (EDGE_AUTH, "edge_function", True, True),
    "service_role": (SERVICE, "service_role_pipeline", True, True),
}


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("principal", WRITERS)
def test_who_may_write_which_types_and_the_producer_recorded(api: Api, principal: str) -> None:
    headers, producer, client_type, server_type = WRITERS[principal]
    for body, allowed in ((refund("r-1"), client_type), (captured("pi-1"), server_type)):
        response = api.post(body, headers)
        if not allowed:
            pointers = None if principal == "anon" else ["/event_type"]
            assert_problem(response, 403, "forbidden", pointers)
            continue
        assert response.status_code == 201, response.text
        stored = response.json()
        assert stored["producer"] == producer
        assert stored["payload"]["source"] == producer  # the convention is filled in
        assert stored["owner_user_id"] == (USER_A if principal == "authenticated" else None)
        assert api.ledger.get(stored["id"]).producer == producer
    assert api.ledger.size() == int(client_type) + int(server_type)


@pytest.mark.backends("sqlite")
def test_a_server_only_type_in_an_end_users_batch_refuses_the_whole_batch(api: Api) -> None:
    response = api.post([refund("r-1"), captured("pi-1"), refund("r-2")], AUTH_A)
    assert_problem(response, 403, "forbidden", ["/1/event_type"])
    assert api.ledger.size() == 0


@pytest.mark.backends("sqlite")
def test_owner_is_filled_for_an_end_user_and_a_mismatch_is_403(api: Api) -> None:
    filled = api.append(refund("r-1"), AUTH_A)
    assert filled["owner_user_id"] == USER_A
    explicit = api.append(refund("r-2", owner_user_id=USER_A), AUTH_A)
    assert explicit["owner_user_id"] == USER_A
    null = api.append(refund("r-3", owner_user_id=None), AUTH_A)
    assert null["owner_user_id"] == USER_A

    response = api.post(refund("r-4", owner_user_id=USER_B), AUTH_A)
    assert_problem(response, 403, "forbidden", ["/owner_user_id"])
    response = api.post([refund("r-5"), refund("r-6", owner_user_id=USER_B)], AUTH_A)
    assert_problem(response, 403, "forbidden", ["/1/owner_user_id"])
    assert api.ledger.size() == 3

    # The service role writes on anyone's behalf, or on nobody's.
    assert api.append(refund("r-7", owner_user_id=USER_B))["owner_user_id"] == USER_B
    assert api.append(refund("r-8"))["owner_user_id"] is None


def test_an_end_user_revises_only_its_own_events(api: Api) -> None:
    mine = api.append(refund("r-a"), AUTH_A)
    amend = {**refund("r-a"), "op": "amend", "supersedes_id": mine["id"]}
    amend["payload"]["reasonCode"] = "duplicate_charge"

    # Another user's receipt is answered exactly as one that does not exist.
    response = api.post(amend, AUTH_B)
    assert_problem(response, 404, "not_found", ["/supersedes_id"])
    unknown = {**amend, "supersedes_id": "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"}
    assert response.json()["errors"] == api.post(unknown, AUTH_B).json()["errors"]
    response = api.post([refund("r-b"), amend], AUTH_B)
    assert_problem(response, 404, "not_found", ["/1/supersedes_id"])
    assert api.ledger.size() == 1

    revised = api.append(amend, AUTH_A)
    assert (revised["revision"], revised["owner_user_id"], revised["producer"]) == (
        1,
        USER_A,
        "client",
    )
    # The service role may correct anyone's event; the owner stays the user's.
    void = {
        **refund("r-a"),
        "op": "void",
        "supersedes_id": revised["id"],
        "payload": {"void_reason": "fraud review", "voided_by": "ops"},
    }
    voided = api.append(void)
    assert (voided["owner_user_id"], voided["producer"]) == (USER_A, "service_role_pipeline")


PRODUCERS = {
    "authenticated": (AUTH_A, "client"),
    "edge": (EDGE_AUTH, "edge_function"),
    "service_role": (SERVICE, "service_role_pipeline"),
}


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("principal", PRODUCERS)
def test_a_payload_source_contradicting_the_producer_is_422(api: Api, principal: str) -> None:
    headers, producer = PRODUCERS[principal]
    for other in {"client", "edge_function", "service_role_pipeline"} - {producer}:
        body = refund("r-1")
        body["payload"]["source"] = other
        assert_problem(api.post(body, headers), 422, "validation_failed", ["/payload/source"])
        assert_problem(
            api.post([refund("r-0"), body], headers),
            422,
            "validation_failed",
            ["/1/payload/source"],
        )
    assert api.ledger.size() == 0
    agreeing = refund("r-1")
    agreeing["payload"]["source"] = producer
    assert api.append(agreeing, headers)["producer"] == producer


# --- reading -------------------------------------------------------------------------------------


def _seed(api: Api) -> dict[str, dict[str, Any]]:
    """A's receipt, B's receipt, and B's receipt about an entity granted to A."""
    rows = {
        "a": api.append(refund("r-a", owner_user_id=USER_A)),
        "b": api.append(refund("r-b", owner_user_id=USER_B)),
        "shared": api.append(refund("r-shared", owner_user_id=USER_B)),
    }
    api.ledger.grant("refund:r-shared", USER_A)
    api.wait_checkpoint(3)
    return rows


READERS = {
    # principal: (headers, the rows it sees)
    "authenticated A": (AUTH_A, {"a", "shared"}),
    "authenticated B": (AUTH_B, {"b", "shared"}),
    "edge": (EDGE_AUTH, {"a", "b", "shared"}),
    "service_role": (SERVICE, {"a", "b", "shared"}),
}


@pytest.mark.parametrize("reader", READERS)
def test_reads_show_own_and_granted_rows_only(api: Api, reader: str) -> None:
    rows = _seed(api)
    headers, visible = READERS[reader]
    client, verifier = api.client, api.signer.verifier()
    ids = {name: row["id"] for name, row in rows.items()}

    listed = client.get("/v0/receipts", headers=headers)
    assert listed.status_code == 200
    assert {r["id"] for r in listed.json()["items"]} == {ids[n] for n in visible}

    for name, row in rows.items():
        got = client.get(f"/v0/receipts/{row['id']}", headers=headers)
        as_event = client.get(f"/v0/receipts/{row['id']}?format=cloudevent", headers=headers)
        current = client.get(f"/v0/entities/refund:{row['entity_id']}/current", headers=headers)
        proof = client.get(f"/v0/proofs/inclusion?id={row['id']}", headers=headers)
        by_seq = client.get(f"/v0/proofs/inclusion?seq={row['seq']}", headers=headers)
        assert current.status_code == 200
        if name in visible:
            assert got.status_code == 200 and got.json() == row
            assert as_event.status_code == 200 and as_event.json()["id"] == row["id"]
            assert [r["id"] for r in current.json()] == [row["id"]]
            for bundle in (proof, by_seq):
                assert bundle.status_code == 200, bundle.text
                assert Bundle(**bundle.json()).verify(verifier).index == row["seq"]
        else:  # not even its existence is given away
            for response in (got, as_event, proof, by_seq):
                assert_problem(response, 404, "not_found", ["/id"])
            assert current.json() == []

    filtered = client.get("/v0/receipts?entity=refund:r-b", headers=headers).json()["items"]
    assert [r["id"] for r in filtered] == ([ids["b"]] if "b" in visible else [])

    with event_stream(client, "/v0/stream?after=-1", headers) as stream:
        sentinel = api.append(refund("r-sentinel", owner_user_id=headers_sub(headers)))
        seen = stream.receipts_until(sentinel["seq"])
    assert {r["id"] for r in seen} == {ids[n] for n in visible} | {sentinel["id"]}


def headers_sub(headers: Mapping[str, str]) -> str | None:
    return USER_A if headers is AUTH_A else USER_B if headers is AUTH_B else None


@pytest.mark.backends("sqlite")
def test_grants_widen_an_end_users_view_at_once(api: Api) -> None:
    other = api.append(refund("r-b", owner_user_id=USER_B))
    assert api.client.get(f"/v0/receipts/{other['id']}", headers=AUTH_A).status_code == 404
    api.ledger.grant("refund:r-b", USER_A)
    assert api.client.get(f"/v0/receipts/{other['id']}", headers=AUTH_A).status_code == 200
    # ...and a later receipt about the granted entity is visible too, whoever owns it.
    later = api.append(refund("r-b", owner_user_id="user-c"))
    items = api.client.get("/v0/receipts", headers=AUTH_A).json()["items"]
    assert [r["id"] for r in items] == [other["id"], later["id"]]


def test_a_proof_by_leaf_hash_needs_no_credentials_and_gives_only_hashes(api: Api) -> None:
    """Whoever holds a leaf hash (an OCN audit's transaction_hash) checks it is in the log with
    no token; the answer holds hashes and the signed checkpoint, never the entry."""
    row = api.append(refund("r-a", owner_user_id=USER_A))
    other = api.append(refund("r-b", owner_user_id=USER_B))
    api.wait_checkpoint(2)
    for headers in ({}, ANON, AUTH_B):
        url = f"/v0/proofs/inclusion?seq={row['seq']}&leaf_hash={row['leaf_hash']}"
        response = api.client.get(url, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"leaf_hash", "proof"}
        proof = TlogProof.from_text(body["proof"])
        assert proof.index == row["seq"]
        proof.verify(bytes.fromhex(row["leaf_hash"]), api.signer.verifier())
        assert row["id"] not in response.text and "r-a" not in response.text
    # The hash of another leaf, or a seq past the tree: not found, and nothing said about it.
    for seq, leaf in ((row["seq"], other["leaf_hash"]), (7, row["leaf_hash"])):
        url = f"/v0/proofs/inclusion?seq={seq}&leaf_hash={leaf}"
        problem = assert_problem(api.client.get(url), 404, "not_found", ["/leaf_hash"])
        assert row["leaf_hash"] not in str(problem) or leaf == row["leaf_hash"]
        assert other["leaf_hash"] not in str(problem) or leaf == other["leaf_hash"]
    missing = api.client.get(f"/v0/proofs/inclusion?leaf_hash={row['leaf_hash']}")
    assert_problem(missing, 422, "validation_failed", ["/seq"])
    upper = api.client.get(f"/v0/proofs/inclusion?seq=0&leaf_hash={row['leaf_hash'].upper()}")
    assert_problem(upper, 422, "validation_failed", ["/leaf_hash"])


@pytest.mark.backends("sqlite")
def test_anon_may_neither_read_nor_write(api: Api) -> None:
    row = api.append(refund("r-a", owner_user_id=USER_A))
    api.wait_checkpoint(1)
    client = api.client
    for response in (
        client.get("/v0/receipts", headers=ANON),
        client.get(f"/v0/receipts/{row['id']}", headers=ANON),
        client.get("/v0/entities/refund:r-a/current", headers=ANON),
        client.get(f"/v0/proofs/inclusion?id={row['id']}", headers=ANON),
        client.get("/v0/stream", headers=ANON),
        client.get("/receipts/some-trace", headers=ANON),
        client.post("/v0/receipts", json=refund(), headers=ANON),
        client.post(
            "/events",
            headers={**ANON, "content-type": "application/cloudevents+json"},
            content=b"{}",
        ),
    ):
        assert_problem(response, 403, "forbidden")
        assert "www-authenticate" not in response.headers
    assert api.ledger.size() == 1
