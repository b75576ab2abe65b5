"""What every storage backend provides. Backends share this protocol and the SQL of their reads
(``sql``, ``reads``); each writes, locks and sequences its own way.

Contract:
- ``write()`` MUST hold the backend's write lock for the whole block, so that ``next_seq``
  and the rows inserted are dense and in commit order.
- Leaving ``write()`` normally MUST commit durably before returning; an exception MUST roll
  back everything written in the block. A caller MUST NOT report a receipt as stored before
  ``write()`` has returned.
- Driver errors MUST be translated to :mod:`receipts.errors` classes at this boundary.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from importlib import resources
from operator import itemgetter
from typing import Any, Final, NamedTuple, Protocol, TypeVar

import orjson

from ..errors import ErrorDetail, ReceiptsError, TamperedError
from ..model import ENTRY_KEYS, Receipt, entry_bytes, leaf_hash
from ..tlog import Node

_PAYLOAD: Final = ENTRY_KEYS.index("payload")
_entry_values: Final = itemgetter(*ENTRY_KEYS)
_sha256: Final = hashlib.sha256  # RFC 9162 leaf hash: SHA-256(0x00 || entry bytes)
_new_receipt: Final = tuple.__new__


class Row(NamedTuple):
    """A journal row as stored, before anything is believed: the entry's fields as columns
    (``payload`` as JSON text, or None where not read), the ``correlation_id`` column, and the
    stored entry bytes and leaf hash (None for a direct SQL insert not yet integrated)."""

    seq: int
    columns: tuple[Any, ...]
    correlation_id: str | None
    entry: bytes | None
    leaf: bytes | None

    @classmethod
    def of(cls, raw: tuple[Any, ...]) -> Row:
        """A row as both stores select it: seq, the entry's 14 columns, correlation_id, entry,
        leaf_hash."""
        return cls(raw[0], raw[1:15], raw[15], _as_bytes(raw[16]), _as_bytes(raw[17]))


def _as_bytes(value: Any) -> bytes | None:
    # A row edited behind the ledger's back may hold TEXT where bytes belong: read, don't crash.
    if value is None or type(value) is bytes:
        return value
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def receipt_if_intact(row: tuple[Any, ...]) -> Receipt | None:
    """The hot read path of ``checked_receipt``, on a row as both stores select it (seq, the
    entry's 14 columns, correlation_id, entry, leaf_hash): the receipt if every check passes,
    else None, and ``checked_receipt`` says what is wrong."""
    entry, leaf = row[16], row[17]
    if type(entry) is not bytes or _sha256(b"\x00" + entry).digest() != leaf:
        return None
    try:
        parsed = orjson.loads(entry)
        values = _entry_values(parsed)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if values[:_PAYLOAD] != row[1 : _PAYLOAD + 1] or len(parsed) != len(ENTRY_KEYS):
        return None
    payload = values[_PAYLOAD]
    correlation = payload.get("correlation_id") if type(payload) is dict else None
    if row[15] != (correlation if type(correlation) is str else None):
        return None
    return _new_receipt(Receipt, (row[0], *values, entry, leaf))


def tampered(seq: int, receipt_id: Any, why: str) -> TamperedError:
    who = f"receipt seq {seq}" + (f" (id {receipt_id})" if receipt_id else "")
    return TamperedError(
        f"{who} was altered outside the ledger: {why}; run `receipts verify` for the whole log",
        [ErrorDetail(f"/seq/{seq}", why)],
    )


def checked_receipt(row: Row, *, full: bool = False) -> Receipt:
    """The receipt a row holds, read from its hashed entry bytes, after checking that the
    bytes hash to the stored leaf hash and that every column a query reads agrees with them
    (else ``TamperedError`` naming the seq and the column). ``full`` also checks that the bytes
    are the RFC 8785 encoding of the entry and that the payload column agrees (the audit, and
    receipts handed out with a proof)."""
    seq, columns = row.seq, row.columns
    if row.entry is None:  # a direct SQL insert, not yet integrated: its bytes come from its row
        return _derived(row)
    if row.leaf is None or leaf_hash(row.entry) != row.leaf:
        raise tampered(seq, columns[0], "its leaf_hash does not match its entry bytes")
    try:
        entry = orjson.loads(row.entry)
        values = _entry_values(entry)
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise tampered(seq, columns[0], "its entry bytes are not a receipt entry") from None
    if len(entry) != len(ENTRY_KEYS) or columns[:_PAYLOAD] != values[:_PAYLOAD]:
        _differs(row, entry)
    payload = values[_PAYLOAD]
    correlation = payload.get("correlation_id") if type(payload) is dict else None
    if row.correlation_id != (correlation if type(correlation) is str else None):
        raise tampered(seq, columns[0], "its correlation_id column differs from its entry")
    if full:
        if columns[_PAYLOAD] is not None and orjson.loads(columns[_PAYLOAD]) != payload:
            raise tampered(seq, columns[0], "its payload column differs from its entry")
        try:
            canonical = entry_bytes(entry)
        except ReceiptsError:
            canonical = b""
        if canonical != row.entry:
            raise tampered(seq, columns[0], "its entry bytes are not the RFC 8785 encoding")
    return Receipt._make((seq, *values, row.entry, row.leaf))


def _derived(row: Row) -> Receipt:
    fields = dict(zip(ENTRY_KEYS, row.columns, strict=True))
    try:
        fields["payload"] = orjson.loads(fields["payload"])
        return Receipt.from_entry(row.seq, fields)
    except (orjson.JSONDecodeError, ReceiptsError, TypeError) as exc:
        why = exc.errors[0].message if isinstance(exc, ReceiptsError) and exc.errors else str(exc)
        raise tampered(row.seq, row.columns[0], f"its row cannot be canonicalized: {why}") from None


def _differs(row: Row, entry: dict[str, Any]) -> None:
    keys = [k for k in entry if k not in ENTRY_KEYS] + [k for k in ENTRY_KEYS if k not in entry]
    if keys:
        raise tampered(row.seq, row.columns[0], f"its entry bytes have the wrong keys {keys}")
    for key, column in zip(ENTRY_KEYS[:_PAYLOAD], row.columns, strict=False):
        if column != entry[key]:
            raise tampered(row.seq, row.columns[0], f"its {key} column differs from its entry")


def pending_migrations(backend: str, done: set[int]) -> Iterator[tuple[int, str, str]]:
    """The schema migrations of ``backend`` (``sqlite`` or ``postgres``) whose version is not
    in ``done``, in order: ``(version, file name, SQL)``."""
    folder = resources.files("receipts.store").joinpath("migrations", backend)
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        version = int(item.name.split("_", 1)[0])
        if item.name.endswith(".sql") and version not in done:
            yield version, item.name, item.read_text("utf-8")


E = TypeVar("E", bound=Exception)


@contextmanager
def translating(driver_error: type[E], translate: Callable[[E], ReceiptsError]) -> Iterator[None]:
    """Raise a database driver's ``driver_error`` as the ``ReceiptsError`` it means."""
    try:
        yield
    except driver_error as exc:
        raise translate(exc) from exc


@dataclass(frozen=True, slots=True)
class Query:
    """A filter over the journal in ``seq`` order, paged by ``after`` (exclusive) and ``limit``."""

    entity_type: str | None = None
    entity_id: str | None = None
    correlation_id: str | None = None
    domain: str | None = None
    event_type: str | None = None
    since: str | None = None  # occurred_at >= since
    until: str | None = None  # occurred_at < until
    after: int | None = None
    limit: int | None = None
    visible_to: str | None = None  # only receipts this user owns or is granted (audience)


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root_hash: bytes
    origin: str
    note: str  # the signed note, verbatim
    signed_at: str


@dataclass(frozen=True, slots=True)
class StoredKey:
    """One of the ledger's checkpoint signing keys: the first (``index`` 0, no rotation), or
    the key a rotation statement (a note signed by the key before and by this one) hands over
    to from tree size ``from_size`` on."""

    index: int
    verifier_key: str  # <name>+<hex key id>+<base64 key>
    from_size: int
    rotation: str | None  # the signed rotation statement, verbatim
    recorded_at: str


class ReadTxn(Protocol):
    """Reads inside one transaction: a consistent snapshot of the journal and the tree."""

    def next_seq(self) -> int: ...

    def tree_size(self) -> int:
        """How many receipts the Merkle tree covers (integrated so far)."""
        ...

    def leaf_hashes(self, start: int, end: int) -> Iterator[bytes]:
        """Leaf hashes of seqs [start, end), in order, streamed."""
        ...

    def rows(self, start: int, end: int) -> Iterator[Row]:
        """The journal's rows with seqs in [start, end), in seq order, as stored (unchecked),
        streamed."""
        ...

    def tree_heads(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """(size, root hash) of every recorded integration step with size in [start, end)."""
        ...

    def unhashed(self, start: int, end: int) -> list[Receipt]:
        """Receipts in [start, end) stored without entry bytes (direct SQL inserts), with their
        bytes and leaf hash derived from the row."""
        ...

    def node_hashes(self, nodes: Sequence[Node]) -> list[bytes]:
        """Hashes of complete subtrees (level, index); level 0 is the journal's leaf_hash."""
        ...

    def checkpoint(self, size: int | None = None) -> StoredCheckpoint | None:
        """The checkpoint of this size, or the latest one."""
        ...

    def first_checkpoint_over(self, seq: int) -> StoredCheckpoint | None:
        """The first (smallest) checkpoint whose tree holds receipt ``seq``."""
        ...

    def checkpoints(self) -> Iterator[StoredCheckpoint]: ...

    def state_receipts(
        self, keys: Sequence[tuple[str, str]], known: dict[int, Receipt] | None = None
    ) -> dict[tuple[str, str], list[Receipt]]:
        """Every revision of every logical event filed under each ``(state, key)``."""
        ...

    def entity_state_keys(self, entity_type: str, entity_id: str) -> list[tuple[str, str]]:
        """``(state, key)`` of every state a receipt about the entity files under."""
        ...

    def state_keys_mentioning(self, entity: str) -> list[tuple[str, str]]:
        """``(state, key)`` of every state whose value names ``entity`` (TYPE:ID)."""
        ...

    def state_keys_naming(self, exact: str, part: str) -> list[tuple[str, str]]:
        """``(state, key)`` of the keys equal to ``exact`` or holding ``part``."""
        ...

    def projector(self, name: str) -> tuple[int, str] | None:
        """The projector's next seq to index and its definitions' digest."""
        ...

    def keys(self) -> list[StoredKey]:
        """The ledger's signing keys, first to current (empty before the first is recorded)."""
        ...


class WriteTxn(ReadTxn, Protocol):
    def find(self, ids: Iterable[str]) -> dict[str, Receipt]:
        """Stored receipts among ``ids``, by id."""
        ...

    def heads(self, logical_ids: Iterable[str]) -> dict[str, Receipt]:
        """The latest revision of each logical event, by logical id."""
        ...

    def insert(self, receipts: Iterable[Receipt]) -> None:
        """Insert receipts in order, consuming the iterable to its end (it may be a generator
        that builds them: an exception it raises aborts the insert and the transaction)."""
        ...

    def add_entries(self, receipts: Sequence[Receipt]) -> None:
        """Record the derived entry bytes and leaf hashes of ``unhashed`` receipts."""
        ...

    def add_nodes(self, nodes: Sequence[tuple[Node, bytes]]) -> None: ...

    def add_tree_head(self, size: int, root: bytes, at: str) -> None: ...

    def add_checkpoint(self, checkpoint: StoredCheckpoint) -> None: ...

    def add_key(self, key: StoredKey) -> None: ...

    def add_state_index(self, rows: Sequence[tuple[str, str, int, str]]) -> None: ...

    def add_state_mentions(self, rows: Sequence[tuple[str, str, str]]) -> None: ...

    def file_by_entity(
        self, steps: Sequence[tuple[str, str, str]], start: int, end: int
    ) -> None: ...

    def rows_of_types(self, event_types: Sequence[str], start: int, end: int) -> list[Row]: ...

    def mention_by_entity(
        self,
        mentions: Sequence[tuple[str, str, Any, Sequence[str], Sequence[str] | None]],
        start: int,
        end: int,
    ) -> set[str]: ...

    def clear_state_index(self) -> None: ...

    def set_projector(self, name: str, next_seq: int, definitions: str) -> None: ...


class Store(Protocol):
    url: str
    applied: list[str]  # migrations applied when this store was opened
    integrate_on_append: bool  # whether appends should also extend the Merkle tree
    # Whether a busy writer should commit from a process of its own (receipts.commit): true
    # where the committing work is the library's own (a SQLite file), false where the database
    # server does it or a second process would not see the same database (``:memory:``).
    writes_from_a_process: bool

    def checkpoint_in_background(self) -> None:
        """Copy committed WAL into the database from a thread of the store's own, for a busy
        writer (a no-op where the database does it by itself)."""
        ...

    def read(self) -> AbstractContextManager[ReadTxn]: ...

    def write(self) -> AbstractContextManager[WriteTxn]: ...

    def get(self, receipt_id: str) -> Receipt | None: ...

    def query(self, query: Query) -> list[Receipt]: ...

    def current(self, entity_type: str, entity_id: str) -> list[Receipt]:
        """The head revision of every logical event about the entity, in ``seq`` order."""
        ...

    def size(self) -> int:
        """Number of receipts in the journal (the next ``seq``)."""
        ...

    def granted(self, entity_type: str, entity_id: str, user_id: str) -> bool:
        """Whether ``user_id`` was granted the entity's receipts (``grant``)."""
        ...

    def grant(self, entity_type: str, entity_id: str, user_id: str, granted_by: str) -> None:
        """Let ``user_id`` read every receipt about the entity (idempotent)."""
        ...

    def close(self) -> None: ...
