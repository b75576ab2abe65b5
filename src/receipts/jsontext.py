"""JSON in: what every ingress parses, and the checks that keep a receipt exactly as it was sent.

A receipt's bytes are RFC 8785 JSON, where every number is an IEEE-754 double. So a number is
accepted only if the ledger can store it *exactly*: finite, at most 2^53 - 1 in magnitude (beyond
that not even every integer is a double), and with no more precision than a double holds (the
decimal value of its text equals the value of the double's shortest form: ``0.1`` and ``1e-7``
pass, ``1.0000000000000000001`` would silently become ``1`` and is refused). Values nest at most
``MAX_DEPTH`` levels. An object that names a member twice is refused (JSON readers disagree on
which one counts: RFC 8259 §4 leaves it open). Every refusal names the value by its JSON
pointer. Pure.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any, Final

import orjson

from .errors import ErrorDetail, FormatError, ValidationError, json_pointer
from .limits import MAX_DEPTH, MAX_SAFE_INTEGER

# A document may nest two levels more than a payload: a batch array, then the request object.
DOCUMENT_DEPTH: Final = MAX_DEPTH + 2
# Texts that might hold a number with more digits than a double keeps, or an exponent: only
# those are parsed a second time to look at each number's digits.
_MAYBE_INEXACT: Final = re.compile(rb"[0-9][0-9.]{15,}|[0-9][eE]")

NOT_EXACT: Final = (
    "number cannot be stored exactly: receipts keep JSON numbers as IEEE-754 doubles "
    "(RFC 8785), at most 2^53-1 in magnitude and with at most the precision of a double; "
    "send it as a string"
)
TOO_DEEP: Final = f"nested deeper than {MAX_DEPTH} levels of objects and arrays"
TWICE: Final = (
    "appears twice in one object: JSON readers disagree on which one counts, so neither does"
)
# A member name's closing quote, then white space, then the colon: outside strings that is
# every member; inside a string it needs an escaped quote (rare, and then read again exactly).
_SPACED_COLON: Final = re.compile(rb'"[ \t\n\r]+:')
_QUOTE_THEN_SPACE: Final = (b'" ', b'"\t', b'"\n', b'"\r')
NOT_JSON: Final = "not a JSON value (expected an object, array, string, number, boolean or null)"


class _Inexact(str):
    """A number token that cannot be stored exactly, kept as its text to be reported."""


def _exact_float(text: str) -> Any:
    value = float(text)
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:  # also catches inf and nan
        return _Inexact(text)
    if Decimal(text) != Decimal(repr(value)):
        return _Inexact(text)
    return value


def _exact_int(text: str) -> Any:
    value = int(text)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else _Inexact(text)


def loads(data: bytes | str, pointer: str = "") -> Any:
    """Parse a JSON text; refuse (``ValidationError``, 422) numbers that cannot be stored
    exactly and nesting deeper than ``DOCUMENT_DEPTH``, each by pointer (prefixed with
    ``pointer``). Malformed JSON raises ``FormatError`` (400)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "infinity" not in str(exc):
            raise FormatError(
                "malformed JSON", [ErrorDetail(pointer, f"not valid JSON: {exc}")]
            ) from None
        document = _reparse(raw, pointer)  # a number beyond a double's range: find it
    else:
        if _MAYBE_INEXACT.search(raw):
            document = _reparse(raw, pointer)
        elif type(document) is not dict and type(document) is not list:
            return document if _scalar_ok(document) else _refuse(document, pointer)
        else:
            members = _exact_members(document, DOCUMENT_DEPTH)
            if members is not None:
                if not _each_name_once(raw, members) and (error := _names_twice(raw, pointer)):
                    raise error
                return document
    return _refuse(document, pointer)


def _each_name_once(raw: bytes, members: int) -> bool:
    """Whether the text surely names no member twice in one object, given how many members the
    parsed document holds: every member's name ends in ``":`` (or ``"``, white space, ``:``),
    so if the text has no more of those than the document has members, none was dropped.
    False: perhaps (a ``\\":`` inside a string also counts): ``_names_twice`` says."""
    found = raw.count(b'":')
    if any(q in raw for q in _QUOTE_THEN_SPACE):
        found += len(_SPACED_COLON.findall(raw))
    return found == members


class _Named(dict[str, Any]):
    """An object as the slow reader builds it, with the first name it found twice."""

    twice: str | None = None


def _named(pairs: list[tuple[str, Any]]) -> _Named:
    named = _Named(pairs)
    if len(named) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                named.twice = name
                break
            seen.add(name)
    return named


def _names_twice(raw: bytes, pointer: str) -> FormatError | None:
    """The refusal naming (by pointer) the first member named twice in ``raw``, in document
    order; None if there is none."""
    try:
        document = json.loads(raw, object_pairs_hook=_named)
    except (ValueError, RecursionError):
        return None  # not for this check to say: the caller's parser read it
    stack: list[tuple[Any, str]] = [(document, pointer)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, _Named):
            if item.twice is not None:
                detail = ErrorDetail(
                    at + json_pointer(item.twice), f"member name {item.twice!r} {TWICE}"
                )
                return FormatError("ambiguous JSON: an object names a member twice", [detail])
            stack.extend((v, at + json_pointer(k)) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((v, f"{at}/{i}") for i, v in reversed(list(enumerate(item))))
    return None


def _scalar_ok(value: Any) -> bool:
    return (type(value) is not int and type(value) is not float) or (
        -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    )


def _refuse(document: Any, pointer: str) -> Any:
    problems = value_problems(document, pointer, DOCUMENT_DEPTH)
    if problems:
        raise ValidationError(f"{len(problems)} value(s) cannot be stored as sent", problems)
    return document


def _reparse(raw: bytes, pointer: str) -> Any:
    """The document again, through the standard library, which hands each number's text over:
    numbers that are not exact come back as ``_Inexact`` for ``value_problems`` to name."""
    try:
        document = json.loads(
            raw, parse_float=_exact_float, parse_int=_exact_int, object_pairs_hook=_once
        )
    except _NamedTwice:
        raise _names_twice(raw, pointer) or FormatError(
            "ambiguous JSON: an object names a member twice", [ErrorDetail(pointer, TWICE)]
        ) from None
    except (ValueError, RecursionError) as exc:  # orjson accepted it; this is a safety net
        raise FormatError(
            "malformed JSON", [ErrorDetail(pointer, f"not valid JSON: {exc}")]
        ) from None
    return document


class _NamedTwice(Exception):
    pass


def _once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _NamedTwice
    return out


def is_exact(value: Any, depth: int = MAX_DEPTH) -> bool:
    """Fast check of a parsed value (an object or array, level 1): every number exact, no
    nesting beyond ``depth`` levels, only JSON types. False means: ask ``value_problems``."""
    return _exact_members(value, depth) is not None


def _exact_members(value: Any, depth: int) -> int | None:
    """``is_exact``, counting the members of every object on the way (None: not exact)."""
    members = 0
    stack = [(value, 1)]
    while stack:
        container, level = stack.pop()
        if type(container) is dict:
            members += len(container)
        for item in container.values() if type(container) is dict else container:
            kind = type(item)
            if kind is str or kind is bool or item is None:
                continue
            if kind is int or kind is float:
                if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:  # false for nan
                    continue
                return None
            if (kind is dict or kind is list) and level < depth:
                stack.append((item, level + 1))
                continue
            return None
    return members


def value_problems(value: Any, pointer: str = "", depth: int = MAX_DEPTH) -> list[ErrorDetail]:
    """Every value under ``value`` that cannot be stored as sent, by pointer: inexact numbers,
    nesting beyond ``depth`` levels (``value`` is level 1 if it is an object or array),
    non-JSON types, member names that are not strings, strings that are not valid Unicode."""
    problems: list[ErrorDetail] = []
    stack = [(value, pointer, 1)]
    while stack:
        item, at, level = stack.pop()
        kind = type(item)
        if kind is dict or kind is list:
            if level > depth:
                problems.append(ErrorDetail(at, TOO_DEEP))
                continue
            if kind is dict:
                for key, member in item.items():
                    if type(key) is not str:
                        problems.append(ErrorDetail(at, f"member name {key!r} is not a string"))
                        continue
                    if not _encodable(key):
                        problems.append(ErrorDetail(at + json_pointer(key), _BAD_TEXT))
                    stack.append((member, at + json_pointer(key), level + 1))
            else:
                stack.extend((member, f"{at}/{i}", level + 1) for i, member in enumerate(item))
        elif kind is _Inexact:
            problems.append(ErrorDetail(at, f"{NOT_EXACT} (got {item})"))
        elif kind is str:
            if not _encodable(item):
                problems.append(ErrorDetail(at, _BAD_TEXT))
        elif kind is int or kind is float:
            if not -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                problems.append(ErrorDetail(at, f"{NOT_EXACT} (got {_show(item)})"))
        elif not (kind is bool or item is None):
            problems.append(ErrorDetail(at, f"{NOT_JSON}, got {kind.__name__}"))
    return sorted(problems, key=lambda d: d.pointer)


_BAD_TEXT: Final = "not valid Unicode text (a lone surrogate cannot be stored as UTF-8)"


def _encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _show(number: float) -> str:
    return repr(number) if isinstance(number, int) or math.isfinite(number) else str(number)
