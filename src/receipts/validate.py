"""Receipt requests checked against the catalog, with every problem named by a JSON pointer.

Validators are compiled once per event type (jsonschema-rs, Draft 2020-12) when the
:class:`Validator` is built; validating a request never compiles anything.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

import jsonschema_rs
import orjson

from .catalog import CONVENTIONS, Catalog, EventType
from .errors import ErrorDetail, PermissionDeniedError, ValidationError, json_pointer
from .jsontext import is_exact, value_problems
from .limits import MAX_ID_LENGTH, max_receipt_bytes
from .model import OPS, PRODUCERS, normalize_time, normalize_uuid

REQUEST_FIELDS: Final = frozenset(
    {
        "id",
        "domain",
        "event_type",
        "entity_type",
        "entity_id",
        "payload",
        "owner_user_id",
        "occurred_at",
        "op",
        "logical_id",
        "supersedes_id",
    }
)
_REQUIRED: Final = ("domain", "event_type", "entity_type", "entity_id", "payload")
# The fields of an ordinary new receipt: no ids, time or op given (see Validator._plain).
_PLAIN_FIELDS: Final = frozenset((*_REQUIRED, "owner_user_id"))
_UNDECIDED: Final = object()
_REVISIONS: Final = frozenset({"amend", "void", "restate"})

# A void carries no event payload, only why and by whom (plus the shared conventions).
VOID_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        **CONVENTIONS,
        "void_reason": {"type": "string", "minLength": 1},
        "voided_by": {"type": "string", "minLength": 1},
    },
    "required": ["void_reason", "voided_by"],
    "additionalProperties": True,
}


@dataclass(slots=True)
class Request:
    """A validated, normalized receipt request: defaults applied, ids and times canonical."""

    id: str | None
    domain: str
    event_type: str
    entity_type: str
    entity_id: str
    payload: dict[str, Any]
    owner_user_id: str | None
    occurred_at: str | None
    op: str
    logical_id: str | None
    supersedes_id: str | None

    def __reduce__(self) -> tuple[type[Request], tuple[Any, ...]]:
        # Requests cross to the server's writer process by the thousand: pickled as the
        # constructor's arguments they cost less than the slots' default state
        # (docs/benchmarks.md §5).
        return Request, (
            self.id, self.domain, self.event_type, self.entity_type, self.entity_id,
            self.payload, self.owner_user_id, self.occurred_at, self.op, self.logical_id,
            self.supersedes_id,
        )  # fmt: skip


NUL: Final = "U+0000 (NUL) is not allowed: not every backend can store it"


def nul_problems(value: Any, pointer: str = "") -> list[ErrorDetail]:
    """Every string or member name holding U+0000, by pointer."""
    problems, stack = [], [(value, pointer)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                problems.append(ErrorDetail(at, NUL))
        elif isinstance(item, dict):
            for key, member in item.items():
                here = at + json_pointer(key)
                if "\x00" in key:
                    problems.append(ErrorDetail(here, NUL))
                stack.append((member, here))
        elif isinstance(item, list):
            stack.extend((member, f"{at}/{i}") for i, member in enumerate(item))
    return sorted(problems, key=lambda d: d.pointer)


def _compile(schema: dict[str, Any]) -> Any:
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


class Validator:
    """Compiled validators for every event type of a catalog."""

    def __init__(self, catalog: Catalog, *, max_payload_bytes: int | None = None) -> None:
        self.catalog = catalog
        self.max_payload_bytes = (
            max_receipt_bytes() if max_payload_bytes is None else max_payload_bytes
        )
        self._payload = {t.name: _compile(t.schema()) for t in catalog}
        self._void = _compile(VOID_SCHEMA)

    def validate(self, request: Any, producer: str) -> Request:
        return self.validate_batch([request], producer, pointers=[""])[0]

    def validate_batch(
        self, requests: Sequence[Any], producer: str, *, pointers: Sequence[str] | None = None
    ) -> list[Request]:
        """Validate all requests; raise one error listing every problem in every request.

        Pointers are prefixed with each request's index in the batch (``/3/payload/amount``)
        unless ``pointers`` gives the prefixes.
        """
        return list(self.iter_valid(requests, producer, pointers=pointers))

    def iter_valid(
        self, requests: Sequence[Any], producer: str, *, pointers: Sequence[str] | None = None
    ) -> Iterator[Request]:
        """``validate_batch`` as it goes: yields the i-th request's normalized form while every
        request so far is valid; after a problem it yields nothing more, checks the rest, and
        raises the same error ``validate_batch`` would when it is exhausted. (So the i-th item
        yielded is always ``requests[i]``.)"""
        if producer not in PRODUCERS:
            raise ValueError(f"unknown producer {producer!r}")
        return self._iter_valid(requests, producer, pointers)

    def _iter_valid(
        self, requests: Sequence[Any], producer: str, pointers: Sequence[str] | None
    ) -> Iterator[Request]:
        problems: list[ErrorDetail] = []
        denied: list[ErrorDetail] = []
        for i, raw in enumerate(requests):
            prefix = pointers[i] if pointers is not None else f"/{i}"
            request = self._check(raw, producer, prefix, problems)
            if request is None:
                continue
            event_type = self.catalog.types[request.event_type]
            if producer not in event_type.writers:
                denied.append(
                    ErrorDetail(
                        f"{prefix}/event_type",
                        f"producer {producer!r} may not write {request.event_type!r}; "
                        f"allowed writers: {list(event_type.writers)}",
                    )
                )
            if not problems and not denied:
                yield request
        if problems:
            n = len(requests)
            raise ValidationError(
                f"{len(problems)} problem(s) in {n} receipt request(s); nothing was written",
                problems,
            )
        if denied:
            raise PermissionDeniedError("writer not allowed for this event type", denied)

    def _check(
        self, raw: Any, producer: str, prefix: str, problems: list[ErrorDetail]
    ) -> Request | None:
        if type(raw) is dict and raw.keys() <= _PLAIN_FIELDS:
            plain = self._plain(raw, producer, prefix, problems)
            if plain is not _UNDECIDED:
                return plain  # type: ignore[return-value]
        return self._full_check(raw, producer, prefix, problems)

    def _plain(
        self, raw: dict[str, Any], producer: str, prefix: str, problems: list[ErrorDetail]
    ) -> Request | object | None:
        """The ordinary request (a new receipt: no ids, time or op), checked with direct
        tests; _UNDECIDED for anything else, which ``_full_check`` then names field by field.
        Returns exactly what ``_full_check`` would (a property test holds them together)."""
        name, entity_id = raw.get("event_type"), raw.get("entity_id")
        payload, owner = raw.get("payload"), raw.get("owner_user_id")
        event_type = self.catalog.types.get(name) if type(name) is str else None
        if (
            event_type is None
            or raw.get("domain") != event_type.domain
            or raw.get("entity_type") not in event_type.entity_types
            or not _plain_text(entity_id)
            or type(payload) is not dict
            or not (owner is None or _plain_text(owner))
        ):
            return _UNDECIDED
        start = len(problems)
        payload = self._payload_check(event_type, payload, "assert", producer, prefix, problems)
        if len(problems) > start:
            return None
        return Request(
            id=None,
            domain=event_type.domain,
            event_type=event_type.name,
            entity_type=raw["entity_type"],
            entity_id=entity_id,
            payload=payload,
            owner_user_id=owner,
            occurred_at=None,
            op="assert",
            logical_id=None,
            supersedes_id=None,
        )

    def _full_check(
        self, raw: Any, producer: str, prefix: str, problems: list[ErrorDetail]
    ) -> Request | None:
        if type(raw) is not dict:
            problems.append(ErrorDetail(prefix, "expected a JSON object (a receipt request)"))
            return None
        start = len(problems)

        def bad(field: str, message: str) -> None:
            problems.append(ErrorDetail(prefix + json_pointer(field), message))

        for key in raw.keys() - REQUEST_FIELDS:
            bad(key, f"unknown field; expected only {sorted(REQUEST_FIELDS)}")
        for key in _REQUIRED:
            if key not in raw:
                bad(key, "required field is missing")
        for key in ("domain", "event_type", "entity_type", "entity_id", "owner_user_id"):
            value = raw.get(key)
            if type(value) is str:
                for problem in _text_problems(value):
                    bad(key, problem)
            if key in raw and key != "owner_user_id" and (type(value) is not str or not value):
                bad(key, "expected a non-empty string")
        payload = raw.get("payload")
        if "payload" in raw and type(payload) is not dict:
            bad("payload", "expected a JSON object")

        ids = {k: _uuid_field(raw, k, bad) for k in ("id", "logical_id", "supersedes_id")}
        occurred_at = _time_field(raw, "occurred_at", bad)
        owner = raw.get("owner_user_id")
        if owner is not None and (type(owner) is not str or not owner):
            bad("owner_user_id", "expected a non-empty string or null")
        op = raw.get("op", "assert")
        if op not in OPS:
            bad("op", f"expected one of {list(OPS)}")
        elif op == "assert" and ids["supersedes_id"] is not None:
            bad("supersedes_id", "only a revision (amend, void, restate) supersedes a receipt")
        elif op in _REVISIONS and raw.get("supersedes_id") is None:
            bad("supersedes_id", f"required for op {op!r}: the id of the current head")

        event_type = self._event_type(raw, bad)
        if event_type is not None and type(payload) is dict:
            payload = self._payload_check(event_type, payload, op, producer, prefix, problems)
        if len(problems) > start:
            return None
        assert event_type is not None and payload is not None
        return Request(
            id=ids["id"],
            domain=raw["domain"],
            event_type=raw["event_type"],
            entity_type=raw["entity_type"],
            entity_id=raw["entity_id"],
            payload=payload,
            owner_user_id=owner,
            occurred_at=occurred_at,
            op=op,
            logical_id=ids["logical_id"],
            supersedes_id=ids["supersedes_id"],
        )

    def _event_type(self, raw: dict[str, Any], bad: Any) -> EventType | None:
        name = raw.get("event_type")
        if type(name) is not str or not name:
            return None
        event_type = self.catalog.types.get(name)
        if event_type is None:
            close = difflib.get_close_matches(name, self.catalog.types, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            bad("event_type", f"unknown event type {name!r}{hint}")
            return None
        domain = raw.get("domain")
        if type(domain) is str and domain and domain != event_type.domain:
            bad("domain", f"event type {name!r} belongs to domain {event_type.domain!r}")
        entity_type = raw.get("entity_type")
        if type(entity_type) is str and entity_type and entity_type not in event_type.entity_types:
            bad("entity_type", f"expected one of {list(event_type.entity_types)} for {name!r}")
        return event_type

    def _payload_check(
        self,
        event_type: EventType,
        payload: dict[str, Any],
        op: str,
        producer: str,
        prefix: str,
        problems: list[ErrorDetail],
    ) -> dict[str, Any]:
        base = f"{prefix}/payload"
        if not self._storable(payload, base, problems):
            return payload  # the schema is not checked against what cannot be stored anyway
        validator = self._void if op == "void" else self._payload[event_type.name]
        if not validator.is_valid(payload):
            for error in validator.iter_errors(payload):
                problems.append(_detail(base, error))
        source = payload.get("source")
        if not event_type.own_source and source is not None and source != producer:
            problems.append(
                ErrorDetail(
                    f"{prefix}/payload/source",
                    f"source {source!r} contradicts the writer's producer {producer!r}",
                )
            )
        if "schema_version" in payload and (event_type.own_source or "source" in payload):
            return payload
        filled = dict(payload)
        filled.setdefault("schema_version", 0)
        if not event_type.own_source:
            filled.setdefault("source", producer)
        return filled

    def _storable(self, payload: dict[str, Any], base: str, problems: list[ErrorDetail]) -> bool:
        """Whether the payload can be stored exactly as sent (docs/limits.md): nesting, numbers,
        JSON types, valid Unicode without U+0000, size. Adds a problem per offending value."""
        try:
            text = orjson.dumps(payload)  # fails on non-JSON types and lone surrogates
        except TypeError:
            text = None
        if text is None or not is_exact(payload):
            found = value_problems(payload, base)
            if found:
                problems += found
                return False
        assert text is not None
        if b"\\u0000" in text:  # the one way JSON carries U+0000: walk only then
            problems += nul_problems(payload, base)
            return False
        if len(text) > self.max_payload_bytes:
            problems.append(
                ErrorDetail(
                    base,
                    f"payload is {len(text)} bytes as compact JSON, over the limit of "
                    f"{self.max_payload_bytes} (RECEIPTS_MAX_RECEIPT_BYTES)",
                )
            )
            return False
        return True


def _plain_text(value: Any) -> TypeGuard[str]:
    """A non-empty id-like string that needs no closer look (see ``_text_problems``)."""
    return (
        type(value) is str
        and 0 < len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and "\x00" not in value
    )


def _text_problems(value: str) -> list[str]:
    problems = []
    if "\x00" in value:
        problems.append(NUL)
    if len(value) > MAX_ID_LENGTH:
        problems.append(f"longer than {MAX_ID_LENGTH} characters")
    if value_problems(value):
        problems.append("not valid Unicode text (a lone surrogate cannot be stored as UTF-8)")
    return problems


def _detail(base: str, error: Any) -> ErrorDetail:
    path = json_pointer(*error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return ErrorDetail(
            base + path + json_pointer(kind.property), "required property is missing"
        )
    return ErrorDetail(base + path, str(error.message))


def _uuid_field(raw: dict[str, Any], key: str, bad: Any) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        if type(value) is not str:
            raise ValueError
        return normalize_uuid(value)
    except ValueError:
        bad(key, "expected a UUID string, e.g. 0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b")
        return None


def _time_field(raw: dict[str, Any], key: str, bad: Any) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        if type(value) is not str:
            raise ValueError("expected an RFC 3339 date-time string")
        return normalize_time(value)
    except ValueError as exc:
        bad(key, str(exc))
        return None
