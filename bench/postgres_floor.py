"""The PostgreSQL server's own cost per imported receipt, and what each part of the journal adds.

bench/postgres.py measures the import end to end: the Python client and the PostgreSQL backend
work side by side, one vCPU each. This script takes the client out. It imports ``--n`` receipts
with the library once, copies the journal's rows out in COPY's binary format, and then COPYs
those same bytes into fresh copies of the journal, each without one part (an index, the
direct-insert trigger), measuring the backend's CPU time (``/proc/<pid>/stat``) per row.
The server's work for the real schema is a floor under the import's time per receipt that no
client-side speed-up can go below.

    python bench/postgres_floor.py [--n 200000] [--repeat 3]

Needs the PostgreSQL server at 127.0.0.1:5432 (RECEIPTS_TEST_PG to change), user postgres,
on this machine (it reads the backend's CPU time from /proc).
"""

from __future__ import annotations

import argparse
import json
import statistics

import psycopg
from _workload import PRODUCER, machine, make_requests, without_rules
from postgres import BATCH, backend_cpu, database, url

from receipts import Ledger

JOURNAL = "public.ledger_events_v0"
TRIGGER = "ledger_events_v0_before_insert"

# variant -> the parts of the journal left out: indexes by their leading columns, or the trigger
VARIANTS: dict[str, tuple[str, ...]] = {
    "journal as migrated": (),
    "without the direct-insert trigger": ("trigger",),
    "without entity+time": ("(entity_type, entity_id, occurred_at)",),
    "without type+time": ("(event_type, occurred_at)",),
    "without owner+time": ("(owner_user_id, occurred_at)",),
    "without correlation": ("(correlation_id)",),
    "without unique (logical_id, revision)": ("(logical_id, revision)",),
    "without unique id": ("(id)",),
    "without unique supersedes_id": ("(supersedes_id)",),
    "trigger and all but the primary key left out": (
        "trigger", "(entity_type,", "(event_type,", "(owner_user_id,", "(correlation_id)",
        "(logical_id,", "(id)", "(supersedes_id)",
    ),
}  # fmt: skip


def journal_rows(name: str, n: int) -> bytes:
    """The journal of ``n`` receipts imported by the library, as binary COPY data."""
    with Ledger.open(url(name), catalog=without_rules()) as ledger:
        requests = make_requests(n)
        for i in range(0, n, BATCH):
            ledger.append_batch(requests[i : i + BATCH], producer=PRODUCER)
    data = bytearray()
    with psycopg.connect(url(name)) as conn:
        sql = f"COPY (SELECT * FROM {JOURNAL} ORDER BY seq) TO STDOUT (FORMAT BINARY)"
        with conn.cursor().copy(sql) as copy:
            for chunk in copy:
                data += chunk
    return bytes(data)


def server_seconds(conn: psycopg.Connection, data: bytes, left_out: tuple[str, ...]) -> float:
    """Backend CPU seconds to COPY ``data`` into a fresh copy of the journal without
    ``left_out``, in one transaction, as the library's import does (sequencer set)."""
    conn.execute("DROP SCHEMA IF EXISTS floor CASCADE")
    conn.execute("CREATE SCHEMA floor")
    conn.execute(f"CREATE TABLE floor.journal (LIKE {JOURNAL} INCLUDING ALL)")
    if "trigger" not in left_out:  # LIKE copies no triggers: add the real one, as migrated
        (ddl,) = conn.execute(
            "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = %s::regclass "
            "AND tgname = %s",
            (JOURNAL, TRIGGER),
        ).fetchone()
        conn.execute(ddl.replace(f"ON {JOURNAL}", "ON floor.journal"))
    for part in left_out:
        if part == "trigger":
            continue
        found = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = 'floor' AND indexdef LIKE %s",
            (f"%USING btree {part}%",),
        ).fetchall()
        assert found, f"no index on {part}"
        for (index,) in found:
            if index.endswith("_key"):
                conn.execute(f"ALTER TABLE floor.journal DROP CONSTRAINT {index}")
            else:
                conn.execute(f"DROP INDEX floor.{index}")
    conn.execute("CHECKPOINT")
    pid = conn.info.backend_pid
    with conn.transaction():
        conn.execute("SET LOCAL receipts.sequencer = 'on'")
        before = backend_cpu(pid)
        with conn.cursor().copy("COPY floor.journal FROM STDIN (FORMAT BINARY)") as copy:
            for i in range(0, len(data), 1 << 20):
                copy.write(data[i : i + (1 << 20)])
        spent = backend_cpu(pid) - before
    conn.execute("DROP SCHEMA floor CASCADE")
    return spent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    facts = machine()
    print(f"machine: {facts}")
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with database() as name:
        data = journal_rows(name, args.n)
        print(f"{len(data) / args.n:,.0f} bytes of binary COPY data per receipt")
        with psycopg.connect(url(name), autocommit=True) as conn:
            for rep in range(args.repeat):
                for variant, left_out in VARIANTS.items():
                    us = server_seconds(conn, data, left_out) / args.n * 1e6
                    runs[variant].append(us)
                    print(f"repeat {rep + 1}/{args.repeat} {variant:47s} {us:5.1f} µs/row")
    medians = {v: statistics.median(us) for v, us in runs.items()}
    full = medians["journal as migrated"]
    for variant, us in medians.items():
        print(f"{variant:47s} {us:5.1f} µs/row ({us - full:+.1f})")
    print(json.dumps({"bench": "postgres_floor", "n": args.n, "repeat": args.repeat,
                      "machine": facts, "runs": runs, "medians": medians}))  # fmt: skip


if __name__ == "__main__":
    main()
