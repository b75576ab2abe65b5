"""PostgreSQL/Supabase specifics on a real server: migrations, RLS, direct SQL inserts, COPY
import, concurrent writers. (Behaviour shared with SQLite is tested once, on both backends.)"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from pg import connect_as, insert_sql
from receipts import Ledger, StorageError, ValidationError
from receipts.cli.demo import story
from receipts.store.postgres import PostgresStore

RECEIPTS = str(Path(sys.executable).with_name("receipts"))
A, B = str(uuid.uuid4()), str(uuid.uuid4())


def refund(entity_id: str, owner: str | None) -> dict:
    return {
        "domain": "payments",
        "event_type": "refund_requested",
        "entity_type": "refund",
        "entity_id": entity_id,
        "owner_user_id": owner,
        "payload": {
            "paymentIntentId": "pi_1",
            "requestedByUserId": owner or "x",
            "reasonCode": "sick",
        },
    }


@pytest.fixture
def shared(pg_url: str) -> dict:
    """A's and B's private receipts, B's community receipt granted to A, a server receipt."""
    with Ledger.open(pg_url) as ledger:
        made = {
            "a": ledger.append(refund("rf_a", A), producer="client"),
            "b": ledger.append(refund("rf_b", B), producer="client"),
            "community": ledger.append(
                {
                    "domain": "expertise",
                    "event_type": "community_joined",
                    "owner_user_id": B,
                    "entity_type": "community",
                    "entity_id": "cm_1",
                    "payload": {"role": "member"},
                },
                producer="client",
            ),
            "server": ledger.append(story()[3][1]),
        }
        ledger.store.execute(  # type: ignore[attr-defined]
            "INSERT INTO public.ledger_audience_v0 (entity_type, entity_id, user_id) "
            "VALUES ('community', 'cm_1', %s)",
            (A,),
        )
    return {k: v.id for k, v in made.items()}


def visible(conn: psycopg.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT id::text FROM public.ledger_events_v0")}


def test_a_reads_only_own_and_granted_rows(pg_url: str, shared: dict) -> None:
    with connect_as(pg_url, "authenticated", A) as conn:
        assert visible(conn) == {shared["a"], shared["community"]}
        current = {r[0] for r in conn.execute("SELECT id::text FROM public.ledger_current_v0")}
        assert current == {shared["a"], shared["community"]}


def test_service_role_reads_everything_and_anon_nothing(pg_url: str, shared: dict) -> None:
    with connect_as(pg_url, "service_role") as conn:
        assert visible(conn) == set(shared.values())
    with connect_as(pg_url, "anon") as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        visible(conn)


def test_a_cannot_insert_for_b(pg_url: str, shared: dict) -> None:
    with connect_as(pg_url, "authenticated", A) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            insert_sql(conn, refund("rf_forged", B))
        seq, _, producer, owner = insert_sql(conn, refund("rf_own", None))  # owner filled in
        assert (seq, producer, owner) == (4, "client", A)


def test_a_cannot_revise_bs_event_but_can_revise_own(pg_url: str, shared: dict) -> None:
    with connect_as(pg_url, "authenticated", A) as conn:
        amend_b = {**refund("rf_b", A), "op": "amend", "supersedes_id": shared["b"]}
        with pytest.raises(psycopg.Error, match="amend supersedes an unknown receipt"):
            insert_sql(conn, amend_b)
        amend_a = {**refund("rf_a", A), "op": "amend", "supersedes_id": shared["a"]}
        insert_sql(conn, amend_a)
    with Ledger.open(pg_url) as ledger:
        assert [r.revision for r in ledger.history("refund:rf_a")] == [0, 1]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE public.ledger_events_v0 SET entity_id = 'x'",
        "DELETE FROM public.ledger_events_v0",
        "TRUNCATE public.ledger_events_v0 CASCADE",  # CASCADE: past the foreign key
    ],
)
@pytest.mark.parametrize("role", ["authenticated", "service_role", "owner"])
def test_nobody_updates_deletes_or_truncates(
    pg_url: str, shared: dict, sql: str, role: str
) -> None:
    if role == "owner":
        conn = psycopg.connect(pg_url, autocommit=True)
        refusal = "append-only"  # the trigger, even for the table's owner
    else:
        conn = connect_as(pg_url, role, A)
        refusal = "permission denied|append-only"
    with conn, pytest.raises(psycopg.Error, match=refusal):
        conn.execute(sql)
    with Ledger.open(pg_url) as ledger:
        assert ledger.size() == 4


def test_only_service_role_writes_audience_grants(pg_url: str, shared: dict) -> None:
    grant = (
        "INSERT INTO public.ledger_audience_v0 (entity_type, entity_id, user_id) "
        "VALUES (%s, %s, %s)"
    )
    with connect_as(pg_url, "authenticated", A) as conn, pytest.raises(psycopg.Error):
        conn.execute(grant, ("refund", "rf_b", A))
    with connect_as(pg_url, "service_role") as conn:
        conn.execute(grant, ("refund", "rf_b", A))
    with connect_as(pg_url, "authenticated", A) as conn:
        assert shared["b"] in visible(conn)


def test_direct_inserts_are_checked_against_the_catalog(pg_url: str, shared: dict) -> None:
    with connect_as(pg_url, "authenticated", A) as conn:
        cases = [
            ({**refund("rf_1", A), "event_type": "refund_requestd"}, "unknown event type"),
            ({**refund("rf_1", A), "domain": "moderation"}, "belongs to domain 'payments'"),
            ({**refund("rf_1", A), "entity_type": "user"}, "expected one of {refund}"),
            ({**refund("rf_1", A), "payload": {"paymentIntentId": "pi"}}, "required property"),
            ({**refund("rf_1", A), "payload": {**refund("x", A)["payload"], "source": "edge"}},
             "contradicts the writer's producer 'client'"),
            ({**story()[4][1], "id": None, "owner_user_id": A}, "may not write 'payment_captured'"),
        ]  # fmt: skip
        for request, message in cases:
            with pytest.raises(psycopg.Error, match=message):
                insert_sql(conn, {k: v for k, v in request.items() if v is not None})


def test_domain_check_is_generated_from_the_catalog(pg_url: str) -> None:
    with Ledger.open(pg_url) as ledger:
        (check,) = ledger.store.execute(  # type: ignore[attr-defined]
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conname = 'ledger_events_v0_domain_check'"
        )[0]
        for domain in ledger.catalog.domains:
            assert f"'{domain}'" in check
        rows = ledger.store.execute("SELECT count(*) FROM public.ledger_catalog_v0")  # type: ignore[attr-defined]
        assert rows[0][0] == len(ledger.catalog)


def test_direct_inserts_are_sequenced_integrated_and_audited(pg_url: str, tmp_path: Path) -> None:
    with Ledger.open(pg_url) as ledger:
        ledger.append(refund("rf_lib", A), producer="client")
        with connect_as(pg_url, "authenticated", A) as conn:
            seqs = [insert_sql(conn, refund(f"rf_direct_{i}", A))[0] for i in range(3)]
        ledger.append(refund("rf_lib2", A), producer="client")
        assert seqs == [1, 2, 3] and ledger.size() == 5
    result = subprocess.run([RECEIPTS, "--db", pg_url, "integrate"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["size"] == 5
    with Ledger.open(pg_url) as ledger:
        report = ledger.audit()
        assert (report.receipts, report.tree_size) == (5, 5)
        direct = ledger.get(ledger.query(entity="refund:rf_direct_1").__next__().id)
        assert direct.producer == "client" and direct.payload["source"] == "client"
        ledger.store.execute(  # type: ignore[attr-defined]
            "ALTER TABLE public.ledger_events_v0 DISABLE TRIGGER ledger_events_v0_no_change"
        )
        ledger.store.execute(  # type: ignore[attr-defined]
            "UPDATE public.ledger_events_v0 SET entity_id = 'rf_evil' WHERE seq = 2"
        )
        with pytest.raises(Exception, match="audit failed at seq 2"):
            ledger.audit()


def test_migrations_apply_twice_and_keep_supabase_functions(pg_template: str) -> None:
    from pg import admin, url_for

    name = f"receipts_mig_{uuid.uuid4().hex[:8]}"
    with admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = url_for(name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:  # what a Supabase project has
            conn.execute("CREATE SCHEMA auth")
            conn.execute(
                "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS "
                "$$ SELECT '00000000-0000-0000-0000-000000000001'::uuid $$"
            )
        first = PostgresStore(url)
        assert [m.split("_")[0] for m in first.applied] == [
            "0001",
            "0002",
            "0003",
            "0004",
            "0005",
            "0006",
            "0007",
            "0008",
            "0009",
            "0010",
            "0011",
            "0012",
        ]
        first.close()
        second = PostgresStore(url)
        assert second.applied == []
        second.close()
        for _ in range(2):
            result = subprocess.run(
                [RECEIPTS, "--db", url, "migrate"], capture_output=True, text=True
            )
            assert result.returncode == 0 and json.loads(result.stdout)["applied"] == []
        with psycopg.connect(url) as conn:
            uid = conn.execute("SELECT auth.uid()::text").fetchone()[0]
        assert uid == "00000000-0000-0000-0000-000000000001"  # not replaced by the shim
    finally:
        with admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_driver_errors_never_leak(pg_url: str) -> None:
    with pytest.raises(StorageError):
        Ledger.open("postgresql://postgres@127.0.0.1:1/nowhere?connect_timeout=2")
    with Ledger.open(pg_url) as ledger:
        with pytest.raises(ValidationError) as caught:
            ledger.store.execute(  # type: ignore[attr-defined]
                "INSERT INTO public.ledger_events_v0 (domain, event_type, entity_type, entity_id, "
                "payload) VALUES ('payments', 'refund_requested', 'user', 'x', '{}')"
            )
        assert caught.value.errors[0].pointer == "/entity_type"


def test_import_uses_copy_and_reports_rejected_lines(pg_url: str, tmp_path: Path) -> None:
    lines = [refund(f"rf_{i}", A) for i in range(25)]
    lines[13]["payload"] = {"paymentIntentId": 7}
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    result = subprocess.run(
        [RECEIPTS, "--db", pg_url, "import", str(path), "--batch-size", "10"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (report["stored"], report["receipts"]) == (24, 24)
    assert report["committed"] == [[1, 13], [15, 25]]
    (rejected,) = report["rejected"]
    assert rejected["line"] == 14
    assert {e["pointer"] for e in rejected["errors"]} >= {"/payload/paymentIntentId"}


WRITER = """
import sys
from receipts import Ledger
url, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with Ledger.open(url) as ledger:
    for i in range(n):
        ledger.append({"domain": "payments", "event_type": "refund_requested",
                       "entity_type": "refund", "entity_id": f"rf_{tag}_{i}",
                       "payload": {"paymentIntentId": "pi", "requestedByUserId": tag,
                                   "reasonCode": "bulk"}})
"""

DIRECT = """
import json, sys, psycopg
url, n, sub = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute("SET ROLE authenticated")
    conn.execute("SELECT set_config('request.jwt.claims', %s, false)",
                 (json.dumps({"sub": sub, "role": "authenticated"}),))
    for i in range(n):
        conn.execute("INSERT INTO public.ledger_events_v0 (domain, event_type, entity_type, "
                     "entity_id, payload) VALUES ('payments', 'refund_requested', 'refund', "
                     "%s, %s)",
                     (f"rf_direct_{i}", json.dumps({"paymentIntentId": "pi",
                      "requestedByUserId": sub, "reasonCode": "direct"})))
"""


@pytest.mark.slow
def test_sixteen_concurrent_writers_get_dense_unique_seqs(pg_url: str) -> None:
    writers, per_writer, direct = 16, 2000, 500
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, pg_url, str(per_writer), f"w{w}"])
        for w in range(writers)
    ] + [subprocess.Popen([sys.executable, "-c", DIRECT, pg_url, str(direct), A])]
    assert [p.wait(timeout=600) for p in procs] == [0] * len(procs)
    total = writers * per_writer + direct
    with Ledger.open(pg_url) as ledger:
        seqs, ids = zip(
            *ledger.store.execute("SELECT seq, id FROM public.ledger_events_v0 ORDER BY seq"),  # type: ignore[attr-defined]
            strict=True,
        )
        assert list(seqs) == list(range(total))
        assert len(set(ids)) == total
        ledger.integrate()
        assert ledger.audit().receipts == total
