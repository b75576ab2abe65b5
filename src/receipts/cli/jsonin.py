"""Reading receipt requests from a file or a pipe: one JSON object, a JSON array (one atomic
batch), or JSON Lines committed in batches as they stream in (``tail -f x.jsonl | receipts
append -``): a batch is flushed when it is full or when no further line is waiting."""

from __future__ import annotations

import os
import select
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from ..errors import ErrorDetail, FormatError, ReceiptsError, ValidationError
from ..jsontext import loads

MAX_BATCH = 1000
_IDLE_SECONDS = 0.05


@dataclass
class Batch:
    items: list[Any]
    pointers: list[str]  # JSON pointer prefix of each item in the input


@dataclass(slots=True)
class Line:
    """One non-blank line of JSON Lines: its value, or why it could not be read."""

    number: int  # 1-based
    value: Any
    error: ReceiptsError | None = None


class _Lines:
    """Lines from a file descriptor, knowing whether another line is ready without blocking.

    Lines are sliced from the buffer at a read position: cutting each line off the front of
    a 64 KiB buffer would copy the rest of it for every line."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""
        self.pos = 0  # the buffer before pos has been handed out
        self.eof = False

    def _fill(self, timeout: float | None) -> bool:
        if self.eof:
            return False
        readable, _, _ = select.select([self.fd], [], [], timeout)
        if not readable:
            return False
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            self.eof = True
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0
        return True

    def ready(self) -> bool:
        while self.buf.find(b"\n", self.pos) < 0 and not self.eof:
            if not self._fill(_IDLE_SECONDS):
                return False
        return self.pos < len(self.buf) or not self.eof

    def readline(self) -> bytes | None:
        while (end := self.buf.find(b"\n", self.pos)) < 0 and not self.eof:
            self._fill(None)
        start = self.pos
        if start >= len(self.buf):
            return None
        self.pos = len(self.buf) if end < 0 else end + 1
        return self.buf[start : self.pos]

    def rest(self) -> bytes:
        chunks = [self.buf[self.pos :]]
        while not self.eof:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.eof = True
            chunks.append(chunk)
        self.buf, self.pos = b"", 0
        return b"".join(chunks)


def _parse(data: bytes, pointer: str, where: str) -> Any:
    try:
        return loads(data, pointer)
    except FormatError as exc:
        raise ValidationError(f"malformed JSON {where}", exc.errors) from None


def read_batches(fd: int, max_batch: int = MAX_BATCH) -> Iterator[Batch]:
    """Batches of requests from ``fd``, in input order."""
    lines = _Lines(fd)
    first, skipped = lines.readline(), 0
    while first is not None and not first.strip():
        first, skipped = lines.readline(), skipped + 1
    if first is None:
        return
    head = first.lstrip()
    if head.startswith(b"["):
        items = _parse(first + lines.rest(), "", "in the input array")
        yield Batch(items, [f"/{i}" for i in range(len(items))])
        return
    try:
        orjson.loads(first)
    except orjson.JSONDecodeError:  # not one object per line: one (pretty-printed) document
        yield Batch([_parse(first + lines.rest(), "", "in the input")], [""])
        return
    item = _parse(first, f"/{skipped}", f"on line {skipped + 1}")
    yield from _json_lines(lines, item, skipped + 1, max_batch)


def _json_lines(lines: _Lines, first: Any, number: int, max_batch: int) -> Iterator[Batch]:
    """``number`` is the 1-based line number of ``first``; pointers are 0-based line indexes."""
    batch = Batch([first], [f"/{number - 1}"])
    while True:
        if batch.items and (len(batch.items) >= max_batch or not lines.ready()):
            yield batch
            batch = Batch([], [])
        line = lines.readline()
        if line is None:
            break
        number += 1
        if line.strip():
            pointer = f"/{number - 1}"
            batch.items.append(_parse(line, pointer, f"on line {number}"))
            batch.pointers.append(pointer)
    if batch.items:
        yield batch


def read_document(fd: int, pointer: str) -> Any:
    """The one JSON document of the whole input (``pointer`` names it in errors)."""
    data = _Lines(fd).rest()
    if not data.strip():
        raise ValidationError("no input", [ErrorDetail(pointer, "expected a JSON document")])
    return _parse(data, pointer, "in the input")


def read_lines(fd: int, max_batch: int) -> Iterator[list[Line]]:
    """JSON Lines, strictly one value a line, in batches of at most ``max_batch`` non-blank
    lines. A line that cannot be read comes with its error instead of ending the input."""
    lines, batch, number = _Lines(fd), [], 0
    while (line := lines.readline()) is not None:
        number += 1
        if not line.strip():
            continue
        try:
            batch.append(Line(number, _parse(line, f"/{number - 1}", f"on line {number}")))
        except ReceiptsError as error:
            batch.append(Line(number, None, error))
        if len(batch) >= max_batch:
            yield batch
            batch = []
    if batch:
        yield batch
