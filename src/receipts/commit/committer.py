"""What every committer shares: ``Committer``, the interface its users see (``submit`` a group,
``problems`` for a health check, the counts behind back-pressure, stream tailing and metrics),
and ``commit_each``, which commits groups in the ledger whatever fails.

Contract: a group's ``submit`` MUST NOT return before the transaction holding it has committed.
Every group taken in MUST be answered (its receipts or its error) and give its place in the
queue back, whatever fails: a submit never leaves the queue fuller than it found it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Final

from ..batch import PendingTuple, ToCommit
from ..errors import OverloadedError, ReceiptsError
from ..ledger import Ledger
from ..model import Receipt
from .options import CommitOptions

log = logging.getLogger("receipts.commit")

# A group's outcome: its receipts, or what refused or failed it.
Result = list[Receipt] | BaseException
STOPPED: Final = (
    "the server stopped; the request may or may not have been stored: retry it with the same id"
)


def commit_each(ledger: Ledger, groups: Sequence[Sequence[ToCommit]]) -> list[Result]:
    """``ledger.commit_groups`` with whatever it raises answered as the groups' error, so the
    committer that calls it goes on. A refusal of the store fails every group of the
    transaction (it may fail the next alone); anything else is a bug, and the groups are
    retried one by one so that the request that trips it fails alone (the failed transaction
    was rolled back)."""
    try:
        return list(ledger.commit_groups(groups))
    except ReceiptsError as error:
        return [error] * len(groups)
    except Exception as error:
        if len(groups) == 1:
            log.exception("commit failed")
            return [error]
        return [result for group in groups for result in commit_each(ledger, [group])]


class Committer:
    """Group commit of a ledger, in a thread (``GroupCommitter``) or a process of its own
    (``WriterProcess``); ``open_writer`` picks."""

    def __init__(self, options: CommitOptions) -> None:
        self.options = options
        self.waiting = 0  # receipts submitted and not yet answered, for back-pressure
        self.committed = asyncio.Event()  # pulsed after every commit (stream tailing)
        self.commits = 0  # counts those pulses: a tail compares it to miss none
        self.group_sizes: deque[int] = deque(maxlen=100_000)  # drained by metrics
        self.checkpoint_size = -1  # size of the latest checkpoint the writer signed

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        """Answer what was submitted (committed, or failed as lost) and stop writing."""
        raise NotImplementedError

    async def submit(self, items: Sequence[PendingTuple]) -> list[Receipt]:
        """Commit one atomic group of pending requests (``Ledger.pending``); returns its stored
        receipts once durable. ``OverloadedError`` if the queue has no room for it."""
        raise NotImplementedError

    async def problems(self) -> list[str]:
        """Why writes would be refused now (empty: they would not)."""
        if self.waiting >= self.options.max_queue:
            return [f"the write queue is full ({self.waiting} receipts waiting)"]
        return []

    def _make_room(self, count: int) -> None:
        if self.waiting + count > self.options.max_queue:
            raise OverloadedError(f"{self.waiting} receipts are waiting to be committed; retry")

    def _pulse(self, count: int) -> None:
        """A commit of ``count`` receipts has been answered."""
        self.group_sizes.append(count)
        self.commits += 1
        self.committed.set()
        self.committed.clear()
