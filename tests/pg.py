"""PostgreSQL for tests: a migrated template database per session, a clone per test.

The server is the one every development machine and CI runs at 127.0.0.1:5432 (override with
RECEIPTS_TEST_PG). With CI=true an unreachable server fails the run; elsewhere it skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

ADMIN_URL = os.environ.get("RECEIPTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def url_for(database: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)


def reachable() -> None:
    try:
        admin().close()
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {ADMIN_URL} is unreachable in CI: {exc}")
        pytest.skip(f"PostgreSQL at {ADMIN_URL} is unreachable: {exc}")


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A database with every migration applied, used as the template for per-test clones."""
    reachable()
    from receipts import Ledger

    name = f"receipts_tpl_{uuid.uuid4().hex[:8]}"
    with admin() as conn:
        conn.execute(f"CREATE DATABASE {name}")
    Ledger.open(url_for(name)).close()
    yield name
    with admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def throwaway_database(template: str) -> Iterator[str]:
    """The URL of a new database copied from ``template``, dropped afterwards."""
    name = f"receipts_t_{uuid.uuid4().hex[:10]}"
    with admin() as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    yield url_for(name)
    with admin() as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated, throwaway database for one test."""
    with throwaway_database(pg_template) as url:
        yield url


def connect_as(url: str, role: str, sub: str | None = None) -> psycopg.Connection:
    """A connection behaving like a Supabase API request: SET ROLE plus JWT claims."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute(f"SET ROLE {role}")
    claims = {"role": role, **({"sub": sub} if sub else {})}
    conn.execute("SELECT set_config('request.jwt.claims', %s, false)", (json.dumps(claims),))
    return conn


def insert_sql(conn: psycopg.Connection, request: dict) -> tuple:
    """A direct SQL insert of a receipt request (payload as JSON text, other fields as given)."""
    cols = [k for k in request if k != "payload"] + ["payload"]
    payload = request["payload"]
    values = [request[k] for k in cols[:-1]] + [
        payload if isinstance(payload, str) else json.dumps(payload)
    ]
    sql = (
        f"INSERT INTO public.ledger_events_v0 ({', '.join(cols)}) "
        f"VALUES ({', '.join(['%s'] * len(cols))}) RETURNING seq, id::text, producer, owner_user_id"
    )
    return conn.execute(sql, values).fetchone()
