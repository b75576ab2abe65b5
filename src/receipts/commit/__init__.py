"""The write path for concurrent writers: group commit, back-pressure and background
checkpoints, in a writer thread or a writer process of its own.

``open_writer(ledger, options)`` gives the committer the ledger's store wants; ``submit`` it
groups of pending requests (``Ledger.pending``), each one atomic batch, and many are committed
in one transaction. ``receipts serve`` appends through it; ``Ledger.append_batch`` is the same
pipeline for one caller at a time.

    writer = open_writer(ledger, CommitOptions(max_queue=1000))
    await writer.start()
    stored = await writer.submit(list(ledger.pending(requests)))
    await writer.stop()
"""

from __future__ import annotations

from ..ledger import Ledger
from .collector import settle_gc
from .committer import Committer
from .options import CommitOptions
from .process import WriterProcess
from .thread import GroupCommitter


def open_writer(ledger: Ledger, options: CommitOptions | None = None) -> Committer:
    """The committer for ``ledger``: a writer process of its own where the store wants one
    (``Store.writes_from_a_process``, a SQLite file) and ``options.writer_process`` allows,
    else a writer thread of this process. ``start`` it in the event loop that submits to it;
    ``stop`` it to answer what it holds and end."""
    options = options or CommitOptions()
    if options.writer_process and ledger.store.writes_from_a_process:
        return WriterProcess(ledger, options)
    return GroupCommitter(ledger, options)


__all__ = [
    "CommitOptions",
    "Committer",
    "GroupCommitter",
    "WriterProcess",
    "open_writer",
    "settle_gc",
]
