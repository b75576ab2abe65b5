"""Rewrites behind the ledger's back (issue 13, item 1): every one makes `receipts verify` exit 1
naming the exact seq, node or checkpoint; `get` and `prove` refuse an altered row (code
`tampered`) instead of handing it out; `checkpoint` says what is inconsistent. On SQLite (triggers
dropped) and PostgreSQL (`session_replication_role = replica`, which turns the triggers off)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from receipts import Ledger
from receipts.cli import main
from receipts.keys import generate_key
from receipts.model import Receipt, canonical_bytes, leaf_hash
from receipts.tlog import CompactRange

ORIGIN = "example.com/tamper"
SIGNED = (20, 40)  # checkpoint sizes
TOTAL = 46  # receipts; 40..45 integrated but not signed


def refund(i: int) -> dict[str, Any]:
    return {
        "domain": "payments",
        "event_type": "refund_requested",
        "entity_type": "refund",
        "entity_id": f"rf_{i}",
        "owner_user_id": f"user_{i % 3}",
        "payload": {
            "paymentIntentId": f"pi_{i}",
            "requestedByUserId": f"user_{i % 3}",
            "reasonCode": "sick",
            "correlation_id": f"flow-{i // 4}",
        },
    }


@dataclass
class Subject:
    url: str
    backend: str
    key: str  # verifier key
    receipts: list[Receipt]
    capsys: pytest.CaptureFixture[bytes]

    def cli(self, *args: str) -> tuple[int, str, str]:
        try:
            main(["--db", self.url, *args])
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
        out, err = self.capsys.readouterr()
        return code, out.decode(), err.decode()

    def sql(self, *statements: str, args: tuple[Any, ...] = ()) -> None:
        if self.backend == "sqlite":
            with sqlite3.connect(self.url) as db:
                triggers = db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                for (name,) in triggers.fetchall():
                    db.execute(f"DROP TRIGGER {name}")
                for statement in statements:
                    db.execute(statement.replace("%s", "?"), args)
            return
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute("SET session_replication_role = replica")
            for statement in statements:
                db.execute(statement.replace("?", "%s"), args)

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        if self.backend == "sqlite":
            with sqlite3.connect(self.url) as db:
                return db.execute(query).fetchall()
        with psycopg.connect(self.url) as db:
            return db.execute(query).fetchall()

    def table(self, name: str) -> str:
        return name if self.backend == "sqlite" else f"public.{name}"


@pytest.fixture
def subject(
    ledger_url: str,
    backend: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsysbinary: pytest.CaptureFixture[bytes],
) -> Iterator[Subject]:
    monkeypatch.setenv("RECEIPTS_KEY", str(tmp_path / "ledger.key"))
    signer = generate_key(tmp_path / "ledger.key", ORIGIN)
    stored: list[Receipt] = []
    with Ledger.open(ledger_url, signer=signer) as ledger:
        for i in range(TOTAL):
            stored.append(ledger.append(refund(i)))  # one commit each: a tree head each (SQLite)
            if i + 1 in SIGNED:
                ledger.checkpoint()
        ledger.integrate()
    yield Subject(ledger_url, backend, signer.verifier().to_key_string(), stored, capsysbinary)


def verify_fails(subject: Subject, *expected: str) -> dict[str, Any]:
    code, out, err = subject.cli("verify", "--key", subject.key)
    assert code == 1, out
    error: dict[str, Any] = json.loads(err)
    assert error["code"] == "tampered"
    for text in expected:
        assert text in error["message"], error["message"]
    return error


def refuses(subject: Subject, *args: str) -> None:
    code, out, err = subject.cli(*args)
    assert code == 1 and out == "", out
    assert json.loads(err)["code"] == "tampered", err


def checkpoint_explains(subject: Subject) -> None:
    code, _, err = subject.cli("checkpoint")
    assert code == 1, err
    assert "UNIQUE" not in err and "Traceback" not in err
    assert json.loads(err)["message"]


def test_an_honest_log_verifies(subject: Subject) -> None:
    code, out, err = subject.cli("verify", "--key", subject.key)
    assert code == 0, err
    report = json.loads(out)
    assert (report["receipts"], report["tree_size"], report["checkpoints"]) == (46, 46, 2)


def test_an_edited_payload_is_named(subject: Subject) -> None:
    if subject.backend == "sqlite":
        change = "UPDATE ledger_events_v0 SET payload = json_set(payload, '$.reasonCode', 'x')"
    else:
        change = 'UPDATE public.ledger_events_v0 SET payload = payload || \'{"reasonCode": "x"}\''
    subject.sql(change + " WHERE seq = 7")
    target = subject.receipts[7]
    verify_fails(subject, f"seq 7 (id {target.id}): its payload column differs from its entry")
    refuses(subject, "get", target.id)
    refuses(subject, "prove", target.id)


COLUMNS = {
    "entity_type": "'payment'",
    "entity_id": "'rf_other'",
    "event_type": "'refund_approved'",
    "domain": "'identity'",
    "owner_user_id": "'user_9'",
    "occurred_at": "'2001-01-01T00:00:00.000000Z'",
    "recorded_at": "'2001-01-01T00:00:00.000000Z'",
    "correlation_id": "'flow-other'",
    "op": "'amend'",
    "revision": "3",
    "producer": "'client'",
    "supersedes_id": "'0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b'",
    "logical_id": "'0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b'",
}


@pytest.mark.parametrize("column", COLUMNS)
def test_every_queried_column_is_checked_against_the_entry(subject: Subject, column: str) -> None:
    value = COLUMNS[column]
    if subject.backend == "postgres" and column in ("occurred_at", "recorded_at"):
        value += "::timestamptz"
    subject.sql(f"UPDATE {subject.table('ledger_events_v0')} SET {column} = {value} WHERE seq = 8")
    target = subject.receipts[8]
    verify_fails(subject, f"seq 8 (id {target.id}): its {column} column differs from its entry")
    refuses(subject, "get", target.id)
    # Reads hand out no altered row: seq 8 is flow-2's (or, edited, the flow it now names).
    flow = "flow-other" if column == "correlation_id" else "flow-2"
    code, out, err = subject.cli("trace", flow)
    assert code == 1 and json.loads(err)["code"] == "tampered", out


def test_a_deleted_middle_row_is_named(subject: Subject) -> None:
    subject.sql(f"DELETE FROM {subject.table('ledger_events_v0')} WHERE seq = 12")
    verify_fails(subject, "audit failed at seq 12: missing")


def test_a_deleted_unsigned_tail_is_named(subject: Subject) -> None:
    subject.sql(f"DELETE FROM {subject.table('ledger_events_v0')} WHERE seq >= 43")
    verify_fails(subject, "audit failed at seq 43: missing: the Merkle tree covers it")
    checkpoint_explains(subject)


def test_a_deleted_signed_tail_is_named(subject: Subject) -> None:
    subject.sql(f"DELETE FROM {subject.table('ledger_events_v0')} WHERE seq >= 38")
    verify_fails(subject, "audit failed at seq 38: missing")
    checkpoint_explains(subject)


def _move(subject: Subject, pairs: list[tuple[int, int]]) -> None:
    table = subject.table("ledger_events_v0")
    subject.sql(*[f"UPDATE {table} SET seq = {new} WHERE seq = {old}" for old, new in pairs])


def test_swapped_rows_are_blamed_on_the_first(subject: Subject) -> None:
    _move(subject, [(10, 1000), (30, 10), (1000, 30)])
    error = verify_fails(subject, "audit failed at seq 10:")
    assert error["errors"][0]["pointer"] == "/seq/10"
    refuses(subject, "prove", subject.receipts[10].id)


def test_delete_and_renumber_is_blamed_on_the_gap(subject: Subject) -> None:
    subject.sql(f"DELETE FROM {subject.table('ledger_events_v0')} WHERE seq = 12")
    _move(subject, [(seq, seq - 1) for seq in range(13, TOTAL)])
    error = verify_fails(subject, "audit failed at seq 12:")
    assert error["errors"][0]["pointer"] == "/seq/12"
    checkpoint_explains(subject)


def _rebuild_nodes(subject: Subject) -> None:
    """What a careful forger does after rewriting a row: recompute every stored tree node."""
    table = subject.table("ledger_events_v0")
    leaves = [bytes(h) for (h,) in subject.rows(f"SELECT leaf_hash FROM {table} ORDER BY seq")]
    edge = CompactRange()
    nodes = [node for leaf in leaves for node in edge.append(leaf)]
    statements = [f"DELETE FROM {subject.table('tlog_nodes')}"]
    subject.sql(*statements)
    for (level, idx), value in nodes:
        subject.sql(
            f"INSERT INTO {subject.table('tlog_nodes')} VALUES (?, ?, ?)", args=(level, idx, value)
        )


def test_a_consistent_rewrite_is_blamed_on_its_seq_not_the_checkpoint(subject: Subject) -> None:
    target = subject.receipts[9]
    entry = target.entry()
    entry["payload"] = {**entry["payload"], "reasonCode": "rewritten"}
    data = canonical_bytes(entry)
    table = subject.table("ledger_events_v0")
    payload = json.dumps(entry["payload"])
    subject.sql(
        f"UPDATE {table} SET payload = ?, entry = ?, leaf_hash = ? WHERE seq = 9",
        args=(payload, data, leaf_hash(data)),
    )
    _rebuild_nodes(subject)
    error = verify_fails(subject)
    lead = error["errors"][0]
    if subject.backend == "sqlite":  # a tree head per commit: exact
        assert lead == {"pointer": "/seq/9", "message": lead["message"]}
        assert error["message"].startswith("audit failed at seq 9: altered")
    else:  # integrated in one step up to the first checkpoint: the range it allows
        assert "one of seqs 0..19" in error["message"]
    assert {
        "pointer": "/checkpoint/20",
        "message": "the checkpoint of size 20 no longer matches",
    } in (error["errors"])
    refuses(subject, "prove", target.id)


def test_a_forged_row_is_named(subject: Subject) -> None:
    table = subject.table("ledger_events_v0")
    columns = (
        "domain, event_type, entity_type, entity_id, owner_user_id, occurred_at, recorded_at, op, "
        "logical_id, supersedes_id, revision, producer, payload, correlation_id, entry, leaf_hash"
    )
    new_id = "'00000000-0000-4000-8000-000000000001'"
    columns = columns.replace("logical_id, ", "")
    subject.sql(
        f"INSERT INTO {table} (seq, id, logical_id, {columns}) "
        f"SELECT {TOTAL}, {new_id}, {new_id}, {columns} FROM {table} WHERE seq = 5"
    )
    verify_fails(subject, f"seq {TOTAL} (id 00000000-0000-4000-8000-000000000001): its id column")
    checkpoint_explains(subject)


@pytest.mark.backends("sqlite")
def test_a_consistent_forged_row_is_not_in_the_tree(subject: Subject) -> None:
    entry = {**subject.receipts[5].entry(), "id": "00000000-0000-4000-8000-000000000002"}
    forged = Receipt.from_entry(TOTAL, {**entry, "logical_id": entry["id"]})
    values = (*forged[:15], forged.correlation_id, forged.entry_bytes, forged.leaf_hash)
    values = (*values[:14], json.dumps(forged.payload), *values[15:])
    marks = ", ".join("?" * 18)
    subject.sql(
        "INSERT INTO ledger_events_v0 (seq, id, domain, event_type, entity_type, entity_id, "
        "owner_user_id, occurred_at, recorded_at, op, logical_id, supersedes_id, revision, "
        f"producer, payload, correlation_id, entry, leaf_hash) VALUES ({marks})",
        args=values,
    )
    verify_fails(subject, f"audit failed at seq {TOTAL}: seqs {TOTAL}..{TOTAL} are not in the")


def test_an_altered_tree_node_is_named(subject: Subject) -> None:
    subject.sql(
        f"UPDATE {subject.table('tlog_nodes')} SET hash = ? WHERE level = 2 AND idx = 3",
        args=(b"\x07" * 32,),
    )
    verify_fails(subject, "Merkle node (2, 3) covering seqs 12..15 was altered")
    refuses(subject, "prove", subject.receipts[9].id)  # node (2, 3) is in its proof


@pytest.mark.parametrize("what", ["root column", "signed note"])
def test_an_altered_checkpoint_is_named(subject: Subject, what: str) -> None:
    table = subject.table("tlog_checkpoints")
    if what == "root column":
        subject.sql(f"UPDATE {table} SET root_hash = ? WHERE size = 20", args=(b"\x01" * 32,))
        verify_fails(subject, "checkpoint of size 20 was altered: its columns differ")
    else:
        (note,) = subject.rows(f"SELECT note FROM {table} WHERE size = 20")[0]
        forged = note.replace("\n20\n", "\n21\n", 1)
        subject.sql(f"UPDATE {table} SET note = ? WHERE size = 20", args=(forged,))
        verify_fails(subject, "checkpoint of size 20 was altered:")


def test_get_and_prove_refuse_a_row_whose_bytes_no_longer_match(subject: Subject) -> None:
    target = subject.receipts[3]
    subject.sql(
        f"UPDATE {subject.table('ledger_events_v0')} SET leaf_hash = ? WHERE seq = 3",
        args=(b"\x02" * 32,),
    )
    for command in ("get", "prove"):
        code, out, err = subject.cli(command, target.id)
        assert (code, out) == (1, "")
        error = json.loads(err)
        assert error["code"] == "tampered"
        assert error["message"].startswith(f"receipt seq 3 (id {target.id}) was altered")


def test_a_forged_row_the_ledger_would_not_write_is_named(subject: Subject) -> None:
    """Not yet in the tree, well-formed, but no writer may write it: a client's payment."""
    table = subject.table("ledger_events_v0")
    base = subject.receipts[5]
    entry = {**base.entry(), "id": "00000000-0000-4000-8000-000000000003", "producer": "client"}
    entry.update(logical_id=entry["id"], event_type="refund_approved")
    entry["payload"] = {**entry["payload"], "source": "client"}
    forged = Receipt.from_entry(TOTAL, entry)
    values = (*forged[:15], forged.correlation_id, forged.entry_bytes, forged.leaf_hash)
    values = (*values[:14], json.dumps(forged.payload), *values[15:])
    cast = "?::jsonb" if subject.backend == "postgres" else "?"
    marks = ", ".join(["?"] * 14 + [cast] + ["?"] * 3)
    subject.sql(
        f"INSERT INTO {table} (seq, id, domain, event_type, entity_type, entity_id, "
        "owner_user_id, occurred_at, recorded_at, op, logical_id, supersedes_id, revision, "
        f"producer, payload, correlation_id, entry, leaf_hash) VALUES ({marks})",
        args=values,
    )
    verify_fails(subject, f"audit failed at seq {TOTAL} (id {entry['id']}): not a receipt")
