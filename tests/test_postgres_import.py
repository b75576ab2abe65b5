"""Batched writes to PostgreSQL: binary COPY stores exactly what the ledger built, and a batch
streamed to the server while it is being built stays all-or-nothing with dense seqs."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from pg import throwaway_database
from receipts import Ledger, ValidationError
from receipts.errors import PermissionDeniedError, RevisionConflictError
from receipts.store import postgres
from receipts.store.postgres import PostgresStore

RECEIPTS = str(Path(sys.executable).with_name("receipts"))
FIXED = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)

# Payload values whose text or binary encodings are easy to get wrong.
NASTY: list[Any] = [
    0.1, -2.5, 1e-7, 123456.789, 2.2250738585072014e-308, 5e-324, -0.0, 10.0, 2**53 - 1,
    -(2**53) + 1, 0, True, False, None, "", "tab\there", "line\nbreak\r\n", "back\\slash",
    'quote"d', "\\x00ff", "\\N", "é ü ñ", "日本語", "emoji 🧾🔐", "\u2028\u2029", "\U0001f600" * 3,
    "\x7f\x01\x1f", [1, [2, [3, {"deep": "er"}]]], {"b": 1, "a": {"ü": [0.5]}}, "x" * 5000,
]  # fmt: skip


def refund(i: int, **fields: Any) -> dict[str, Any]:
    return {
        "domain": "payments",
        "event_type": "refund_requested",
        "entity_type": "refund",
        "entity_id": f"rf_{i}",
        "owner_user_id": f"user_{i}" if i % 2 else None,
        "payload": {
            "paymentIntentId": f"pi_{i}",
            "requestedByUserId": "u_1",
            "reasonCode": "sick",
            "nasty": NASTY[i % len(NASTY)],
            **({"correlation_id": f"flow-{i // 3}"} if i % 3 == 0 else {}),
        },
        **fields,
    }


def nasty_requests(n: int) -> list[dict[str, Any]]:
    times = [
        None, "2026-01-02T10:00:00Z", "1999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999Z", "2000-01-01T00:00:00+05:30", "1970-01-01T00:00:00.5-01:00",
    ]  # fmt: skip
    out = []
    for i in range(n):
        request = refund(i)
        if times[i % len(times)] is not None:
            request["occurred_at"] = times[i % len(times)]
        if i % 4 == 1:
            request["id"] = str(uuid.uuid4())
        out.append(request)
    return out


def rows(ledger: Ledger) -> list[tuple[Any, ...]]:
    """Every column of the journal as the server prints it."""
    return ledger.store.execute(  # type: ignore[attr-defined,no-any-return]
        "SELECT to_jsonb(e)::text FROM public.ledger_events_v0 e ORDER BY seq"
    )


@pytest.fixture
def second_pg_url(pg_template: str) -> Iterator[str]:
    with throwaway_database(pg_template) as url:
        yield url


def test_binary_copy_round_trips_byte_for_byte(pg_url: str) -> None:
    with Ledger.open(pg_url) as ledger:
        written = ledger.append_batch(nasty_requests(120))
        amends = ledger.append_batch(
            [{**refund(i), "op": "amend", "supersedes_id": written[i].id} for i in range(40)]
        )  # a COPY of revisions: logical ids differ from ids, supersedes ids are set
        written += amends
        assert [r.seq for r in written] == list(range(160))
        for receipt in written:
            stored = ledger.get(receipt.id)
            assert stored == receipt
            assert stored.entry_bytes == receipt.entry_bytes
            assert stored.leaf_hash == receipt.leaf_hash
        assert list(ledger.query()) == written
        ledger.integrate()
        report = ledger.audit()
        assert (report.receipts, report.tree_size) == (160, 160)


def test_copy_and_insert_store_the_same_rows(
    pg_url: str, second_pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = nasty_requests(60)
    for i, request in enumerate(requests):
        request["id"] = str(uuid.UUID(int=i + 1))  # the same ids in both databases
    with Ledger(PostgresStore(pg_url), clock=lambda: FIXED) as ledger:
        copied = ledger.append_batch(requests)
        copied_rows = rows(ledger)
    monkeypatch.setattr(postgres, "_SMALL_BATCH", 1000)  # the text INSERT path
    with Ledger(PostgresStore(second_pg_url), clock=lambda: FIXED) as ledger:
        inserted = ledger.append_batch(requests)
        inserted_rows = rows(ledger)
    assert copied == inserted
    assert copied_rows == inserted_rows


def test_a_batch_failing_while_it_streams_writes_nothing(pg_url: str) -> None:
    with Ledger.open(pg_url) as ledger:
        first = ledger.append_batch([refund(i) for i in range(50)])
        batch = [refund(100 + i) for i in range(200)]
        # Late in the batch, after many rows were sent: a stale head (conflict at build time)...
        batch[150] = {**refund(1), "op": "amend", "supersedes_id": first[1].id}
        batch[120] = {**refund(1), "op": "amend", "supersedes_id": first[1].id}
        with pytest.raises(RevisionConflictError):
            ledger.append_batch(batch)
        # ...or a payload that cannot be stored exactly (an integer beyond 2**53), found by the
        # validation that runs as the batch streams.
        batch = [refund(300 + i) for i in range(200)]
        batch[199]["payload"]["nasty"] = 2**60
        with pytest.raises(ValidationError) as caught:
            ledger.append_batch(batch)
        assert caught.value.errors[0].pointer == "/199/payload/nasty"
        assert ledger.size() == 50
        after = ledger.append_batch([refund(500 + i) for i in range(100)])
        assert [r.seq for r in after] == list(range(50, 150))
        seqs = [s for (s,) in ledger.store.execute("SELECT seq FROM ledger_events_v0 ORDER BY seq")]  # type: ignore[attr-defined]
        assert seqs == list(range(150))


@pytest.fixture(params=["sqlite", "postgres"])
def any_ledger(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Ledger]:
    url = str(tmp_path / "r.db") if request.param == "sqlite" else request.getfixturevalue("pg_url")
    with Ledger.open(url) as ledger:
        yield ledger


def test_validation_problems_late_in_a_batch_win_over_build_errors(any_ledger: Ledger) -> None:
    """Requests are validated as the batch streams, but the errors are those of validating the
    whole batch first: every problem, even after a request that conflicts."""
    ledger = any_ledger
    first = ledger.append_batch([refund(i) for i in range(50)])
    ledger.append(
        {**refund(1), "op": "amend", "supersedes_id": first[1].id}
    )  # first[1] is no longer the head
    stale = {**refund(1), "op": "amend", "supersedes_id": first[1].id}
    batch = [refund(100 + i) for i in range(200)]
    batch[10] = stale
    batch[150]["payload"]["reasonCode"] = ""
    batch[180]["entity_type"] = "payment_intent"
    with pytest.raises(ValidationError) as caught:
        ledger.append_batch(batch)
    assert [e.pointer for e in caught.value.errors] == [
        "/150/payload/reasonCode",
        "/180/entity_type",
    ]
    batch = [refund(300 + i) for i in range(200)]
    batch[10] = stale
    with pytest.raises(RevisionConflictError):  # no validation problem: the conflict
        ledger.append_batch(batch)
    export = ledger.catalog.types["admin_export_requested"]  # not writable by clients
    batch[190] = {**refund(190), "domain": export.domain, "event_type": export.name,
                  "entity_type": export.entity_types[0], "payload": export.example}  # fmt: skip
    with pytest.raises(PermissionDeniedError):  # a writer not allowed, late in the batch
        ledger.append_batch(batch, producer="client")
    assert ledger.size() == 51


def test_partial_indexes_serve_owner_and_supersedes_lookups(pg_url: str) -> None:
    """Migration 0008 leaves NULLs out of two indexes; equality lookups still use them, and
    a revision chain still cannot fork."""
    with Ledger.open(pg_url) as ledger:
        first = ledger.append_batch([refund(i) for i in range(100)])
        ledger.append({**refund(1), "op": "amend", "supersedes_id": first[1].id})
        store = ledger.store

        def plan(sql: str, *args: Any) -> str:
            rows = store.execute("EXPLAIN " + sql, args)  # type: ignore[attr-defined]
            return "\n".join(r[0] for r in rows)

        store.execute("SET enable_seqscan = off")  # type: ignore[attr-defined]
        try:
            owned = plan(
                "SELECT seq FROM public.ledger_events_v0 WHERE owner_user_id = %s "
                "AND occurred_at >= %s",
                "user_1",
                "2020-01-01T00:00:00Z",
            )
            assert "ledger_events_v0_owner_time" in owned
            superseded = plan(
                "SELECT 1 FROM public.ledger_events_v0 WHERE supersedes_id = %s::uuid", first[1].id
            )
            assert "ledger_events_v0_supersedes_id_key" in superseded
        finally:
            store.execute("RESET enable_seqscan")  # type: ignore[attr-defined]
        assert [r.id for r in ledger.query(visible_to="user_1")] == [first[1].id] + [
            r.id for r in ledger.history("refund:rf_1") if r.revision == 1
        ]
        fork = {
            **refund(1),
            "id": str(uuid.uuid4()),
            "op": "amend",
            "supersedes_id": first[1].id,
        }
        with pytest.raises(RevisionConflictError):
            ledger.append(fork)
        # Past the trigger (as the library's own rows are), the unique index refuses the fork.
        store.execute("SELECT set_config('receipts.sequencer', 'on', false)")  # type: ignore[attr-defined]
        with pytest.raises(RevisionConflictError, match="revised concurrently"):
            store.execute(  # type: ignore[attr-defined]
                "INSERT INTO public.ledger_events_v0 (seq, id, logical_id, revision, op, "
                "supersedes_id, domain, event_type, entity_type, entity_id, producer, "
                "occurred_at, recorded_at, payload, entry, leaf_hash) SELECT 101, "
                "gen_random_uuid(), logical_id, 9, 'amend', supersedes_id, domain, event_type, "
                "entity_type, entity_id, producer, occurred_at, recorded_at, payload, entry, "
                "leaf_hash FROM public.ledger_events_v0 WHERE seq = 100"
            )


def test_cli_import_streams_batches_atomically_and_verifies(pg_url: str, tmp_path: Path) -> None:
    """`receipts import` with batches large enough for COPY: a batch refused late (a stale
    revision at its 90th line, after most of its rows were sent) leaves no trace; the import
    sets the line aside and commits the batch without it, later batches go on, seqs stay
    dense, and the audit re-derives every stored byte."""
    lines = nasty_requests(500)
    for line in lines:
        line.pop("id", None)
    with Ledger.open(pg_url) as ledger:
        head = ledger.append(refund(9999))
        ledger.append({**refund(9999), "op": "amend", "supersedes_id": head.id})
    lines[289] = {**refund(9999), "op": "amend", "supersedes_id": head.id}  # batch 3, line 290
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    result = subprocess.run(
        [RECEIPTS, "--db", pg_url, "import", str(path), "--batch-size", "100"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert (report["stored"], report["receipts"]) == (499, 501)
    (rejected,) = report["rejected"]
    assert rejected["line"] == 290 and rejected["code"] == "revision_conflict"
    with Ledger.open(pg_url) as ledger:
        seqs = [s for (s,) in ledger.store.execute("SELECT seq FROM ledger_events_v0 ORDER BY seq")]  # type: ignore[attr-defined]
        assert seqs == list(range(501))
        stored = {r.entity_id for r in ledger.query()}
        assert "rf_289" not in stored
        assert {f"rf_{i}" for i in (*range(289), *range(290, 500))} <= stored
    for command in ("integrate", "verify"):
        result = subprocess.run([RECEIPTS, "--db", pg_url, command], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["receipts"] == 501
