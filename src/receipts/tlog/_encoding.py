"""Strict text encodings shared by the C2SP formats."""

from __future__ import annotations

import base64
import binascii
import re

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_U64_MAX = (1 << 64) - 1
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")  # below U+0020, but newline


def b64encode(data: bytes) -> str:
    """Standard base64 (RFC 4648 §4) with padding."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes | None:
    """Decode canonical standard base64, or None.

    Python's decoder tolerates non-canonical padding bits; re-encoding keeps
    exactly one accepted spelling per value, so parse/format round-trips.
    """
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if b64encode(data) == text else None


def parse_u64(text: str) -> int | None:
    """An ASCII decimal uint64 without leading zeroes, or None."""
    if not _DECIMAL.fullmatch(text) or len(text) > 20:
        return None
    value = int(text)
    return value if value <= _U64_MAX else None


def control_char(text: str) -> int | None:
    """Offset of the first control character other than newline, or None."""
    found = _CONTROL.search(text)
    return None if found is None else found.start()
