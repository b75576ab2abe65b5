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
from ..limits import max_receipt_bytes

MAX_BATCH = 1000
_IDLE_SECONDS = 0.05
_ENVELOPE = 16 * 1024  # a request's fields around its payload: ids are at most 1,024 characters
_DOCUMENT_RECEIPTS = 16  # a single document holds at most this many receipts at the limit


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


def max_line_bytes() -> int:
    """The longest JSON Lines line read: one receipt request, its payload at the limit plus
    room for the fields around it (docs/limits.md)."""
    return max_receipt_bytes() + _ENVELOPE


def max_document_bytes() -> int:
    """The largest single JSON document read (an object, or an array as one batch)."""
    return _DOCUMENT_RECEIPTS * max_receipt_bytes()


class LineTooLong(Exception):
    """A line over the limit, skipped without being kept in memory."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the line is {size} bytes or more, over the limit of {limit} bytes")


def _too_long(error: LineTooLong, pointer: str, number: int) -> ValidationError:
    return ValidationError(
        f"line {number} is too long",
        [ErrorDetail(pointer, f"{error} (RECEIPTS_MAX_RECEIPT_BYTES)")],
    )


class _Lines:
    """Lines from a file descriptor, knowing whether another line is ready without blocking.

    Lines are sliced from the buffer at a read position: cutting each line off the front of
    a 64 KiB buffer would copy the rest of it for every line. A line longer than ``max_line``
    is skipped as it streams (``readline`` raises LineTooLong): memory stays bounded."""

    def __init__(self, fd: int, max_line: int | None = None) -> None:
        self.fd = fd
        self.buf = b""
        self.pos = 0  # the buffer before pos has been handed out
        self.eof = False
        self.max_line = max_line_bytes() if max_line is None else max_line

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
            if len(self.buf) - self.pos > self.max_line:
                return True  # a line over the limit: readline says so
            if not self._fill(_IDLE_SECONDS):
                return False
        return self.pos < len(self.buf) or not self.eof

    def readline(self) -> bytes | None:
        while (end := self.buf.find(b"\n", self.pos)) < 0 and not self.eof:
            if len(self.buf) - self.pos > self.max_line:
                self._skip_line()
            self._fill(None)
        start = self.pos
        if end - start > self.max_line:
            self.pos = end + 1
            raise LineTooLong(end - start, self.max_line)
        if start >= len(self.buf):
            return None
        self.pos = len(self.buf) if end < 0 else end + 1
        return self.buf[start : self.pos]

    def _skip_line(self) -> None:
        """Discard the current line up to its end (or the input's), then raise LineTooLong."""
        size = len(self.buf) - self.pos
        while (end := self.buf.find(b"\n", self.pos)) < 0 and not self.eof:
            self.buf, self.pos = b"", 0
            self._fill(None)
            size += len(self.buf)
        self.pos = len(self.buf) if end < 0 else end + 1
        raise LineTooLong(size, self.max_line)

    def rest(self, limit: int | None = None) -> bytes:
        limit = max_document_bytes() if limit is None else limit
        chunks = [self.buf[self.pos :]]
        size = len(chunks[0])
        while not self.eof:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                self.eof = True
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise ValidationError(
                    "the input is too large for one JSON document",
                    [ErrorDetail("", f"over {limit} bytes; send many receipts as JSON Lines")],
                )
        self.buf, self.pos = b"", 0
        return b"".join(chunks)


def _parse(data: bytes, pointer: str, where: str) -> Any:
    try:
        return loads(data, pointer)
    except FormatError as exc:
        raise ValidationError(f"malformed JSON {where}", exc.errors) from None


def read_batches(fd: int, max_batch: int = MAX_BATCH) -> Iterator[Batch]:
    """Batches of requests from ``fd``, in input order."""
    # The first line may be a whole document (an array or object on one line): it may be as
    # long as a document; every later line, as long as a line.
    lines = _Lines(fd, max_document_bytes())
    first, skipped = _line(lines, 0), 0
    while first is not None and not first.strip():
        first, skipped = _line(lines, skipped + 1), skipped + 1
    lines.max_line = max_line_bytes()
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
        line = _line(lines, number)
        if line is None:
            break
        number += 1
        if line.strip():
            pointer = f"/{number - 1}"
            batch.items.append(_parse(line, pointer, f"on line {number}"))
            batch.pointers.append(pointer)
    if batch.items:
        yield batch


def _line(lines: _Lines, index: int) -> bytes | None:
    """The next line; a line over the limit is refused by its 0-based ``index``."""
    try:
        return lines.readline()
    except LineTooLong as error:
        raise _too_long(error, f"/{index}", index + 1) from None


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
    while True:
        try:
            line = lines.readline()
        except LineTooLong as error:
            number += 1
            batch.append(Line(number, None, _too_long(error, f"/{number - 1}", number)))
            continue
        if line is None:
            break
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
