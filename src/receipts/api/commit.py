"""Group commit: concurrent requests share one durable transaction.

Each HTTP request becomes a *group* (one receipt, or an atomic array). A single writer task
takes the first waiting group, then every group that queued up meanwhile (up to ``group_max``
receipts, waiting at most ``group_wait`` for company), and commits them together in the
ledger's writer thread: one fsync for many requests, so throughput grows with concurrency.
Contract: a request's future MUST NOT resolve before its transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..errors import OverloadedError, ReceiptsError
from ..ledger import Ledger, Pending
from ..model import Receipt
from .settings import Settings


@dataclass
class _Group:
    items: Sequence[Pending]
    done: asyncio.Future[list[Receipt]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Committer:
    """What the routes see of the writer, a thread (``GroupCommitter``) or a process
    (``writer.WriterProcess``): ``submit`` a group, and the counts behind back-pressure, stream
    tailing and the group-size histogram."""

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

    async def submit(self, items: Sequence[Pending]) -> list[Receipt]:
        self._make_room(len(items))
        group = _Group(items)
        self.waiting += len(items)
        await self.queue.put(group)
        return await group.done

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            groups = await self._collect()
            count = sum(len(g.items) for g in groups)
            try:
                results = await loop.run_in_executor(
                    self.executor, self.ledger.commit_groups, [g.items for g in groups]
                )
            except ReceiptsError as error:  # a lone group refused, or the store failed
                results = [error] * len(groups)
            except Exception as error:
                results = [error] * len(groups)  # type: ignore[list-item]
            self.waiting -= count
            for group, result in zip(groups, results, strict=True):
                if not group.done.done():
                    if isinstance(result, BaseException):
                        group.done.set_exception(result)
                    else:
                        group.done.set_result(result)
            self._pulse(count)

    async def _collect(self) -> list[_Group]:
        groups = [await self.queue.get()]
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
        return groups
