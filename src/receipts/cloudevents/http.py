"""The CloudEvents v1.0.2 HTTP protocol binding: structured, binary and batched content modes.

``from_http`` reads a request (or response) into JSON-format event dicts; ``to_structured``,
``to_binary`` and ``to_batch`` write one. Headers are matched case-insensitively and written in
lower case. Pure: bytes and header mappings in, bytes and header dicts out.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, Final

import orjson

from ..errors import (
    ErrorDetail,
    FormatError,
    UnsupportedMediaTypeError,
    ValidationError,
    json_pointer,
)
from ..jsontext import loads
from .envelope import DATA_MEMBERS, cloudevent_problems, is_json_media_type, is_plainly_valid

STRUCTURED: Final = "application/cloudevents+json"
BATCH: Final = "application/cloudevents-batch+json"
_CE_MEDIA_PREFIX: Final = "application/cloudevents"
_CE: Final = "ce-"
_CONTENT_TYPE: Final = "content-type"
_JSON: Final = "application/json"
_OCTETS: Final = "application/octet-stream"

# Printable ASCII but space, double quote and percent pass unencoded (binding §3.1.3.2).
_SAFE: Final = frozenset(chr(c) for c in range(0x21, 0x7F)) - {'"', "%"}
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_UNSAFE_ASCII: Final = frozenset(' "%')

_NO_CE_DATACONTENTTYPE: Final = (
    "binary mode puts datacontenttype in Content-Type: a ce-datacontenttype header MUST NOT be "
    "present"
)

Headers = dict[str, str]


# The body is neither a CloudEvent format we read nor a binary-mode CloudEvent.
UnsupportedMediaType = UnsupportedMediaTypeError


# --- reading -------------------------------------------------------------------------------------


def from_http(
    headers: Mapping[str, str] | Iterable[tuple[str, str]], body: bytes, *, validate: bool = True
) -> list[dict[str, Any]]:
    """The events of an HTTP message, in the JSON format (a batch may hold zero or more).

    The mode follows ``Content-Type``: ``application/cloudevents+json`` is structured,
    ``application/cloudevents-batch+json`` batched; otherwise a ``ce-specversion`` header
    makes it binary. Unless ``validate=False``, every event is checked and one
    :class:`ValidationError` lists every problem (pointers start with ``/<index>`` in a batch).
    ``headers`` may be the message's header lines as they came (name, value): an attribute given
    in two headers (``ce-*``, ``Content-Type``) is refused, never one of them chosen.
    """
    lower = _lower(headers)
    content_type = lower.get(_CONTENT_TYPE)
    media, params = _parse_content_type(content_type)
    if media.startswith(_CE_MEDIA_PREFIX):
        if media not in (STRUCTURED, BATCH):
            raise UnsupportedMediaType(
                f"unsupported CloudEvents format {media!r}; expected {STRUCTURED} or {BATCH}"
            )
        charset = params.get("charset", "utf-8").lower()
        if charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"unsupported charset {charset!r}; JSON is UTF-8")
        document = _json(body, "")
        events = _batch(document) if media == BATCH else [_event(document, "")]
        prefixes = [f"/{i}" for i in range(len(events))] if media == BATCH else [""]
    elif _CE + "specversion" in lower:
        events, prefixes = [_from_binary(lower, body)], [""]
    else:
        raise UnsupportedMediaType(
            f"not a CloudEvent: Content-Type {content_type!r} is neither {STRUCTURED} nor "
            f"{BATCH}, and there is no ce-specversion header (binary mode)"
        )
    events = [_unset_nulls(e) for e in events]
    if validate:
        _check(events, prefixes)
    return events


def _lower(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> Headers:
    out: Headers = {}
    count: dict[str, int] = {}
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        key = name.lower()
        count[key] = count.get(key, 0) + 1
        out.setdefault(key, value)
    problems = [
        ErrorDetail(
            "/datacontenttype" if key == _CONTENT_TYPE else json_pointer(key[len(_CE) :]),
            f"given in {n} headers ({key}): one attribute, one header, or it is ambiguous",
        )
        for key, n in count.items()
        if n > 1 and (key.startswith(_CE) or key == _CONTENT_TYPE)
    ]
    if problems:
        raise FormatError("ambiguous CloudEvent: an attribute is given in two headers", problems)
    return out


def _parse_content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """(media type in lower case, parameters); ("", {}) when absent."""
    if value is None:
        return "", {}
    media, *rest = value.split(";")
    params = {}
    for param in rest:
        key, _, val = param.strip().partition("=")
        params[key.strip().lower()] = val.strip().strip('"')
    return media.strip().lower(), params


def _json(body: bytes, pointer: str) -> Any:
    try:
        return loads(body, pointer)
    except FormatError as exc:
        raise FormatError("body is not valid JSON", exc.errors) from None


def _event(document: Any, pointer: str) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ValidationError(
            "a structured CloudEvent is a JSON object",
            [ErrorDetail(pointer, "expected a JSON object (a CloudEvent)")],
        )
    return document


def _batch(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, list):
        raise ValidationError(
            "a CloudEvents batch is a JSON array", [ErrorDetail("", "expected a JSON array")]
        )
    problems = [
        ErrorDetail(f"/{i}", "expected a JSON object (a CloudEvent)")
        for i, item in enumerate(document)
        if not isinstance(item, dict)
    ]
    if problems:
        raise ValidationError("every item of a CloudEvents batch is a JSON object", problems)
    return document


def _unset_nulls(event: dict[str, Any]) -> dict[str, Any]:
    """JSON format §2.2: a null attribute is unset. (``"data": null`` is data, and stays.)"""
    return {k: v for k, v in event.items() if v is not None or k == "data"}


def _from_binary(lower: Headers, body: bytes) -> dict[str, Any]:
    problems: list[ErrorDetail] = []
    event: dict[str, Any] = {}
    for name, value in lower.items():
        if not name.startswith(_CE):
            continue
        attribute = name[len(_CE) :]
        if attribute == "datacontenttype":
            problems.append(ErrorDetail(json_pointer(attribute), _NO_CE_DATACONTENTTYPE))
        elif attribute in DATA_MEMBERS:
            problems.append(
                ErrorDetail(json_pointer(attribute), "not an attribute: the body carries the data")
            )
        else:
            try:
                event[attribute] = decode_header_value(value)
            except ValueError as exc:
                problems.append(ErrorDetail(json_pointer(attribute), f"header {name}: {exc}"))
    if problems:
        raise ValidationError("invalid binary-mode CloudEvent headers", problems)
    content_type = lower.get(_CONTENT_TYPE)
    if content_type is not None:
        event["datacontenttype"] = content_type.strip()
    # No Content-Type means no datacontenttype (binding §3.1.1), and the body is bytes: the JSON
    # format would read an absent datacontenttype as JSON, which the sender did not say.
    if body:
        if content_type is not None and is_json_media_type(content_type):
            event["data"] = _json(body, "/data")
        else:
            event["data_base64"] = base64.b64encode(body).decode("ascii")
    return event


def decode_header_value(value: str) -> str:
    """A ``ce-*`` header value as an attribute string: quoted-string unescaped (RFC 9110
    §5.6.4), then one round of percent-decoding; ValueError if that is not valid UTF-8."""
    value = value.strip(" \t")
    if value.isascii() and value.isprintable() and "%" not in value and '"' not in value:
        return value  # nothing quoted or encoded: the common case
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = _unquote(value[1:-1])
    raw = bytearray()
    i = 0
    while i < len(value):
        char = value[i]
        if char == "%":
            if len(value) >= i + 3 and set(value[i + 1 : i + 3]) <= _HEX:
                raw.append(int(value[i + 1 : i + 3], 16))
                i += 3
                continue
            raise ValueError(f"bad percent-encoding at character {i}")
        if not " " <= char <= "~" and char != "\t":
            raise ValueError("header values are printable US-ASCII; percent-encode the rest")
        raw += char.encode("ascii")
        i += 1
    try:
        return raw.decode("utf-8")  # strict: rejects overlong forms and encoded surrogates
    except UnicodeDecodeError as exc:
        raise ValueError(f"percent-encoded bytes are not valid UTF-8 ({exc.reason})") from None


def _unquote(inner: str) -> str:
    out, escaped = [], False
    for char in inner:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            raise ValueError("unescaped double quote inside a quoted string")
        else:
            out.append(char)
    if escaped:
        raise ValueError("quoted string ends in a lone backslash")
    return "".join(out)


# --- writing -------------------------------------------------------------------------------------


def to_structured(event: dict[str, Any]) -> tuple[Headers, bytes]:
    """Structured mode: the whole event as the JSON format's body."""
    _check([event], [""])
    return {_CONTENT_TYPE: f"{STRUCTURED}; charset=utf-8"}, _dumps(event, "")


def to_batch(events: Iterable[dict[str, Any]]) -> tuple[Headers, bytes]:
    """Batched mode: a JSON array of events in the JSON format (it may be empty)."""
    items = list(events)
    _check(items, [f"/{i}" for i in range(len(items))])
    return {_CONTENT_TYPE: f"{BATCH}; charset=utf-8"}, _dumps(items, "")


def to_binary(event: dict[str, Any]) -> tuple[Headers, bytes]:
    """Binary mode: attributes as percent-encoded ``ce-*`` headers, ``datacontenttype`` as
    ``Content-Type``, the data as the body (JSON text for JSON media types)."""
    _check([event], [""])
    headers: Headers = {}
    for name, value in event.items():
        if name in DATA_MEMBERS or value is None:
            continue
        if name == "datacontenttype":
            headers[_CONTENT_TYPE] = value
        else:
            headers[_CE + name] = encode_header_value(_canonical_string(value))
    if event.get("data_base64") is not None:
        # Bytes of no declared type must not pass for JSON (the default when unlabelled).
        headers.setdefault(_CONTENT_TYPE, _OCTETS)
        return headers, base64.b64decode(event["data_base64"])
    if "data" not in event:
        return headers, b""
    # JSON format §3.1: no datacontenttype means JSON; say so explicitly when re-encoding.
    content_type = headers.setdefault(_CONTENT_TYPE, _JSON)
    data = event["data"]
    if is_json_media_type(content_type):
        return headers, _dumps(data, "/data")
    return headers, str(data).encode("utf-8")


def encode_header_value(value: str) -> str:
    """Percent-encode (upper-case hex) UTF-8 bytes of every character but printable ASCII
    other than space, double quote and percent."""
    if value.isascii() and value.isprintable() and not _UNSAFE_ASCII.intersection(value):
        return value
    return "".join(
        char if char in _SAFE else "".join(f"%{b:02X}" for b in char.encode("utf-8"))
        for char in value
    )


def _canonical_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check(events: list[dict[str, Any]], prefixes: list[str]) -> None:
    if all(map(is_plainly_valid, events)):
        return
    problems = [
        p for e, at in zip(events, prefixes, strict=True) for p in cloudevent_problems(e, prefix=at)
    ]
    if problems:
        raise ValidationError(f"{len(problems)} problem(s) in the CloudEvent(s)", problems)


def _dumps(value: Any, pointer: str) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError as exc:
        raise ValidationError(
            "not serializable as JSON", [ErrorDetail(pointer, f"not JSON: {exc}")]
        ) from None
