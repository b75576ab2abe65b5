"""The Merkle log over a real store: integration, checkpoints, proofs, bundles, audit, tampering."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest

from receipts import Ledger, NotFoundError, SigningKeyError, VerificationError, merkle
from receipts.bundle import Bundle
from receipts.cli.demo import story
from receipts.store import sqlite as sqlite_store
from receipts.tlog import (
    Checkpoint,
    Signer,
    TlogProof,
    Verifier,
    root_from_leaf_hashes,
    verify_consistency,
)

ORIGIN = "example.com/receipts-test"


def _requests(n: int) -> list[dict]:
    base = dict(story()[3][1])  # a payment_intent_created request
    out = []
    for i in range(n):
        r = {k: v for k, v in base.items() if k != "id"}
        r["entity_id"] = f"pi_{i}"
        r["payload"] = {**base["payload"], "amount": i}
        out.append(r)
    return out


@pytest.fixture
def signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def log(ledger_url: str, signer: Signer) -> Ledger:
    ledger = Ledger.open(ledger_url, signer=signer)
    yield ledger
    ledger.close()


def _raw(log: Ledger) -> sqlite3.Connection:
    return sqlite3.connect(log.store.path)  # type: ignore[attr-defined]


def test_appends_are_integrated_in_their_own_transaction(log: Ledger) -> None:
    log.integrate_on_append = True  # the SQLite default; PostgreSQL integrates in the background
    stored = log.append_batch(_requests(5)) + log.append_batch(_requests(6))
    with log.store.read() as txn:
        assert txn.tree_size() == 11
    assert log.root().root_hash == root_from_leaf_hashes([r.leaf_hash for r in stored])


def test_roots_match_a_naive_tree_for_every_size(log: Ledger) -> None:
    stored = log.append_batch(_requests(70))
    log.integrate()
    leaves = [r.leaf_hash for r in stored]
    for size in range(0, 71):
        assert log.root(size).root_hash == root_from_leaf_hashes(leaves[:size])


def test_integration_in_chunks_equals_one_pass(log: Ledger, monkeypatch) -> None:
    monkeypatch.setattr(merkle, "INTEGRATE_CHUNK", 3)
    log.integrate_on_append = False
    stored = log.append_batch(_requests(20))
    head = log.integrate()
    assert head.size == 20
    assert head.root_hash == root_from_leaf_hashes([r.leaf_hash for r in stored])


def test_integrating_a_large_backlog_in_one_pass(log: Ledger) -> None:
    """Thousands of receipts integrated at once: root, audit and proofs across the tree."""
    log.integrate_on_append = False
    stored = log.append_batch(_requests(2500))
    head = log.integrate()
    assert head.root_hash == root_from_leaf_hashes([r.leaf_hash for r in stored])
    log.checkpoint()
    assert log.audit().receipts == 2500
    for index in (0, 1023, 1024, 2048, 2499):
        bundle = log.prove(stored[index].id)
        assert bundle.entry == stored[index].entry()


def test_checkpoint_is_a_signed_c2sp_note_and_history_is_kept(log: Ledger, signer: Signer) -> None:
    log.append_batch(_requests(5))
    first = log.checkpoint()
    cp = Checkpoint.open(first.note, signer.verifier())
    assert (cp.origin, cp.size) == (ORIGIN, 5)
    assert first.note.startswith(f"{ORIGIN}\n5\n")
    assert log.checkpoint() == first  # nothing new: no new signature
    log.append_batch(_requests(3))
    second = log.checkpoint()
    assert second.size == 8
    with log.store.read() as txn:
        assert [c.size for c in txn.checkpoints()] == [5, 8]


def test_checkpoint_without_a_key_says_how_to_make_one(tmp_path: Path) -> None:
    with (
        Ledger.open(tmp_path / "nokey.db") as ledger,
        pytest.raises(SigningKeyError, match="receipts keys generate"),
    ):
        ledger.checkpoint()


def test_every_receipt_proves_offline_at_every_checkpoint(log: Ledger, signer: Signer) -> None:
    stored = []
    for n in (1, 2, 5, 9):
        stored += log.append_batch(_requests(n))
        log.checkpoint()
    verifier = signer.verifier()
    for size in (1, 3, 8, 17):
        for r in stored[:size]:
            bundle = Bundle.from_json(log.prove(r.id, size).to_json())
            result = bundle.verify(verifier)
            assert (result.index, result.checkpoint.size) == (r.seq, size)
            assert bundle.entry == r.entry()


def test_prove_needs_a_covering_checkpoint(log: Ledger) -> None:
    first = log.append_batch(_requests(2))
    with pytest.raises(NotFoundError, match="no checkpoint yet"):
        log.prove(first[0].id)
    log.checkpoint()
    late = log.append_batch(_requests(1))[0]
    with pytest.raises(NotFoundError, match="not covered by the checkpoint of size 2"):
        log.prove(late.id)
    with pytest.raises(NotFoundError, match="no checkpoint of size 7"):
        log.prove(first[0].id, 7)


def test_consistency_proofs_between_all_checkpoints_verify(log: Ledger) -> None:
    for n in (1, 1, 3, 4, 7, 16):
        log.append_batch(_requests(n))
        log.checkpoint()
    with log.store.read() as txn:
        cps = list(txn.checkpoints())
    for old in cps:
        for new in cps:
            if old.size <= new.size:
                proof = log.consistency(old.size, new.size)
                verify_consistency(old.size, new.size, proof, old.root_hash, new.root_hash)


@pytest.mark.backends("sqlite")  # tampers through a raw sqlite3 connection
def test_proofs_read_logarithmically_many_nodes(log: Ledger, monkeypatch) -> None:
    stored = log.append_batch(_requests(300))
    log.checkpoint()
    reads: list[int] = []

    original = sqlite_store._Txn.node_hashes

    def counting(self, nodes):
        reads.append(len(nodes))
        return original(self, nodes)

    monkeypatch.setattr(sqlite_store._Txn, "node_hashes", counting)
    bound = 2 * math.ceil(math.log2(300)) + 2
    for r in stored[::37]:
        reads.clear()
        log.prove(r.id)
        assert sum(reads) <= bound
    reads.clear()
    log.consistency(37, 300)
    assert sum(reads) <= bound


@pytest.mark.backends("sqlite")  # tampers through a raw sqlite3 connection
def test_signing_refuses_a_tree_inconsistent_with_the_last_checkpoint(log: Ledger) -> None:
    log.append_batch(_requests(8))
    log.checkpoint()
    log.append_batch(_requests(8))
    log.integrate()
    with _raw(log) as db:
        db.execute("DROP TRIGGER tlog_nodes_no_update")
        # (4, 0) is the root of the 16-leaf tree about to be signed.
        db.execute("UPDATE tlog_nodes SET hash = randomblob(32) WHERE level = 4 AND idx = 0")
    with pytest.raises(VerificationError, match="refusing to sign"):
        log.checkpoint()


def test_audit_passes_on_an_honest_log(log: Ledger, signer: Signer) -> None:
    log.append_batch(_requests(40))
    log.checkpoint()
    log.integrate_on_append = False
    log.append_batch(_requests(3))  # sequenced but not yet integrated
    seen: list[int] = []
    report = log.audit(signer.verifier(), progress=seen.append)
    assert (report.receipts, report.tree_size, report.checkpoints) == (43, 40, 1)
    assert report.signatures_checked and sum(seen) == 43


def _tamper(log: Ledger, sql: str) -> None:
    with _raw(log) as db:
        db.execute("DROP TRIGGER IF EXISTS ledger_events_v0_no_update")
        db.execute(sql)


@pytest.mark.backends("sqlite")  # tampers through a raw sqlite3 connection
def test_audit_names_an_edited_payload(log: Ledger) -> None:
    stored = log.append_batch(_requests(10))
    log.checkpoint()
    _tamper(
        log, "UPDATE ledger_events_v0 SET payload = replace(payload, ':6,', ':66,') WHERE seq = 6"
    )
    with pytest.raises(VerificationError) as caught:
        log.audit()
    assert caught.value.message == (
        f"audit failed at seq 6 (id {stored[6].id}): its payload column differs from its entry"
    )
    assert caught.value.errors[0].pointer == "/seq/6"


@pytest.mark.backends("sqlite")  # tampers through a raw sqlite3 connection
def test_audit_names_edited_entry_bytes(log: Ledger) -> None:
    stored = log.append_batch(_requests(10))
    _tamper(
        log,
        "UPDATE ledger_events_v0 SET entity_id = 'pi_x', "
        "entry = CAST(replace(CAST(entry AS TEXT), 'pi_3', 'pi_x') AS BLOB) WHERE seq = 3",
    )
    with pytest.raises(VerificationError, match=f"seq 3 \\(id {stored[3].id}\\): its leaf_hash"):
        log.audit()


@pytest.mark.backends("sqlite")  # tampers through a raw sqlite3 connection
def test_audit_names_a_swapped_leaf_hash_and_a_bad_checkpoint(log: Ledger, signer: Signer) -> None:
    log.append_batch(_requests(4))
    log.checkpoint()
    with _raw(log) as db:
        db.execute("DROP TRIGGER tlog_checkpoints_no_update")
        forged = Checkpoint(ORIGIN, 4, b"\x01" * 32).sign(signer)
        db.execute("UPDATE tlog_checkpoints SET note = ? WHERE size = 4", (forged,))
    with pytest.raises(VerificationError, match="checkpoint of size 4 was altered: its columns"):
        log.audit(signer.verifier())
    other = Verifier.from_key_string(Signer.generate(ORIGIN).verifier().to_key_string())
    with pytest.raises(VerificationError, match="checkpoint of size 4"):
        log.audit(other)


@pytest.mark.backends("sqlite")  # tampers through a raw sqlite3 connection
def test_audit_names_a_deleted_row(log: Ledger) -> None:
    log.append_batch(_requests(5))
    with _raw(log) as db:
        db.execute("DROP TRIGGER ledger_events_v0_no_delete")
        db.execute("DELETE FROM ledger_events_v0 WHERE seq = 2")
    with pytest.raises(VerificationError, match="audit failed at seq 2: missing"):
        log.audit()


def test_bundle_text_round_trips(log: Ledger) -> None:
    r = log.append_batch(_requests(3))[1]
    log.checkpoint()
    bundle = log.prove(r.id)
    again = Bundle.from_json(bundle.to_json())
    assert again == bundle
    assert TlogProof.from_text(bundle.proof).to_text() == bundle.proof
