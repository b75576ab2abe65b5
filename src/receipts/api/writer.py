"""The SQLite write path in a process of its own.

Why: CPython runs one thread of Python at a time per process. With the writer thread inside the
HTTP process, the event loop and the writer share one GIL, and the server tops out just under
one core while the machine's other cores sit idle (docs/benchmarks.md §5). The writer process
has a GIL of its own: the HTTP process reads, authenticates and validates requests; the writer
builds the entries, inserts them, extends the Merkle tree, commits and signs checkpoints.

Protocol, over a socket pair private to the two processes: frames of a header (tag, length)
and a pickle. The parent sends a config frame first, then one frame per group (its ``Pending``
as plain tuples, ``_wire``); the child answers each group with its receipts or its error once
the transaction holding them has committed. A receipt the parent made ahead (``Ledger.prebuild``)
comes back as its seq alone. Tag 0 carries notices: ``ready``, ``failed`` (could not open the
ledger), ``commit`` (receipts in the transaction) and ``checkpoint`` (size of a new one).

Who builds the entries: the writer process, for requests of a few receipts; the HTTP process,
for larger ones (``_BUILD_HERE_FROM``). Under single-receipt load the HTTP process is the busier
one (it parses, authenticates and validates every request); under batch load the writer is.

Group commit: the child takes every group waiting on the socket (up to ``group_max`` receipts)
into one transaction, so throughput grows with concurrency without a timed wait.

Shutdown: the parent half-closes its end; the child commits and answers the groups it has, then
sees EOF and exits. If the parent is gone, the child commits what it has read and sends nothing.

Contract: a request's future MUST NOT resolve before the child has reported its commit. If the
child dies, requests in flight fail with a StorageError (503: retry with the same id; an
idempotent retry returns the receipt if it was stored) and the next request starts a new child.
No request can stop the child: whatever fails while it reads, commits or answers a group is
that group's error, and the child goes on. Every group answered, or never sent, gives its
place in the queue back.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final

from ..errors import ErrorDetail, ReceiptsError, StorageError, ValidationError
from ..ledger import Item, Ledger, Pending
from ..model import Receipt
from ..store.sqlite import SQLiteStore
from ..tlog import Signer
from .commit import Committer, Result, commit_each
from .process import settle_gc
from .settings import Settings

log = logging.getLogger("receipts.api.writer")

_HEAD: Final = struct.Struct("!QI")  # tag, length of the pickle that follows
_NOTICE: Final = 0  # the tag of notices; groups are numbered from 1
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
# From this many receipts in one request, the HTTP process makes their entries (canonical bytes,
# leaf hashes) and the writer only sequences them (docs/benchmarks.md §5). Below it the writer
# does, to spare the HTTP process, the busier one under single-receipt load.
_BUILD_HERE_FROM: Final = 16
_ENTRY_BYTES: Final = Receipt._fields.index("entry_bytes")
# Socket buffers that hold a whole 1,000-receipt group (about 0.7 MB pickled): with the default
# 208 KiB, the rest of a frame waited in the HTTP process until its event loop had time to send
# it, and the writer process sat idle meanwhile (about a fifth of its time under batch load).
_SOCKET_BUFFER: Final = 4 << 20
# How long shutdown waits for the child to answer what it has, and then to exit.
_STOP_WAIT: Final = 30.0
_CHILD: Final = "import sys; from receipts.api.writer import main; main(int(sys.argv[1]))"


def _frame(tag: int, value: Any) -> bytes:
    body = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(tag, len(body)) + body


class WriterProcess(Committer):
    """Parent side: the committer the routes submit groups to."""

    signs_checkpoints = True  # the child signs them on the settings' interval

    def __init__(
        self, ledger: Ledger, settings: Settings, on_checkpoint: Callable[[int], None]
    ) -> None:
        self.config = {
            "url": ledger.store.url,
            "signer": ledger.signer.to_key_string() if ledger.signer is not None else None,
            "group_max": settings.group_max,
            "checkpoint_interval": settings.checkpoint_interval,
        }
        super().__init__(settings)
        self.ledger = ledger
        self.on_checkpoint = on_checkpoint
        self._tags = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[list[Receipt]], Sequence[Pending]]] = {}
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
        self._out.write(_frame(_NOTICE, self.config))
        try:
            _, notice = await _read_frame(stream)
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

    async def submit(self, items: Sequence[Pending]) -> list[Receipt]:
        self._make_room(len(items))
        if len(items) >= _BUILD_HERE_FROM:
            items = self.ledger.prebuild(items)
        tag = next(self._tags)
        frame = _request_frame(tag, items)  # may raise: nothing is taken yet
        if self._dead():
            await self._restart()
            self._make_room(len(items))  # others may have queued meanwhile
        out = self._out
        assert out is not None
        done: asyncio.Future[list[Receipt]] = asyncio.get_running_loop().create_future()
        self._pending[tag] = (done, items)
        self.waiting += len(items)
        try:
            out.write(frame)
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
                tag, value = await _read_frame(stream)
                if tag == _NOTICE:
                    if not isinstance(value, BaseException):
                        self._notice(value)
                    continue
                pending = self._pending.pop(tag, None)
                if pending is None:
                    continue
                done, items = pending
                self.waiting -= len(items)
                if not done.done():  # else the request was cancelled: nothing to tell
                    _answer(done, items, value)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the child exited: fail what it did not answer
        finally:
            out.close()
            for done, items in self._pending.values():
                self.waiting -= len(items)
                if not done.done():
                    done.set_exception(StorageError(_LOST))
            self._pending.clear()

    def _notice(self, notice: tuple[str, Any]) -> None:
        kind, value = notice
        if kind == "commit":
            self._pulse(value)
        elif kind == "checkpoint":
            self.on_checkpoint(value)


def _request_frame(tag: int, items: Sequence[Pending]) -> bytes:
    try:
        return _frame(tag, _wire(items))
    except RecursionError:  # only a payload nested far too deep gets here
        raise ValidationError(
            "the request is nested too deeply to be stored",
            [ErrorDetail(items[0].pointer, "nested too deeply")],
        ) from None


def _answer(done: asyncio.Future[list[Receipt]], items: Sequence[Pending], value: Any) -> None:
    if isinstance(value, BaseException):
        done.set_exception(value)
        return
    try:
        done.set_result(_receipts(items, value))
    except Exception as error:  # a bug: that request fails (500), the others go on
        log.exception("unreadable answer from the writer process")
        done.set_exception(error)


def _receipts(items: Sequence[Pending], answers: list[Any]) -> list[Receipt]:
    """The child's answer for a group: a seq where it stored the receipt made ahead, the whole
    receipt as a tuple where not (built there, or an idempotent retry's first receipt)."""
    return [
        Receipt._make(a) if type(a) is tuple else Receipt._make((a, *item.built[1:]))  # type: ignore[index]
        for item, a in zip(items, answers, strict=True)
    ]


def _wire(items: Sequence[Pending]) -> list[Item]:
    """A group as the child gets it: plain tuples, and no request beside a receipt made ahead
    with a new id (nothing reads it). For 1,000 such receipts: made and pickled in 1.3 ms
    instead of 3.5, unpickled in 0.8 instead of 1.7 (docs/benchmarks.md §5)."""
    return [
        (None if p.built is not None and not p.request.id else p.request, *p[1:]) for p in items
    ]


def _answers(items: list[Item], stored: list[Receipt]) -> list[Any]:
    """``_receipts`` in reverse. Same entry bytes, same receipt: only the seq differs."""
    return [
        r.seq if built is not None and r.entry_bytes == built[_ENTRY_BYTES] else tuple(r)
        for (_, _, _, built), r in zip(items, stored, strict=True)
    ]


async def _read_frame(stream: asyncio.StreamReader) -> tuple[int, Any]:
    """The next frame: its tag, and its value or what failed to read it."""
    tag, size = _HEAD.unpack(await stream.readexactly(_HEAD.size))
    return tag, _loads(await stream.readexactly(size))


def _loads(body: bytes | bytearray) -> Any:
    try:
        return pickle.loads(body)
    except Exception as error:
        return _portable(error, "could not read a frame")


def _portable(error: BaseException, what: str) -> ReceiptsError | RuntimeError:
    """An error as it can cross the socket: ours as they are, any other as a RuntimeError (a
    bug, answered 500) naming it, since not every exception can be pickled."""
    if isinstance(error, ReceiptsError):
        return error
    return RuntimeError(f"writer process: {what}: {type(error).__name__}: {error}")


# --- the child -------------------------------------------------------------------------------


class _Channel:
    """The child's end: blocking reads of whole frames, one send per commit."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.frames: deque[tuple[int, Any]] = deque()
        self.unreadable: list[tuple[int, BaseException]] = []  # frames that failed to unpickle
        self.closed = False  # the parent sends no more
        self.deaf = False  # the parent hears no more: it was killed, or closed its end

    def receive(self, timeout: float | None) -> None:
        """Wait up to ``timeout`` for data, then take everything that has arrived."""
        if not self.frames and not select.select([self.sock], [], [], timeout)[0]:
            return
        while not self.closed:
            try:
                data = self.sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
            self.buffer += data
        at = 0
        while len(self.buffer) - at >= _HEAD.size:
            tag, size = _HEAD.unpack_from(self.buffer, at)
            end = at + _HEAD.size + size
            if end > len(self.buffer):
                break
            value = _loads(self.buffer[at + _HEAD.size : end])
            if isinstance(value, BaseException):
                self.unreadable.append((tag, value))
            else:
                self.frames.append((tag, value))
            at = end
        del self.buffer[:at]

    def take(self, limit: int) -> list[tuple[int, list[Item]]]:
        """Waiting groups, in arrival order, up to ``limit`` receipts (at least one group)."""
        groups: list[tuple[int, list[Item]]] = []
        count = 0
        while self.frames and (not groups or count + len(self.frames[0][1]) <= limit):
            tag, items = self.frames.popleft()
            groups.append((tag, items))
            count += len(items)
        return groups

    def send(self, data: bytes) -> None:
        """Tell the parent; if it can no longer hear, go on without telling: what is committed
        stays committed, and the frames already received are still committed before exit."""
        if self.deaf:
            return
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            self.deaf = True


def _commit(ledger: Ledger, groups: list[tuple[int, list[Item]]]) -> bytes:
    results = commit_each(ledger, [items for _, items in groups])
    out = bytearray()
    for (tag, items), result in zip(groups, results, strict=True):
        out += _answer_frame(tag, items, result)
    out += _frame(_NOTICE, ("commit", sum(len(items) for _, items in groups)))
    return bytes(out)


def _answer_frame(tag: int, items: list[Item], result: Result) -> bytes:
    """A group's answer: its receipts (as plain tuples, pickled in half the time of named
    tuples) or its error. Whatever fails here is the group's error too."""
    try:
        if isinstance(result, BaseException):
            return _frame(tag, _portable(result, "commit failed"))
        return _frame(tag, _answers(items, result))
    except Exception as error:
        log.exception("could not answer a group")
        return _frame(tag, _portable(error, "could not answer"))


def _serve(ledger: Ledger, channel: _Channel, group_max: int, interval: float) -> None:
    signing = interval > 0 and ledger.signer is not None
    due = time.monotonic() + interval
    signed = -1
    while not (channel.closed and not channel.frames):
        channel.receive(max(0.0, due - time.monotonic()) if signing else None)
        if channel.unreadable:
            channel.send(b"".join(_frame(tag, error) for tag, error in channel.unreadable))
            channel.unreadable.clear()
        groups = channel.take(group_max)
        if groups:
            channel.send(_commit(ledger, groups))
        if signing and time.monotonic() >= due:
            due = time.monotonic() + interval
            try:
                if ledger.size() != signed:
                    signed = ledger.checkpoint().size
                    channel.send(_frame(_NOTICE, ("checkpoint", signed)))
            except ReceiptsError as error:  # keep serving; the next tick retries
                log.warning("checkpoint failed: %s", error.message)
            except Exception:
                log.exception("checkpoint failed")


def main(fd: int) -> None:
    # Ctrl-C reaches the whole process group: the parent shuts down in order and closes the
    # socket, and this process finishes the commits it has before it exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(format="receipts writer: %(levelname)s %(message)s")
    channel = _Channel(socket.socket(fileno=fd))
    while not channel.frames and not channel.closed:
        channel.receive(None)
    if not channel.frames:
        return
    _, config = channel.frames.popleft()
    try:
        signer = Signer.from_key_string(config["signer"]) if config["signer"] else None
        ledger = Ledger.open(config["url"], signer=signer)
    except ReceiptsError as error:
        channel.send(_frame(_NOTICE, ("failed", error)))
        return
    if isinstance(ledger.store, SQLiteStore):  # it is: the writer process serves SQLite files
        ledger.store.checkpoint_in_background()
    with ledger:
        settle_gc()
        channel.send(_frame(_NOTICE, ("ready", None)))
        _serve(ledger, channel, config["group_max"], config["checkpoint_interval"])
