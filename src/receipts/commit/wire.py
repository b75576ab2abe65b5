"""What crosses between the HTTP process and its writer process, and how.

Frames over a socket pair private to the two processes: a header (tag, length) and a pickle.
The parent sends a ``WriterConfig`` first, then one frame per group, numbered from 1: its items
as plain tuples (``batch.ToCommit``: pending requests, or receipts made ahead). The child
answers each group, under its number, once the transaction holding it has committed: a list of
``Answer`` or the group's error. Tag 0 carries notices: ``ready``, ``failed`` (could not open
the ledger, with the error), ``commit`` (receipts in the transaction) and ``checkpoint`` (size
of a new one).
"""

from __future__ import annotations

import asyncio
import pickle
import struct
from collections.abc import Sequence
from typing import Any, Final, NamedTuple, TypeAlias

from ..batch import ReceiptTuple, ToCommit
from ..errors import ReceiptsError
from ..model import Receipt

HEAD: Final = struct.Struct("!QI")  # tag, length of the pickle that follows
NOTICE: Final = 0  # the tag of notices; groups are numbered from 1
_ENTRY_BYTES: Final = Receipt._fields.index("entry_bytes")

# The child's answer for one receipt: its seq where it stored the receipt made ahead, else the
# whole receipt as a plain tuple (made there, or an idempotent retry's first receipt). Plain
# tuples pickle in a fraction of the time of named tuples (docs/benchmarks.md §5).
Answer: TypeAlias = int | ReceiptTuple


class WriterConfig(NamedTuple):
    """The first frame: what the child opens and how it commits."""

    url: str
    signer: str | None  # the checkpoint signer's key string
    group_max: int
    checkpoint_interval: float


def frame(tag: int, value: Any) -> bytes:
    body = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    return HEAD.pack(tag, len(body)) + body


def plain(items: Sequence[ToCommit]) -> list[ToCommit]:
    """A group as it crosses: plain tuples (a ``Pending`` is a named tuple)."""
    return [item[:] for item in items]


def answers(items: Sequence[ToCommit], stored: Sequence[Receipt]) -> list[Answer]:
    """The child's answer for a group that ``stored`` these receipts. Same entry bytes as the
    receipt made ahead, same receipt: only the seq differs."""
    out: list[Answer] = []
    for item, receipt in zip(items, stored, strict=True):
        if len(item) == 3:  # made at commit
            out.append(receipt[:])
            continue
        made = item[3] if len(item) == 4 else item
        out.append(receipt.seq if receipt.entry_bytes == made[_ENTRY_BYTES] else receipt[:])
    return out


def receipts(items: Sequence[ToCommit], answered: Sequence[Answer]) -> list[Receipt]:
    """``answers`` in reverse, in the parent: the group's receipts."""
    out = []
    for item, answer in zip(items, answered, strict=True):
        if isinstance(answer, tuple):
            out.append(Receipt._make(answer))
            continue
        made = item[3] if len(item) == 4 else item  # a seq answers a receipt made ahead
        out.append(Receipt._make((answer, *made[1:])))
    return out


async def read_frame(stream: asyncio.StreamReader) -> tuple[int, Any]:
    """The next frame: its tag, and its value or what failed to read it."""
    tag, size = HEAD.unpack(await stream.readexactly(HEAD.size))
    return tag, loads(await stream.readexactly(size))


def loads(body: bytes | bytearray) -> Any:
    try:
        return pickle.loads(body)
    except Exception as error:
        return portable(error, "could not read a frame")


def portable(error: BaseException, what: str) -> ReceiptsError | RuntimeError:
    """An error as it can cross the socket: ours as they are, any other as a RuntimeError (a
    bug, answered 500) naming it, since not every exception can be pickled."""
    if isinstance(error, ReceiptsError):
        return error
    return RuntimeError(f"writer process: {what}: {type(error).__name__}: {error}")
