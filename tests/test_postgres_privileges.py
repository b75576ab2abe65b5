"""PostgreSQL privileges, Supabase-shaped: no internal function is callable by the API roles, a
client learns nothing about receipts it cannot read, and may revise only heads it owns, checked
where the write happens (under the sequencing lock), however the race goes."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from pg import admin, connect_as, insert_sql, url_for
from receipts import Ledger

A, B = str(uuid.uuid4()), str(uuid.uuid4())
API_ROLES = ("anon", "authenticated")
TIMEOUT = 60.0  # seconds: a bound for failure only


def refund(entity_id: str, owner: str | None = None, **fields: object) -> dict:
    return {
        "domain": "payments",
        "event_type": "refund_requested",
        "entity_type": "refund",
        "entity_id": entity_id,
        **({"owner_user_id": owner} if owner else {}),
        "payload": {"paymentIntentId": "pi_1", "requestedByUserId": "u", "reasonCode": "sick"},
        **fields,
    }


def revision(op: str, supersedes: str, entity_id: str = "rf_mine") -> dict:
    request = refund(entity_id, op=op, supersedes_id=supersedes)
    if op == "void":
        request["payload"] = {"void_reason": "mistake", "voided_by": "u"}
    return request


@pytest.fixture
def supabase_url(pg_template: str) -> Iterator[str]:
    """A database shaped like a Supabase project before `receipts migrate`: its auth helpers,
    and EXECUTE on every new function in `public` granted to the API roles by default."""
    name = f"receipts_sb_{uuid.uuid4().hex[:8]}"
    with admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(url_for(name), autocommit=True) as conn:
            conn.execute(
                "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS "
                "TO anon, authenticated, service_role"
            )
        Ledger.open(url_for(name)).close()
        yield url_for(name)
    finally:
        with admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def executable(url: str) -> list[tuple[str, str]]:
    """(function, grantee) for every EXECUTE that PUBLIC, anon or authenticated hold on a
    function in a schema the migrations put functions in (Supabase's own auth.* excepted)."""
    with psycopg.connect(url) as conn:
        schemas = [
            s
            for (s,) in conn.execute(
                "SELECT DISTINCT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = "
                "p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
            )
        ]
        assert {"public", "receipts_private"} <= set(schemas)
        rows = conn.execute(
            "SELECT p.oid::regprocedure::text, r.grantee FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "CROSS JOIN unnest(ARRAY['public', 'anon', 'authenticated']) r(grantee) "
            "WHERE n.nspname = ANY(%s) AND n.nspname <> 'auth' AND CASE r.grantee "
            "  WHEN 'public' THEN p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) "
            "       a WHERE a.grantee = 0 AND a.privilege_type = 'EXECUTE') "
            "  ELSE has_function_privilege(r.grantee, p.oid, 'EXECUTE') END "
            "ORDER BY 1, 2",
            (schemas,),
        ).fetchall()
        functions = conn.execute(
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = ANY(%s) AND n.nspname <> 'auth'",
            (schemas,),
        ).fetchone()[0]
        assert functions >= 4  # the trigger functions, begin() and the rules
    return [(name, grantee) for name, grantee in rows]


def test_no_internal_function_is_executable_by_api_roles(pg_url: str, supabase_url: str) -> None:
    assert executable(pg_url) == []
    assert executable(supabase_url) == []


@pytest.mark.parametrize("role", [*API_ROLES, "service_role"])
def test_api_roles_cannot_take_the_sequencing_lock(pg_url: str, role: str) -> None:
    for call in (
        "SELECT public.ledger_events_v0_begin()",
        "SELECT receipts_private.ledger_row_problem(now(), now(), '{}')",
    ):
        with (
            connect_as(pg_url, role, A) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(call)


def test_triggers_still_fire_for_clients(supabase_url: str) -> None:
    with connect_as(supabase_url, "authenticated", A) as conn:
        seq, _, producer, owner = insert_sql(conn, refund("rf_1"))
        assert (seq, producer, owner) == (0, "client", A)  # set by the trigger


@pytest.fixture
def theirs(pg_url: str) -> dict[str, str]:
    """B's receipts: a logical event revised once (old revision, head) and a voided one."""
    with Ledger.open(pg_url) as ledger:
        old = ledger.append(refund("rf_b", B), producer="client")
        head = ledger.amend(old.id, refund("rf_b")["payload"], producer="client")
        gone = ledger.append(refund("rf_b2", B), producer="client")
        void = ledger.void(gone.id, "mistake", B, producer="client")
        mine = ledger.append(refund("rf_mine", A), producer="client")
    return {"old": old.id, "head": head.id, "void": void.id, "mine": mine.id}


def answer(conn: psycopg.Connection, request: dict) -> tuple:
    with pytest.raises(psycopg.Error) as caught:
        insert_sql(conn, request)
    diag = caught.value.diag
    # The whole text the client gets (message, DETAIL, CONTEXT) and its parts.
    return (diag.sqlstate, diag.message_primary, diag.message_detail, str(caught.value))


@pytest.mark.parametrize("op", ["amend", "void", "restate"])
def test_a_client_learns_nothing_about_receipts_it_cannot_read(
    pg_url: str, theirs: dict[str, str], op: str
) -> None:
    with connect_as(pg_url, "authenticated", A) as conn:
        nowhere = answer(conn, revision(op, str(uuid.uuid4())))
        assert nowhere[:3] == (
            "RC404",
            f"{op} supersedes an unknown receipt",
            "/supersedes_id",
        )
        # Entity, op and head-ness differ between these and from the request: any check made
        # before ownership would answer differently.
        for key in ("old", "head", "void"):
            assert answer(conn, revision(op, theirs[key])) == nowhere, key
            assert answer(conn, revision(op, theirs[key], "rf_b")) == nowhere, key
    with Ledger.open(pg_url) as ledger:
        assert ledger.size() == 5


def test_a_client_may_not_revise_what_it_may_only_read(pg_url: str, theirs: dict[str, str]) -> None:
    with Ledger.open(pg_url) as ledger:
        ledger.grant("refund:rf_b", A)
    with connect_as(pg_url, "authenticated", A) as conn:
        assert theirs["head"] in {
            r[0] for r in conn.execute("SELECT id::text FROM ledger_events_v0")
        }
        state, text, pointer, _ = answer(conn, revision("amend", theirs["head"], "rf_b"))
        assert (state, text, pointer) == (
            "RC403",
            "a client may revise only its own receipts",
            "/supersedes_id",
        )
        insert_sql(conn, revision("amend", theirs["mine"]))  # its own: allowed


def waiting_for_lock(observer: psycopg.Connection, pid: int) -> None:
    """Return once backend ``pid`` waits for an advisory lock (bounded by TIMEOUT)."""
    done = threading.Event()
    for _ in range(int(TIMEOUT * 100)):
        row = observer.execute(
            "SELECT 1 FROM pg_locks WHERE pid = %s AND locktype = 'advisory' AND NOT granted",
            (pid,),
        ).fetchone()
        if row is not None:
            return
        done.wait(0.01)  # polls a condition; the bound above only limits a failure
    raise AssertionError(f"backend {pid} never waited for the sequencing lock")


def race(conn: psycopg.Connection, target: str, results: list[tuple]) -> None:
    results.append(answer(conn, revision("amend", target, "rf_race")))


def test_a_revision_racing_the_commit_of_its_head_never_wins(pg_url: str) -> None:
    """B revises A's receipt while A's transaction that inserts it holds the sequencing lock:
    B's insert waits for the lock, A commits, and B's trigger must refuse, with the answer of
    an id that does not exist. Then again after the commit, and before A's insert."""
    rounds = 25
    with (
        connect_as(pg_url, "authenticated", A) as conn_a,
        connect_as(pg_url, "authenticated", B) as conn_b,
        psycopg.connect(pg_url, autocommit=True) as observer,
    ):
        reference = answer(conn_b, revision("amend", str(uuid.uuid4()), "rf_race"))
        pid_b = conn_b.execute("SELECT pg_backend_pid()").fetchone()[0]
        for _ in range(rounds):
            target = str(uuid.uuid4())
            before = answer(conn_b, revision("amend", target, "rf_race"))  # not there yet
            results: list[tuple] = []
            with conn_a.transaction():
                insert_sql(conn_a, refund("rf_race", id=target))  # holds the lock until commit
                racer = threading.Thread(target=race, args=(conn_b, target, results))
                racer.start()
                waiting_for_lock(observer, pid_b)
            racer.join(TIMEOUT)
            assert not racer.is_alive()
            after = answer(conn_b, revision("void", target, "rf_race"))
            assert results == [reference] and before == reference
            assert after[:3] == ("RC404", "void supersedes an unknown receipt", "/supersedes_id")
        owners = observer.execute(
            "SELECT DISTINCT owner_user_id, producer FROM public.ledger_events_v0"
        ).fetchall()
        assert owners == [(A, "client")]
        count = observer.execute("SELECT count(*) FROM public.ledger_events_v0").fetchone()[0]
        assert count == rounds
