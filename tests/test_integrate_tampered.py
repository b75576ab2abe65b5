"""Integration over a journal altered behind the ledger's back: it names what is wrong, goes as
far as it can prove, and never ends in a traceback or a raw database error."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from pg import connect_as, insert_sql
from receipts import Ledger, TamperedError, UnprovableReceiptError
from receipts.bundle import Bundle
from receipts.cli.demo import story
from receipts.tlog import Signer, verify_consistency

RECEIPTS = str(Path(sys.executable).with_name("receipts"))
A = str(uuid.uuid4())
MAGNITUDE = "expected a number of magnitude at most 9007199254740991 (2^53-1)"
INEXACT = "expected a number exactly representable as an IEEE-754 double"


def requests(n: int) -> list[dict]:
    base = {k: v for k, v in story()[3][1].items() if k != "id"}  # payment_intent_created
    return [{**base, "entity_id": f"pi_{i}"} for i in range(n)]


def refund(entity_id: str) -> dict:
    return {
        "domain": "payments",
        "event_type": "refund_requested",
        "entity_type": "refund",
        "entity_id": entity_id,
        "payload": {"paymentIntentId": "pi_1", "requestedByUserId": "u", "reasonCode": "sick"},
    }


def sneak_in(url: str, payload: str, occurred_at: str = "2026-01-02T10:00:00Z") -> tuple[int, str]:
    """Insert a row as the tables' owner with the insert trigger disabled (which any owner may
    do, superuser or not): nothing checks it. Returns its seq and id."""
    receipt_id = str(uuid.uuid4())
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            "ALTER TABLE public.ledger_events_v0 DISABLE TRIGGER ledger_events_v0_before_insert"
        )
        (seq,) = conn.execute(
            "INSERT INTO public.ledger_events_v0 (seq, id, logical_id, revision, domain, "
            "event_type, entity_type, entity_id, owner_user_id, producer, occurred_at, "
            "recorded_at, payload) SELECT coalesce(max(seq), -1) + 1, %s, %s, 0, 'payments', "
            "'refund_requested', 'refund', 'rf_bad', %s, 'client', %s, now(), %s "
            "FROM public.ledger_events_v0 RETURNING seq",
            (receipt_id, receipt_id, A, occurred_at, payload),
        ).fetchone()
        conn.execute(
            "ALTER TABLE public.ledger_events_v0 ENABLE TRIGGER ledger_events_v0_before_insert"
        )
    return seq, receipt_id


PAYLOAD = '{"paymentIntentId": "pi_1", "requestedByUserId": "u", "reasonCode": "x", '
BAD_ROWS = [
    (PAYLOAD + '"n": 9007199254740993}', {}, f"/payload/n: {MAGNITUDE}"),
    (PAYLOAD + '"n": 1e400}', {}, f"/payload/n: {MAGNITUDE}"),
    (PAYLOAD + '"n": 1.0000000000000000001}', {}, f"/payload/n: {INEXACT} (nearest: 1)"),
    (PAYLOAD + '"deep": ' + "[" * 99 + "]" * 99 + "}", {}, "levels of nested"),
    (PAYLOAD + '"n": 1}', {"occurred_at": "infinity"}, "/occurred_at: expected a time"),
]


@pytest.mark.parametrize(("payload", "fields", "why"), BAD_ROWS)
def test_a_row_that_got_in_unchecked_stops_integration_just_before_it(
    pg_url: str, payload: str, fields: dict, why: str
) -> None:
    signer = Signer.generate("example.com/tampered")
    with Ledger.open(pg_url, signer=signer) as ledger:
        first = ledger.append_batch(requests(3))
        ledger.checkpoint()
        with connect_as(pg_url, "authenticated", A) as conn:
            insert_sql(conn, refund("rf_direct"))  # seq 3, integrated from its row
        seq, bad_id = sneak_in(pg_url, payload, **fields)
        ledger.append_batch(requests(2))
        assert seq == 4 and ledger.size() == 7

        result = subprocess.run(
            [RECEIPTS, "--db", pg_url, "integrate"], capture_output=True, text=True
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr
        error = json.loads(result.stderr)
        assert error["code"] == "unprovable_receipt"
        assert error["message"].startswith(f"receipt seq 4 (id {bad_id}) cannot be integrated: ")
        assert why in error["message"]
        assert [e["pointer"] for e in error["errors"]] == ["/seq/4"]
        assert ledger.root().size == 4  # every receipt before it is in the tree

        for again in (ledger.integrate, ledger.checkpoint):  # the same answer, every time
            with pytest.raises(UnprovableReceiptError) as caught:
                again()
            assert (caught.value.message, caught.value.seq) == (error["message"], 4)
        bundle = ledger.prove(first[1].id)  # proofs of receipts before it keep working
        Bundle.from_json(bundle.to_json()).verify(signer.verifier())
        old, new = ledger.root(3), ledger.root(4)
        verify_consistency(3, 4, ledger.consistency(3, 4), old.root_hash, new.root_hash)


def test_integration_names_a_row_even_past_replaced_database_rules(pg_url: str) -> None:
    # The rules function replaced by a permissive one (an older or edited database): the
    # row's bytes still cannot be made, and integration says which row and why.
    with Ledger.open(pg_url) as ledger:
        ledger.append_batch(requests(2))
        ledger.store.execute(  # type: ignore[attr-defined]
            "CREATE OR REPLACE FUNCTION receipts_private.ledger_row_problem(occurred_at "
            "timestamptz, recorded_at timestamptz, payload jsonb) RETURNS text[] "
            "LANGUAGE sql AS 'SELECT NULL::text[]'"
        )
        for number in ("1e400", "9007199254740993"):
            seq, bad_id = sneak_in(pg_url, PAYLOAD + f'"n": {number}}}')
            with pytest.raises(UnprovableReceiptError) as caught:
                ledger.integrate()
            assert caught.value.message.startswith(
                f"receipt seq {seq} (id {bad_id}) cannot be integrated: "
            )
            assert ledger.root().size == seq
            ledger.store.execute(  # type: ignore[attr-defined]
                "ALTER TABLE public.ledger_events_v0 DISABLE TRIGGER ledger_events_v0_no_change"
            )
            ledger.store.execute("DELETE FROM public.ledger_events_v0 WHERE seq = %s", (seq,))  # type: ignore[attr-defined]
            ledger.store.execute(  # type: ignore[attr-defined]
                "ALTER TABLE public.ledger_events_v0 ENABLE TRIGGER ledger_events_v0_no_change"
            )


def delete_seqs(ledger: Ledger, backend: str, first: int, last: int) -> None:
    """Delete journal rows with the append-only triggers out of the way, as an owner can."""
    execute = ledger.store.execute  # type: ignore[attr-defined]
    if backend == "sqlite":
        execute("DROP TRIGGER IF EXISTS ledger_events_v0_no_delete")
        execute("DELETE FROM ledger_events_v0 WHERE seq BETWEEN ? AND ?", (first, last))
    else:
        execute("ALTER TABLE public.ledger_events_v0 DISABLE TRIGGER ledger_events_v0_no_change")
        execute("DELETE FROM public.ledger_events_v0 WHERE seq BETWEEN %s AND %s", (first, last))


def test_a_journal_shorter_than_its_tree_is_refused(ledger_url: str, backend: str) -> None:
    with Ledger.open(ledger_url, signer=Signer.generate("example.com/tampered")) as ledger:
        ledger.append_batch(requests(6))
        assert ledger.checkpoint().size == 6
        delete_seqs(ledger, backend, 4, 5)
        expected = (
            "the tree covers 6 receipts but the journal holds 4: seqs 4..5 are missing; "
            "run `receipts verify`"
        )
        for step in (ledger.checkpoint, ledger.integrate):
            with pytest.raises(TamperedError) as caught:
                step()
            assert caught.value.message == expected
        ledger.append(requests(1)[0])
        with pytest.raises(TamperedError, match=r"holds 5: seq 5 is missing; run"):
            ledger.checkpoint()
        assert ledger.root().size == 6


def test_a_gap_in_what_is_left_to_integrate_is_refused(ledger_url: str, backend: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        ledger.integrate_on_append = False
        ledger.append_batch(requests(3))
        assert ledger.integrate().size == 3
        ledger.append_batch(requests(3))
        delete_seqs(ledger, backend, 4, 4)
        with pytest.raises(TamperedError) as caught:
            ledger.integrate()
        assert caught.value.message == (
            "the journal holds 2 receipts with seqs 3..5, expected 3: a row was deleted"
        )
        assert ledger.root().size == 3
