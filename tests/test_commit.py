"""The write path as a library (receipts.commit): the committer a ledger's store wants, the
writer process's shutdown, a parent that is gone, a request that cannot stop the writer, and
the collector settings of the server's processes. Through HTTP: test_api_errors.py,
test_api_exhaustion.py, test_api_server.py."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from receipts import Ledger, Receipt
from receipts.batch import Pending
from receipts.commit import CommitOptions, GroupCommitter, WriterProcess, open_writer, process
from receipts.commit.child import Channel
from receipts.commit.wire import frame
from receipts.errors import StorageError, ValidationError
from receipts.tlog import Signer
from test_api_support import BOUND, refund


async def until(predicate: Callable[[], bool]) -> None:
    """Wait for ``predicate``, failing after a generous bound."""
    deadline = time.monotonic() + BOUND
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)


def deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.mark.parametrize(
    ("where", "options", "kind"),
    [
        ("file", CommitOptions(), WriterProcess),
        ("file", CommitOptions(writer_process=False), GroupCommitter),
        ("memory", CommitOptions(), GroupCommitter),
    ],
)
def test_a_library_user_gets_group_commit_from_the_ledger_alone(
    tmp_path: Path, where: str, options: CommitOptions, kind: type
) -> None:
    """A writer process where the store wants one (a SQLite file), else a writer thread; either
    way, concurrent groups of pending requests come back stored, one atomic group each."""
    ledger = Ledger.open(str(tmp_path / "lib.db") if where == "file" else ":memory:")

    async def scenario() -> list[list[Receipt]]:
        writer = open_writer(ledger, options)
        assert type(writer) is kind
        await writer.start()
        try:
            groups = [[refund(f"r-{i}-{j}") for j in range(i + 1)] for i in range(20)]
            return await asyncio.gather(
                *(writer.submit(list(ledger.pending(group))) for group in groups)
            )
        finally:
            await writer.stop()

    with ledger:
        stored = asyncio.run(scenario())
        assert [len(group) for group in stored] == list(range(1, 21))
        assert sorted(r.seq for group in stored for r in group) == list(range(210))
        for group in stored:
            assert len({r.recorded_at for r in group}) == 1
            for r in group:
                assert ledger.get(r.id) == r


def test_a_group_in_flight_when_the_server_stops_is_committed_and_answered(
    tmp_path: Path,
) -> None:
    """Shutdown half-closes the socket: the writer process commits what it was sent, answers,
    and only then exits. A request in flight gets its receipt, not a 503."""
    ledger = Ledger.open(str(tmp_path / "stopping.db"), signer=Signer.generate("example.org/s"))
    options = CommitOptions(checkpoint_interval=0.01)
    body = ledger.validator.validate_batch([refund("r-1")], "service_role_pipeline")

    async def scenario() -> list[Receipt]:
        committer = WriterProcess(ledger, options)
        await committer.start()
        holder = sqlite3.connect(ledger.store.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # the writer waits for the lock with r-1 in hand
        submitted = asyncio.create_task(
            committer.submit([Pending(body[0], "service_role_pipeline", "")])
        )
        await until(lambda: committer.waiting == 1)
        stopping = asyncio.create_task(committer.stop())
        await asyncio.sleep(0.3)
        assert not submitted.done() and not stopping.done()
        holder.execute("ROLLBACK")
        holder.close()
        stored = await submitted
        await stopping
        assert committer._proc is not None and committer._proc.returncode == 0
        return stored

    with ledger:
        stored = asyncio.run(scenario())
        assert [r.seq for r in stored] == [0]
        assert ledger.get(stored[0].id) == stored[0]


def test_a_writer_process_stuck_at_shutdown_is_killed_and_its_group_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Shutdown waits for the child's answers, but not for ever: past the bound the child is
    killed, and the request it held fails as lost (retry with the same id), not hangs."""
    monkeypatch.setattr(process, "_STOP_WAIT", 0.5)
    ledger = Ledger.open(str(tmp_path / "stuck.db"))
    body = ledger.validator.validate_batch([refund("r-1")], "service_role_pipeline")

    async def scenario() -> BaseException:
        committer = WriterProcess(ledger, CommitOptions())
        await committer.start()
        holder = sqlite3.connect(ledger.store.path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # held throughout: the child cannot commit
        try:
            submitted = asyncio.create_task(
                committer.submit([Pending(body[0], "service_role_pipeline", "")])
            )
            await until(lambda: committer.waiting == 1)
            await committer.stop()
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert committer._proc is not None and committer._proc.returncode == -signal.SIGKILL
        (outcome,) = await asyncio.gather(submitted, return_exceptions=True)
        assert isinstance(outcome, BaseException)
        return outcome

    with ledger:
        error = asyncio.run(scenario())
    assert isinstance(error, StorageError) and "retry it with the same id" in error.message
    assert "did not finish in 0.5 s; killing it" in caplog.text


def test_a_writer_process_whose_parent_is_gone_goes_on_without_telling_it() -> None:
    """Killed parent: the child's sends fail with EPIPE; it commits what it has read, sends
    nothing more and exits on EOF instead of dying with a traceback."""
    parent, child = socket.socketpair()
    channel = Channel(child)
    parent.sendall(frame(1, ["group"]))
    parent.close()
    channel.receive(1)
    assert channel.closed and list(channel.frames) == [(1, ["group"])]
    channel.send(b"answer")
    channel.send(b"checkpoint")
    assert channel.deaf
    child.close()


# --- the writer process goes on, whatever one group does -----------------------------------------


class Unknown:
    """Pickled by reference to this test module, which the writer process cannot import."""


def _submit(committer: WriterProcess, ledger: Ledger, **payload: Any) -> Any:
    (valid,) = ledger.validator.validate_batch([refund("r-1")], "service_role_pipeline")
    valid.payload.update(payload)
    return committer.submit([Pending(valid, "service_role_pipeline", "")])


def test_no_single_request_stops_the_writer_process(tmp_path: Path) -> None:
    ledger = Ledger.open(str(tmp_path / "w.db"))

    async def scenario() -> None:
        committer = WriterProcess(ledger, CommitOptions())
        await committer.start()
        try:
            child = committer._proc
            # Cannot be sent (pickled): refused before it takes a place.
            with pytest.raises(AttributeError, match="Can't pickle local object"):
                await _submit(committer, ledger, bad=lambda: None)
            assert committer.waiting == 0
            with pytest.raises(ValidationError, match="nested too deeply to be stored"):
                await _submit(committer, ledger, deep=deep(5000))
            assert committer.waiting == 0
            # Sent, but the writer process cannot read it: that group fails alone.
            with pytest.raises(RuntimeError, match="writer process: could not read a frame"):
                await _submit(committer, ledger, bad=Unknown())
            assert committer.waiting == 0
            stored: list[Receipt] = await _submit(committer, ledger)
            assert [r.seq for r in stored] == [0]
            assert committer._proc is child and child is not None and child.poll() is None
        finally:
            await committer.stop()

    with ledger:
        asyncio.run(scenario())


# --- the server's processes ------------------------------------------------------------------


def test_server_processes_freeze_start_up_and_collect_the_young_less_often() -> None:
    """``settle_gc`` (receipts serve and its writer process call it once started), in a
    process of its own: the collector's settings belong to the whole process."""
    code = (
        "import gc, json; from receipts.commit.collector import YOUNG_THRESHOLD, settle_gc\n"
        "import receipts.api\n"
        "before = gc.get_threshold(); settle_gc()\n"
        "print(json.dumps([before, gc.get_threshold(), gc.get_freeze_count(), YOUNG_THRESHOLD]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    before, after, frozen, young = json.loads(done.stdout)
    assert after == [young, *before[1:]] and young > before[0]
    assert frozen > 10_000  # the modules and what they made at import
