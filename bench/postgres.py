"""PostgreSQL, against eventsourcing's PostgreSQL recorder in the same run.

1. Batched import: ``Ledger.append_batch`` (validation, RFC 8785 bytes, leaf hashes, seq under
   the sequencing lock, COPY; on PostgreSQL the Merkle tree is extended later, by
   ``receipts integrate`` or the server, not in the writer's transaction) vs eventsourcing's
   ``PostgresApplicationRecorder.insert_events`` (it too hands out a dense, global notification
   id under a table lock) storing the same number of events (state = the payload JSON), batches
   of the same size, one transaction per batch, each in a fresh database. Both workloads are
   made before the clock and ``gc.freeze()``-d, as in bench/ingest.py, so that neither pays
   for collections that walk the other's (or its own) pre-made input.
2. Single-receipt appends per second with 16 concurrent writer processes.

    python bench/postgres.py [--n 200000] [--repeat 3] [--writers 16] [--per-writer 500]

Needs the PostgreSQL server at 127.0.0.1:5432 (RECEIPTS_TEST_PG to change), user postgres.
"""

from __future__ import annotations

import argparse
import gc
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
from _workload import PRODUCER, machine, make_requests, median, without_rules
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


def backend_cpu(pid: int) -> float:
    """CPU seconds a PostgreSQL backend on this machine has used (from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_ours(requests: list[dict]) -> tuple[float, float, float]:
    """Wall seconds, client CPU seconds and the backend's CPU seconds of the import."""
    with database() as name, Ledger.open(url(name), catalog=without_rules()) as ledger:
        pid = ledger.store.execute("SELECT pg_backend_pid()")[0][0]  # type: ignore[attr-defined]
        server, client, start = backend_cpu(pid), time.process_time(), time.perf_counter()
        for i in range(0, len(requests), BATCH):
            ledger.append_batch(requests[i : i + BATCH], producer=PRODUCER)
        elapsed = time.perf_counter() - start
        client, server = time.process_time() - client, backend_cpu(pid) - server
        assert ledger.size() == len(requests)
        return elapsed, client, server


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
from _workload import make_requests, without_rules
from receipts import Ledger
url, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
requests = make_requests(n)
with Ledger.open(url, catalog=without_rules()) as ledger:
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
        Ledger.open(url(name), catalog=without_rules()).close()  # migrate once, before the clock
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
        with Ledger.open(url(name), catalog=without_rules()) as ledger:
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
    gc.collect()
    gc.freeze()
    rates: dict[str, list[float]] = {"ours": [], "es": []}
    cpu_us: dict[str, list[float]] = {"client": [], "server": []}  # ours, per receipt
    for rep in range(args.repeat):
        for who in ("ours", "es") if rep % 2 == 0 else ("es", "ours"):
            split = ""
            if who == "ours":
                seconds, client, server = run_ours(requests)
                cpu_us["client"].append(client / args.n * 1e6)
                cpu_us["server"].append(server / args.n * 1e6)
                split = f" (CPU a receipt: client {cpu_us['client'][-1]:.1f} µs, " \
                        f"PostgreSQL backend {cpu_us['server'][-1]:.1f} µs)"  # fmt: skip
            else:
                seconds = run_es(events)
            rates[who].append(args.n / seconds)
            print(f"repeat {rep + 1}/{args.repeat} {who:5s} {args.n / seconds:>10,.0f} "
                  f"receipts/s{split}")  # fmt: skip
    concurrent = [run_concurrent(args.writers, args.per_writer) for _ in range(args.repeat)]
    for c in concurrent:
        print(f"{args.writers} writers x {args.per_writer} single appends: {c:,.0f} receipts/s")
    med = {k: median(v) for k, v in rates.items()}
    ratio = med["ours"] / med["es"]
    print(f"batched import: ours {med['ours']:,.0f}/s (target >= 50,000), eventsourcing "
          f"{med['es']:,.0f}/s, ratio {ratio:.2f}x (target >= 2x)")  # fmt: skip
    print(f"ours, CPU a receipt: client {median(cpu_us['client']):.1f} µs, PostgreSQL backend "
          f"{median(cpu_us['server']):.1f} µs")  # fmt: skip
    print(f"single appends with {args.writers} concurrent writers: {median(concurrent):,.0f}/s")
    print(json.dumps({"bench": "postgres", "n": args.n, "repeat": args.repeat, "machine": facts,
                      "rates": rates, "medians": med, "ratio_ours_vs_es": ratio,
                      "ours_cpu_us_per_receipt": cpu_us,
                      "concurrent_single_appends_per_s": concurrent,
                      "writers": args.writers, "per_writer": args.per_writer}))  # fmt: skip


if __name__ == "__main__":
    main()
