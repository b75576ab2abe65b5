"""PostgreSQL, against eventsourcing's PostgreSQL recorder in the same run.

1. Batched import: ``Ledger.append_batch`` (validation, RFC 8785 bytes, leaf hashes, seq under
   the sequencing lock, COPY, Merkle integration in the same transaction) vs eventsourcing's
   ``PostgresApplicationRecorder.insert_events`` (it too hands out a dense, global notification
   id under a table lock) storing the same number of events (state = the payload JSON), batches
   of the same size, one transaction per batch, each in a fresh database.
2. Single-receipt appends per second with 16 concurrent writer processes.

    python bench/postgres.py [--n 200000] [--repeat 3] [--writers 16] [--per-writer 500]

Needs the PostgreSQL server at 127.0.0.1:5432 (RECEIPTS_TEST_PG to change), user postgres.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import psycopg
from _workload import PRODUCER, machine, make_requests, median
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore

from receipts import Ledger

ADMIN = os.environ.get("RECEIPTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BATCH = 5000


@contextmanager
def database() -> Iterator[str]:
    name = f"receipts_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield name
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def url(name: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + name


def run_ours(requests: list[dict]) -> float:
    with database() as name, Ledger.open(url(name)) as ledger:
        start = time.perf_counter()
        for i in range(0, len(requests), BATCH):
            ledger.append_batch(requests[i : i + BATCH], producer=PRODUCER)
        elapsed = time.perf_counter() - start
        assert ledger.size() == len(requests)
        return elapsed


def run_es(events: list[StoredEvent]) -> float:
    with database() as name:
        datastore = PostgresDatastore(name, "127.0.0.1", 5432, "postgres", "")
        recorder = PostgresApplicationRecorder(datastore)
        recorder.create_table()
        try:
            start = time.perf_counter()
            for i in range(0, len(events), BATCH):
                recorder.insert_events(events[i : i + BATCH])
            return time.perf_counter() - start
        finally:
            datastore.close()


WRITER = """
import sys, time
sys.path.insert(0, sys.argv[4])
from _workload import make_requests
from receipts import Ledger
url, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
requests = make_requests(n)
with Ledger.open(url) as ledger:
    print("ready", flush=True)
    sys.stdin.readline()
    for r in requests:
        r["entity_id"] = f"{tag}-{r['entity_id']}"
        ledger.append(r)
"""


def run_concurrent(writers: int, per_writer: int) -> float:
    """Receipts/s of ``writers`` processes each appending ``per_writer`` single receipts."""
    here = os.path.dirname(os.path.abspath(__file__))
    with database() as name:
        Ledger.open(url(name)).close()  # migrate once, before the clock
        procs = [
            subprocess.Popen([sys.executable, "-c", WRITER, url(name), str(per_writer), f"w{w}",
                              here], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            for w in range(writers)
        ]  # fmt: skip
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        start = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        assert all(p.wait(timeout=900) == 0 for p in procs)
        elapsed = time.perf_counter() - start
        with Ledger.open(url(name)) as ledger:
            assert ledger.size() == writers * per_writer
            seqs = [
                s for (s,) in ledger.store.execute("SELECT seq FROM ledger_events_v0 ORDER BY seq")
            ]  # type: ignore[attr-defined]
            assert seqs == list(range(writers * per_writer)), "seq must stay dense"
        return writers * per_writer / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--per-writer", type=int, default=500)
    args = parser.parse_args()
    facts = machine()
    with psycopg.connect(ADMIN) as conn:
        facts["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
        facts["synchronous_commit"] = conn.execute("SHOW synchronous_commit").fetchone()[0]
    print(f"machine: {facts}")
    requests = make_requests(args.n)
    events = [
        StoredEvent(uuid.uuid4(), 1, f"bench:{r['event_type']}", orjson.dumps(r["payload"]))
        for r in requests
    ]
    rates: dict[str, list[float]] = {"ours": [], "es": []}
    for rep in range(args.repeat):
        for who in ("ours", "es") if rep % 2 == 0 else ("es", "ours"):
            seconds = run_ours(requests) if who == "ours" else run_es(events)
            rates[who].append(args.n / seconds)
            print(f"repeat {rep + 1}/{args.repeat} {who:5s} {args.n / seconds:>10,.0f} receipts/s")
    concurrent = [run_concurrent(args.writers, args.per_writer) for _ in range(args.repeat)]
    for c in concurrent:
        print(f"{args.writers} writers x {args.per_writer} single appends: {c:,.0f} receipts/s")
    med = {k: median(v) for k, v in rates.items()}
    ratio = med["ours"] / med["es"]
    print(f"batched import: ours {med['ours']:,.0f}/s (target >= 50,000), eventsourcing "
          f"{med['es']:,.0f}/s, ratio {ratio:.2f}x (target >= 2x)")  # fmt: skip
    print(f"single appends with {args.writers} concurrent writers: {median(concurrent):,.0f}/s")
    print(json.dumps({"bench": "postgres", "n": args.n, "repeat": args.repeat, "machine": facts,
                      "rates": rates, "medians": med, "ratio_ours_vs_es": ratio,
                      "concurrent_single_appends_per_s": concurrent,
                      "writers": args.writers, "per_writer": args.per_writer}))  # fmt: skip


if __name__ == "__main__":
    main()
