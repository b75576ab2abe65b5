"""CloudEvents v1.0 events in the JSON format, checked with every problem named by a JSON pointer.

An event here is the JSON format's object: context attributes as top-level members, plus
``data`` (a JSON value) or ``data_base64`` (binary data). The rules are those of CloudEvents
v1.0.2 (core spec and JSON format); SHOULDs are not enforced (e.g. an attribute name longer
than 20 characters is accepted). A ``null`` attribute is unset, as the JSON format says.
The three OCN types are also checked against their JSON Schemas. Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import jsonschema_rs

from ..errors import ErrorDetail, ValidationError, json_pointer
from ..model import normalize_time
from ._ocn_schemas import AUDIT, EXPLANATION, OCN_EVENT_TYPES, ocn_validator

SPECVERSION: Final = "1.0"
REQUIRED_ATTRIBUTES: Final = ("id", "source", "specversion", "type")
OPTIONAL_ATTRIBUTES: Final = ("datacontenttype", "dataschema", "subject", "time")
DATA_MEMBERS: Final = ("data", "data_base64")
INT32: Final = (-(2**31), 2**31 - 1)

_NAME: Final = re.compile(r"[a-z0-9]+")

# Characters a CloudEvents String may not hold: controls, unpaired surrogates, noncharacters.
_NONCHARACTERS = "".join(
    f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
)
_BAD_CHAR: Final = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef{_NONCHARACTERS}]")

# RFC 3986 (appendix A), spelled out: URI-reference (source) and absolute-URI (dataschema).
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_USERINFO = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*"
_IP_LITERAL = rf"\[(?:[0-9A-Fa-f:.]+|[vV][0-9A-Fa-f]+\.[{_UNRESERVED}{_SUB_DELIMS}:]+)\]"
_REG_NAME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*"
_AUTHORITY = rf"(?:{_USERINFO}@)?(?:{_IP_LITERAL}|{_REG_NAME})(?::[0-9]*)?"
_SEGMENT = rf"{_PCHAR}*"
_PATH_ABEMPTY = rf"(?:/{_SEGMENT})*"
_PATH_ABSOLUTE = rf"/(?:{_PCHAR}+(?:/{_SEGMENT})*)?"
_PATH_ROOTLESS = rf"{_PCHAR}+(?:/{_SEGMENT})*"
_PATH_NOSCHEME = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}@]|{_PCT})+(?:/{_SEGMENT})*"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_HIER_PART = rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_ROOTLESS})?"
_RELATIVE_PART = rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PATH_NOSCHEME})?"
ABSOLUTE_URI: Final = re.compile(rf"{_SCHEME}:{_HIER_PART}(?:\?{_QUERY})?")
URI_REFERENCE: Final = re.compile(
    rf"(?:{_SCHEME}:{_HIER_PART}|{_RELATIVE_PART})(?:\?{_QUERY})?(?:#{_QUERY})?"
)
_IPV6_IN_AUTHORITY: Final = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+\-.]*:)?//[^/?#\[]*\[([^\]]*)\]")

# RFC 2046 media type, as HTTP (RFC 9110 §8.3.1) writes it: type/subtype *(; name=value).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
MEDIA_TYPE: Final = re.compile(
    rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*[ \t]*"
)


def is_json_media_type(media_type: str | None) -> bool:
    """True for ``*/json`` and ``*/*+json`` (parameters ignored); ``None`` means JSON."""
    if media_type is None:
        return True
    subtype = media_type.split(";", 1)[0].strip().lower().partition("/")[2]
    return subtype == "json" or subtype.endswith("+json")


def validate_cloudevent(event: Any, type: str | None = None) -> None:
    """Raise :class:`ValidationError` listing every way ``event`` breaks CloudEvents v1.0.

    With ``type``, the event must be of that type. OCN types (given or found in the event)
    are also checked against their JSON Schema: they need ``subject``, ``time`` and ``data``.
    """
    if (type is None or type == _type_of(event)) and is_plainly_valid(event):
        return  # is_plainly_valid refuses OCN types: their schemas are checked below
    problems = cloudevent_problems(event, type)
    if problems:
        raise ValidationError(f"{len(problems)} problem(s) in the CloudEvent", problems)


def _type_of(event: Any) -> Any:
    return event.get("type") if isinstance(event, dict) else None


def is_plainly_valid(event: Any) -> bool:
    """True only if ``event`` is certainly valid: the common shape, checked with cheap tests.

    A fast path in front of :func:`cloudevent_problems`, never instead of it: False means "not
    decided here" (unusual characters, base64 data, OCN types, ...), and the caller runs the
    full check, which names every problem. Whatever this accepts, the full check accepts too
    (a property test holds the two together).
    """
    if type(event) is not dict or event.get("specversion") != SPECVERSION:
        return False
    for name in REQUIRED_ATTRIBUTES:
        value = event.get(name)
        if type(value) is not str or not value:
            return False
    if event["type"] in OCN_EVENT_TYPES or "data_base64" in event:
        return False
    for name, value in event.items():
        if value is None or name == "data":
            continue
        kind = _FAST.get(name)
        if kind is None:  # an extension attribute
            if not (
                _extension_name_ok(name) if len(name) <= _CACHED_LENGTH else _NAME.fullmatch(name)
            ):
                return False
            if type(value) is int:
                if not INT32[0] <= value <= INT32[1]:
                    return False
            elif type(value) is not bool and not (type(value) is str and value.isprintable()):
                return False
        elif type(value) is not str or not value or not value.isprintable():
            return False
        elif kind == _PLAIN:
            continue
        elif kind == _TIME:
            if not _time_plainly_valid(value):
                return False
        elif (
            _cached_problem(name, value)
            if len(value) <= _CACHED_LENGTH
            else _CHECKS[name](name, value)
        ) is not None:
            return False
    content_type = event.get("datacontenttype")
    return (
        content_type is None
        or "data" not in event
        or type(event["data"]) is str
        or is_json_media_type(content_type)
    )


_PLAIN: Final = 0  # a non-empty string of printable characters is all these rules ask
_TIME: Final = 1
_CACHED: Final = 2  # a verdict worth caching: such values repeat (one per producer or schema)
_CACHED_LENGTH: Final = 512  # longer values are checked every time: the caches stay small
_FAST: Final = {
    "id": _PLAIN,
    "type": _PLAIN,
    "subject": _PLAIN,
    "specversion": _PLAIN,  # compared above
    "time": _TIME,
    "source": _CACHED,
    "dataschema": _CACHED,
    "datacontenttype": _CACHED,
}
# RFC 3339 that datetime.fromisoformat reads as it is: at most 6 fractional digits, upper-case
# T and Z, and years whose conversion to UTC cannot overflow.
_PLAIN_TIME: Final = re.compile(
    r"(?!0000|0001|9999)[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def _time_plainly_valid(value: str) -> bool:
    if _PLAIN_TIME.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value)  # the calendar: month lengths, leap years, hour < 24
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def _cached_problem(name: str, value: str) -> str | None:
    return _CHECKS[name](name, value)


@functools.lru_cache(maxsize=4096)
def _extension_name_ok(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def cloudevent_problems(event: Any, type: str | None = None, prefix: str = "") -> list[ErrorDetail]:
    """Every problem of :func:`validate_cloudevent`, pointers prefixed with ``prefix``."""
    if not isinstance(event, dict):
        return [ErrorDetail(prefix, "expected a JSON object (a CloudEvent)")]
    problems: list[ErrorDetail] = []

    def bad(name: str, message: str) -> None:
        problems.append(ErrorDetail(prefix + json_pointer(name), message))

    for name in REQUIRED_ATTRIBUTES:
        if event.get(name) is None:
            bad(name, "required attribute is missing")
    for name, value in event.items():
        if name in DATA_MEMBERS or value is None:
            continue
        message = _CHECKS.get(name, _extension)(name, value)
        if message:
            bad(name, message)
    _data_problems(event, bad)
    if type is not None and event.get("type") != type:
        bad("type", f"expected type {type!r}")
    ocn_type = type if type in OCN_EVENT_TYPES else event.get("type")
    if isinstance(ocn_type, str) and ocn_type in OCN_EVENT_TYPES:
        problems += _ocn_problems(event, ocn_type, prefix, {p.pointer for p in problems})
    return problems


# --- attributes ----------------------------------------------------------------------------------


def _string(value: Any, *, empty: bool = True) -> str | None:
    if not isinstance(value, str):
        return "expected a string"
    if not empty and not value:
        return "expected a non-empty string"
    if value.isprintable():  # no control, surrogate or unassigned (noncharacter) code points
        return None
    char = _BAD_CHAR.search(value)
    if char:
        return f"U+{ord(char.group()):04X} is not allowed in a CloudEvents string"
    return None


def _non_empty(name: str, value: Any) -> str | None:
    return _string(value, empty=False)


def _specversion(name: str, value: Any) -> str | None:
    problem = _string(value, empty=False)
    if problem is None and value != SPECVERSION:
        return f"unsupported specversion {value!r}; expected {SPECVERSION!r}"
    return problem


def _uri_reference(name: str, value: Any) -> str | None:
    problem = _string(value, empty=False)
    if problem is None and not (URI_REFERENCE.fullmatch(value) and _ip_ok(value)):
        return "expected a URI-reference (RFC 3986), e.g. https://example.com/orders or /orders"
    return problem


def _uri(name: str, value: Any) -> str | None:
    problem = _string(value, empty=False)
    if problem is None and not (ABSOLUTE_URI.fullmatch(value) and _ip_ok(value)):
        return "expected an absolute URI without fragment (RFC 3986 §4.3), e.g. urn:x:y"
    return problem


def _ip_ok(value: str) -> bool:
    """An IPv6 literal in the authority must be a real IPv6 address (IPvFuture passes)."""
    match = _IPV6_IN_AUTHORITY.match(value)
    if match is None or match.group(1)[:1] in ("v", "V"):
        return True
    try:
        ipaddress.IPv6Address(match.group(1))
    except ValueError:
        return False
    return True


def _media_type(name: str, value: Any) -> str | None:
    problem = _string(value, empty=False)
    if problem is None and not MEDIA_TYPE.fullmatch(value):
        return "expected a media type (RFC 2046), e.g. application/json; charset=utf-8"
    return problem


def _timestamp(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return "expected an RFC 3339 timestamp string"
    try:
        normalize_time(value)
    except ValueError as exc:
        message = str(exc)
        return message if "RFC 3339" in message else f"not an RFC 3339 timestamp: {message}"
    return None


def _extension(name: str, value: Any) -> str | None:
    if not _NAME.fullmatch(name):
        return "attribute names must consist of lower-case letters a-z and digits 0-9 only"
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if not INT32[0] <= value <= INT32[1]:
            return "integer attribute out of range: CloudEvents integers are signed 32-bit"
        return None
    if isinstance(value, str):
        return _string(value)
    return "expected a string, boolean or integer (the CloudEvents type system has no others)"


_CHECKS: Final[dict[str, Callable[[str, Any], str | None]]] = {
    "id": _non_empty,
    "type": _non_empty,
    "subject": _non_empty,
    "specversion": _specversion,
    "source": _uri_reference,
    "dataschema": _uri,
    "datacontenttype": _media_type,
    "time": _timestamp,
}


# --- data ----------------------------------------------------------------------------------------


def _data_problems(event: dict[str, Any], bad: Callable[[str, str], None]) -> None:
    encoded = event.get("data_base64")
    if encoded is not None:
        if "data" in event:
            bad("data_base64", "data and data_base64 are mutually exclusive")
        if not isinstance(encoded, str):
            bad("data_base64", "expected a base64 string (RFC 4648)")
        else:
            try:
                base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                bad("data_base64", "not valid base64 (RFC 4648, standard alphabet, padded)")
    content_type = event.get("datacontenttype")
    if (
        "data" in event
        and isinstance(content_type, str)
        and MEDIA_TYPE.fullmatch(content_type)  # else it is reported as it is
        and not is_json_media_type(content_type)
        and not isinstance(event["data"], str)
    ):
        bad("data", f"{content_type} is not JSON: data must be a string (or use data_base64)")


# --- OCN -----------------------------------------------------------------------------------------


def _ocn_problems(
    event: dict[str, Any], ce_type: str, prefix: str, seen: set[str]
) -> list[ErrorDetail]:
    """The OCN schema's findings not already reported at the same pointer."""
    problems: list[ErrorDetail] = []
    validator = ocn_validator(ce_type)
    if not validator.is_valid(event):
        for error in validator.iter_errors(event):
            detail = _schema_detail(prefix, error)
            if detail is not None and detail.pointer not in seen:
                seen.add(detail.pointer)
                problems.append(detail)
    data = event.get("data")
    if ce_type in (EXPLANATION, AUDIT) and isinstance(data, dict):
        trace_id, subject = data.get("trace_id"), event.get("subject")
        if isinstance(trace_id, str) and isinstance(subject, str) and trace_id != subject:
            problems.append(
                ErrorDetail(f"{prefix}/data/trace_id", "must equal subject (the trace id)")
            )
    return problems


def _schema_detail(prefix: str, error: Any) -> ErrorDetail | None:
    path = json_pointer(*error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.PropertyNames):
        return None  # attribute names are checked above, each at its own pointer
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        return ErrorDetail(
            prefix + path + json_pointer(kind.property), "required by the OCN schema"
        )
    return ErrorDetail(prefix + path, str(error.message))
