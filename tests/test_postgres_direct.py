"""Direct SQL inserts on PostgreSQL (a Supabase client through RLS, psql): the journal's trigger
refuses what the ledger could not canonicalise, with the rules generated from receipts.limits."""

from __future__ import annotations

import uuid

import orjson
import psycopg
import pytest

from pg import connect_as, insert_sql
from receipts import Ledger, ValidationError
from receipts.limits import MAX_DEPTH, MAX_SAFE_INTEGER, max_receipt_bytes
from receipts.model import entry_bytes

A = str(uuid.uuid4())
INEXACT = "expected a number exactly representable as an IEEE-754 double"
MAGNITUDE = "expected a number of magnitude at most 9007199254740991 (2^53-1)"
TIME = "expected a time in the years 1 to 9999 UTC"


def refund(payload_extra: str = "", **fields: object) -> dict:
    """A refund request by A with raw JSON appended to its payload (numbers stay as written)."""
    payload = '{"paymentIntentId": "pi_1", "requestedByUserId": "u", "reasonCode": "sick"'
    return {
        "domain": "payments",
        "event_type": "refund_requested",
        "entity_type": "refund",
        "entity_id": "rf_1",
        "payload": payload + payload_extra + "}",
        **fields,
    }


def nested(levels: int) -> str:
    """A value that makes the payload ``levels`` deep (the payload object is level 1)."""
    return "[" * (levels - 1) + "0" + "]" * (levels - 1)


def stored(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM public.ledger_events_v0").fetchone()[0]


REFUSED = [
    (', "n": 9007199254740993', {}, "/payload/n", MAGNITUDE),
    (', "n": -9007199254740992', {}, "/payload/n", MAGNITUDE),
    (', "n": 1e400', {}, "/payload/n", MAGNITUDE),
    (', "n": 1e20', {}, "/payload/n", MAGNITUDE),
    (', "n": 1.0000000000000000001', {}, "/payload/n", f"{INEXACT} (nearest: 1)"),
    (', "n": 0.1000000000000000001', {}, "/payload/n", f"{INEXACT} (nearest: 0.1)"),
    (', "n": 0.10000000000000001', {}, "/payload/n", f"{INEXACT} (nearest: 0.1)"),
    (', "n": 1.50000000000001e-320', {}, "/payload/n", f"{INEXACT} (nearest: 1.5e-320)"),
    (', "n": 1e-400', {}, "/payload/n", f"{INEXACT} (nearest: 0)"),
    (', "a/b": [0, {"~c": 2.0000000000000001}]', {}, "/payload/a~1b/1/~0c", INEXACT),
    (
        f', "deep": {nested(MAX_DEPTH + 1)}',
        {},
        "/payload/deep" + "/0" * (MAX_DEPTH - 1),
        "64 levels",
    ),
    ("", {"occurred_at": "infinity"}, "/occurred_at", TIME),
    ("", {"occurred_at": "-infinity"}, "/occurred_at", TIME),
    ("", {"occurred_at": "0044-03-15 12:00:00+00 BC"}, "/occurred_at", TIME),
    ("", {"occurred_at": "10000-01-01T00:00:00Z"}, "/occurred_at", TIME),
    ("", {"occurred_at": "9999-12-31T23:00:00-05:00"}, "/occurred_at", TIME),  # 10000 in UTC
    # The correlation_id column is what `receipts trace` reads: a string, as in the payload.
    (', "correlation_id": 5', {}, "/payload/correlation_id", "expected a non-empty string"),
    (', "correlation_id": ""', {}, "/payload/correlation_id", "expected a non-empty string"),
]


@pytest.mark.parametrize(("extra", "fields", "pointer", "message"), REFUSED)
def test_the_trigger_refuses_what_the_ledger_cannot_canonicalise(
    pg_url: str, extra: str, fields: dict, pointer: str, message: str
) -> None:
    with connect_as(pg_url, "authenticated", A) as conn, pytest.raises(psycopg.Error) as caught:
        insert_sql(conn, refund(extra, **fields))
    diag = caught.value.diag
    assert (diag.sqlstate, diag.message_detail) == ("RC422", pointer)
    assert message in diag.message_primary
    assert stored(pg_url) == 0


def test_the_library_maps_the_refusal_to_a_validation_error(pg_url: str) -> None:
    with Ledger.open(pg_url) as ledger, pytest.raises(ValidationError) as caught:
        ledger.store.execute(  # type: ignore[attr-defined]
            "INSERT INTO public.ledger_events_v0 (domain, event_type, entity_type, entity_id, "
            "payload) VALUES ('payments', 'refund_requested', 'refund', 'x', %s)",
            (refund(', "n": 9007199254740993')["payload"],),
        )
    assert [(e.pointer, e.message) for e in caught.value.errors] == [("/payload/n", MAGNITUDE)]


def test_nul_characters_never_reach_the_trigger(pg_url: str) -> None:
    with connect_as(pg_url, "authenticated", A) as conn:
        for request in (refund(', "s": "a\\u0000b"'), refund(', "a\\u0000": 1')):
            with pytest.raises(psycopg.Error, match="unsupported Unicode escape sequence"):
                insert_sql(conn, request)
        with pytest.raises(psycopg.Error, match="0x00"):
            insert_sql(conn, refund(entity_id="a\x00b"))
    assert stored(pg_url) == 0


def compact_payload(size: int) -> dict:
    """A refund payload of exactly ``size`` bytes as compact JSON, with what jsonb prints
    differently: separators, and ", " / ": " / quotes / non-ASCII inside strings."""
    payload = {
        "paymentIntentId": "pi_1",
        "requestedByUserId": "u",
        "reasonCode": "sick",
        "schema_version": 0,
        "source": "client",
        "tricky": 'a, "b": c\\ é',
        "xs": [1] * 1000,
        "pad": "",
    }
    payload["pad"] = "x" * (size - len(orjson.dumps(payload)))
    assert len(orjson.dumps(payload)) == size
    return payload


def test_payload_size_is_measured_as_compact_json(pg_url: str) -> None:
    limit = max_receipt_bytes()
    with connect_as(pg_url, "authenticated", A) as conn:
        with pytest.raises(psycopg.Error) as caught:
            insert_sql(conn, {**refund(), "payload": compact_payload(limit + 1)})
        assert caught.value.diag.message_detail == "/payload"
        assert caught.value.diag.message_primary == (
            f"expected at most {limit} bytes of payload as compact JSON"
        )
        seq, *_ = insert_sql(conn, {**refund(), "payload": compact_payload(limit)})
        printed = conn.execute(
            "SELECT octet_length(payload::text) FROM public.ledger_events_v0 WHERE seq = %s",
            (seq,),
        ).fetchone()[0]
        assert printed > limit  # what jsonb prints is longer: the compact size is what counts
    with Ledger.open(pg_url) as ledger:
        assert ledger.integrate().size == 1
        assert len(orjson.dumps(next(iter(ledger.query())).payload)) == limit


ACCEPTED = (
    ', "small": 0.1, "tiny": 1e-7, "max": 9007199254740991, "min": -9007199254740991, '
    '"sub": 5e-324, "sub2": 1.5e-320, "e": 2.718281828459045, "sum": 0.30000000000000004, '
    '"zero": -0, "hundred": 1E2, '
    '"neg": -1.5e-300, "long": 123456.78901234567, "deep": ' + nested(MAX_DEPTH)
)


@pytest.mark.parametrize(
    "occurred_at", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "2026-01-02T10:00:00Z"]
)
def test_what_the_trigger_accepts_integrates_and_audits(pg_url: str, occurred_at: str) -> None:
    with connect_as(pg_url, "authenticated", A) as conn:
        insert_sql(conn, refund(ACCEPTED, occurred_at=occurred_at))
    with Ledger.open(pg_url) as ledger:
        assert ledger.integrate().size == 1
        assert ledger.audit().receipts == 1
        (receipt,) = ledger.query()
        assert receipt.occurred_at == occurred_at.replace("Z", ".000000Z").replace(
            ".999999.000000Z", ".999999Z"
        )
        assert receipt.payload["max"] == MAX_SAFE_INTEGER
        assert receipt.payload["sum"] == 0.30000000000000004
        assert entry_bytes(receipt.entry()) == receipt.entry_bytes
        assert b'"hundred":100,' in receipt.entry_bytes and b'"sub":5e-324' in receipt.entry_bytes


def test_the_rules_follow_the_limits_of_the_process_that_migrates(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = {**refund(), "payload": compact_payload(4000)}
    monkeypatch.setenv("RECEIPTS_MAX_RECEIPT_BYTES", "2048")
    Ledger.open(pg_url).close()  # `receipts migrate` regenerates the rules
    with (
        connect_as(pg_url, "authenticated", A) as conn,
        pytest.raises(psycopg.Error, match="expected at most 2048 bytes"),
    ):
        insert_sql(conn, big)
    monkeypatch.delenv("RECEIPTS_MAX_RECEIPT_BYTES")
    Ledger.open(pg_url).close()
    with connect_as(pg_url, "authenticated", A) as conn:
        insert_sql(conn, big)
    assert stored(pg_url) == 1
