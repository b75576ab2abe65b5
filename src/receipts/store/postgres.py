"""The production backend: PostgreSQL 15+ (and Supabase) through psycopg 3.

Sequencing: every write transaction takes the transaction-scoped advisory lock
``SEQUENCE_LOCK`` first and holds it until COMMIT, so ``max(seq) + 1`` read inside it cannot race
another writer: seqs are dense and in commit order. Direct SQL inserts (Supabase clients
through RLS) take the same lock in the journal's BEFORE INSERT trigger (migration 0003), so
both write paths share one order. Durability: COMMIT returns after the WAL is flushed
(``synchronous_commit = on``, PostgreSQL's default, which this store insists on per session).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from itertools import chain, islice
from typing import Any, Final

import orjson
import psycopg
from psycopg import errors as pgerr
from psycopg.conninfo import conninfo_to_dict
from psycopg.types.json import set_json_loads
from psycopg.types.string import BytesBinaryDumper

from ..catalog import Catalog
from ..errors import (
    AppendOnlyError,
    ErrorDetail,
    IdConflictError,
    NotFoundError,
    PermissionDeniedError,
    ReceiptsError,
    RevisionConflictError,
    StorageError,
    UnprovableReceiptError,
    ValidationError,
)
from ..jsontext import loads
from ..model import ENTRY_KEYS, Receipt
from ..tlog import Node
from . import postgres_rules
from .base import Row, checked_receipt, pending_migrations, translating
from .reads import LogReads, StateIndex, StoreReads
from .sql import POSTGRES, STORED, Queries, receipt_of, stored_values

SEQUENCE_LOCK: Final = 7236601  # also in migrations/postgres/0003_sequencing.sql
MIGRATION_LOCK: Final = 7236602

SQL: Final = Queries(POSTGRES)
# Rows that arrived by direct SQL insert and have no bytes yet: the payload as text (parsed
# where a failure can be told apart) and what the direct-insert rules say about the row.
_UNHASHED: Final = (
    f"SELECT {SQL.entry_columns}, "
    f"{postgres_rules.NAME}(e.occurred_at, e.recorded_at, e.payload) "
    f"FROM {POSTGRES.journal} WHERE e.seq >= %s AND e.seq < %s "
    "AND e.leaf_hash IS NULL AND x.leaf_hash IS NULL ORDER BY e.seq"
)
_COPY: Final = f"COPY public.ledger_events_v0 ({STORED}) FROM STDIN"
_INSERT: Final = SQL.insert + SQL.insert_row
# Binary COPY: no text escaping on either side (hex-escaping the two bytea columns and parsing
# uuids and timestamps as text cost the client and the server time on every row: see
# docs/benchmarks.md §4). A binary COPY field carries no type: the server reads it with the
# column's own receive function. So psycopg's C dumpers for bytes and integers write the
# columns' wire formats directly: a uuid is its 16 bytes, a jsonb is version byte 1 + its JSON
# text, a timestamptz is int8 microseconds since 2000-01-01 UTC (see _binary_rows).
_COPY_BINARY: Final = _COPY + " (FORMAT BINARY)"
_COPY_TYPES: Final = (
    "int8", "bytea", "text", "text", "text", "text", "text", "int8", "int8", "text", "bytea",
    "bytea", "int4", "text", "bytea", "bytea", "bytea", "text",
)  # fmt: skip
_PG_EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
_SMALL_BATCH: Final = 32
_SQLSTATE: Final[dict[str, type[ReceiptsError]]] = {
    "RC422": ValidationError,
    "RC409": RevisionConflictError,
    "RC404": NotFoundError,
    "RC403": PermissionDeniedError,
    "RC405": AppendOnlyError,
}


def _unhashed_receipt(row: tuple[Any, ...]) -> Receipt:
    """A direct SQL insert's receipt, its bytes made here; UnprovableReceiptError if they cannot
    be (a row that breaks the rules the trigger enforces got in with the trigger disabled)."""
    *fields, problem = row
    seq, receipt_id = fields[0], fields[1]
    if problem is not None:
        raise UnprovableReceiptError.at(seq, receipt_id, f"{problem[0]}: {problem[1]}")
    entry = dict(zip(ENTRY_KEYS, fields[1:], strict=True))
    try:
        entry["payload"] = loads(entry["payload"], "/payload")
        return Receipt.from_entry(seq, entry)
    except ReceiptsError as exc:
        raise UnprovableReceiptError.at(seq, receipt_id, exc.message) from exc
    except (TypeError, ValueError) as exc:
        raise UnprovableReceiptError.at(seq, receipt_id, str(exc)) from exc


def _uuid_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace("-", ""))  # ids in a Receipt are canonical UUID text


def _pg_micros(text: str) -> int:
    """A receipt time (``format_time`` form) as PostgreSQL's binary timestamptz."""
    delta = datetime.fromisoformat(text) - _PG_EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _binary_rows(receipts: Iterable[Receipt]) -> Iterator[tuple[Any, ...]]:
    """COPY rows in the wire formats of ``_COPY_TYPES``, built as ``receipts`` are consumed."""
    times: dict[str, int] = {}  # a batch shares recorded_at, and most occurred_at with it
    for r in receipts:
        occurred = times.get(r.occurred_at)
        if occurred is None:
            occurred = times[r.occurred_at] = _pg_micros(r.occurred_at)
        recorded = times.get(r.recorded_at)
        if recorded is None:
            recorded = times[r.recorded_at] = _pg_micros(r.recorded_at)
        receipt_id = _uuid_bytes(r.id)
        yield (
            r.seq, receipt_id, r.domain, r.event_type, r.entity_type, r.entity_id,
            r.owner_user_id, occurred, recorded, r.op,
            receipt_id if r.logical_id == r.id else _uuid_bytes(r.logical_id),
            None if r.supersedes_id is None else _uuid_bytes(r.supersedes_id), r.revision,
            r.producer, b"\x01" + orjson.dumps(r.payload), r.entry_bytes, r.leaf_hash,
            r.correlation_id,
        )  # fmt: skip


def translate(exc: psycopg.Error) -> ReceiptsError:
    """Map a driver error to the receipts error tree (callers never see psycopg errors)."""
    diag = exc.diag
    message = diag.message_primary or str(exc)
    mapped = _SQLSTATE.get(diag.sqlstate or "")
    if mapped is not None:
        pointer = diag.message_detail or ""
        return mapped(message, [ErrorDetail(pointer, message)] if pointer else [])
    if isinstance(exc, pgerr.UniqueViolation):
        if diag.constraint_name == "ledger_events_v0_id_key":
            return IdConflictError("a receipt with this id already exists")
        return RevisionConflictError(f"the logical event was revised concurrently ({message})")
    if isinstance(exc, pgerr.CheckViolation) and "domain" in (diag.constraint_name or ""):
        return ValidationError(message, [ErrorDetail("/domain", "not a catalog domain")])
    if isinstance(exc, pgerr.InsufficientPrivilege):
        return PermissionDeniedError(message)
    return StorageError(f"postgresql: {message}")


def _translated() -> AbstractContextManager[None]:
    return translating(psycopg.Error, translate)


class _Txn(LogReads, StateIndex):
    """Reads and writes inside one transaction."""

    _sql = SQL
    _conn: psycopg.Connection[Any]

    def __init__(self, conn: psycopg.Connection[Any], next_seq: int | None = None) -> None:
        self._conn = conn
        self._next_seq = next_seq  # read under the sequencing lock when the write began

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, args).fetchall()

    def next_seq(self) -> int:
        if self._next_seq is not None:
            return self._next_seq
        return int(self._rows(SQL.size)[0][0])

    def find(self, ids: Iterable[str]) -> dict[str, Receipt]:
        keys = list(dict.fromkeys(ids))
        if not keys:
            return {}
        sql = f"{SQL.select} WHERE e.id = ANY(%s::uuid[])"
        return {r.id: r for r in map(receipt_of, self._rows(sql, [keys]))}

    def heads(self, logical_ids: Iterable[str]) -> dict[str, Receipt]:
        keys = list(dict.fromkeys(logical_ids))
        if not keys:
            return {}
        sql = (
            f"SELECT DISTINCT ON (e.logical_id) {SQL.columns} FROM {POSTGRES.journal} "
            "WHERE e.logical_id = ANY(%s::uuid[]) ORDER BY e.logical_id, e.revision DESC"
        )
        return {r.logical_id: r for r in map(receipt_of, self._rows(sql, [keys]))}

    def insert(self, receipts: Iterable[Receipt]) -> None:
        """Insert receipts in order. An iterator is consumed while the rows already written
        stream to the server, so the server stores them while the caller builds the next."""
        items = iter(receipts)
        first = list(islice(items, _SMALL_BATCH + 1))
        if len(first) <= _SMALL_BATCH:  # fewer round trips than starting a COPY
            if first:
                self._next_seq = first[-1].seq + 1
                with self._conn.cursor() as cur:
                    cur.executemany(_INSERT, [stored_values(r) for r in first])
            return
        with self._conn.cursor() as cur:
            # By type name, psycopg picks the dumper of its Binary wrapper (Python) for bytea:
            # this cursor dumps raw bytes with the C one.
            cur.adapters.register_dumper(bytes, BytesBinaryDumper)
            with cur.copy(_COPY_BINARY) as copy:
                copy.set_types(_COPY_TYPES)
                for row in _binary_rows(chain(first, items)):
                    copy.write_row(row)
        self._next_seq = row[0] + 1

    # --- the Merkle log ------------------------------------------------------------------------

    def unhashed(self, start: int, end: int) -> list[Receipt]:
        return list(map(_unhashed_receipt, self._rows(_UNHASHED, (start, end))))

    def add_entries(self, receipts: Sequence[Receipt]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO public.ledger_entries_v0 (seq, entry, leaf_hash) VALUES (%s, %s, %s)",
                [(r.seq, r.entry_bytes, r.leaf_hash) for r in receipts],
            )

    def leaf_hashes(self, start: int, end: int) -> Iterator[bytes]:
        # Every row is checked before its leaf goes into the tree: the log never signs a row
        # that was altered (or forged) outside the ledger.
        for row in self.rows(start, end):
            if row.leaf is None:
                raise StorageError("a sequenced receipt has no leaf hash; integrate first")
            yield checked_receipt(row).leaf_hash

    def rows(self, start: int, end: int) -> Iterator[Row]:
        with self._conn.cursor(name="rows") as cur:  # server-side cursor: streams
            cur.itersize = 10_000
            cur.execute(SQL.rows, (start, end))
            yield from map(Row.of, cur)

    def node_hashes(self, nodes: Sequence[Node]) -> list[bytes]:
        if not nodes:
            return []
        levels = [level for level, _ in nodes]
        idxs = [idx for _, idx in nodes]
        sql = (
            "SELECT n.level, n.idx, coalesce(t.hash, e.leaf_hash, x.leaf_hash) "
            "FROM unnest(%s::int[], %s::bigint[]) AS n(level, idx) "
            "LEFT JOIN public.tlog_nodes t ON n.level > 0 AND t.level = n.level AND t.idx = n.idx "
            "LEFT JOIN public.ledger_events_v0 e ON n.level = 0 AND e.seq = n.idx "
            "LEFT JOIN public.ledger_entries_v0 x ON n.level = 0 AND x.seq = n.idx"
        )
        found = {(lv, ix): h for lv, ix, h in self._rows(sql, (levels, idxs)) if h is not None}
        missing = [n for n in nodes if n not in found]
        if missing:
            raise StorageError(f"Merkle nodes missing from the store: {missing[:5]}")
        return [bytes(found[n]) for n in nodes]

    def add_nodes(self, nodes: Sequence[tuple[Node, bytes]]) -> None:
        with (
            self._conn.cursor() as cur,
            cur.copy("COPY public.tlog_nodes (level, idx, hash) FROM STDIN") as copy,
        ):
            for (level, idx), value in nodes:
                copy.write_row((level, idx, value))


def _connect(url: str) -> psycopg.Connection[Any]:
    """A connection; failing, an error naming the server and database, never the password."""
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.Error as exc:
        try:
            info = conninfo_to_dict(url)
        except psycopg.Error:
            info = {}
        where = (f"database {info.get('dbname') or '(default)'!r} on "
                 f"{info.get('host') or 'localhost'}:{info.get('port') or 5432} "
                 f"as user {info.get('user') or '(default)'!r}")  # fmt: skip
        reason = " ".join(str(exc).split())
        if info.get("password"):
            reason = reason.replace(str(info["password"]), "***")
        raise StorageError(f"cannot connect to the PostgreSQL ledger: {where}: {reason}") from exc


class PostgresStore(StoreReads):
    """A ledger journal in a PostgreSQL database (``public.ledger_events_v0``)."""

    _sql = SQL

    # Extending the tree inside append transactions would hold the sequencing lock (which
    # serializes all writers) for several more round trips; `integrate` and the server's
    # checkpointer do it in the background instead.
    integrate_on_append = False
    # The server's own processes do the committing work; every client commits in its own
    # transactions.
    writes_from_a_process = False

    def __init__(self, url: str, catalog: Catalog | None = None) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._conn = _connect(url)
        with _translated():
            set_json_loads(orjson.loads, self._conn)
            self._conn.execute("SET synchronous_commit = on")
            self._conn.execute("SET TIME ZONE 'UTC'")
            self.applied = migrate(self._conn, catalog)

    @contextmanager
    def read(self) -> Iterator[_Txn]:
        """A read-only REPEATABLE READ snapshot."""
        with self._lock, _translated(), self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _Txn(self._conn)

    @contextmanager
    def write(self) -> Iterator[_Txn]:
        # READ COMMITTED (the default): after the lock, each statement sees what the previous
        # lock holder committed (see module docstring).
        with self._lock, _translated(), self._conn.transaction():
            row = self._conn.execute("SELECT public.ledger_events_v0_begin()").fetchone()
            assert row is not None
            yield _Txn(self._conn, int(row[0]))

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run raw SQL (tests and tools); errors are translated."""
        with self._lock, _translated():
            cur = self._conn.execute(sql, args)
            return cur.fetchall() if cur.description else []

    def checkpoint_in_background(self) -> None:
        """Nothing to do: the server's own checkpointer copies its WAL."""

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, _translated():
            return self._conn.execute(sql, args).fetchall()

    def _fetch(self, sql: str, args: Sequence[Any]) -> list[Receipt]:
        return list(map(receipt_of, self._select(sql, args)))


def migrate(conn: psycopg.Connection[Any], catalog: Catalog | None = None) -> list[str]:
    """Apply pending migrations (each in its own transaction, recorded), then sync the catalog.

    Idempotent; concurrent migrators serialize on an advisory lock. Returns what was applied.
    """
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS public.receipts_migrations (version int PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {v for (v,) in conn.execute("SELECT version FROM public.receipts_migrations")}
        for version, name, sql in pending_migrations("postgres", done):
            with conn.transaction():
                conn.execute(sql.encode())
                conn.execute(
                    "INSERT INTO public.receipts_migrations (version, name) VALUES (%s, %s)",
                    (version, name),
                )
            applied.append(name)
        sync_catalog(conn, catalog or Catalog.load())
        sync_rules(conn)
    return applied


def sync_rules(conn: psycopg.Connection[Any]) -> None:
    """Install the direct-insert rules generated from this process's limits (postgres_rules)."""
    body = postgres_rules.rules_body()
    row = conn.execute(
        "SELECT prosrc FROM pg_proc WHERE oid = to_regprocedure(%s)", (postgres_rules.FUNCTION,)
    ).fetchone()
    if row is None or row[0] != body:
        conn.execute(postgres_rules.rules_sql(body).encode())


def sync_catalog(conn: psycopg.Connection[Any], catalog: Catalog) -> None:
    """Make the database's catalog table and domain CHECK match the catalog (generated SQL)."""
    rows = sorted(
        (t.name, t.domain, list(t.entity_types), list(t.writers), t.required, t.own_source)
        for t in catalog
    )
    stored = conn.execute(
        "SELECT event_type, domain, entity_types, writers, required, own_source "
        "FROM public.ledger_catalog_v0 ORDER BY event_type"
    ).fetchall()
    if [tuple(r) for r in stored] == rows:
        return
    conn.execute("DELETE FROM public.ledger_catalog_v0")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO public.ledger_catalog_v0 VALUES (%s, %s, %s, %s, %s, %s)", rows
        )
    domains = ", ".join(f"'{d}'" for d in sorted(catalog.domains))  # names match ^[a-z][a-z0-9_]*$
    conn.execute(
        "ALTER TABLE public.ledger_events_v0 "
        "DROP CONSTRAINT IF EXISTS ledger_events_v0_domain_check"
    )
    # NOT VALID: rows already stored were checked when written; new rows are checked from now on.
    conn.execute(
        "ALTER TABLE public.ledger_events_v0 ADD CONSTRAINT ledger_events_v0_domain_check "
        f"CHECK (domain IN ({domains})) NOT VALID"
    )
