"""The /v0 API doing its job: append (one, batch, idempotent retry), query and page, the current
view, checkpoints and proofs that verify offline, the catalog, health and metrics, the SSE tail,
group commit under concurrency, and the background checkpointer."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from receipts.bundle import Bundle
from receipts.catalog import Catalog
from receipts.store.base import StoredCheckpoint
from receipts.tlog import Checkpoint, verify_consistency
from test_api_support import (
    AUTH_A,
    EDGE_AUTH,
    SERVICE,
    Api,
    EventStream,
    assert_problem,
    captured,
    event_stream,
    ocn_example,
    refund,
    request,
    serve,
    wait_until,
    writes_held,
)


@pytest.fixture
def api(ledger_url: str) -> Iterator[Api]:
    with serve(ledger_url, checkpoint_interval=0.05) as opened:
        yield opened


@pytest.fixture
def sqlite_api(tmp_path: Path) -> Iterator[Api]:
    with serve(str(tmp_path / "receipts.db"), checkpoint_interval=0.05) as opened:
        yield opened


# --- appending -----------------------------------------------------------------------------------


def test_append_one_and_read_it_back(api: Api) -> None:
    response = api.post(refund("r-1", occurred_at="2026-01-02T10:00:00Z"))
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    stored = response.json()
    assert stored["seq"] == 0
    assert (stored["op"], stored["revision"], stored["logical_id"]) == ("assert", 0, stored["id"])
    assert stored["occurred_at"] == "2026-01-02T10:00:00.000000Z"
    assert stored["producer"] == "service_role_pipeline"
    assert len(stored["leaf_hash"]) == 64
    got = api.client.get(f"/v0/receipts/{stored['id']}", headers=SERVICE)
    assert got.status_code == 200 and got.json() == stored
    assert api.ledger.get(stored["id"]).to_dict() == stored


@pytest.mark.backends("sqlite")
def test_append_a_batch_atomically(api: Api) -> None:
    batch = [refund("r-1"), request("report_created", "rep-1"), refund("r-2")]
    response = api.post(batch)
    assert response.status_code == 201
    stored = response.json()
    assert [r["seq"] for r in stored] == [0, 1, 2]
    assert [r["entity_id"] for r in stored] == ["r-1", "rep-1", "r-2"]
    assert len({r["recorded_at"] for r in stored}) == 1  # one transaction
    assert api.append([refund("r-3")])[0]["seq"] == 3  # a one-element array answers an array


def test_a_retried_request_gets_the_same_receipt(api: Api) -> None:
    rid = "01900000-0000-7000-8000-000000000001"
    first = api.post(refund("r-1", id=rid))
    again = api.post(refund("r-1", id=rid))
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    batch = [refund("r-2", id="01900000-0000-7000-8000-000000000002"), refund("r-1", id=rid)]
    stored = api.append(batch)
    assert stored[1] == first.json()
    assert api.append(batch) == stored  # the whole batch retried
    assert api.ledger.size() == 2


def test_a_large_batch_mixes_new_revised_and_retried_receipts(api: Api) -> None:
    """From 16 receipts a request's entries may be made in the HTTP process
    (commit/process.py). New asserts with an idempotent retry among them, and with a revision
    among them (which the writer makes), all answer as stored, one recorded_at per request."""
    rid = "01900000-0000-7000-8000-000000000001"
    first = api.append(refund("r-0", id=rid))
    batch = [refund(f"r-{i}", id=f"01900000-0000-7000-8000-{i:012d}") for i in range(2, 20)]
    batch[5] = {**refund("r-0", id=batch[5]["id"]), "op": "amend", "supersedes_id": rid}
    batch[9] = refund("r-0", id=rid)  # a retry: the first receipt, not a new one
    batch[12]["owner_user_id"] = "user_a"
    stored = api.append(batch)
    assert [r["seq"] for r in stored] == [*range(1, 10), 0, *range(10, 18)]
    assert stored[9] == first
    assert (stored[5]["revision"], stored[5]["logical_id"]) == (1, rid)
    assert stored[12]["owner_user_id"] == "user_a"
    for body in stored:
        assert api.ledger.get(body["id"]).to_dict() == body
    assert len({r["recorded_at"] for i, r in enumerate(stored) if i != 9}) == 1
    assert api.append(batch) == stored  # the whole batch retried
    assert api.ledger.size() == 18
    without_revision = batch[:5] + batch[6:]
    assert api.append(without_revision) == stored[:5] + stored[6:]
    fresh = api.append([refund(f"r-{i}") for i in range(16)])
    assert [r["seq"] for r in fresh] == list(range(18, 34))
    assert len({r["recorded_at"] for r in fresh}) == 1
    for body in fresh:
        assert api.ledger.get(body["id"]).to_dict() == body
    # New ids of the ledger's making beside a retry with its own: the retry still finds its
    # first receipt (the writer gets the requests that carry an id, and only those).
    mixed = api.append([refund(f"m-{i}") for i in range(16)] + [batch[0]])
    assert mixed[16] == stored[0]
    assert [r["seq"] for r in mixed[:16]] == list(range(34, 50))

    big = [refund(f"r-{i}") for i in range(20)]
    big[17] = captured("pi-1")
    big[17]["payload"]["amount"] = 2**60  # not an I-JSON number: refused before any write
    response = api.post(big)
    assert_problem(response, 422, "validation_failed", ["/17/payload/amount"])
    assert api.ledger.size() == 50


# --- reading -------------------------------------------------------------------------------------


def _story(api: Api) -> list[dict[str, Any]]:
    rows = []
    for i in range(10):
        body = refund(f"r-{i % 3}", occurred_at=f"2026-01-{i + 1:02d}T00:00:00Z")
        body["payload"]["correlation_id"] = f"c-{i % 2}"
        if i % 4 == 3:
            body = request(
                "report_created", f"rep-{i}", occurred_at=f"2026-01-{i + 1:02d}T00:00:00Z"
            )
        rows.append(api.append(body))
    return rows


def _list(api: Api, query: str, headers: dict[str, str] = SERVICE) -> list[int]:
    response = api.client.get(f"/v0/receipts?{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [r["seq"] for r in response.json()["items"]]


def test_list_filters(api: Api) -> None:
    rows = _story(api)

    def expect(predicate: Any) -> list[int]:
        return [r["seq"] for r in rows if predicate(r)]

    assert _list(api, "") == list(range(10))
    assert _list(api, "entity=refund:r-1") == expect(lambda r: r["entity_id"] == "r-1")
    assert _list(api, "correlation_id=c-0") == expect(
        lambda r: r["payload"].get("correlation_id") == "c-0"
    )
    assert _list(api, "domain=moderation") == [3, 7]
    assert _list(api, "event_type=report_created") == [3, 7]
    assert _list(api, "domain=payments&entity=refund:r-0") == expect(
        lambda r: r["entity_id"] == "r-0"
    )
    # since <= occurred_at < until
    assert _list(api, "since=2026-01-05T00:00:00Z&until=2026-01-07T00:00:00Z") == [4, 5]
    assert _list(api, "since=2026-01-05T00:00:00Z&until=2026-01-07T00:00:00.000001Z") == [4, 5, 6]
    assert _list(api, "since=2026-01-05T00:00:00%2B01:00&until=2026-01-05T23:00:00Z") == [4]
    assert _list(api, "after=6") == [7, 8, 9]
    assert _list(api, "after=6&limit=2") == [7, 8]
    assert _list(api, "entity=refund:nobody") == []


@pytest.mark.parametrize("total", [9, 10])
def test_pagination_with_next_after_walks_every_receipt_once(sqlite_api: Api, total: int) -> None:
    api = sqlite_api
    api.append([refund(f"r-{i}") for i in range(total)])
    seen: list[int] = []
    after: int | None = None
    pages = 0
    while True:
        query = "limit=3" + ("" if after is None else f"&after={after}")
        page = api.client.get(f"/v0/receipts?{query}", headers=SERVICE).json()
        pages += 1
        seen += [r["seq"] for r in page["items"]]
        after = page["next_after"]
        if after is None:
            break
        assert after == seen[-1]
    assert seen == list(range(total))
    assert pages == total // 3 + 1


def test_current_view_with_include_voided(api: Api) -> None:
    first = api.append(refund("r-1"))
    second = api.append(refund("r-1"))
    amend = {**refund("r-1"), "op": "amend", "supersedes_id": first["id"]}
    amend["payload"]["reasonCode"] = "duplicate_charge"
    amended = api.append(amend)

    def current(query: str = "") -> list[str]:
        response = api.client.get(f"/v0/entities/refund:r-1/current{query}", headers=SERVICE)
        assert response.status_code == 200
        return [r["id"] for r in response.json()]

    assert sorted(current()) == sorted([amended["id"], second["id"]])
    void = {
        **refund("r-1"),
        "op": "void",
        "supersedes_id": amended["id"],
        "payload": {"void_reason": "entered twice", "voided_by": "ops"},
    }
    voided = api.append(void)
    assert current() == [second["id"]]
    assert sorted(current("?include_voided=true")) == sorted([voided["id"], second["id"]])
    assert current("?include_voided=false") == [second["id"]]
    response = api.client.get("/v0/entities/refund:nobody/current", headers=SERVICE)
    assert response.json() == []


# --- checkpoints and proofs ----------------------------------------------------------------------


def test_checkpoint_and_proofs_verify_offline(api: Api) -> None:
    verifier = api.signer.verifier()
    first = api.append([refund(f"r-{i}") for i in range(3)])
    old_note = api.wait_checkpoint(3)
    old = Checkpoint.open(old_note, verifier)
    assert old.size == 3 and old.origin == "example.com/log"

    more = api.append([refund(f"r-{i}") for i in range(3, 7)])
    note = api.wait_checkpoint(7)
    response = api.client.get("/v0/checkpoint")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == note and note.endswith("\n")
    new = Checkpoint.open(note, verifier)
    assert new.size == 7

    for row in first + more:
        for query in (f"id={row['id']}", f"seq={row['seq']}"):
            bundle = api.client.get(f"/v0/proofs/inclusion?{query}", headers=SERVICE)
            assert bundle.status_code == 200, bundle.text
            verified = Bundle(**bundle.json()).verify(verifier)
            assert (verified.index, verified.checkpoint.size) == (row["seq"], 7)
            assert verified.entry["id"] == row["id"]
            assert verified.leaf_hash.hex() == row["leaf_hash"]
    # ...and under the older checkpoint, for a receipt it covers.
    bundle = api.client.get(f"/v0/proofs/inclusion?id={first[1]['id']}&size=3", headers=SERVICE)
    assert Bundle.from_json(bundle.content).verify(verifier).checkpoint.size == 3

    response = api.client.get("/v0/proofs/consistency?from=3&to=7")
    assert response.status_code == 200
    proof = response.json()
    assert (proof["old_size"], proof["new_size"]) == (3, 7)
    hashes = [bytes.fromhex(h) for h in proof["hashes"]]
    verify_consistency(3, 7, hashes, old.root_hash, new.root_hash)
    with pytest.raises(Exception, match="consistency"):
        verify_consistency(3, 7, hashes[::-1], old.root_hash, new.root_hash)


def test_background_checkpoints_follow_appends_and_confirm_ocn_audits(tmp_path: Path) -> None:
    interval = 0.3
    with serve(str(tmp_path / "cp.db"), checkpoint_interval=interval) as api:

        def signed() -> list[StoredCheckpoint]:
            with api.ledger.store.read() as txn:
                return list(txn.checkpoints())

        wait_until(lambda: api.service.checkpoint_size == 0, what="the empty checkpoint")
        response = api.client.post(
            "/events",
            json=ocn_example("decision_approve"),
            headers={**SERVICE, "content-type": "application/cloudevents+json"},
        )
        assert response.status_code == 201, response.text
        audit = response.json()
        assert audit["type"] == "ocn.weave.audit.v1"
        assert audit["data"]["status"] == "stored"
        assert audit["data"]["verification"]["verified"] is False

        note = api.wait_checkpoint(1)
        assert Checkpoint.open(note, api.signer.verifier()).size == 1
        trace = api.client.get("/receipts/txn_67890", headers=SERVICE).json()
        (confirmed,) = trace["audits"]
        assert confirmed["data"]["status"] == "confirmed"
        verification = confirmed["data"]["verification"]
        assert verification["verified"] is True
        assert verification["verification_method"] == "merkle_proof"
        assert verification["verification_timestamp"] == confirmed["time"]
        assert confirmed["data"]["block_height"] == audit["data"]["block_height"] == 0

        # Nothing new, nothing signed: however long the checks above took, the tree of one
        # receipt was signed once.
        assert [c.size for c in signed()] == [0, 1]
        api.append(refund())
        api.wait_checkpoint(2)
        assert [c.size for c in signed()] == [0, 1, 2]


# --- catalog, health, metrics --------------------------------------------------------------------


def test_catalog_endpoints(sqlite_api: Api) -> None:
    catalog = Catalog.load()
    listed = sqlite_api.client.get("/v0/catalog")
    assert listed.status_code == 200
    summaries = {t["event_type"]: t for t in listed.json()}
    assert len(summaries) == len(list(catalog))
    assert summaries["refund_requested"]["writers"] == [
        "client",
        "edge_function",
        "service_role_pipeline",
    ]
    assert "client" not in summaries["payment_captured"]["writers"]
    schema = sqlite_api.client.get("/v0/catalog/refund_requested").json()
    assert schema == catalog.get("refund_requested").schema()
    assert schema["$id"] == "urn:receipts:schema:payments:refund_requested"
    assert "reasonCode" in schema["required"]


def test_health(sqlite_api: Api) -> None:
    sqlite_api.append([refund("r-1"), refund("r-2")])
    sqlite_api.wait_checkpoint(2)
    health = sqlite_api.client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "receipts": 2, "checkpoint_size": 2}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics(sqlite_api: Api) -> None:
    api = sqlite_api
    api.append([refund("r-1"), refund("r-2")])
    api.append(refund("r-3"), EDGE_AUTH)
    api.append(refund("r-4"), AUTH_A)
    api.post(request("payment_captured", "pi-1"), AUTH_A)  # 403
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)
    appended = {k[1]: v for k, v in samples.items() if k[0] == "receipts_appended_total"}
    assert appended == {
        (("producer", "service_role_pipeline"),): 2,
        (("producer", "edge_function"),): 1,
        (("producer", "client"),): 1,
    }
    requests = {
        dict(k[1])["status"]: v
        for k, v in samples.items()
        if k[0] == "receipts_http_requests_total" and dict(k[1])["route"] == "/v0/receipts"
    }
    assert requests == {"201": 3, "403": 1}
    assert samples[("receipts_ledger_size", ())] == 4
    assert samples[("receipts_commit_group_receipts_count", ())] == 3


def test_metrics_label_requests_by_route_template(sqlite_api: Api) -> None:
    api = sqlite_api
    receipt = api.append(refund("r-1"))
    for path in (f"/v0/receipts/{receipt['id']}", "/openapi.json", "/no/such/route"):
        api.client.get(path, headers=SERVICE)
    samples = _samples(api.client.get("/metrics").text)
    routes = {
        (dict(k[1])["route"], dict(k[1])["status"])
        for k in samples
        if k[0] == "receipts_http_requests_total"
    }
    assert {
        ("/v0/receipts", "201"),
        ("/v0/receipts/{receipt_id}", "200"),  # the template, not the id
        ("/openapi.json", "200"),  # a plain Starlette route
        ("unmatched", "404"),
    } <= routes


# --- the SSE tail --------------------------------------------------------------------------------


def test_stream_tails_from_a_seq_and_resumes_with_last_event_id(api: Api) -> None:
    rows = api.append([refund(f"r-{i}") for i in range(5)])
    client = api.client
    with event_stream(client, "/v0/stream?after=1", SERVICE) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        events = [stream.next() for _ in range(3)]
        assert [e["id"] for e in events] == ["2", "3", "4"]
        assert {e["event"] for e in events} == {"receipt"}
        assert [e["data"] for e in events] == [
            client.get(f"/v0/receipts/{r['id']}", headers=SERVICE).text for r in rows[2:]
        ]
        live = api.append(refund("r-live"))
        event = stream.next()
        assert (event["id"], event["event"]) == ("5", "receipt")
        assert event["data"] == client.get(f"/v0/receipts/{live['id']}", headers=SERVICE).text

    # Reconnecting: Last-Event-ID wins over ?after and resumes right after that seq.
    headers = {**SERVICE, "last-event-id": "3"}
    with event_stream(client, "/v0/stream?after=0", headers) as stream:
        assert [stream.next()["id"] for _ in range(2)] == ["4", "5"]
        api.append([refund("r-6"), refund("r-7")])
        assert [stream.next()["id"] for _ in range(2)] == ["6", "7"]

    with event_stream(client, "/v0/stream", SERVICE) as stream:  # no cursor: from the start
        assert [r["seq"] for r in stream.receipts_until(7)] == list(range(8))


@pytest.mark.backends("sqlite")
def test_many_streams_all_see_every_live_receipt(api: Api) -> None:
    streams = [
        EventStream(api.client.stream("GET", "/v0/stream?after=-1", headers=SERVICE))
        for _ in range(4)
    ]
    try:
        for i in range(20):
            api.append(refund(f"r-{i}"))
        for stream in streams:
            assert [r["seq"] for r in stream.receipts_until(19)] == list(range(20))
    finally:
        for stream in streams:
            stream.close()


def test_a_commit_while_the_stream_reads_is_not_slept_through(sqlite_api: Api) -> None:
    """The tail reads a page, then waits for the next commit: a commit that lands while the
    page is being read must wake it at once (not after the 15 s keep-alive)."""
    api = sqlite_api
    real = api.ledger.query
    raced: list[int] = []

    def racing(**query: Any) -> Any:
        page = list(real(**query))
        if query.get("limit") == 500 and not raced:  # the stream's first (empty) page
            raced.append(1)
            with ThreadPoolExecutor(1) as pool:  # commit while this stale page is in flight
                assert pool.submit(api.post, refund("r-race")).result(10).status_code == 201
        return iter(page)

    api.ledger.query = racing  # type: ignore[method-assign]
    with event_stream(api.client, "/v0/stream", SERVICE) as stream:
        event = stream.next()
    assert raced and event["id"] == "0"


# --- group commit --------------------------------------------------------------------------------


def _post_together(api: Api, bodies: list[Any]) -> list[Any]:
    """POST every body at once while the write lock is held until all are queued: the rest
    must then share commits."""
    committer = api.service.committer
    n = len(bodies)
    with ThreadPoolExecutor(n) as pool:
        with writes_held(api):
            posted = [pool.submit(api.post, body) for body in bodies]
            wait_until(lambda: committer.waiting >= n, what="all requests queued")
        return [p.result(30) for p in posted]


def test_concurrent_appends_are_group_committed(api: Api) -> None:
    n = 50
    responses = _post_together(api, [refund(f"r-{i}") for i in range(n)])
    assert [r.status_code for r in responses] == [201] * n
    seqs = sorted(r.json()["seq"] for r in responses)
    assert seqs == list(range(n))  # dense, none lost, none twice
    assert api.ledger.size() == n
    listed = api.client.get("/v0/receipts?limit=1000", headers=SERVICE).json()["items"]
    assert sorted(r["id"] for r in listed) == sorted(r.json()["id"] for r in responses)

    samples = _samples(api.client.get("/metrics").text)
    groups = samples[("receipts_commit_group_receipts_count", ())]
    singles = samples[("receipts_commit_group_receipts_bucket", (("le", "1.0"),))]
    assert samples[("receipts_commit_group_receipts_sum", ())] == n
    assert groups < n and singles < groups  # at least one group held more than one request
    # A group that committed together shares one transaction (one recorded_at).
    assert len({r.json()["recorded_at"] for r in responses}) < n


@pytest.mark.backends("sqlite")
def test_a_refused_request_in_a_group_does_not_fail_the_others(api: Api) -> None:
    n = 12
    head = api.append(refund("r-0"))
    amend = {**refund("r-0"), "op": "amend", "supersedes_id": head["id"]}
    api.append(amend)  # from now on, amending `head` again conflicts
    responses = _post_together(api, [refund(f"r-{i}") for i in range(n - 1)] + [amend])
    assert [r.status_code for r in responses[:-1]] == [201] * (n - 1)
    assert_problem(responses[-1], 409, "revision_conflict", ["/supersedes_id"])
    assert api.ledger.size() == 2 + n - 1
