"""``receipts import``: bulk JSON Lines import, one all-or-nothing transaction per batch."""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from ..errors import ReceiptsError
from ..ledger import Ledger
from .jsonin import Batch, read_batches

# Lines imported between full collections (see import_file): 100 batches of the default size.
_COLLECT_EVERY = 500_000


def _line_of(pointer: str) -> int | None:
    """``/12/payload/x`` -> line 13 (pointers index JSON Lines from 0)."""
    head = pointer.split("/")[1] if pointer.startswith("/") else ""
    return int(head) + 1 if head.isdigit() else None


def import_file(ledger: Ledger, path: Path, producer: str, batch_size: int) -> dict[str, Any]:
    imported = 0
    rejected: list[dict[str, Any]] = []  # a report per refused batch
    progress = Progress(
        console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()
    )
    with progress, path.open("rb") as handle:
        task = progress.add_task("importing", total=os.fstat(handle.fileno()).st_size)
        # Every batch's parsed lines and receipts live until it is committed, long enough for
        # the cyclic garbage collector to move them to its oldest generation and then scan them
        # again and again in full collections; yet they hold no reference cycles and go with
        # their last reference. So the import runs with automatic collection off (+3 % for
        # 200,000 lines into PostgreSQL, docs/benchmarks.md §4) and collects in full once per
        # _COLLECT_EVERY lines, for whatever cycle might form anyway.
        was_enabled = gc.isenabled()
        gc.disable()
        uncollected = 0  # lines read since the last full collection
        try:
            for batch in read_batches(handle.fileno(), batch_size):
                imported += _import_batch(ledger, batch, producer, rejected)
                uncollected += len(batch.items)
                if uncollected >= _COLLECT_EVERY:
                    gc.collect()
                    uncollected = 0
                progress.update(task, completed=handle.tell())
        finally:
            if was_enabled:
                gc.enable()
    return {
        "imported": imported,
        "rejected_batches": len(rejected),
        "rejected": rejected,
        "receipts": ledger.size(),
    }


def _import_batch(
    ledger: Ledger, batch: Batch, producer: str, rejected: list[dict[str, Any]]
) -> int:
    """Store one batch; on refusal add its report to ``rejected``. Returns receipts stored."""
    try:
        return len(ledger.append_batch(batch.items, producer=producer, pointers=batch.pointers))
    except ReceiptsError as error:
        first = _line_of(batch.pointers[0]) or 0
        last = _line_of(batch.pointers[-1]) or 0
        details = error.errors or []
        rejected.append({
            "lines": [first, last],
            "code": error.code,
            "message": error.message,
            "errors": [{"line": _line_of(d.pointer), **d.to_dict()} for d in details],
        })  # fmt: skip
        return 0
