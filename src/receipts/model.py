"""Receipts, their entries and the ONE place their bytes are made.

A stored receipt's *entry* is the receipt without ``seq`` and ``leaf_hash``. Its canonical
bytes are the RFC 8785 (JCS) encoding of the entry; ``leaf_hash = SHA-256(0x00 || bytes)``.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, Final, NamedTuple

import orjson
import rfc8785

from .errors import ErrorDetail, ValidationError
from .tlog.hashing import leaf_hash as leaf_hash

OPS: Final = ("assert", "amend", "void", "restate")
PRODUCERS: Final = ("client", "edge_function", "service_role_pipeline")

# Keys of an entry, the hashed part of a stored receipt. Always all present (null when absent),
# so that anyone holding a receipt can rebuild its entry without knowing the request.
ENTRY_KEYS: Final = (
    "id",
    "domain",
    "event_type",
    "entity_type",
    "entity_id",
    "owner_user_id",
    "occurred_at",
    "recorded_at",
    "op",
    "logical_id",
    "supersedes_id",
    "revision",
    "producer",
    "payload",
)

_MAX_SAFE_INT: Final = 2**53 - 1
_JSON_KEYS: Final = ("seq", *ENTRY_KEYS, "leaf_hash")  # a stored receipt's JSON form, in order
_SEQ_AND_ENTRY: Final = 1 + len(ENTRY_KEYS)  # a Receipt's leading fields: seq, then the entry's
_entry_values: Final = itemgetter(*ENTRY_KEYS)
_new_tuple: Final = tuple.__new__


# --- canonical bytes ---------------------------------------------------------------------------


_AS_IS, _INTEGRAL_FLOATS, _REFERENCE = 0, 1, 2


def _fast_path(value: Any) -> int:
    """How orjson's sorted, compact output can give the JCS encoding of ``value``.

    orjson escapes strings as JCS does and prints a finite, non-integral float whose repr has
    no exponent with the same shortest round-trip digits (checked against the reference on
    ~900,000 doubles, and by a property test). It differs for integral floats (``10.0`` where
    JCS prints ``10``), exponent notation, integers beyond IEEE-754's exact range, and key order
    with non-BMP characters (code points vs UTF-16 units). Returns ``_AS_IS``,
    ``_INTEGRAL_FLOATS`` (print them as integers first) or ``_REFERENCE`` (use rfc8785).
    """
    verdict = _AS_IS
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is bool or v is None:
            continue
        if t is int:
            if -_MAX_SAFE_INT <= v <= _MAX_SAFE_INT:
                continue
            return _REFERENCE
        if t is float:
            if not math.isfinite(v):
                return _REFERENCE
            if v.is_integer():
                if abs(v) > _MAX_SAFE_INT:
                    return _REFERENCE
                verdict = _INTEGRAL_FLOATS
            elif "e" in repr(v):
                return _REFERENCE
            continue
        if t is dict:
            for k in v:
                if type(k) is not str or not k.isascii():
                    return _REFERENCE
            stack.extend(v.values())
            continue
        if t is list:
            stack.extend(v)
            continue
        return _REFERENCE
    return verdict


def _integral_floats_as_ints(v: Any) -> Any:
    # Below 2**53 an integral double's shortest digits are the integer itself, as JCS prints.
    t = type(v)
    if t is float and v.is_integer():
        return int(v)
    if t is dict:
        return {k: _integral_floats_as_ints(x) for k, x in v.items()}
    if t is list:
        return [_integral_floats_as_ints(x) for x in v]
    return v


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of a JSON value. Every hashed or signed byte comes from here."""
    return _encode(value, _fast_path(value))


def entry_bytes(entry: dict[str, Any]) -> bytes:
    """``canonical_bytes`` of an entry, looking only into its payload: the other fields are
    ASCII-named strings, nulls and a small integer, which orjson already prints as JCS does."""
    payload = entry["payload"]
    path = _fast_path(payload)
    if path == _INTEGRAL_FLOATS:
        entry = {**entry, "payload": _integral_floats_as_ints(payload)}
        path = _AS_IS
    return _encode(entry, path)


def _encode(value: Any, path: int) -> bytes:
    try:
        if path == _AS_IS:
            return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        if path == _INTEGRAL_FLOATS:
            return orjson.dumps(_integral_floats_as_ints(value), option=orjson.OPT_SORT_KEYS)
        return bytes(rfc8785.dumps(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise ValidationError(
            "value cannot be canonicalized", [ErrorDetail("", f"not canonical JSON: {exc}")]
        ) from exc


def dumps(value: Any) -> bytes:
    """Compact JSON for output and storage of non-hashed columns (not canonical)."""
    return orjson.dumps(value)


# --- time and ids ------------------------------------------------------------------------------

# RFC 3339 date-time: full-date "T" full-time, with a mandatory offset (Z or ±hh:mm).
# RFC 3339 §5.6, ASCII digits only: an offset's hours are 00-23 and its minutes 00-59 (a
# "+00:60" would be read as one hour by a lenient parser: refused, not reinterpreted).
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def format_time(moment: datetime) -> str:
    """The one textual form of a time in a receipt: UTC, microseconds, ``Z``."""
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.%fZ")  # %Y does not pad years < 1000


def parse_time(text: str) -> datetime:
    """A time in the receipt form (``format_time``) as an aware datetime."""
    return datetime.fromisoformat(text)


def normalize_time(text: str) -> str:
    """Parse an RFC 3339 timestamp and return it in the receipt form; ValueError if invalid."""
    if not _RFC3339.fullmatch(text):
        raise ValueError("expected an RFC 3339 date-time with offset, e.g. 2026-01-02T10:00:00Z")
    head, _, frac = text.partition(".")
    if frac:  # Python parses at most 6 fractional digits; RFC 3339 allows more.
        digits = re.match(r"\d+", frac)
        assert digits is not None
        text = head + "." + digits.group()[:6].ljust(6, "0") + frac[digits.end() :]
    moment = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    try:
        return format_time(moment)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-05:00 is in year 10000 in UTC
        raise ValueError("date-time out of range once converted to UTC") from None


def normalize_uuid(text: str) -> str:
    """Canonical lowercase hyphenated form of a UUID string; ValueError if it is not one."""
    if len(text) not in (32, 36, 38, 45):
        raise ValueError("expected a UUID")
    return str(uuid.UUID(text))


# --- receipts ----------------------------------------------------------------------------------


class Receipt(NamedTuple):
    """A stored receipt: its entry plus its place in the log. Immutable (a named tuple: as
    cheap to build as a tuple, which matters at hundreds of thousands per second)."""

    seq: int
    id: str
    domain: str
    event_type: str
    entity_type: str
    entity_id: str
    owner_user_id: str | None
    occurred_at: str
    recorded_at: str
    op: str
    logical_id: str
    supersedes_id: str | None
    revision: int
    producer: str
    payload: dict[str, Any]
    entry_bytes: bytes
    leaf_hash: bytes

    @property
    def correlation_id(self) -> str | None:
        value = self.payload.get("correlation_id")
        return value if isinstance(value, str) else None

    @property
    def entity(self) -> str:
        return f"{self.entity_type}:{self.entity_id}"

    def entry(self) -> dict[str, Any]:
        """The hashed part: every field but ``seq`` and ``leaf_hash``."""
        return dict(zip(ENTRY_KEYS, self[1:15], strict=True))  # the fields after seq, in order

    def to_dict(self) -> dict[str, Any]:
        """JSON form: ``seq`` first, the entry's fields, ``leaf_hash`` as lowercase hex."""
        # One dict from one zip, the fastest way measured (docs/benchmarks.md §5): a batch
        # answers with thousands.
        return dict(zip(_JSON_KEYS, (*self[:_SEQ_AND_ENTRY], self.leaf_hash.hex()), strict=True))

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_entry(cls, seq: int, entry: dict[str, Any]) -> Receipt:
        """Build a stored receipt from an entry: the bytes and the leaf hash are made here."""
        data = entry_bytes(entry)
        if len(entry) != len(ENTRY_KEYS):  # the constructor names what is missing or unknown
            return cls(seq=seq, **entry, entry_bytes=data, leaf_hash=leaf_hash(data))
        # Exactly the entry's keys: positional construction, three times cheaper than keywords.
        return _new_tuple(cls, (seq, *_entry_values(entry), data, leaf_hash(data)))


def split_entity(ref: str) -> tuple[str, str]:
    """``TYPE:ID`` -> (type, id). The id may itself contain ``:``."""
    entity_type, sep, entity_id = ref.partition(":")
    if not sep or not entity_type or not entity_id:
        raise ValidationError(
            "entity reference must look like TYPE:ID",
            [ErrorDetail("/entity", f"expected TYPE:ID, got {ref!r}")],
        )
    return entity_type, entity_id
