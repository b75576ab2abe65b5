"""The reads both stores make alike, over the SQL of their dialect (``sql.Queries``).

Each store supplies its connections: ``StoreReads`` needs ``_select`` (rows, on the store's read
connection), ``_fetch`` (receipts, checked as they are read) and ``execute``; ``LogReads``, for a
transaction, needs ``_conn``. Where the backends differ (the write path, sequencing, streaming,
looking up many ids) each keeps its own code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

from ..model import Receipt
from .base import Query, Row, StoredCheckpoint, StoredKey, checked_receipt
from .sql import Queries, checkpoint_of, receipt_of


def as_blob(value: Any) -> bytes:
    # A row edited behind the ledger's back may hold TEXT where BLOB belongs: read, don't crash.
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


class StoreReads:
    """``get``, ``query``, ``current``, ``size``, ``granted`` and ``grant`` of a store."""

    _sql: ClassVar[Queries]

    def _select(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _fetch(self, sql: str, args: Sequence[Any]) -> list[Receipt]:
        raise NotImplementedError

    def execute(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def get(self, receipt_id: str) -> Receipt | None:
        rows = self._select(self._sql.get, (receipt_id,))
        return checked_receipt(Row.of(rows[0]), full=True) if rows else None

    def query(self, query: Query) -> list[Receipt]:
        return self._fetch(*self._sql.query(query))

    def current(self, entity_type: str, entity_id: str) -> list[Receipt]:
        return self._fetch(self._sql.current, (entity_type, entity_id))

    def size(self) -> int:
        return int(self._select(self._sql.size)[0][0])

    def granted(self, entity_type: str, entity_id: str, user_id: str) -> bool:
        return bool(self.execute(self._sql.granted, (entity_type, entity_id, user_id)))

    def grant(self, entity_type: str, entity_id: str, user_id: str, granted_by: str) -> None:
        self.execute(self._sql.grant, (entity_type, entity_id, user_id, granted_by))


class LogReads:
    """The Merkle log's tree heads, checkpoints and keys, read and added in a transaction."""

    _sql: ClassVar[Queries]
    _conn: Any  # the transaction's connection: sqlite3's or psycopg's

    def tree_size(self) -> int:
        """How many receipts the Merkle tree covers (integrated so far)."""
        (value,) = self._conn.execute(self._sql.tree_size).fetchone()
        return int(value)

    def tree_heads(self, start: int, end: int) -> list[tuple[int, bytes]]:
        rows = self._conn.execute(self._sql.tree_heads, (start, end)).fetchall()
        return [(int(size), as_blob(root)) for size, root in rows]

    def add_tree_head(self, size: int, root: bytes, at: str) -> None:
        self._conn.execute(self._sql.add_tree_head, (size, root, at))

    def checkpoint(self, size: int | None = None) -> StoredCheckpoint | None:
        rows = self._conn.execute(*self._sql.checkpoint(size)).fetchall()
        return checkpoint_of(rows[0]) if rows else None

    def first_checkpoint_over(self, seq: int) -> StoredCheckpoint | None:
        rows = self._conn.execute(self._sql.first_checkpoint_over, (seq,)).fetchall()
        return checkpoint_of(rows[0]) if rows else None

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        return map(checkpoint_of, self._conn.execute(self._sql.checkpoints).fetchall())

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None:
        c = checkpoint
        args = (c.size, c.root_hash, c.origin, c.note, c.signed_at)
        self._conn.execute(self._sql.add_checkpoint, args)

    def keys(self) -> list[StoredKey]:
        return [StoredKey(*row) for row in self._conn.execute(self._sql.keys).fetchall()]

    def add_key(self, key: StoredKey) -> None:
        k = key
        args = (k.index, k.verifier_key, k.from_size, k.rotation, k.recorded_at)
        self._conn.execute(self._sql.add_key, args)


class StateIndex:
    """The derived states' index and the projector's cursor, in a transaction
    (receipts.project)."""

    _sql: ClassVar[Queries]
    _conn: Any

    def state_receipts(
        self, keys: Sequence[tuple[str, str]], known: dict[int, Receipt] | None = None
    ) -> dict[tuple[str, str], list[Receipt]]:
        """Every revision of every logical event filed under each ``(state, key)``, in seq
        order: one statement per 400 keys. A row whose seq is in ``known`` (receipts this
        transaction wrote) is taken from there rather than read again."""
        known = known or {}
        out: dict[tuple[str, str], list[Receipt]] = {k: [] for k in keys}
        for i in range(0, len(keys), 400):
            chunk = keys[i : i + 400]
            pairs = " OR ".join([self._sql.state_index_pair] * len(chunk))
            args = [part for pair in chunk for part in pair]
            for row in self._conn.execute(self._sql.state_receipts_in.format(pairs), args):
                made = known.get(row[2])
                out[(str(row[0]), str(row[1]))].append(made or receipt_of(row[2:]))
        return out

    def add_state_index(self, rows: Sequence[tuple[str, str, int, str]]) -> None:
        """File receipts under states' keys: ``(state, key, seq, logical_id)`` each."""
        self._insert(self._sql.add_state_index, self._sql.state_index_row, rows)

    def add_state_mentions(self, rows: Sequence[tuple[str, str, str]]) -> None:
        """Note that states name entities in their values: ``(entity, state, key)`` each."""
        self._insert(self._sql.add_state_mentions, self._sql.state_mention_row, rows)

    def _insert(self, sql: str, row: str, rows: Sequence[tuple[Any, ...]]) -> None:
        for i in range(0, len(rows), 200):  # multi-row INSERTs: one round trip per 200 rows
            chunk = rows[i : i + 200]
            values = ", ".join([row] * len(chunk))
            self._conn.execute(sql.format(values), [v for r in chunk for v in r])

    def state_keys_mentioning(self, entity: str) -> list[tuple[str, str]]:
        """``(state, key)`` of every state whose value names ``entity`` (TYPE:ID)."""
        rows = self._conn.execute(self._sql.state_keys_mentioning, (entity,)).fetchall()
        return [(str(state), str(key)) for state, key in rows]

    def file_by_entity(self, steps: Sequence[tuple[str, str, str]], start: int, end: int) -> None:
        """File the receipts with seqs in [start, end) whose type a state keyed by the entity
        folds under that entity's key, in one statement: ``steps`` are ``(event type, state,
        entity type or '' for any)``. The key is made from the row's columns."""
        if steps:
            values = ", ".join([self._sql.file_by_entity_row] * len(steps))
            args = [v for step in steps for v in step]
            self._conn.execute(self._sql.file_by_entity.format(values), [*args, start, end])

    def mention_by_entity(
        self,
        mentions: Sequence[tuple[str, str, Any, Sequence[str], Sequence[str] | None]],
        start: int,
        end: int,
    ) -> set[str]:
        """Note, in SQL, the entities that receipts with seqs in [start, end) name in a value,
        for states keyed by the entity: ``(entity type named, state, source, its event types,
        its entity types or None)`` each. Returns the states with a source SQL cannot say
        (``Queries.source``): Python's to note."""
        left = set()
        for named, state, source, types, entity_types in mentions:
            value = self._sql.source(source)
            if value is None:
                left.add(state)
                continue
            mark = self._sql.dialect.mark
            only = "" if entity_types is None else (
                f" AND e.entity_type IN ({', '.join([mark] * len(entity_types))})"
            )  # fmt: skip
            sql = self._sql.mention_by_entity.format(
                value=value[1], types=", ".join([mark] * len(types)), entity_types=only
            )
            args = [named, state, start, end, *types, *(entity_types or ())]
            self._conn.execute(sql, args)
        return left

    def rows_of_types(self, event_types: Sequence[str], start: int, end: int) -> list[Row]:
        """The journal's rows of ``event_types`` with seqs in [start, end), in seq order, as
        stored (unchecked)."""
        if not event_types:
            return []
        marks = ", ".join([self._sql.dialect.mark] * len(event_types))
        sql = self._sql.rows_of_types.format(marks)
        return [Row.of(r) for r in self._conn.execute(sql, [start, end, *event_types])]

    def entity_state_keys(self, entity_type: str, entity_id: str) -> list[tuple[str, str]]:
        """``(state, key)`` of every state a receipt about the entity files under."""
        rows = self._conn.execute(self._sql.entity_state_keys, (entity_type, entity_id))
        return [(str(state), str(key)) for state, key in rows.fetchall()]

    def state_keys_naming(self, exact: str, part: str) -> list[tuple[str, str]]:
        """``(state, key)`` of every key equal to ``exact`` or with ``part`` as a part (both
        in the index's RFC 8785 text)."""
        rows = self._conn.execute(self._sql.state_keys_naming, (exact, part)).fetchall()
        return [(str(state), str(key)) for state, key in rows]

    def clear_state_index(self) -> None:
        self._conn.execute(self._sql.clear_state_index)
        self._conn.execute(self._sql.clear_state_mentions)

    def projector(self, name: str) -> tuple[int, str] | None:
        """The projector's cursor (the next seq to index) and the digest of its definitions."""
        row = self._conn.execute(self._sql.projector, (name,)).fetchone()
        return None if row is None else (int(row[0]), str(row[1]))

    def set_projector(self, name: str, next_seq: int, definitions: str) -> None:
        self._conn.execute(self._sql.set_projector, (name, next_seq, definitions))
