"""The journal: dense sequencing, idempotency, all-or-nothing batches, append-only enforcement,
durable storage of the canonical entry bytes, and queries."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from receipts import (
    AppendOnlyError,
    IdConflictError,
    Ledger,
    NotFoundError,
    Receipt,
    RevisionConflictError,
    StorageError,
    ValidationError,
    canonical_bytes,
    leaf_hash,
)
from receipts.batch import Pending
from receipts.ledger import SERVICE_ROLE
from receipts.model import ENTRY_KEYS
from receipts.store.sqlite import SQLiteStore

MakeRequest = Callable[..., dict[str, Any]]
FIXED_ID = "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b"
OTHER_ID = "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6c"


def pointers(error: Exception) -> list[str]:
    return [e.pointer for e in getattr(error, "errors", [])]


@pytest.fixture
def filled_ledger(ledger: Ledger, request_for: MakeRequest) -> Ledger:
    """Twelve receipts over two domains, three entities, two correlation ids and a week."""
    requests = []
    for day in range(1, 7):
        requests.append(
            request_for(
                "payment_captured",
                entity_id=f"pi_{day % 3}",
                occurred_at=f"2026-03-0{day}T12:00:00Z",
            )
        )
        requests[-1]["payload"]["correlation_id"] = "flow-even" if day % 2 == 0 else "flow-odd"
        requests.append(
            request_for(
                "report_created", entity_id=f"rp_{day}", occurred_at=f"2026-03-0{day}T13:00:00Z"
            )
        )
    ledger.append_batch(requests[:5])
    ledger.append_batch(requests[5:])
    return ledger


# --- sequencing --------------------------------------------------------------------------------


def test_seq_is_dense_from_zero_in_commit_order(ledger: Ledger, request_for: MakeRequest) -> None:
    returned: list[Receipt] = []
    for size in [1, 3, 1, 7, 2, 1, 10, 4]:
        batch = [request_for("payment_captured", entity_id=f"pi_{i}") for i in range(size)]
        returned += ledger.append_batch(batch)
        returned.append(ledger.append(request_for("report_created")))
    assert [r.seq for r in returned] == list(range(len(returned)))
    assert ledger.size() == len(returned)
    assert [r.id for r in ledger.query()] == [r.id for r in returned]


def test_empty_ledger_and_empty_batch(ledger: Ledger) -> None:
    assert ledger.size() == 0
    assert list(ledger.query()) == []
    assert ledger.append_batch([]) == []
    assert ledger.size() == 0


def test_a_failed_batch_leaves_no_gap_in_seq(ledger: Ledger, request_for: MakeRequest) -> None:
    ledger.append(request_for("payment_captured"))
    bad = request_for("payment_captured")
    del bad["payload"]["amount"]
    with pytest.raises(ValidationError):
        ledger.append_batch([request_for("payment_captured"), bad])
    after = ledger.append(request_for("payment_captured"))
    assert after.seq == 1


def test_reopening_continues_the_sequence(tmp_path: Path, request_for: MakeRequest) -> None:
    with Ledger.open(tmp_path / "l.db") as first:
        first.append_batch([request_for("payment_captured") for _ in range(3)])
    with Ledger.open(f"sqlite:///{tmp_path / 'l.db'}") as second:
        assert second.size() == 3
        assert second.append(request_for("payment_captured")).seq == 3


# --- idempotency -------------------------------------------------------------------------------


def test_same_id_same_content_returns_the_original(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    request = request_for("payment_captured", id=FIXED_ID, occurred_at="2026-01-02T10:00:00Z")
    original = ledger.append(request)
    ledger.append(request_for("report_created"))
    retried = ledger.append(request)
    assert retried == original
    assert ledger.size() == 2


def test_retry_with_another_spelling_of_the_id_and_time_is_idempotent(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    original = ledger.append(
        request_for("payment_captured", id=FIXED_ID, occurred_at="2026-01-02T10:00:00Z")
    )
    retried = ledger.append(
        request_for(
            "payment_captured", id=FIXED_ID.upper(), occurred_at="2026-01-02T11:00:00+01:00"
        )
    )
    assert retried == original
    assert ledger.size() == 1


def test_retry_without_the_defaulted_fields_is_idempotent(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    original = ledger.append(request_for("payment_captured", id=FIXED_ID))
    retried = ledger.append(request_for("payment_captured", id=FIXED_ID))
    assert retried.recorded_at == original.recorded_at
    assert retried.occurred_at == original.occurred_at
    assert ledger.size() == 1


def test_same_id_different_payload_is_an_id_conflict(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    ledger.append(request_for("payment_captured", id=FIXED_ID))
    changed = request_for("payment_captured", id=FIXED_ID)
    changed["payload"]["amount"] = 1
    with pytest.raises(IdConflictError) as caught:
        ledger.append(changed)
    assert caught.value.code == "id_conflict"
    assert pointers(caught.value) == ["/payload"]
    assert FIXED_ID in caught.value.message
    assert ledger.size() == 1


def test_same_id_different_entity_and_time_names_every_difference(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    ledger.append(request_for("payment_captured", id=FIXED_ID, occurred_at="2026-01-02T10:00:00Z"))
    changed = request_for(
        "payment_captured", id=FIXED_ID, entity_id="pi_other", occurred_at="2026-01-03T10:00:00Z"
    )
    with pytest.raises(IdConflictError) as caught:
        ledger.append_batch([request_for("report_created"), changed])
    assert pointers(caught.value) == ["/1/entity_id", "/1/occurred_at"]
    assert ledger.size() == 1


def test_same_id_twice_in_one_batch(ledger: Ledger, request_for: MakeRequest) -> None:
    request = request_for("payment_captured", id=FIXED_ID)
    first, second = ledger.append_batch([request, request])
    assert first == second
    assert ledger.size() == 1

    other_id = "0190b2a4-5c6d-7e8f-9a0b-000000000002"
    changed = request_for("payment_captured", id=other_id)
    changed["payload"]["amount"] = 2
    with pytest.raises(IdConflictError) as caught:
        ledger.append_batch([request_for("payment_captured", id=other_id), changed])
    assert pointers(caught.value) == ["/1/payload"]
    assert ledger.size() == 1


def _pending(ledger: Ledger, requests: list[dict[str, Any]]) -> list[Pending]:
    pointers = [f"/{i}" for i in range(len(requests))]
    valid = ledger.validator.validate_batch(requests, SERVICE_ROLE, pointers=pointers)
    return [Pending(v, SERVICE_ROLE, p) for v, p in zip(valid, pointers, strict=True)]


def test_receipts_made_ahead_are_stored_as_made(ledger: Ledger, request_for: MakeRequest) -> None:
    head = ledger.append(request_for("payment_captured"))
    made = ledger.prebuild(_pending(ledger, [request_for("report_created")] * 2))
    built = list(made)  # new ids: each a receipt alone, made ahead
    assert [len(b) for b in built] == [len(Receipt._fields)] * 2
    assert built[0][0] == 0  # no seq yet
    assert built[0][1] != built[1][1]  # an id each
    stored = ledger.commit(made)
    assert stored == [Receipt._make((1 + i, *b[1:])) for i, b in enumerate(built)]
    assert stored[0].entry_bytes == canonical_bytes(stored[0].entry())
    assert stored[0].recorded_at == stored[1].recorded_at
    assert list(ledger.query()) == [head, *stored]
    assert ledger.audit().receipts == 3  # audit raises on any mismatch

    # A group with a revision is left to the commit: one request, one recorded_at.
    amend = request_for("payment_captured", op="amend", supersedes_id=head.id)
    amend["entity_id"] = head.entity_id
    group = _pending(ledger, [request_for("report_created"), amend])
    assert ledger.prebuild(group) is group
    new, revised = ledger.commit(group)
    assert (revised.revision, revised.logical_id) == (1, head.id)
    assert new.recorded_at == revised.recorded_at


def test_a_receipt_made_ahead_of_a_retry_gets_the_first_receipt(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    request = request_for("payment_captured", id=FIXED_ID)
    first = ledger.append(request)
    # The retry made ahead carries a later recorded_at: the stored receipt wins, as always.
    (again,) = ledger.commit(ledger.prebuild(_pending(ledger, [request])))
    assert again == first
    changed = request_for("payment_captured", id=FIXED_ID)
    changed["payload"]["amount"] = 1
    with pytest.raises(IdConflictError) as caught:
        ledger.commit(ledger.prebuild(_pending(ledger, [changed])))
    assert pointers(caught.value) == ["/0/payload"]
    twice = ledger.prebuild(_pending(ledger, [request_for("report_created", id=OTHER_ID)] * 2))
    assert ledger.commit(twice)[0] == ledger.commit(twice)[1] == ledger.get(OTHER_ID)
    assert ledger.size() == 2


def test_making_ahead_refuses_what_commit_refuses(ledger: Ledger, request_for: MakeRequest) -> None:
    pending = _pending(ledger, [request_for("payment_captured")] * 2)
    # Validation refuses such a number; made ahead, a request changed since is refused too.
    pending[1].request.payload = {**pending[1].request.payload, "amount": 2**60}
    with pytest.raises(ValidationError) as caught:
        ledger.prebuild(pending)
    assert caught.value.message == "payload cannot be canonicalized (RFC 8785)"
    assert pointers(caught.value) == ["/1/payload"]
    assert ledger.size() == 0


# --- all or nothing ----------------------------------------------------------------------------


@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_one_invalid_request_writes_nothing(
    ledger: Ledger, request_for: MakeRequest, position: str
) -> None:
    batch = [request_for("payment_captured", entity_id=f"pi_{i}") for i in range(9)]
    index = {"first": 0, "middle": 4, "last": 8}[position]
    batch[index]["payload"]["amount"] = "a lot"
    with pytest.raises(ValidationError) as caught:
        ledger.append_batch(batch)
    assert pointers(caught.value) == [f"/{index}/payload/amount"]
    assert ledger.size() == 0
    assert list(ledger.query()) == []


def test_a_revision_conflict_in_the_middle_writes_nothing(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    head = ledger.append(request_for("payment_captured", entity_id="pi_1"))
    ledger.amend(head.id, dict(head.payload))
    batch = [
        request_for("payment_captured", entity_id="pi_2"),
        request_for("payment_captured", entity_id="pi_1", op="amend", supersedes_id=head.id),
        request_for("payment_captured", entity_id="pi_3"),
    ]
    with pytest.raises(RevisionConflictError) as caught:
        ledger.append_batch(batch)
    assert pointers(caught.value) == ["/1/supersedes_id"]
    assert ledger.size() == 2


def test_an_id_conflict_in_the_middle_writes_nothing(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    ledger.append(request_for("payment_captured", id=FIXED_ID))
    changed = request_for("payment_captured", id=FIXED_ID)
    changed["payload"]["providerChargeId"] = "ch_other"
    batch = [request_for("payment_captured"), changed, request_for("payment_captured")]
    with pytest.raises(IdConflictError):
        ledger.append_batch(batch)
    assert ledger.size() == 1


def test_an_uncanonicalizable_payload_writes_nothing(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    big = request_for("payment_captured")
    big["payload"]["amount"] = 2**60  # valid per the schema, but not an I-JSON number
    with pytest.raises(ValidationError):
        ledger.append_batch([request_for("payment_captured"), big])
    lone_surrogate = request_for("payment_captured")
    lone_surrogate["payload"]["notes"] = "\ud800"
    with pytest.raises(ValidationError):
        ledger.append_batch([request_for("payment_captured"), lone_surrogate])
    assert ledger.size() == 0


def test_a_failure_after_rows_were_sent_writes_nothing(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    """Stores write a large batch in pieces (multi-row INSERTs, COPY) while it is being built;
    a receipt that cannot be built after several pieces went out still leaves nothing."""
    batch = [request_for("payment_captured", entity_id=f"pi_{i}") for i in range(700)]
    batch[650]["payload"]["amount"] = 2**60  # refused while building its canonical bytes
    with pytest.raises(ValidationError) as caught:
        ledger.append_batch(batch)
    assert pointers(caught.value)[0].startswith("/650/")
    assert ledger.size() == 0
    del batch[650]
    assert [r.seq for r in ledger.append_batch(batch)] == list(range(699))
    assert [r.seq for r in ledger.query(limit=1000)] == list(range(699))


# --- append-only, durability settings ----------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_events_v0 SET entity_id = 'x'",
        "UPDATE ledger_events_v0 SET payload = '{}' WHERE seq = 0",
        "DELETE FROM ledger_events_v0",
        "DELETE FROM ledger_events_v0 WHERE seq = 1",
    ],
)
def test_update_and_delete_are_refused(ledger: Ledger, request_for: MakeRequest, sql: str) -> None:
    stored = ledger.append_batch([request_for("payment_captured") for _ in range(2)])
    with pytest.raises(AppendOnlyError) as caught:
        ledger.store.execute(sql)  # type: ignore[attr-defined]
    assert caught.value.code == "append_only"
    assert isinstance(caught.value, StorageError)
    assert "append-only" in caught.value.message
    assert list(ledger.query()) == stored


@pytest.mark.backends("sqlite")
def test_a_raw_sqlite_connection_is_refused_too(
    tmp_path: Path, ledger: Ledger, request_for: MakeRequest
) -> None:
    stored = ledger.append(request_for("payment_captured"))
    raw = sqlite3.connect(tmp_path / "l.db")
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE ledger_events_v0 SET entity_id = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM ledger_events_v0")
        raw.rollback()
    finally:
        raw.close()
    assert ledger.get(stored.id) == stored


@pytest.mark.backends("sqlite")
def test_wal_and_synchronous_full(tmp_path: Path, ledger: Ledger) -> None:
    execute = ledger.store.execute  # type: ignore[attr-defined]
    assert execute("PRAGMA journal_mode") == [("wal",)]
    assert execute("PRAGMA synchronous") == [(2,)]  # FULL
    assert execute("PRAGMA page_size") == [(8192,)]  # a new file
    raw = sqlite3.connect(tmp_path / "l.db")
    try:  # WAL is a property of the file, seen by every connection
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        raw.close()


@pytest.mark.backends("sqlite")
def test_the_background_checkpointer_copies_the_wal_into_the_file(
    tmp_path: Path, request_for: MakeRequest
) -> None:
    path = tmp_path / "c.db"
    with Ledger.open(path) as ledger:
        store = ledger.store
        assert isinstance(store, SQLiteStore)
        before = path.stat().st_size  # the migrations are still in the WAL
        store.checkpoint_in_background(interval=0.01)
        assert store.execute("PRAGMA wal_autocheckpoint") == [(8000,)]
        stored = ledger.append_batch([request_for("payment_captured") for _ in range(50)])
        # Far below the committing connection's own bound: only the thread copies the pages.
        deadline = time.monotonic() + 60  # a bound for failure only
        while path.stat().st_size == before and time.monotonic() < deadline:
            time.sleep(0.01)
        assert path.stat().st_size > before
    assert "wal-checkpoint" not in [t.name for t in threading.enumerate()]  # stopped at close
    with Ledger.open(path) as reopened:
        assert list(reopened.query()) == stored


# The secondary indexes as migrations 0001 and 0003 made them, before 0004.
_OLDER_INDEXES = """
DROP INDEX ledger_events_v0_entity;
CREATE INDEX ledger_events_v0_entity ON ledger_events_v0 (entity_type, entity_id, seq);
DROP INDEX ledger_events_v0_correlation;
CREATE INDEX ledger_events_v0_correlation ON ledger_events_v0 (correlation_id, seq)
    WHERE correlation_id IS NOT NULL;
DROP INDEX ledger_events_v0_type;
CREATE INDEX ledger_events_v0_type ON ledger_events_v0 (event_type, seq);
DROP INDEX ledger_events_v0_owner;
CREATE INDEX ledger_events_v0_owner ON ledger_events_v0 (owner_user_id, seq);
DELETE FROM receipts_migrations WHERE version = 4;
"""


def _answers(ledger: Ledger) -> list[list[int]]:
    q = ledger.query
    return [
        [r.seq for r in found]
        for found in (
            ledger.history("payment_intent:pi_1"),
            q(entity="payment_intent:pi_1", after=0, limit=1),
            ledger.trace("flow-even"),
            q(correlation_id="flow-odd", after=2),
            q(event_type="report_created", after=3, limit=2),
            q(visible_to="user_a"),
            q(visible_to="user_a", after=12),
        )
    ]


def _plan(ledger: Ledger, where: str, args: tuple[Any, ...]) -> str:
    sql = f"EXPLAIN QUERY PLAN SELECT * FROM ledger_events_v0 WHERE {where} ORDER BY seq"
    return " / ".join(row[-1] for row in ledger.store.execute(sql, args))  # type: ignore[attr-defined]


@pytest.mark.backends("sqlite")
def test_an_older_file_gets_the_slimmer_indexes_and_answers_as_before(
    filled_ledger: Ledger, request_for: MakeRequest
) -> None:
    for entity_id in ("rp_a", "rp_b"):
        filled_ledger.append(request_for("report_created", entity_id=entity_id,
                                         owner_user_id="user_a"), producer="client")  # fmt: skip
    path = filled_ledger.store.path  # type: ignore[attr-defined]
    expected = _answers(filled_ledger)
    assert expected[5] == [12, 13] and expected[6] == [13]
    filled_ledger.close()
    older = sqlite3.connect(path)
    older.executescript(_OLDER_INDEXES)
    older.close()

    with Ledger.open(path) as reopened:
        assert reopened.store.applied == ["0004_slim_indexes.sql"]  # type: ignore[attr-defined]
        indexes = dict(reopened.store.execute(  # type: ignore[attr-defined]
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
            "AND tbl_name = 'ledger_events_v0'"
        ))  # fmt: skip
        assert all("seq" not in sql for sql in indexes.values()), indexes
        assert "WHERE owner_user_id IS NOT NULL" in indexes["ledger_events_v0_owner"]
        assert _answers(reopened) == expected
        # Paging by seq still walks an index: the rowid ends every entry.
        entity = "entity_type = ? AND entity_id = ? AND seq > ?"
        assert "ledger_events_v0_entity (entity_type=? AND entity_id=? AND rowid>?)" in _plan(
            reopened, entity, ("payment_intent", "pi_1", 0)
        )
        owner = "owner_user_id = ? AND seq > ?"
        assert "ledger_events_v0_owner (owner_user_id=? AND rowid>?)" in _plan(
            reopened, owner, ("user_a", 0)
        )
        reopened.append(request_for("report_created", owner_user_id="user_a"), producer="client")
        assert [r.seq for r in reopened.query(visible_to="user_a")] == [12, 13, 14]


# --- stored bytes ------------------------------------------------------------------------------


@pytest.mark.backends("sqlite")
def test_stored_entry_bytes_are_the_canonical_entry(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    request = request_for("report_created", owner_user_id="user_ü", entity_id="rp_ö")
    request["payload"]["details"] = "emoji 😀 and \u2028 and \x1f"
    request["payload"]["weights"] = [0.1, 1e-21, -0.0, 5e-324, 2.0**53 - 1]
    receipt = ledger.append(request, producer="client")
    execute = ledger.store.execute  # type: ignore[attr-defined]
    ((entry, stored_leaf),) = execute(
        "SELECT entry, leaf_hash FROM ledger_events_v0 WHERE id = ?", (receipt.id,)
    )
    assert bytes(entry) == receipt.entry_bytes == canonical_bytes(receipt.entry())
    assert bytes(stored_leaf) == receipt.leaf_hash == hashlib.sha256(b"\x00" + entry).digest()
    assert leaf_hash(bytes(entry)) == receipt.leaf_hash
    assert list(orjson.loads(entry)) == sorted(ENTRY_KEYS)
    assert receipt.to_dict()["leaf_hash"] == receipt.leaf_hash.hex()

    reread = ledger.get(receipt.id)
    assert reread == receipt
    assert canonical_bytes(reread.entry()) == bytes(entry)


def test_the_json_form_is_seq_the_entry_and_the_leaf_hash(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    receipt = ledger.append(request_for("payment_captured"))
    as_dict = receipt.to_dict()
    assert list(as_dict) == ["seq", *ENTRY_KEYS, "leaf_hash"]
    assert as_dict == {"seq": receipt.seq, **receipt.entry(), "leaf_hash": receipt.leaf_hash.hex()}
    assert orjson.loads(receipt.to_json()) == as_dict


def test_entry_has_every_key_even_when_null(ledger: Ledger, request_for: MakeRequest) -> None:
    receipt = ledger.append(request_for("payment_captured"))
    entry = orjson.loads(receipt.entry_bytes)
    assert set(entry) == set(ENTRY_KEYS)
    assert entry["owner_user_id"] is None and entry["supersedes_id"] is None
    assert "seq" not in entry and "leaf_hash" not in entry


# --- queries -----------------------------------------------------------------------------------


def test_get_by_id_in_any_uuid_spelling(ledger: Ledger, request_for: MakeRequest) -> None:
    stored = ledger.append(request_for("payment_captured", id=FIXED_ID))
    assert ledger.get(FIXED_ID) == stored
    assert ledger.get(FIXED_ID.upper()) == stored
    assert ledger.get("{" + FIXED_ID + "}") == stored
    assert ledger.get(FIXED_ID.replace("-", "")) == stored


def test_get_unknown_is_not_found(ledger: Ledger) -> None:
    with pytest.raises(NotFoundError) as caught:
        ledger.get("0190b2a4-5c6d-7e8f-9a0b-000000000000")
    assert caught.value.code == "not_found"
    assert pointers(caught.value) == ["/id"]


def test_history_of_an_entity(filled_ledger: Ledger) -> None:
    history = list(filled_ledger.history("payment_intent:pi_1"))
    assert [r.occurred_at[:10] for r in history] == ["2026-03-01", "2026-03-04"]
    assert all(r.entity == "payment_intent:pi_1" for r in history)
    assert list(filled_ledger.history("payment_intent:unknown")) == []


def test_trace_by_correlation_id(filled_ledger: Ledger) -> None:
    even = list(filled_ledger.trace("flow-even"))
    assert [r.occurred_at[:10] for r in even] == ["2026-03-02", "2026-03-04", "2026-03-06"]
    assert all(r.correlation_id == "flow-even" for r in even)
    assert list(filled_ledger.trace("flow-none")) == []


def test_query_filters(filled_ledger: Ledger) -> None:
    q = filled_ledger.query
    assert {r.domain for r in q(domain="moderation")} == {"moderation"}
    assert len(list(q(domain="moderation"))) == 6
    assert len(list(q(event_type="payment_captured"))) == 6
    assert list(q(domain="identity")) == []
    window = list(q(since="2026-03-02T12:00:00Z", until="2026-03-04T12:00:00Z"))
    assert [r.occurred_at for r in window] == [
        "2026-03-02T12:00:00.000000Z",  # since is inclusive
        "2026-03-02T13:00:00.000000Z",
        "2026-03-03T12:00:00.000000Z",
        "2026-03-03T13:00:00.000000Z",  # until is exclusive
    ]
    shifted = list(q(since="2026-03-02T14:00:00+02:00", until="2026-03-02T15:00:00+02:00"))
    assert [r.occurred_at for r in shifted] == ["2026-03-02T12:00:00.000000Z"]
    combined = list(
        q(event_type="payment_captured", correlation_id="flow-odd", since="2026-03-02T00:00:00Z")
    )
    assert [r.occurred_at[:10] for r in combined] == ["2026-03-03", "2026-03-05"]
    assert [r.entity_id for r in q(entity="report:rp_3")] == ["rp_3"]


@pytest.mark.parametrize("name", ["since", "until"])
def test_bad_time_filter_is_a_validation_error(filled_ledger: Ledger, name: str) -> None:
    with pytest.raises(ValidationError) as caught:
        list(filled_ledger.query(**{name: "last tuesday"}))
    assert pointers(caught.value) == [f"/{name}"]


def test_cursor_pagination_covers_every_receipt_once(filled_ledger: Ledger) -> None:
    seen: list[int] = []
    after = None
    while True:
        page = list(filled_ledger.query(after=after, limit=5))
        if not page:
            break
        assert len(page) <= 5
        seen += [r.seq for r in page]
        after = page[-1].seq
    assert seen == list(range(filled_ledger.size()))
    assert list(filled_ledger.query(limit=0)) == []
    assert [r.seq for r in filled_ledger.query(after=-1, limit=2)] == [0, 1]
    assert [r.seq for r in filled_ledger.query(after=10)] == [11]


def test_pagination_with_filters(filled_ledger: Ledger) -> None:
    everything = [r.seq for r in filled_ledger.query(domain="payments")]
    seen: list[int] = []
    after = None
    while page := list(filled_ledger.query(domain="payments", after=after, limit=4)):
        seen += [r.seq for r in page]
        after = page[-1].seq
    assert seen == everything


def test_queries_page_through_more_than_one_store_page(
    ledger: Ledger, request_for: MakeRequest
) -> None:
    ledger.append_batch([request_for("payment_captured", entity_id="pi") for _ in range(2300)])
    assert [r.seq for r in ledger.query()] == list(range(2300))
    assert [r.seq for r in ledger.history("payment_intent:pi")] == list(range(2300))
    assert [r.seq for r in ledger.query(limit=1500)] == list(range(1500))
    assert [r.seq for r in ledger.query(after=999, limit=1001)] == list(range(1000, 2001))
    assert [r.seq for r in ledger.query(limit=2000)] == list(range(2000))


# --- kill -9 -----------------------------------------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys
    from receipts import Ledger

    ledger = Ledger.open(sys.argv[1])
    example = ledger.catalog.get("payment_captured").example
    i = 0
    while True:
        receipt = ledger.append({
            "domain": "payments", "event_type": "payment_captured",
            "entity_type": "payment_intent", "entity_id": f"pi_{i}", "payload": example,
        })
        sys.stdout.write(receipt.id + "\\n")
        sys.stdout.flush()
        i += 1
    """
)


@pytest.mark.slow
def test_every_acknowledged_receipt_survives_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "durable.db"
    wanted = 300
    env = {k: v for k, v in os.environ.items() if k != "RECEIPTS_DB"}
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    acknowledged: list[str] = []
    try:
        assert writer.stdout is not None
        while len(acknowledged) < wanted:
            line = writer.stdout.readline()
            if not line:
                stderr = writer.stderr.read().decode() if writer.stderr else ""
                pytest.fail(f"writer died after {len(acknowledged)} receipts: {stderr}")
            acknowledged.append(line.decode().strip())
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
        for stream in (writer.stdout, writer.stderr):
            if stream is not None:
                stream.close()
    assert writer.returncode == -signal.SIGKILL

    with Ledger.open(db) as reopened:
        size = reopened.size()
        assert size >= wanted
        stored = list(reopened.query())
        assert [r.seq for r in stored] == list(range(size))
        for receipt_id in acknowledged:
            assert reopened.get(receipt_id).id == receipt_id
        for receipt in stored:
            assert receipt.leaf_hash == leaf_hash(canonical_bytes(receipt.entry()))
        assert (
            reopened.append(
                {
                    "domain": "payments",
                    "event_type": "payment_captured",
                    "entity_type": "payment_intent",
                    "entity_id": "after_crash",
                    "payload": {"amount": 1, "providerChargeId": "ch"},
                }
            ).seq
            == size
        )


def test_an_id_written_by_one_producer_conflicts_for_another(ledger: Ledger) -> None:
    # An own-`source` type: the payload is identical whoever writes it.
    request = {
        "id": "0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b", "domain": "model_lifecycle",
        "event_type": "model_pack_download_started", "entity_type": "model_pack",
        "entity_id": "mp_1", "payload": {"packId": "mp_1", "version": "1", "source": "auto"},
    }  # fmt: skip
    first = ledger.append(request, producer="client")
    assert ledger.append(request, producer="client") == first
    with pytest.raises(IdConflictError) as caught:
        ledger.append(request, producer="edge_function")
    assert caught.value.errors[0].pointer == "/id"
    assert "another producer" in caught.value.message
    assert ledger.size() == 1
