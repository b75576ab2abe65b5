"""The embedded default: SQLite in WAL mode, one file, zero set-up.

Durability: ``journal_mode=WAL`` with ``synchronous=FULL`` makes SQLite fsync the WAL at
every commit, so a transaction that returned from COMMIT survives ``kill -9`` *and* power
loss. (WAL with ``synchronous=NORMAL`` would survive a process crash but may lose the last
commits on power loss; we never use it.)

Sequencing: SQLite has one writer at a time. ``BEGIN IMMEDIATE`` takes the write lock at
the start of the transaction, so ``MAX(seq) + 1`` read inside it cannot race another
writer and ``seq`` is dense and in commit order.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Final

from ..errors import (
    AppendOnlyError,
    IdConflictError,
    ReceiptsError,
    RevisionConflictError,
    StorageError,
)
from ..model import Receipt
from ..tlog import Node
from .base import Row, checked_receipt, pending_migrations, translating
from .reads import LogReads, StateIndex, StoreReads
from .sql import SQLITE, Queries, receipt_of, stored_values

SQL: Final = Queries(SQLITE)
# Rows per multi-row INSERT: 18 parameters each, far below SQLite's 32,766 bound parameters.
# A power of two: a batch goes in pieces of 256, 128, ... 1 rows, so the writer prepares at most
# nine statements, each once.
_ROWS_PER_INSERT: Final = 256
_BUSY_TIMEOUT_MS: Final = 30_000
# With the background checkpointer running, the committing connection still checkpoints by
# itself once the WAL holds this many pages (8x SQLite's default): a bound on the WAL's size,
# should the checkpointer ever fall behind.
_WAL_BOUND_PAGES: Final = 8000

log = logging.getLogger("receipts.store.sqlite")


@functools.lru_cache(maxsize=16)
def _insert_sql(rows: int) -> str:
    return SQL.insert + ", ".join([SQL.insert_row] * rows)


def translate(exc: sqlite3.Error) -> ReceiptsError:
    """Map a driver error to the receipts error tree (callers never see sqlite3 errors)."""
    text = str(exc)
    if "append-only" in text:
        return AppendOnlyError(text)
    if "UNIQUE constraint failed: ledger_events_v0.id" in text:
        return IdConflictError("a receipt with this id was stored concurrently")
    if "UNIQUE constraint failed: ledger_events_v0" in text:
        return RevisionConflictError("the logical event was revised concurrently")
    return StorageError(f"sqlite: {text}")


def _translated() -> AbstractContextManager[None]:
    return translating(sqlite3.Error, translate)


class _Txn(LogReads, StateIndex):
    """Reads and writes inside one transaction (a consistent snapshot)."""

    _sql = SQL
    _conn: sqlite3.Connection

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def next_seq(self) -> int:
        (value,) = self._conn.execute(SQL.size).fetchone()
        return int(value)

    def find(self, ids: Iterable[str]) -> dict[str, Receipt]:
        return {r.id: r for r in self._select_in("id", ids)}

    def heads(self, logical_ids: Iterable[str]) -> dict[str, Receipt]:
        out: dict[str, Receipt] = {}
        for r in self._select_in("logical_id", logical_ids):
            if r.logical_id not in out or r.revision > out[r.logical_id].revision:
                out[r.logical_id] = r
        return out

    def insert(self, receipts: Iterable[Receipt]) -> None:
        # Multi-row INSERTs rather than executemany: one statement step per 256 rows, so the
        # writer gives up and retakes the GIL once per chunk instead of once per row (each
        # retake can wait behind the event loop's thread in the server).
        rows = iter(receipts)
        while chunk := list(itertools.islice(rows, _ROWS_PER_INSERT)):
            while chunk:
                size = 1 << (len(chunk).bit_length() - 1)  # the largest power of two that fits
                part, chunk = chunk[:size], chunk[size:]
                values = [value for receipt in part for value in stored_values(receipt)]
                self._conn.execute(_insert_sql(size), values)

    def _select_in(self, column: str, values: Iterable[str]) -> list[Receipt]:
        keys = list(dict.fromkeys(values))
        out: list[Receipt] = []
        for i in range(0, len(keys), 500):  # stay far below SQLite's bound-parameter limit
            chunk = keys[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"{SQL.select} WHERE e.{column} IN ({marks})"
            out += map(receipt_of, self._conn.execute(sql, chunk))
        return out

    # --- the Merkle log ------------------------------------------------------------------------

    def unhashed(self, start: int, end: int) -> list[Receipt]:
        return []  # every SQLite row is hashed by the ledger when written

    def add_entries(self, receipts: Sequence[Receipt]) -> None:
        raise StorageError("SQLite rows carry their own entry bytes")

    def leaf_hashes(self, start: int, end: int) -> Iterator[bytes]:
        # Every row is checked before its leaf goes into the tree: the log never signs a row
        # that was altered (or forged) outside the ledger.
        for row in self.rows(start, end):
            yield checked_receipt(row).leaf_hash

    def rows(self, start: int, end: int) -> Iterator[Row]:
        return map(Row.of, self._conn.execute(SQL.rows, (start, end)))

    def node_hashes(self, nodes: Sequence[Node]) -> list[bytes]:
        found: dict[Node, bytes] = {}
        leaves = [idx for level, idx in nodes if level == 0]
        inner = [(level, idx) for level, idx in nodes if level > 0]
        for i in range(0, len(leaves), 500):
            chunk = leaves[i : i + 500]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT seq, leaf_hash FROM ledger_events_v0 WHERE seq IN ({marks})"
            found.update(((0, seq), bytes(h)) for seq, h in self._conn.execute(sql, chunk))
        # One statement of primary-key point lookups per 200 nodes (a proof needs ~log n).
        # (A row-value IN (VALUES …) would be shorter, but SQLite answers it with a scan.)
        point = "SELECT level, idx, hash FROM tlog_nodes WHERE level = ? AND idx = ?"
        for i in range(0, len(inner), 200):
            nodes_chunk = inner[i : i + 200]
            sql = " UNION ALL ".join([point] * len(nodes_chunk))
            args = [v for node in nodes_chunk for v in node]
            found.update(((lv, ix), bytes(h)) for lv, ix, h in self._conn.execute(sql, args))
        missing = [n for n in nodes if n not in found]
        if missing:
            raise StorageError(f"Merkle nodes missing from the store: {missing[:5]}")
        return [found[n] for n in nodes]

    def add_nodes(self, nodes: Sequence[tuple[Node, bytes]]) -> None:
        self._conn.executemany(
            "INSERT INTO tlog_nodes (level, idx, hash) VALUES (?, ?, ?)",
            ((level, idx, h) for (level, idx), h in nodes),
        )


@contextmanager
def _opening(path: str) -> Iterator[None]:
    """Driver errors while opening name the file and, where it can be told, why."""
    try:
        yield
    except sqlite3.Error as exc:
        error = translate(exc)
        if type(error) is StorageError:  # not one of the ledger's own refusals
            error = StorageError(f"cannot open the SQLite ledger {path}: {_why(Path(path), exc)}")
        raise error from exc


def _why(path: Path, exc: sqlite3.Error) -> str:
    folder = path.absolute().parent
    if not folder.is_dir():
        return f"the directory {folder} does not exist (create it first)"
    if path.is_dir():
        return "that is a directory; give a file path, e.g. receipts.db"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to create or write files in {folder} (SQLite needs both)"
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        return "no permission to read and write the file"
    return f"sqlite: {exc}"


class SQLiteStore(StoreReads):
    """A ledger journal in one SQLite file (or ``:memory:``)."""

    _sql = SQL

    # One writer at a time anyway: extending the tree in the append transaction saves a
    # second commit and re-reading the leaf hashes.
    integrate_on_append = True

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.url = "sqlite:///" + self.path
        # A file: its writer is this library, one writer at a time; a process of its own gives
        # it a GIL of its own. Each :memory: connection is a database of its own.
        self.writes_from_a_process = self.path != ":memory:"
        # Two connections: in WAL mode readers see the last commit without waiting for the
        # writer, so queries stay fast while a (group) commit is in progress.
        self._lock = threading.RLock()
        self._read_lock = threading.RLock()
        with _opening(self.path):
            self._conn = self._connect()
            # 8 KiB pages instead of 4: a commit writes each dirty page to the WAL in calls of
            # its own, and inserts spread over an index dirty many (docs/benchmarks.md §5).
            # Takes effect only when the file is created.
            self._conn.execute("PRAGMA page_size = 8192")
            self._conn.execute("PRAGMA journal_mode = WAL")
            # The writer's page cache holds the journal's index pages that inserts touch: 64 MiB
            # instead of SQLite's 2 MiB default (a faster ingest, docs/benchmarks.md).
            self._conn.execute("PRAGMA cache_size = -65536")
            self.applied = self._migrate()
            shared = self.path == ":memory:"  # each :memory: connection is its own database
            self._reader = self._conn if shared else self._connect()
            if shared:
                self._read_lock = self._lock
        self._checkpointer: threading.Thread | None = None
        self._stop_checkpointer = threading.Event()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    def _migrate(self) -> list[str]:
        conn = self._conn
        applied = []
        conn.execute("BEGIN IMMEDIATE")  # one migrator at a time, also across processes
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS receipts_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            done = {v for (v,) in conn.execute("SELECT version FROM receipts_migrations")}
            for version, name, sql in pending_migrations("sqlite", done):
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO receipts_migrations VALUES (?, ?, strftime('%Y-%m-%dT%H:%M:%fZ'))",
                    (version, name),
                )
                applied.append(name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return applied

    @contextmanager
    def read(self) -> Iterator[_Txn]:
        """A read-only snapshot: everything read inside sees the same committed state."""
        with self._read_lock, _translated():
            self._reader.execute("BEGIN")
            try:
                yield _Txn(self._reader)
            finally:
                self._reader.execute("ROLLBACK")

    @contextmanager
    def write(self) -> Iterator[_Txn]:
        with self._lock, _translated():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield _Txn(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run raw SQL on the store's connection (tests and tools); errors are translated."""
        with self._lock, _translated():
            return self._conn.execute(sql, args).fetchall()

    def checkpoint_in_background(self, interval: float = 0.05) -> None:
        """Copy committed WAL frames into the database file from a thread of its own.

        SQLite's automatic checkpoint runs in the committing thread, after COMMIT returns:
        for a busy writer, a large part of its time (docs/benchmarks.md §5). This thread runs
        a PASSIVE checkpoint every ``interval`` seconds on its own connection; SQLite does the
        work without holding the GIL, so the writer goes on meanwhile. Durability is unchanged:
        a commit is durable in the WAL before COMMIT returns, and a checkpoint only copies
        committed frames. Stops at ``close``."""
        if self.path == ":memory:" or self._checkpointer is not None:
            return
        with self._lock, _translated():
            conn = self._connect()
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_BOUND_PAGES}")
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, args=(conn, interval), name="wal-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self, conn: sqlite3.Connection, interval: float) -> None:
        try:
            while not self._stop_checkpointer.wait(interval):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # the committing connection still checkpoints
                    log.warning("background WAL checkpoint failed: %s", exc)
        finally:
            conn.close()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._stop_checkpointer.set()
            self._checkpointer.join()
        with self._lock, self._read_lock:
            self._reader.close()
            self._conn.close()

    def _select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._read_lock, _translated():
            return self._reader.execute(sql, args).fetchall()

    def _fetch(self, sql: str, args: Sequence[Any]) -> list[Receipt]:
        with self._read_lock, _translated():
            return list(map(receipt_of, self._reader.execute(sql, args)))


def _statements(script: str) -> list[str]:
    """Split a migration into statements (sqlite3.complete_statement keeps triggers whole)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip() and not all(
        ln.strip().startswith("--") or not ln.strip() for ln in buf.splitlines()
    ):
        raise StorageError(f"incomplete SQL statement in migration: {buf[:80]!r}")
    return out
