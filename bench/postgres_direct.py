"""PostgreSQL: the cost of the direct-insert trigger, and that the library's import does not pay it.

1. Direct inserts: ``--n`` single-row INSERTs (each its own transaction) as ``authenticated``
   with Supabase-shaped JWT claims, as a mobile client through PostgREST would, into a migrated
   journal. Reports the wall time per insert and the trigger function's own time per call
   (``track_functions``), for a payload of strings and one with a decimal number (which takes the
   trigger's exact-double test).
2. Import: ``Ledger.append_batch`` of ``--import-n`` receipts (binary COPY, whose rows skip the
   trigger through its WHEN clause): wall time and the backend's CPU time per receipt.

With ``--before SRC`` (a source tree, e.g. ``git archive <commit> src | tar -x -C /tmp/old``)
every measurement alternates between that tree and this one, each migrating its own databases.

    python bench/postgres_direct.py [--n 3000] [--import-n 100000] [--repeat 5] [--before SRC]

Needs the PostgreSQL server at 127.0.0.1:5432 (RECEIPTS_TEST_PG to change), user postgres, on
this machine (the import reads the backend's CPU time from /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

ADMIN = os.environ.get("RECEIPTS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
HERE = Path(__file__).resolve().parent
THIS_TREE = str(HERE.parent / "src")
USER = str(uuid.uuid4())
PAYLOADS = {
    "strings": {"paymentIntentId": "pi_1", "requestedByUserId": USER, "reasonCode": "sick"},
    "decimal": {
        "paymentIntentId": "pi_1",
        "requestedByUserId": USER,
        "reasonCode": "sick",
        "amount": 12.5,
    },
}

MIGRATE = "import sys; from receipts import Ledger; Ledger.open(sys.argv[1]).close()"

IMPORT = """
import os, sys, time
sys.path.insert(0, sys.argv[3])
from _workload import PRODUCER, make_requests
from receipts import Ledger
url, n = sys.argv[1], int(sys.argv[2])

def backend_cpu(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

requests = make_requests(n)
with Ledger.open(url, rules=False) as ledger:
    pid = ledger.store.execute("SELECT pg_backend_pid()")[0][0]
    server, start = backend_cpu(pid), time.perf_counter()
    for i in range(0, n, 5000):
        ledger.append_batch(requests[i : i + 5000], producer=PRODUCER)
    elapsed, server = time.perf_counter() - start, backend_cpu(pid) - server
    assert ledger.size() in (n, n + 1)  # + the back-fill's recorded switch, where recorded
print(elapsed, server)
"""


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


def run_with(src: str, code: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, check=True,
                          capture_output=True, text=True, cwd=HERE)  # fmt: skip
    return done.stdout


def direct_inserts(db_url: str, n: int, payload: dict) -> tuple[float, float]:
    """Microseconds per insert: wall time, and the trigger function's own time per call."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET track_functions = 'pl'")  # superuser only: before SET ROLE
        conn.execute("SET ROLE authenticated")
        claims = json.dumps({"sub": USER, "role": "authenticated", "aud": "authenticated"})
        conn.execute("SELECT set_config('request.jwt.claims', %s, false)", (claims,))
        body = json.dumps(payload)
        sql = (
            "INSERT INTO public.ledger_events_v0 (domain, event_type, entity_type, entity_id, "
            "payload) VALUES ('payments', 'refund_requested', 'refund', %s, %s)"
        )
        start = time.perf_counter()
        for i in range(n):
            conn.execute(sql, (f"rf_{uuid.uuid4().hex[:12]}_{i}", body))
        wall = time.perf_counter() - start
    with psycopg.connect(db_url, autocommit=True) as conn:  # the session's stats are flushed
        calls, total = conn.execute(
            "SELECT calls, total_time FROM pg_stat_user_functions "
            "WHERE funcname = 'ledger_events_v0_before_insert'"
        ).fetchone()
        conn.execute("SELECT pg_stat_reset_single_function_counters(%s::regproc)",
                     ("public.ledger_events_v0_before_insert",))  # fmt: skip
    assert calls == n, (calls, n)
    return wall / n * 1e6, total / calls * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--import-n", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before", help="another source tree to compare with (its src/)")
    args = parser.parse_args()
    trees = {"this": THIS_TREE} if not args.before else {"before": args.before, "this": THIS_TREE}
    with psycopg.connect(ADMIN) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    print(f"postgresql {version}, synchronous_commit {commit}")
    results: dict[str, dict[str, list[float]]] = {t: {} for t in trees}
    with database() as a, database() as b:
        dbs = dict(zip(trees, (url(a), url(b)), strict=False))
        for tree, src in trees.items():
            run_with(src, MIGRATE, dbs[tree])
        for rep in range(args.repeat):
            order = list(trees) if rep % 2 == 0 else list(reversed(trees))
            for tree in order:
                for name, payload in PAYLOADS.items():
                    wall, trigger = direct_inserts(dbs[tree], args.n, payload)
                    results[tree].setdefault(f"{name} wall", []).append(wall)
                    results[tree].setdefault(f"{name} trigger", []).append(trigger)
                    print(f"repeat {rep + 1} {tree:6s} direct {name:7s}: {wall:7.1f} µs an "
                          f"insert, trigger {trigger:6.1f} µs a call")  # fmt: skip
    for rep in range(args.repeat):
        order = list(trees) if rep % 2 == 0 else list(reversed(trees))
        for tree in order:
            with database() as name:
                out = run_with(trees[tree], IMPORT, url(name), str(args.import_n), str(HERE))
            elapsed, server = map(float, out.split())
            rate, cpu = args.import_n / elapsed, server / args.import_n * 1e6
            results[tree].setdefault("import receipts/s", []).append(rate)
            results[tree].setdefault("import backend µs", []).append(cpu)
            print(f"repeat {rep + 1} {tree:6s} import {rate:9,.0f} receipts/s, "
                  f"backend CPU {cpu:5.1f} µs a receipt")  # fmt: skip
    print("medians:")
    for tree, series in results.items():
        for key, values in series.items():
            print(f"  {tree:6s} {key:20s} {statistics.median(values):10.1f}")
    print(json.dumps({"bench": "postgres_direct", "n": args.n, "import_n": args.import_n,
                      "repeat": args.repeat, "results": results}))  # fmt: skip


if __name__ == "__main__":
    main()
