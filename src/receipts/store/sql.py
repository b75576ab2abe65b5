"""The SQL both stores run, written once and rendered for each backend's dialect.

A ``Dialect`` holds only what differs between SQLite and PostgreSQL: the driver's placeholder,
the schema before table names, how a read turns a uuid, JSON or timestamp column into the text a
receipt holds (PostgreSQL casts; SQLite stores text), where a row's entry bytes come from
(PostgreSQL also joins the bytes given later to a direct SQL insert), and the SQL for "now".
``Queries`` renders the statements both run, once per dialect; ``receipt_of``, ``checkpoint_of``
and ``stored_values`` are the rows they read and write. What each backend does its own way (the
write path, locking, sequencing, streaming, looking up many ids) stays in its module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from ..model import Receipt
from .base import Query, Row, StoredCheckpoint, checked_receipt, receipt_if_intact

# The journal's columns in the order writes give them (SQLite's INSERT, PostgreSQL's COPY).
STORED: Final = (
    "seq, id, domain, event_type, entity_type, entity_id, owner_user_id, occurred_at, "
    "recorded_at, op, logical_id, supersedes_id, revision, producer, payload, entry, leaf_hash, "
    "correlation_id"
)


_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_COLUMNS: Final = {"$owner_user_id": "e.owner_user_id", "$entity_id": "e.entity_id",
                   "$entity_type": "e.entity_type", "$event_type": "e.event_type"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between the two backends' SQL."""

    mark: str  # the driver's placeholder
    schema: str  # before every table name
    journal: str  # the journal as reads select it, aliased ``e``
    text: str  # a uuid or JSON column read as text ({} is the column)
    time: str  # a timestamp column read as a receipt's RFC 3339 text ({} is the column)
    entry: str  # a row's entry bytes
    leaf: str  # a row's leaf hash
    uuid: str  # a placeholder compared with a uuid column
    now: str  # the current time, as stored
    contains: str  # whether text {0} holds text {1}, exactly (case and all)
    json_string: str  # text {} as a JSON string (the same as RFC 8785's: tested)
    json_kind: str  # the JSON type of the payload's member at path {} (NULL if absent)
    json_text: str  # the payload's string member at path {}, as text
    string_kind: str  # what json_kind says of a string
    path: tuple[str, str, str, str]  # a member path: opening, each name ({}), separator, closing


SQLITE: Final = Dialect(
    mark="?",
    schema="",
    journal="ledger_events_v0 e",
    text="{}",
    time="{}",
    entry="e.entry",
    leaf="e.leaf_hash",
    uuid="?",
    now="strftime('%Y-%m-%dT%H:%M:%fZ')",
    contains="instr({0}, {1}) > 0",
    json_string="json_quote({})",
    json_kind="json_type(e.payload, '{}')",
    json_text="json_extract(e.payload, '{}')",
    string_kind="text",
    path=("$", '."{}"', "", ""),
)
POSTGRES: Final = Dialect(
    mark="%s",
    schema="public.",
    journal="public.ledger_events_v0 e LEFT JOIN public.ledger_entries_v0 x USING (seq)",
    text="{}::text",
    time="to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    entry="coalesce(e.entry, x.entry)",
    leaf="coalesce(e.leaf_hash, x.leaf_hash)",
    uuid="%s::uuid",
    now="now()",
    contains="strpos({0}, {1}) > 0",
    json_string="to_json(({})::text)::text",
    json_kind="jsonb_typeof(e.payload #> '{}')",
    json_text="(e.payload #>> '{}')",
    string_kind="string",
    path=("{", "{}", ",", "}"),
)


class Queries:
    """The statements both stores run, rendered for one dialect."""

    def __init__(self, d: Dialect) -> None:
        m, s, text, time = d.mark, d.schema, d.text.format, d.time.format
        self.dialect = d
        # seq and the receipt entry's fields (the row a direct SQL insert's bytes are made from)
        self.entry_columns = (
            f"e.seq, {text('e.id')}, e.domain, e.event_type, e.entity_type, e.entity_id, "
            f"e.owner_user_id, {time('e.occurred_at')}, {time('e.recorded_at')}, e.op, "
            f"{text('e.logical_id')}, {text('e.supersedes_id')}, e.revision, e.producer, "
            f"{text('e.payload')}"
        )
        # What reads select: base.Row's layout, every column a query reads checked against it.
        self.columns = f"{self.entry_columns}, e.correlation_id, {d.entry}, {d.leaf}"
        self.select = f"SELECT {self.columns} FROM {d.journal}"
        self.get = f"{self.select} WHERE e.id = {d.uuid}"
        self.current = (
            f"{self.select} WHERE e.entity_type = {m} AND e.entity_id = {m} AND NOT EXISTS "
            f"(SELECT 1 FROM {s}ledger_events_v0 n WHERE n.supersedes_id = e.id) ORDER BY e.seq"
        )
        self.rows = f"{self.select} WHERE e.seq >= {m} AND e.seq < {m} ORDER BY e.seq"
        self.size = f"SELECT coalesce(max(seq), -1) + 1 FROM {s}ledger_events_v0"
        self.visible = (
            f"(e.owner_user_id = {m} OR EXISTS (SELECT 1 FROM {s}ledger_audience_v0 a "
            f"WHERE a.entity_type = e.entity_type AND a.entity_id = e.entity_id "
            f"AND a.user_id = {m}))"
        )
        self.insert = f"INSERT INTO {s}ledger_events_v0 ({STORED}) VALUES "
        self.insert_row = "(" + ", ".join([m] * (STORED.count(",") + 1)) + ")"
        self.granted = (
            f"SELECT 1 FROM {s}ledger_audience_v0 WHERE entity_type = {m} AND entity_id = {m} "
            f"AND user_id = {m}"
        )
        self.grant = (
            f"INSERT INTO {s}ledger_audience_v0 (entity_type, entity_id, user_id, granted_at, "
            f"granted_by) VALUES ({m}, {m}, {m}, {d.now}, {m}) ON CONFLICT DO NOTHING"
        )
        self._render_log(d)
        self._render_states(d)
        self._render_filing(d)

    def _render_states(self, d: Dialect) -> None:
        """The derived states' index and the projector's cursor (receipts.project)."""
        m, s = d.mark, d.schema
        index = f"{s}ledger_state_index_v0"
        # Every revision of what is filed under some (state, key) pairs, in one statement. The
        # pairs OR-ed, not a VALUES list: both planners then look each pair up in the key.
        self.state_receipts_in = (
            f"SELECT DISTINCT i.state, i.state_key, {self.columns} FROM {index} i "
            f"JOIN {d.journal} ON e.logical_id = i.logical_id WHERE {{}} ORDER BY e.seq"
        )
        self.state_index_pair = f"(i.state = {m} AND i.state_key = {m})"
        self.add_state_index = (
            f"INSERT INTO {index} (state, state_key, seq, logical_id) VALUES {{}} "
            "ON CONFLICT DO NOTHING"
        )
        self.state_index_row = f"({m}, {m}, {m}, {d.uuid})"
        self.rows_of_types = (
            f"{self.select} WHERE e.seq >= {m} AND e.seq < {m} AND e.event_type IN ({{}}) "
            "ORDER BY e.seq"
        )
        self.entity_state_keys = (
            f"SELECT DISTINCT i.state, i.state_key FROM {index} i "
            f"JOIN {s}ledger_events_v0 e ON e.seq = i.seq "
            f"WHERE e.entity_type = {m} AND e.entity_id = {m} ORDER BY i.state, i.state_key"
        )
        self.state_keys_naming = (
            f"SELECT DISTINCT state, state_key FROM {index} WHERE state_key = {m} "
            f"OR {d.contains.format('state_key', m)} ORDER BY state, state_key"
        )
        self.clear_state_index = f"DELETE FROM {index}"
        mentions = f"{s}ledger_state_mentions_v0"
        self.add_state_mentions = (
            f"INSERT INTO {mentions} (entity, state, state_key) VALUES {{}} ON CONFLICT DO NOTHING"
        )
        self.state_mention_row = f"({m}, {m}, {m})"
        self.state_keys_mentioning = (
            f"SELECT state, state_key FROM {mentions} WHERE entity = {m} ORDER BY state, state_key"
        )
        self.clear_state_mentions = f"DELETE FROM {mentions}"
        self.projector = (
            f"SELECT next_seq, definitions FROM {s}ledger_projector_v0 WHERE name = {m}"
        )
        self.set_projector = (
            f"INSERT INTO {s}ledger_projector_v0 (name, next_seq, definitions) VALUES ({m}, {m}, "
            f"{m}) ON CONFLICT (name) DO UPDATE SET next_seq = excluded.next_seq, "
            "definitions = excluded.definitions"
        )

    def _render_filing(self, d: Dialect) -> None:
        """The projector's statements that file in SQL (receipts.project), no receipt read."""
        m, s = d.mark, d.schema
        index = f"{s}ledger_state_index_v0"
        # File the receipts of [start, end) under their entity's key ('["type:id"]') for the
        # states keyed by the entity alone: (event type, state, entity type or '') rows in {}.
        entity_key = "'[' || " + d.json_string.format("e.entity_type || ':' || e.entity_id")
        self.file_by_entity = (
            f"WITH f (event_type, state, entity_type) AS (VALUES {{}}) "
            f"INSERT INTO {index} (state, state_key, seq, logical_id) "
            f"SELECT f.state, {entity_key} || ']', e.seq, e.logical_id "
            f"FROM {s}ledger_events_v0 e JOIN f ON f.event_type = e.event_type "
            f"AND (f.entity_type = '' OR f.entity_type = e.entity_type) "
            f"WHERE e.seq >= {m} AND e.seq < {m} ON CONFLICT DO NOTHING"
        )
        self.file_by_entity_row = f"({m}, {m}, {m})"
        # The entities that receipts of some types name in a value ({value}, a string), under
        # their entity's key: (entity type named, state) as arguments, the types in {types}.
        self.mention_by_entity = (
            f"INSERT INTO {s}ledger_state_mentions_v0 (entity, state, state_key) "
            f"SELECT DISTINCT {m} || ':' || x.v, {m}, x.k FROM (SELECT {{value}} AS v, "
            f"{entity_key} || ']' AS k FROM {s}ledger_events_v0 e WHERE e.seq >= {m} "
            f"AND e.seq < {m} AND e.event_type IN ({{types}}){{entity_types}}) x "
            "WHERE x.v IS NOT NULL AND x.v <> '' ON CONFLICT DO NOTHING"
        )

    def _render_log(self, d: Dialect) -> None:
        """The Merkle log's tables: tree heads, checkpoints, signing keys."""
        m, s, time = d.mark, d.schema, d.time.format
        self.tree_size = f"SELECT coalesce(max(size), 0) FROM {s}tlog_tree_heads"
        self.tree_heads = (
            f"SELECT size, root_hash FROM {s}tlog_tree_heads WHERE size >= {m} AND size < {m} "
            "ORDER BY size"
        )
        self.add_tree_head = f"INSERT INTO {s}tlog_tree_heads VALUES ({m}, {m}, {m})"
        self._checkpoint = (
            f"SELECT size, root_hash, origin, note, {time('signed_at')} FROM {s}tlog_checkpoints"
        )
        self.checkpoints = self._checkpoint + " ORDER BY size"
        self.first_checkpoint_over = self._checkpoint + f" WHERE size > {m} ORDER BY size LIMIT 1"
        self.add_checkpoint = f"INSERT INTO {s}tlog_checkpoints VALUES ({m}, {m}, {m}, {m}, {m})"
        self.keys = (
            f"SELECT idx, verifier_key, from_size, rotation, {time('recorded_at')} "
            f"FROM {s}tlog_keys ORDER BY idx"
        )
        self.add_key = (
            f"INSERT INTO {s}tlog_keys (idx, verifier_key, from_size, rotation, recorded_at) "
            f"VALUES ({m}, {m}, {m}, {m}, {m})"
        )

    def source(self, source: Any) -> tuple[str, str] | None:
        """A state definition's source (catalog/states.py) as SQL over the journal row ``e``:
        (whether it is present and not null, its value if a string, else NULL), as
        ``fold.resolve`` reads it; None where only Python says it exactly."""
        d = self.dialect
        if isinstance(source, dict):
            parts = [self.source(s) for s in source.get("first", ())]
            if not parts or None in parts:
                return None  # a constant, or a part only Python says
            found = [p for p in parts if p is not None]  # (for the type checker: all of them)
            whens = " ".join(f"WHEN {present} THEN {text}" for present, text in found)
            return " OR ".join(f"({present})" for present, _ in found), f"CASE {whens} END"
        if isinstance(source, str) and source.startswith("/"):
            names = source[1:].split("/")
            if not all(_NAME.fullmatch(n) for n in names):
                return None  # escapes, array indexes: Python's
            opening, name, separator, closing = d.path
            path = opening + separator.join(name.format(n) for n in names) + closing
            kind = d.json_kind.format(path)
            text = f"CASE WHEN {kind} = '{d.string_kind}' THEN {d.json_text.format(path)} END"
            return f"coalesce({kind}, 'null') <> 'null'", text
        column = _COLUMNS.get(source)
        return None if column is None else (f"{column} IS NOT NULL", column)

    def checkpoint(self, size: int | None) -> tuple[str, tuple[Any, ...]]:
        """The checkpoint of this size, or the latest one."""
        if size is None:
            return self._checkpoint + " ORDER BY size DESC LIMIT 1", ()
        return self._checkpoint + f" WHERE size = {self.dialect.mark}", (size,)

    def query(self, query: Query) -> tuple[str, list[Any]]:
        """A query's statement and arguments: its filters, in seq order, at most ``limit``."""
        m = self.dialect.mark
        where, args = [], []
        for column in ("entity_type", "entity_id", "correlation_id", "domain", "event_type"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"e.{column} = {m}")
                args.append(value)
        for value, condition in ((query.since, ">="), (query.until, "<")):
            if value is not None:
                where.append(f"e.occurred_at {condition} {m}")
                args.append(value)
        if query.visible_to is not None:
            where.append(self.visible)
            args += [query.visible_to, query.visible_to]
        if query.after is not None:
            where.append(f"e.seq > {m}")
            args.append(query.after)
        sql = self.select + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY e.seq"
        if query.limit is not None:
            sql += f" LIMIT {m}"
            args.append(query.limit)
        return sql, args


def receipt_of(row: tuple[Any, ...]) -> Receipt:
    """The receipt a row selected by ``Queries.select`` holds, checked (base.checked_receipt)."""
    return receipt_if_intact(row) or checked_receipt(Row.of(row))


def checkpoint_of(row: tuple[Any, ...]) -> StoredCheckpoint:
    return StoredCheckpoint(int(row[0]), bytes(row[1]), row[2], row[3], row[4])


def stored_values(r: Receipt) -> tuple[Any, ...]:
    """A receipt's row, in the order of ``STORED``."""
    return (
        r.seq, r.id, r.domain, r.event_type, r.entity_type, r.entity_id, r.owner_user_id,
        r.occurred_at, r.recorded_at, r.op, r.logical_id, r.supersedes_id, r.revision,
        r.producer, orjson.dumps(r.payload).decode(), r.entry_bytes, r.leaf_hash,
        r.correlation_id,
    )  # fmt: skip
