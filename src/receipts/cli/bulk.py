"""``receipts import``: bulk JSON Lines import, one all-or-nothing transaction per batch."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress

from ..errors import ReceiptsError
from ..ledger import Ledger
from .jsonin import read_batches


def _line_of(pointer: str) -> int | None:
    """``/12/payload/x`` -> line 13 (pointers index JSON Lines from 0)."""
    head = pointer.split("/")[1] if pointer.startswith("/") else ""
    return int(head) + 1 if head.isdigit() else None


def import_file(ledger: Ledger, path: Path, producer: str, batch_size: int) -> dict[str, Any]:
    imported, rejected_batches, rejected = 0, 0, []
    progress = Progress(
        console=Console(stderr=True), transient=True, disable=not sys.stderr.isatty()
    )
    with progress, path.open("rb") as handle:
        task = progress.add_task("importing", total=os.fstat(handle.fileno()).st_size)
        for batch in read_batches(handle.fileno(), batch_size):
            try:
                imported += len(ledger.append_batch(batch.items, producer=producer,
                                                    pointers=batch.pointers))  # fmt: skip
            except ReceiptsError as error:
                rejected_batches += 1
                first = _line_of(batch.pointers[0]) or 0
                last = _line_of(batch.pointers[-1]) or 0
                details = error.errors or []
                rejected.append({
                    "lines": [first, last],
                    "code": error.code,
                    "message": error.message,
                    "errors": [{"line": _line_of(d.pointer), **d.to_dict()} for d in details],
                })  # fmt: skip
            progress.update(task, completed=handle.tell())
    return {
        "imported": imported,
        "rejected_batches": rejected_batches,
        "rejected": rejected,
        "receipts": ledger.size(),
    }
