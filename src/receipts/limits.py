"""The limits every ingress enforces, in one place (docs/limits.md lists them).

A receipt is refused, with a JSON pointer to the field, when it would be stored differently
from what was sent or could exhaust the service: the same rules hold for the HTTP API,
CloudEvents, the CLI, ``receipts import``, the Python API and (generated from these constants)
direct SQL inserts on PostgreSQL.
"""

from __future__ import annotations

import os
from typing import Final

from .errors import UsageError

# Levels of objects and arrays a payload may nest; the payload object itself is level 1.
# Far below every parser's and encoder's own limit (orjson writes at most 254 levels, Python
# recurses about 1,000 deep), so nothing that passes can crash a later step.
MAX_DEPTH: Final = 64
# JSON numbers are IEEE-754 doubles in RFC 8785: integers beyond this are not exact.
MAX_SAFE_INTEGER: Final = 2**53 - 1
# Characters of a receipt's entity_type, entity_id and owner_user_id.
MAX_ID_LENGTH: Final = 1024
# One receipt request (its payload as compact JSON), whatever the ingress; configurable.
DEFAULT_MAX_RECEIPT_BYTES: Final = 256 * 1024
RECEIPT_BYTES_VARIABLE: Final = "RECEIPTS_MAX_RECEIPT_BYTES"


def max_receipt_bytes() -> int:
    """``$RECEIPTS_MAX_RECEIPT_BYTES``, else the default (256 KiB)."""
    raw = os.environ.get(RECEIPT_BYTES_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_MAX_RECEIPT_BYTES
    if not raw.isdigit() or int(raw) < 1024:
        raise UsageError(f"{RECEIPT_BYTES_VARIABLE}={raw!r}: expected a number of bytes >= 1024")
    return int(raw)
