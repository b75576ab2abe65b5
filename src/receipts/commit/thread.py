"""Group commit in a writer thread of this process (PostgreSQL, ``:memory:``, or a SQLite file
with ``CommitOptions.writer_process`` off).

Each submit is a *group* (one receipt, or an atomic batch). A single task takes the first
waiting group, then every group that queued up meanwhile (up to ``group_max`` receipts, waiting
at most ``group_wait`` for company), and commits them together in the writer thread: one fsync
for many requests, so throughput grows with concurrency. The same thread signs the background
checkpoints, so they never race a commit for the write lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..batch import PendingTuple
from ..errors import ReceiptsError, StorageError
from ..ledger import Ledger
from ..model import Receipt
from .committer import STOPPED, Committer, Result, commit_each
from .options import CommitOptions

log = logging.getLogger("receipts.commit.thread")


@dataclass
class _Group:
    items: Sequence[PendingTuple]
    done: asyncio.Future[list[Receipt]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommitter(Committer):
    """In-process group commit, and the background checkpoints."""

    def __init__(self, ledger: Ledger, options: CommitOptions) -> None:
        super().__init__(options)
        self.ledger = ledger
        # The one writer thread: group commits and checkpoints.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receipts-writer")
        self.queue: asyncio.Queue[_Group] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="group-commit")
        if self.options.checkpoint_interval > 0 and self.ledger.signer is not None:
            self._checkpointer = loop.create_task(self._checkpoints(), name="checkpointer")

    async def stop(self) -> None:
        for task in (self._checkpointer, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        while not self.queue.empty():  # never taken: not stored
            group = self.queue.get_nowait()
            self.waiting -= len(group.items)
            _settle([group], StorageError(STOPPED))
        self.executor.shutdown(wait=True)

    async def submit(self, items: Sequence[PendingTuple]) -> list[Receipt]:
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
            results: list[Result] | BaseException = StorageError(STOPPED)
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
        deadline = asyncio.get_running_loop().time() + self.options.group_wait
        while count < self.options.group_max:
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

    async def _checkpoints(self) -> None:
        """Every ``checkpoint_interval`` seconds, a new checkpoint if the ledger has grown."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.options.checkpoint_interval)
            try:
                size = await loop.run_in_executor(None, self.ledger.size)
                if size != self.checkpoint_size:
                    cp = await loop.run_in_executor(self.executor, self.ledger.checkpoint)
                    self.checkpoint_size = cp.size
            except ReceiptsError as error:  # keep serving; the next tick retries
                log.warning("checkpoint failed: %s", error.message)


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
