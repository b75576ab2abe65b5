"""The writer process itself (started by process.py): it opens the ledger, commits the groups
it is sent, answers each once committed, and signs the background checkpoints.

Group commit: it takes every group waiting on the socket (up to ``group_max`` receipts) into
one transaction, so throughput grows with concurrency without a timed wait. A thread of its
store copies committed WAL frames into the database file meanwhile
(``Store.checkpoint_in_background``).
"""

from __future__ import annotations

import logging
import select
import signal
import socket
import time
from collections import deque
from typing import Any

from ..batch import ToCommit
from ..errors import ReceiptsError
from ..ledger import Ledger
from ..tlog import Signer
from .collector import settle_gc
from .committer import Result, commit_each
from .wire import HEAD, NOTICE, WriterConfig, answers, frame, loads, portable

log = logging.getLogger("receipts.commit.child")

Group = tuple[int, list[ToCommit]]  # a group's tag and its items


class Channel:
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
        while len(self.buffer) - at >= HEAD.size:
            tag, size = HEAD.unpack_from(self.buffer, at)
            end = at + HEAD.size + size
            if end > len(self.buffer):
                break
            value = loads(self.buffer[at + HEAD.size : end])
            if isinstance(value, BaseException):
                self.unreadable.append((tag, value))
            else:
                self.frames.append((tag, value))
            at = end
        del self.buffer[:at]

    def take(self, limit: int) -> list[Group]:
        """Waiting groups, in arrival order, up to ``limit`` receipts (at least one group)."""
        groups: list[Group] = []
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


def _commit(ledger: Ledger, groups: list[Group]) -> bytes:
    results = commit_each(ledger, [items for _, items in groups])
    out = bytearray()
    for (tag, items), result in zip(groups, results, strict=True):
        out += _answer_frame(tag, items, result)
    out += frame(NOTICE, ("commit", sum(len(items) for _, items in groups)))
    return bytes(out)


def _answer_frame(tag: int, items: list[ToCommit], result: Result) -> bytes:
    """A group's answer: its receipts or its error. Whatever fails here is the group's error
    too."""
    try:
        if isinstance(result, BaseException):
            return frame(tag, portable(result, "commit failed"))
        return frame(tag, answers(items, result))
    except Exception as error:
        log.exception("could not answer a group")
        return frame(tag, portable(error, "could not answer"))


def _serve(ledger: Ledger, channel: Channel, group_max: int, interval: float) -> None:
    signing = interval > 0 and ledger.signer is not None
    due = time.monotonic() + interval
    signed = -1
    while not (channel.closed and not channel.frames):
        channel.receive(max(0.0, due - time.monotonic()) if signing else None)
        if channel.unreadable:
            channel.send(b"".join(frame(tag, error) for tag, error in channel.unreadable))
            channel.unreadable.clear()
        groups = channel.take(group_max)
        if groups:
            channel.send(_commit(ledger, groups))
        if signing and time.monotonic() >= due:
            due = time.monotonic() + interval
            try:
                if ledger.size() != signed:
                    signed = ledger.checkpoint().size
                    channel.send(frame(NOTICE, ("checkpoint", signed)))
            except ReceiptsError as error:  # keep serving; the next tick retries
                log.warning("checkpoint failed: %s", error.message)
            except Exception:
                log.exception("checkpoint failed")


def main(fd: int) -> None:
    # Ctrl-C reaches the whole process group: the parent shuts down in order and closes the
    # socket, and this process finishes the commits it has before it exits.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(format="receipts writer: %(levelname)s %(message)s")
    channel = Channel(socket.socket(fileno=fd))
    while not channel.frames and not channel.closed:
        channel.receive(None)
    if not channel.frames:
        return
    config: WriterConfig = channel.frames.popleft()[1]
    try:
        signer = Signer.from_key_string(config.signer) if config.signer else None
        ledger = Ledger.open(config.url, signer=signer)
    except ReceiptsError as error:
        channel.send(frame(NOTICE, ("failed", error)))
        return
    ledger.store.checkpoint_in_background()
    with ledger:
        settle_gc()
        channel.send(frame(NOTICE, ("ready", None)))
        _serve(ledger, channel, config.group_max, config.checkpoint_interval)
