"""Group commit in a writer process of its own: the parent side, ``WriterProcess``.

Why: CPython runs one thread of Python at a time per process. With the writer thread inside the
HTTP process, the event loop and the writer share one GIL, and the server tops out just under
one core while the machine's other cores sit idle (docs/benchmarks.md §5). The writer process
(child.py) has a GIL of its own: the HTTP process reads, authenticates and validates requests;
the writer builds the entries, inserts them, extends the Merkle tree, commits and signs
checkpoints. They talk in frames over a socket pair (wire.py).

Who builds the entries: the writer process, for requests of a few receipts; the HTTP process,
for larger ones (``_BUILD_HERE_FROM``, ``Ledger.prebuild``). Under single-receipt load the HTTP
process is the busier one (it parses, authenticates and validates every request); under batch
load the writer is.

Shutdown: the parent half-closes its end; the child commits and answers the groups it has, then
sees EOF and exits. If the parent is gone, the child commits what it has read and sends nothing.

Contract: a submit MUST NOT return before the child has reported its commit. If the child dies,
the groups in flight fail with a StorageError (the HTTP service answers 503: retry with the same
id; an idempotent retry returns the receipt if it was stored) and the next submit starts a new
child. No group can stop the child: whatever fails while it reads, commits or answers a group
is that group's error, and the child goes on. Every group answered, or never sent, gives its
place in the queue back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

from ..batch import PendingTuple, ToCommit
from ..errors import ErrorDetail, ReceiptsError, StorageError, ValidationError
from ..ledger import Ledger
from ..model import Receipt
from .committer import Committer
from .options import CommitOptions
from .wire import NOTICE, WriterConfig, frame, plain, read_frame, receipts

log = logging.getLogger("receipts.commit.process")

_LOST: Final = (
    "the writer process stopped; the request may or may not have been stored: "
    "retry it with the same id"
)
_UNSENT: Final = (
    "the writer process stopped before the request reached it; it was not stored: retry it"
)
# After the child failed to start, requests within this many seconds fail at once instead of
# each waiting for a child of its own to fail the same way.
_RESTART_BACKOFF: Final = 1.0
# From this many receipts in one group, this process makes their entries (canonical bytes,
# leaf hashes) and the writer only sequences them (docs/benchmarks.md §5). Below it the writer
# does, to spare this process, the busier one under single-receipt load.
_BUILD_HERE_FROM: Final = 16
# Socket buffers that hold a whole group of a large request: with the default size, the rest of
# a frame waited in this process until its event loop had time to send it, and the writer
# process sat idle meanwhile (docs/benchmarks.md §5).
_SOCKET_BUFFER: Final = 4 << 20
# How long shutdown waits for the child to answer what it has, and then to exit.
_STOP_WAIT: Final = 30.0
_CHILD: Final = "import sys; from receipts.commit.child import main; main(int(sys.argv[1]))"


class WriterProcess(Committer):
    """Parent side: the committer groups are submitted to."""

    def __init__(self, ledger: Ledger, options: CommitOptions) -> None:
        super().__init__(options)
        self.config = WriterConfig(
            ledger.store.url,
            ledger.signer.to_key_string() if ledger.signer is not None else None,
            options.group_max,
            options.checkpoint_interval,
        )
        self.ledger = ledger
        self._tags = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[list[Receipt]], Sequence[ToCommit]]] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._starting: asyncio.Lock | None = None
        self._failed: tuple[float, ReceiptsError] | None = None  # the last start that failed

    async def start(self) -> None:
        parent, child = socket.socketpair()
        for end in (parent, child):
            end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
            end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
        with child:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, str(child.fileno())],
                pass_fds=[child.fileno()],
                stdin=subprocess.DEVNULL,
            )
        stream, self._out = await asyncio.open_connection(sock=parent)
        self._out.write(frame(NOTICE, self.config))
        try:
            _, notice = await read_frame(stream)
        except (asyncio.IncompleteReadError, ConnectionError):
            notice = ("failed", StorageError("the writer process exited while starting"))
        if notice[0] != "ready":
            await self.stop()
            raise notice[1]
        self._reader = asyncio.get_running_loop().create_task(
            self._read(stream, self._out), name="writer-process"
        )

    async def stop(self) -> None:
        if self._out is not None and not self._out.is_closing():
            # Half-close: the child sees EOF, answers what it has and exits, which closes its
            # end; the reader takes those answers until then.
            self._out.write_eof()
        if self._reader is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._reader), _STOP_WAIT)
            except TimeoutError:  # stuck (a lock held elsewhere?): what it has not answered fails
                log.error("the writer process did not finish in %s s; killing it", _STOP_WAIT)
                if self._proc is not None:
                    self._proc.kill()
                await self._reader
        if self._out is not None:
            self._out.close()
        proc = self._proc
        if proc is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(None, proc.wait, _STOP_WAIT)
            except subprocess.TimeoutExpired:
                log.error("the writer process did not exit; killing it")
                proc.kill()
                proc.wait()

    async def submit(self, items: Sequence[PendingTuple]) -> list[Receipt]:
        self._make_room(len(items))
        group: Sequence[ToCommit] = items
        if len(items) >= _BUILD_HERE_FROM:
            group = self.ledger.prebuild(items)
        tag = next(self._tags)
        data = _group_frame(tag, group, items)  # may raise: nothing is taken yet
        if self._dead():
            await self._restart()
            self._make_room(len(items))  # others may have queued meanwhile
        out = self._out
        assert out is not None
        done: asyncio.Future[list[Receipt]] = asyncio.get_running_loop().create_future()
        self._pending[tag] = (done, group)
        self.waiting += len(items)
        try:
            out.write(data)
        except Exception:  # the socket closed under us (uvloop raises, asyncio drops it)
            if self._pending.pop(tag, None) is not None:
                self.waiting -= len(items)
            raise StorageError(_UNSENT) from None
        return await done

    async def problems(self) -> list[str]:
        found = await super().problems()
        if self._dead():
            try:
                await self._restart()
            except ReceiptsError as error:
                found.append(f"the writer process cannot start: {error.message}")
        return found

    def _dead(self) -> bool:
        """Never started, or the child or its socket is gone."""
        out = self._out
        return self._reader is None or self._reader.done() or out is None or out.is_closing()

    async def _restart(self) -> None:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if not self._dead():
                return
            if self._failed is not None:
                failed_at, error = self._failed
                if time.monotonic() - failed_at < _RESTART_BACKOFF:
                    raise error
            if self._proc is not None:
                self._proc.kill()  # if it is not gone yet, its socket is: it is no use
                if self._reader is not None:  # fails what the old child did not answer
                    await asyncio.gather(self._reader, return_exceptions=True)
                code = await asyncio.get_running_loop().run_in_executor(None, self._proc.wait)
                log.error("the writer process exited (code %s); starting a new one", code)
            try:
                await self.start()
            except Exception as exc:
                error = exc if isinstance(exc, ReceiptsError) else StorageError(str(exc))
                self._failed = (time.monotonic(), error)
                raise error from None
            self._failed = None

    async def _read(self, stream: asyncio.StreamReader, out: asyncio.StreamWriter) -> None:
        try:
            while True:
                tag, value = await read_frame(stream)
                if tag == NOTICE:
                    if not isinstance(value, BaseException):
                        self._notice(value)
                    continue
                pending = self._pending.pop(tag, None)
                if pending is None:
                    continue
                done, group = pending
                self.waiting -= len(group)
                if not done.done():  # else the request was cancelled: nothing to tell
                    _answer(done, group, value)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the child exited: fail what it did not answer
        finally:
            out.close()
            for done, group in self._pending.values():
                self.waiting -= len(group)
                if not done.done():
                    done.set_exception(StorageError(_LOST))
            self._pending.clear()

    def _notice(self, notice: tuple[str, Any]) -> None:
        kind, value = notice
        if kind == "commit":
            self._pulse(value)
        elif kind == "checkpoint":
            self.checkpoint_size = value


def _group_frame(tag: int, group: Sequence[ToCommit], items: Sequence[PendingTuple]) -> bytes:
    """The frame of ``group``, made of the pending ``items``."""
    try:
        return frame(tag, plain(group))
    except RecursionError:  # only a payload nested far too deep gets here
        raise ValidationError(
            "the request is nested too deeply to be stored",
            [ErrorDetail(items[0][2], "nested too deeply")],
        ) from None


def _answer(done: asyncio.Future[list[Receipt]], group: Sequence[ToCommit], value: Any) -> None:
    if isinstance(value, BaseException):
        done.set_exception(value)
        return
    try:
        done.set_result(receipts(group, value))
    except Exception as error:  # a bug: that request fails (500), the others go on
        log.exception("unreadable answer from the writer process")
        done.set_exception(error)
