"""Batched ingest into SQLite: receipts vs bare sqlite3 executemany vs eventsourcing.

    python bench/ingest.py [--n 1000000] [--batch 5000] [--repeat 3]

All contenders run in ONE process, each on a fresh temp database file per run, with the same
number of rows in batches of the same size, one transaction (one durable commit) per batch:

ours      ``Ledger.append_batch`` with producer ``service_role_pipeline``: validation, JCS
          canonical bytes, SHA-256 leaf hash, seq assignment and the INSERT, all counted.
sqlite    bare ``sqlite3`` ``executemany`` of the exact rows the ledger stored (read back
          from the first ledger run with ``SELECT *``), into the same table created by the
          project's own migration (``SQLiteStore(path)``), same PRAGMAs (WAL,
          synchronous=FULL), ``BEGIN IMMEDIATE`` .. ``COMMIT`` per batch.
es        eventsourcing ``SQLiteAggregateRecorder.insert_events`` (one ``executemany`` per
          batch) storing ``StoredEvent(originator_id, originator_version, topic, state)`` with
          ``state`` = the stored payload JSON bytes.
es_app    eventsourcing ``SQLiteApplicationRecorder.insert_events`` (one INSERT per event
          plus ``lastrowid``: it hands out a global notification id, as our ``seq`` does).

Request generation, reading rows back and building StoredEvents are NOT timed; only the
insert calls are. After generation the objects are ``gc.freeze()``-d so that collections
triggered while timing do not rescan the benchmark's own million-object workload.

Prints receipts/s per contender (median over --repeat runs; the run order rotates between
repeats), the ratios ours/sqlite (target >= 0.6) and ours/es (target >= 1.5), and finally a
single JSON line with every number.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _workload import PRODUCER, machine, make_requests, median, without_rules
from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteDatastore,
)

from receipts.catalog import Catalog
from receipts.ledger import Ledger
from receipts.store.sqlite import SQLiteStore

TARGETS = {"ours/sqlite": 0.6, "ours/es": 1.5}
ALL = ("ours", "sqlite", "es", "es_app")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def chunks(seq: list[Any], size: int) -> list[list[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]


def count_rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


# --- contenders: each returns the seconds spent inside the timed insert calls --------------


def run_ours(path: Path, batches: list[list[dict[str, Any]]], catalog: Catalog) -> float:
    ledger = Ledger(SQLiteStore(path), without_rules(catalog))  # compiles validators: untimed
    elapsed = 0.0
    clock = time.perf_counter
    try:
        for batch in batches:
            t0 = clock()
            ledger.append_batch(batch, producer=PRODUCER)
            elapsed += clock() - t0
        assert ledger.size() == sum(map(len, batches))
    finally:
        ledger.close()
    return elapsed


def run_sqlite(path: Path, batches: list[list[tuple[Any, ...]]], insert_sql: str) -> float:
    SQLiteStore(path).close()  # the project's migration: same table, indexes, triggers
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    elapsed = 0.0
    clock = time.perf_counter
    try:
        for batch in batches:
            t0 = clock()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert_sql, batch)
            conn.execute("COMMIT")
            elapsed += clock() - t0
    finally:
        conn.close()
    assert count_rows(path, "ledger_events_v0") == sum(map(len, batches))
    return elapsed


def run_es(path: Path, batches: list[list[StoredEvent]], recorder_cls: type) -> float:
    datastore = SQLiteDatastore(str(path))
    recorder = recorder_cls(datastore)
    recorder.create_table()
    with datastore.transaction(commit=False) as c:  # what durability did the peer get?
        c.execute("PRAGMA journal_mode")
        journal = c.fetchone()[0]
        c.execute("PRAGMA synchronous")
        synchronous = c.fetchone()[0]
    assert (journal, synchronous) == ("wal", 2), (journal, synchronous)  # WAL + FULL, as ours
    elapsed = 0.0
    clock = time.perf_counter
    try:
        for batch in batches:
            t0 = clock()
            recorder.insert_events(batch)
            elapsed += clock() - t0
    finally:
        datastore.close()
    assert count_rows(path, "stored_events") == sum(map(len, batches))
    return elapsed


# --- preparation (untimed) -----------------------------------------------------------------


def read_back(path: Path) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The exact rows the ledger stored, in seq order, with the table's column names."""
    conn = sqlite3.connect(path)
    try:
        cur = conn.execute("SELECT * FROM ledger_events_v0 ORDER BY seq")
        columns = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        conn.close()
    return columns, rows


def stored_events(columns: list[str], rows: list[tuple[Any, ...]]) -> list[StoredEvent]:
    """One StoredEvent per receipt: the entity is the aggregate, versions count up per entity."""
    col = {name: i for i, name in enumerate(columns)}
    ns = uuid.UUID("6f1c2d9e-4a55-4d3b-9a8e-3c1b2a0f7e11")
    versions: dict[str, int] = {}
    ids: dict[str, uuid.UUID] = {}
    out = []
    for row in rows:
        entity = f"{row[col['entity_type']]}:{row[col['entity_id']]}"
        originator = ids.get(entity)
        if originator is None:
            originator = ids[entity] = uuid.uuid5(ns, entity)
        version = versions.get(entity, 0)
        versions[entity] = version + 1
        out.append(
            StoredEvent(
                originator_id=originator,
                originator_version=version,
                topic=f"receipts.events:{row[col['event_type']]}",
                state=row[col["payload"]].encode(),
            )
        )
    return out


def freeze() -> None:
    gc.collect()
    gc.freeze()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000, help="receipts per run (default 1,000,000)")
    ap.add_argument("--batch", type=int, default=5000, help="receipts per batch/transaction")
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs per contender; medians are reported"
    )
    ap.add_argument("--tmpdir", default=None, help="where the temp databases go (default: $TMPDIR)")
    ap.add_argument("--only", default=",".join(ALL), help=f"comma list out of {','.join(ALL)}")
    args = ap.parse_args(argv)
    chosen = [c for c in ALL if c in args.only.split(",")]
    if "ours" not in chosen:
        ap.error("--only must include ours (the other contenders reuse its rows)")

    info = machine()
    log(f"machine: {info}")
    catalog = Catalog.load()
    t0 = time.perf_counter()
    requests = make_requests(args.n, catalog)
    request_batches = chunks(requests, args.batch)
    freeze()
    log(f"generated {args.n:,} requests in {time.perf_counter() - t0:.1f}s (not timed)")

    times: dict[str, list[float]] = {c: [] for c in chosen}
    prepared: dict[str, Any] = {}

    def prepare(ledger_db: Path) -> None:
        t = time.perf_counter()
        columns, rows = read_back(ledger_db)
        marks = ", ".join("?" * len(columns))
        prepared["insert_sql"] = (
            f"INSERT INTO ledger_events_v0 ({', '.join(columns)}) VALUES ({marks})"
        )
        prepared["row_batches"] = chunks(rows, args.batch)
        if "es" in chosen or "es_app" in chosen:
            prepared["event_batches"] = chunks(stored_events(columns, rows), args.batch)
        freeze()
        log(
            f"read back {len(rows):,} rows and built StoredEvents "
            f"in {time.perf_counter() - t:.1f}s (not timed)"
        )

    runners: dict[str, Callable[[Path], float]] = {
        "ours": lambda p: run_ours(p, request_batches, catalog),
        "sqlite": lambda p: run_sqlite(p, prepared["row_batches"], prepared["insert_sql"]),
        "es": lambda p: run_es(p, prepared["event_batches"], SQLiteAggregateRecorder),
        "es_app": lambda p: run_es(p, prepared["event_batches"], SQLiteApplicationRecorder),
    }

    for r in range(args.repeat):
        order = chosen if r == 0 else chosen[r % len(chosen) :] + chosen[: r % len(chosen)]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="receipts-bench-", dir=args.tmpdir) as d:
                db = Path(d) / f"{name}.db"
                elapsed = runners[name](db)
                times[name].append(elapsed)
                log(
                    f"repeat {r + 1}/{args.repeat} {name:7s} {elapsed:8.2f}s  "
                    f"{args.n / elapsed:12,.0f} receipts/s"
                )
                if name == "ours" and not prepared and len(chosen) > 1:
                    prepare(db)
            os.sync()  # flush the deleted run's pages now, not during the next timed run

    rps = {c: args.n / median(ts) for c, ts in times.items()}
    ratios = {}
    for peer in ("sqlite", "es", "es_app"):
        if peer in rps:
            ratios[f"ours/{peer}"] = rps["ours"] / rps[peer]
    per_repeat = {
        f"ours/{peer}": [times[peer][i] / times["ours"][i] for i in range(args.repeat)]
        for peer in ("sqlite", "es", "es_app")
        if peer in times
    }

    print(f"ingest: n={args.n:,} batch={args.batch:,} repeat={args.repeat} "
          f"(nproc={info['nproc']}, Python {info['python']}, SQLite {info['sqlite']})")  # fmt: skip
    labels = {
        "ours": "receipts Ledger.append_batch",
        "sqlite": "bare sqlite3 executemany (same rows/table)",
        "es": "eventsourcing SQLiteAggregateRecorder",
        "es_app": "eventsourcing SQLiteApplicationRecorder",
    }
    for c in chosen:
        runs = ", ".join(f"{args.n / t:,.0f}" for t in times[c])
        print(f"  {labels[c]:44s} median {rps[c]:12,.0f} receipts/s   runs: {runs}")
    for key, value in ratios.items():
        target = TARGETS.get(key.replace("es_app", "es"))
        verdict = (
            ""
            if target is None
            else f"  target >= {target}: {'MET' if value >= target else 'NOT MET'}"
        )
        spread = ", ".join(f"{x:.3f}" for x in per_repeat[key])
        print(f"  ratio {key:14s} {value:6.3f}{verdict}   (per repeat: {spread})")
    print(json.dumps({
        "bench": "ingest", "n": args.n, "batch": args.batch, "repeat": args.repeat,
        "machine": info,
        "seconds": times,
        "median_receipts_per_s": rps,
        "ratios_of_medians": ratios,
        "ratios_per_repeat": per_repeat,
        "targets": TARGETS,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
