"""``receipts import``: JSON Lines into the ledger, accounted for line by line, safe to rerun.

A line is a receipt request, or a stored receipt as ``receipts query`` prints it (copied from
another ledger with its id, producer, times and revisions). A batch of lines is committed in one
transaction; a line the ledger refuses is set aside with every reason and the rest of its batch
is committed without it. A request without an ``id`` gets one derived from its content
(``derived_id``), so importing a file again, or again after fixing some lines, stores nothing
twice. docs/import.md states the rules.
"""

from __future__ import annotations

import gc
import os
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any, BinaryIO, Final

import uuid_utils
from rich.console import Console
from rich.progress import Progress

from ..batch import Pending
from ..errors import (
    ConflictError,
    ErrorDetail,
    NotFoundError,
    PermissionDeniedError,
    ReceiptsError,
    ValidationError,
    VerificationError,
    json_pointer,
)
from ..ledger import Ledger
from ..model import ENTRY_KEYS, PRODUCERS, Receipt, canonical_bytes
from ..validate import REQUEST_FIELDS
from .jsonin import Line, read_lines

# Lines imported between full collections (see import_file): 100 batches of the default size.
_COLLECT_EVERY = 500_000
# Derived ids are UUIDv5 in this namespace (docs/import.md): never change it, or a rerun of an
# old file would store every line again.
ID_NAMESPACE: Final = uuid_utils.UUID("8f5b7f0e-3c1d-4d7a-9b1e-2a6c0d4e9f31")
_STORED_KEYS: Final = frozenset(("seq", *ENTRY_KEYS, "leaf_hash"))  # Receipt.to_dict()
# What the ledger says of a line it will not store; anything else stops the import.
_REFUSALS: Final = (ValidationError, PermissionDeniedError, ConflictError, NotFoundError)


def derived_id(value: dict[str, Any]) -> str | None:
    """The id of a request that has none: UUIDv5 of its RFC 8785 JSON (without ``id``).
    None if it cannot be canonicalized (the ledger then refuses the line anyway)."""
    content = {k: v for k, v in value.items() if k != "id"}
    try:
        text = canonical_bytes(content).decode()
    except ValidationError:
        return None
    return str(uuid_utils.uuid5(ID_NAMESPACE, text))


class ImportReport:
    """What an import did, line by line: committed ranges and every rejected line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines = 0  # non-blank lines accounted for
        self.stored = 0  # receipts this import added
        self.already_stored = 0  # lines whose receipt the ledger already held
        self.committed: list[list[int]] = []  # [first, last] line ranges, blank lines bridged
        self.rejected: list[dict[str, Any]] = []
        self.stopped: BaseException | None = None  # why the import ended before the file did
        self.last_line = 0  # every line up to this one is accounted for
        self.receipts: int | None = None  # the ledger's size afterwards
        self._extends = False  # the next committed line continues the last range

    def outcome(self, number: int, committed: bool) -> None:
        """Record a line's fate; called in line order."""
        self.lines += 1
        self.last_line = number
        if committed and self._extends:
            self.committed[-1][1] = number
        elif committed:
            self.committed.append([number, number])
        self._extends = committed

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "lines": self.lines,
            "stored": self.stored,
            "already_stored": self.already_stored,
            "committed": self.committed,
            "rejected": self.rejected,
            "receipts": self.receipts,
        }
        if isinstance(self.stopped, ReceiptsError):
            out["stopped"] = {"after_line": self.last_line, **self.stopped.to_dict()}
        elif self.stopped is not None:
            out["stopped"] = {"after_line": self.last_line, "code": "interrupted",
                              "message": "interrupted", "errors": []}  # fmt: skip
        return out


def _line_of(pointer: str) -> int | None:
    """``/12/payload/x`` -> line 13 (pointers index lines from 0, as `receipts append`'s)."""
    head = pointer.split("/")[1] if pointer.startswith("/") else ""
    return int(head) + 1 if head.isdigit() else None


def _number(item: Pending) -> int:
    number = _line_of(item.pointer)
    assert number is not None
    return number


class _Importer:
    def __init__(self, ledger: Ledger, producer: str, report: ImportReport) -> None:
        self.ledger = ledger
        self.producer = producer
        self.report = report
        self._done: dict[int, bool] = {}  # this batch: line number -> committed
        self._current: list[Line] = []  # the batch being imported
        self._rejected: list[dict[str, Any]] = []

    def batch(self, lines: list[Line]) -> None:
        self._current = lines
        stored: dict[int, Pending] = {}
        requests: list[Line] = []
        for line in lines:
            if line.error is not None:
                self._reject(line.number, line.error)
            elif type(line.value) is dict and "leaf_hash" in line.value:
                try:
                    stored[line.number] = self._stored(line.value, line.number)
                except (*_REFUSALS, VerificationError) as error:
                    self._reject(line.number, error)
            else:
                requests.append(line)
        valid = {**stored, **self._validated(requests)}
        self._attempt([valid[line.number] for line in lines if line.number in valid])
        for line in lines:
            self.report.outcome(line.number, self._done.pop(line.number))
        self.report.rejected += sorted(self._rejected, key=lambda r: r["line"])
        self._rejected.clear()
        self._current = []

    def stop(self, error: BaseException) -> None:
        """End the import: account for the current batch's lines up to the first one whose
        fate is unknown (its transaction did not commit, or may not have: a rerun settles it)."""
        self.report.stopped = error
        for line in self._current:
            done = self._done.get(line.number)
            if done is None:
                break
            self.report.outcome(line.number, done)
        accounted = self.report.last_line
        self.report.rejected += sorted(
            (r for r in self._rejected if r["line"] <= accounted), key=lambda r: r["line"]
        )

    def _validated(self, lines: list[Line]) -> dict[int, Pending]:
        """The receipt requests among ``lines``, validated, each with its id (its own or
        derived); the others are rejected. The id is given after validation: a request without
        one takes the validator's fast path."""
        validate = self.ledger.validator.validate_batch
        while lines:
            try:
                valid = validate([x.value for x in lines], self.producer,
                                 pointers=[f"/{x.number - 1}" for x in lines])  # fmt: skip
            except (ValidationError, PermissionDeniedError) as error:
                named = {n for d in error.errors if (n := _line_of(d.pointer)) is not None}
                # The message is about the whole batch: each line gets its own count.
                counted = isinstance(error, ValidationError)
                for line in lines:
                    if line.number in named or not named:
                        self._reject(line.number, error, counted=counted)
                lines = [line for line in lines if named and line.number not in named]
                continue
            out = {}
            for line, request in zip(lines, valid, strict=True):
                if request.id is None:
                    request.id = derived_id(line.value)
                out[line.number] = Pending(request, self.producer, f"/{line.number - 1}")
            return out
        return {}

    def _stored(self, value: dict[str, Any], number: int) -> Pending:
        """A stored receipt checked against its own leaf hash, as a request of its producer."""
        at = f"/{number - 1}"
        problems = [
            ErrorDetail(at + json_pointer(k), "missing: a stored receipt has every field "
                        "`receipts query` prints") for k in sorted(_STORED_KEYS - value.keys())
        ] + [
            ErrorDetail(at + json_pointer(k), "not a field of a stored receipt")
            for k in sorted(value.keys() - _STORED_KEYS)
        ]  # fmt: skip
        if problems:
            raise ValidationError("not a stored receipt as `receipts query` prints it", problems)
        try:
            leaf = Receipt.from_entry(0, {k: value[k] for k in ENTRY_KEYS}).leaf_hash.hex()
        except ValidationError as exc:
            reason = exc.errors[0].message if exc.errors else exc.message
            raise ValidationError(
                "the stored receipt cannot be canonicalized", [ErrorDetail(at, reason)]
            ) from None
        if value["leaf_hash"] != leaf:
            raise VerificationError(
                "the stored receipt was edited: its leaf_hash does not match its fields",
                [ErrorDetail(f"{at}/leaf_hash", "not the leaf hash of the line's other fields "
                             "(SHA-256 of 0x00 and their RFC 8785 JSON, without seq)")],
            )  # fmt: skip
        producer = value["producer"]
        if producer not in PRODUCERS:
            raise ValidationError(
                "unknown producer", [ErrorDetail(f"{at}/producer", f"expected one of {PRODUCERS}")]
            )
        request = {k: value[k] for k in REQUEST_FIELDS if value[k] is not None}
        (valid,) = self.ledger.validator.validate_batch([request], producer, pointers=[at])
        return Pending(valid, producer, at)

    def _attempt(self, items: list[Pending]) -> None:
        """Commit ``items`` in one transaction; if refused, set aside the lines the refusal
        names and commit the others, in order (split in halves until a refusal names one)."""
        if not items:
            return
        before = self.ledger.size()
        try:
            receipts = self.ledger.commit(items)
        except _REFUSALS as error:
            self._refused(items, error)
            return
        new: set[str] = set()
        for item, receipt in zip(items, receipts, strict=True):
            self._done[_number(item)] = True
            if receipt.seq >= before and receipt.id not in new:
                new.add(receipt.id)
            else:  # already in the ledger, or a repeat of a line before it
                self.report.already_stored += 1
        self.report.stored += len(new)

    def _refused(self, items: list[Pending], error: ReceiptsError) -> None:
        named = {n for d in error.errors if (n := _line_of(d.pointer)) is not None}
        hit = [i for i, item in enumerate(items) if _number(item) in named]
        if not hit:
            if len(items) == 1:
                self._reject(_number(items[0]), error)
                return
            half = len(items) // 2
            self._attempt(items[:half])
            self._attempt(items[half:])
            return
        for i in hit:
            self._reject(_number(items[i]), error, counted=len(hit) > 1)
        if len(hit) > 1:
            self._attempt([item for item in items if _number(item) not in named])
            return
        # A refusal while building names the first line it met: the lines before it went
        # through, the lines after it are split, so that many refusals cost log(n) retries each.
        first = hit[0]
        self._attempt(items[:first])
        rest = items[first + 1 :]
        self._attempt(rest[: len(rest) // 2])
        self._attempt(rest[len(rest) // 2 :])

    def _reject(self, number: int, error: ReceiptsError, *, counted: bool = False) -> None:
        """Set line ``number`` aside with the details of ``error`` about it; ``counted``: the
        error is about several lines, so the line's message counts its own problems."""
        prefix = f"/{number - 1}"
        mine = [d for d in error.errors if _line_of(d.pointer) == number]
        details = [{"pointer": d.pointer[len(prefix) :], "message": d.message} for d in mine]
        if not mine:  # a line refused before it had a place in a batch, or a whole-batch error
            details = [d.to_dict() for d in error.errors]
        message = f"{len(details)} problem(s) in this line" if counted else error.message
        self._done[number] = False
        self._rejected.append(
            {"line": number, "code": error.code, "message": message, "errors": details}
        )


def import_file(ledger: Ledger, file: str, producer: str, batch_size: int) -> ImportReport:
    """Import ``file`` (``-``: stdin). Refused lines are in the report; anything else (the
    database went away, Ctrl-C) stops the import: the report then says what was done up to
    there, and ``stopped`` why."""
    report = ImportReport(file)
    importer = _Importer(ledger, producer, report)
    progress = Progress(
        console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()
    )
    with progress, _open(file) as handle:
        task = progress.add_task("importing", total=os.fstat(handle.fileno()).st_size or None)
        # Every batch's parsed lines and receipts live until it is committed, long enough for
        # the cyclic garbage collector to move them to its oldest generation and then scan them
        # again and again in full collections; yet they hold no reference cycles and go with
        # their last reference. So the import runs with automatic collection off (faster,
        # docs/benchmarks.md §4) and collects in full once per _COLLECT_EVERY lines, for
        # whatever cycle might form anyway.
        was_enabled = gc.isenabled()
        gc.disable()
        uncollected = 0  # lines read since the last full collection
        try:
            for lines in read_lines(handle.fileno(), batch_size):
                importer.batch(lines)
                uncollected += len(lines)
                if uncollected >= _COLLECT_EVERY:
                    gc.collect()
                    uncollected = 0
                if not progress.disable:
                    progress.update(task, completed=handle.tell())
        except (ReceiptsError, KeyboardInterrupt) as stop:
            importer.stop(stop)
        finally:
            if was_enabled:
                gc.enable()
    with suppress(ReceiptsError):  # (the database may be what stopped the import)
        report.receipts = ledger.size()
    return report


def _open(file: str) -> BinaryIO:
    if file == "-":
        return os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    return Path(file).open("rb")
