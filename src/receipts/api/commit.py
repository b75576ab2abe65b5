"""Group commit: concurrent requests share one durable transaction.

Each HTTP request becomes a *group* (one receipt, or an atomic array). A single writer task
takes the first waiting group, then every group that queued up meanwhile (up to ``group_max``
receipts, waiting at most ``group_wait`` for company), and commits them together in the
ledger's writer thread: one fsync for many requests, so throughput grows with concurrency.
Contract: a request's future MUST NOT resolve before its transaction has committed. Every
group taken into the queue MUST be answered (its receipts or its error) and give its place
back, whatever fails: a request never leaves the queue fuller than it found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import OverloadedError, ReceiptsError, StorageError
from ..ledger import Item, Ledger, Pending
from ..model import Receipt
from .settings import Settings

log = logging.getLogger("receipts.api.commit")

Result = list[Receipt] | BaseException
_STOPPED = (
    "the server stopped; the request may or may not have been stored: retry it with the same id"
)


def commit_each(ledger: Ledger, groups: Sequence[Sequence[Item]]) -> list[Result]:
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


@dataclass
class _Group:
    items: Sequence[Pending]
    done: asyncio.Future[list[Receipt]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Committer:
    """What the routes see of the writer, a thread (``GroupCommitter``) or a process
    (``writer.WriterProcess``): ``submit`` a group, ``problems`` for /health, and the counts
    behind back-pressure, stream tailing and the group-size histogram."""

    signs_checkpoints = False  # True: the writer signs checkpoints, the service need not

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.waiting = 0  # receipts submitted and not yet answered, for back-pressure
        self.committed = asyncio.Event()  # pulsed after every commit (stream tailing)
        self.commits = 0  # counts those pulses: a tail compares it to miss none
        self.group_sizes: deque[int] = deque(maxlen=100_000)  # drained by /metrics

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def submit(self, items: Sequence[Pending]) -> list[Receipt]:
        """Commit one atomic group; returns its stored receipts once durable."""
        raise NotImplementedError

    async def problems(self) -> list[str]:
        """Why writes would be refused now (empty: they would not)."""
        if self.waiting >= self.settings.max_queue:
            return [f"the write queue is full ({self.waiting} receipts waiting)"]
        return []

    def _make_room(self, count: int) -> None:
        if self.waiting + count > self.settings.max_queue:
            raise OverloadedError(f"{self.waiting} receipts are waiting to be committed; retry")

    def _pulse(self, count: int) -> None:
        """A commit of ``count`` receipts has been answered."""
        self.group_sizes.append(count)
        self.commits += 1
        self.committed.set()
        self.committed.clear()


class GroupCommitter(Committer):
    """In-process group commit (PostgreSQL, ``:memory:``); SQLite files use ``WriterProcess``."""

    def __init__(self, ledger: Ledger, settings: Settings, executor: ThreadPoolExecutor) -> None:
        super().__init__(settings)
        self.ledger = ledger
        self.executor = executor  # the one writer thread (shared with the checkpointer)
        self.queue: asyncio.Queue[_Group] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self.queue.empty():  # never taken: not stored
            group = self.queue.get_nowait()
            self.waiting -= len(group.items)
            _settle([group], StorageError(_STOPPED))

    async def submit(self, items: Sequence[Pending]) -> list[Receipt]:
        if self._task is None or self._task.done():
            raise StorageError("the committer is not running")
        self._make_room(len(items))
        group = _Group(items)
        self.waiting += len(items)
        self.queue.put_nowait(group)  # unbounded: cannot fail, so the place is given back
        return await group.done

    async def problems(self) -> list[str]:
        found = await super().problems()
        if self._task is None or self._task.done():
            found.append("the committer is not running")
        return found

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            groups: list[_Group] = []
            results: list[Result] | BaseException = StorageError(_STOPPED)
            try:
                await self._collect(groups)
                results = await loop.run_in_executor(
                    self.executor, commit_each, self.ledger, [g.items for g in groups]
                )
            except Exception as error:  # the executor refused the work: shutting down
                results = error
            finally:  # cancelled too: each group taken is answered and gives its place back
                count = sum(len(g.items) for g in groups)
                self.waiting -= count
                _settle(groups, results)
            self._pulse(count)

    async def _collect(self, groups: list[_Group]) -> None:
        """Into ``groups``: the first waiting group and its company."""
        groups.append(await self.queue.get())
        count = len(groups[0].items)
        deadline = asyncio.get_running_loop().time() + self.settings.group_wait
        while count < self.settings.group_max:
            try:
                group = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    group = await asyncio.wait_for(self.queue.get(), remaining)
                except TimeoutError:
                    break
            groups.append(group)
            count += len(group.items)


def _settle(groups: Sequence[_Group], results: Sequence[Result] | BaseException) -> None:
    """Answer each group with its result (one error may answer them all)."""
    for i, group in enumerate(groups):
        result = results if isinstance(results, BaseException) else results[i]
        if group.done.done():  # the request was cancelled (client gone): nothing to tell
            continue
        if isinstance(result, BaseException):
            group.done.set_exception(result)
        else:
            group.done.set_result(result)
