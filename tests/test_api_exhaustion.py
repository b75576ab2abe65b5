"""Nothing a user sends can exhaust the service: every request that fails, however and wherever
it fails, gives its place in the write queue back; no request stops the writer process; and
/health says ``degraded`` (503) while writes would be refused."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from receipts.store.sqlite import SQLiteStore
from test_api_support import (
    ANON,
    AUTH_A,
    SERVICE,
    Api,
    assert_problem,
    captured,
    refund,
    serve,
    wait_until,
    writes_held,
)

REFUSED = "refused-by-store"  # the entity id the store's trigger refuses


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def refuse_in_the_store(api: Api) -> None:
    """A trigger that makes the database itself refuse receipts about ``REFUSED``: a store
    error raised inside the commit, after the request took its place in the queue."""
    store = api.ledger.store
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON ledger_events_v0 "
                f"WHEN NEW.entity_id = '{REFUSED}' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the store'); END"
            )
        return
    with psycopg.connect(store.url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the store'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON public.ledger_events_v0 FOR EACH ROW "
            f"WHEN (NEW.entity_id = '{REFUSED}') EXECUTE FUNCTION refuse()"
        )


def failing_requests(api: Api) -> list[tuple[str, Callable[[], httpx.Response], int, str]]:
    """(kind, send, status, code) for every way a request fails, before or after it is
    queued for commit."""
    client = api.client
    head = api.append(refund("r-head"))
    api.append({**refund("r-head"), "op": "amend", "supersedes_id": head["id"]})
    json = SERVICE.plus(content_type="application/json")
    structured = SERVICE.plus(content_type="application/cloudevents+json")

    def post(body: Any, headers: Any = SERVICE) -> Callable[[], httpx.Response]:
        return lambda: client.post("/v0/receipts", json=body, headers=headers)

    deep_body = refund("r-deep")
    deep_body["payload"]["deep"] = deep(600)
    return [
        ("malformed JSON", lambda: client.post("/v0/receipts", content=b"{", headers=json),
         400, "format_invalid"),
        ("malformed CloudEvent", lambda: client.post("/events", content=b"[", headers=structured),
         400, "format_invalid"),
        ("invalid receipt", post({**refund(), "entity_id": 7}), 422, "validation_failed"),
        ("no token", post(refund(), {}), 401, "unauthorized"),
        ("anon writes", post(refund(), ANON), 403, "forbidden"),
        ("user writes a server-only type", post(captured(), AUTH_A), 403, "forbidden"),
        # After the request has taken its place in the queue:
        ("same id, other content", post(refund("r-other", id=head["id"])), 409, "id_conflict"),
        ("stale revision", post({**refund("r-head"), "op": "amend", "supersedes_id": head["id"]}),
         409, "revision_conflict"),
        ("refused by the store", post(refund(REFUSED)), 503, "storage_error"),
        ("nested 600 deep", post(deep_body), 422, "validation_failed"),
    ]  # fmt: skip


@pytest.mark.slow
def test_ten_thousand_failing_requests_then_a_write_is_201(ledger_url: str) -> None:
    """On SQLite a writer process, on PostgreSQL the in-process committer. The queue holds
    fewer receipts than there are failures after queueing: one place kept by each would
    refuse every later write with 429."""
    with serve(ledger_url, max_queue=500) as api:
        committer = api.service.committer
        refuse_in_the_store(api)
        kinds = failing_requests(api)
        size = api.ledger.size()
        seen: dict[str, int] = {}
        for i in range(10_000):
            kind, send, status, code = kinds[i % len(kinds)]
            response = send()
            if response.status_code != status:
                raise AssertionError(
                    f"request {i} ({kind}): {response.status_code} {response.text}"
                )
            assert response.json()["code"] == code, (kind, response.text)
            seen[kind] = seen.get(kind, 0) + 1
        assert len(seen) == len(kinds) and min(seen.values()) >= 1000
        assert committer.waiting == 0
        assert api.ledger.size() == size  # nothing was written
        assert api.post(refund("r-after")).status_code == 201
        assert api.client.get("/health").json()["status"] == "ok"


# --- the writer process goes on, whatever one group does -----------------------------------------


def test_a_bug_in_one_group_fails_that_group_alone(tmp_path: Path) -> None:
    """Groups committed together: if the transaction fails with anything but a refusal (a bug),
    each is retried alone, so one request's failure is not its neighbours'."""
    with serve(str(tmp_path / "bug.db"), writer_process=False) as api:
        commit_groups = api.ledger.commit_groups

        def buggy(groups: Any) -> Any:
            if any(item[0].entity_id == "r-bug" for group in groups for item in group):
                raise KeyError("a bug")
            return commit_groups(groups)

        api.ledger.commit_groups = buggy  # type: ignore[method-assign]
        with ThreadPoolExecutor(3) as pool:
            with writes_held(api):  # r-first waits for the lock; the other two queue together
                first = pool.submit(api.post, refund("r-first"))
                wait_until(lambda: api.service.committer.waiting == 1, what="r-first queued")
                bug = pool.submit(api.post, refund("r-bug"))
                good = pool.submit(api.post, refund("r-good"))
                wait_until(lambda: api.service.committer.waiting == 3, what="all queued")
            assert first.result(60).status_code == 201
            assert_problem(bug.result(60), 500, "internal_error")
            assert good.result(60).status_code == 201, good.result().text
        assert api.service.committer.waiting == 0
        assert [r.entity_id for r in api.ledger.query()] == ["r-first", "r-good"]


# --- /health ---------------------------------------------------------------------------------


def degraded(api: Api) -> list[str]:
    response = api.client.get("/health")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "degraded" and response.headers["retry-after"] == "1"
    return body["problems"]  # type: ignore[no-any-return]


def test_health_is_degraded_while_the_queue_is_full(ledger_url: str) -> None:
    with serve(ledger_url, max_queue=1) as api:
        assert api.client.get("/health").json()["status"] == "ok"
        with ThreadPoolExecutor(1) as pool, writes_held(api):
            first = pool.submit(api.post, refund("r-1"))
            wait_until(lambda: api.service.committer.waiting == 1, what="the receipt queued")
            problems = degraded(api)
            assert problems[0] == "the write queue is full (1 receipts waiting)"
            # PostgreSQL's reads wait for the connection the stuck write holds.
            postgres = not isinstance(api.ledger.store, SQLiteStore)
            assert problems[1:] == (
                ["the store is unreachable: no answer within 2 s"] if postgres else []
            )
            assert_problem(api.post(refund("r-2")), 429, "overloaded")
        assert first.result(60).status_code == 201
        assert api.client.get("/health").status_code == 200


def test_health_is_degraded_while_the_writer_process_cannot_start(tmp_path: Path) -> None:
    home = tmp_path / "ledger"
    home.mkdir()
    with serve(str(home / "w.db")) as api:
        committer = api.service.committer
        assert api.append(refund("r-1"))["seq"] == 0
        # The database's directory goes away (a volume unmounted): the running writer is
        # killed, and a new one cannot open the file.
        os.rename(home, tmp_path / "elsewhere")
        home.write_text("not a directory")
        committer._proc.kill()
        wait_until(lambda: committer._reader.done(), what="the writer process to be gone")
        (problem,) = degraded(api)
        assert problem.startswith("the writer process cannot start: cannot open the SQLite ledger")
        body = assert_problem(api.post(refund("r-2")), 503, "storage_error")
        assert body["detail"].startswith("cannot open the SQLite ledger")
        home.unlink()
        os.rename(tmp_path / "elsewhere", home)
        wait_until(lambda: api.client.get("/health").status_code == 200, what="a healthy writer")
        assert api.append(refund("r-3"))["seq"] == 1


@pytest.mark.backends("postgres")
def test_health_is_degraded_while_the_store_is_unreachable(ledger_url: str) -> None:
    with serve(ledger_url) as api:
        assert api.client.get("/health").status_code == 200
        with psycopg.connect(ledger_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        (problem,) = degraded(api)
        assert problem.startswith("the store is unreachable: postgresql: ")
        assert_problem(api.post(refund("r-1")), 503, "storage_error")
