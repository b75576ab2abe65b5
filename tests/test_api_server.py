"""``receipts serve`` as an operator runs it: a real uvicorn process on a free port. The smoke
path (append, read back, a checkpoint appears, a proof verifies offline), the refusal to serve
without RECEIPTS_JWT_SECRET, ``--insecure-dev``, concurrent clients over real sockets, and
kill -9 under load (every acknowledged receipt kept, the writer process gone too)."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from receipts import Ledger
from receipts.bundle import Bundle
from receipts.tlog import Checkpoint, Verifier
from test_api_support import (
    SECRET,
    SERVICE,
    assert_problem,
    ocn_example,
    refund,
    wait_until,
)

RECEIPTS = str(Path(sys.executable).with_name("receipts"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIPTS_")}
    env.update(extra)
    return env


LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:(\d+))")


class Server:
    """``receipts serve --port 0`` in a process of its own. Its stderr is read as it comes (the
    access log would otherwise fill the pipe and stall the server); ``wait_ready`` waits for
    the ``listening on`` line and takes the URL from it."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str) -> None:
        self.cwd = cwd
        self.url = ""
        self.port = 0
        self.process = subprocess.Popen(
            [RECEIPTS, "--db", str(cwd / "s.db"), "serve", "--port", "0", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.err: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode("utf-8", "replace")
            self.err.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no 'listening on' line: {''.join(self.err)}") from None
            if line is None:
                self.process.wait()
                raise AssertionError(f"server exited: {''.join(self.err)}")
            found = LISTENING.search(line)
            if found:
                self.url, self.port = found[1], int(found[2])
                return

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as a process manager stops it. Uvicorn shuts down gracefully, then re-raises
        the signal, so a clean stop exits with -SIGTERM (or 0)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=60)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return self.process.returncode, "".join(self.err)


def sse_events(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of a text/event-stream response, read as they come (comments skipped)."""
    event: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if event:
                yield event
            event = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = environment(RECEIPTS_JWT_SECRET=SECRET, RECEIPTS_CHECKPOINT_INTERVAL="0.2")
    running = Server(tmp_path, env)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


@pytest.mark.slow
def test_smoke_append_read_checkpoint_prove(server: Server) -> None:
    with httpx.Client(base_url=server.url, headers=SERVICE, timeout=60) as client:
        response = client.post("/v0/receipts", json=[refund("r-1"), refund("r-2")])
        assert response.status_code == 201, response.text
        first, second = response.json()
        assert client.get(f"/v0/receipts/{second['id']}").json() == second
        listed = client.get("/v0/receipts").json()
        assert [r["id"] for r in listed["items"]] == [first["id"], second["id"]]

        wait_until(
            lambda: client.get("/health").json()["checkpoint_size"] >= 2,
            timeout=60,
            what="a checkpoint of both receipts",
        )
        note = client.get("/v0/checkpoint").text

        # The key the server generated on first start is next to the database.
        shown = subprocess.run(
            [RECEIPTS, "--db", str(server.cwd / "s.db"), "keys", "show"],
            capture_output=True,
            text=True,
            env=environment(),
            timeout=30,
        )
        assert shown.returncode == 0, shown.stderr
        verifier = Verifier.from_key_string(shown.stdout.strip())
        assert Checkpoint.open(note, verifier, origin=verifier.name).size == 2
        bundle = client.get(f"/v0/proofs/inclusion?id={second['id']}")
        assert bundle.status_code == 200
        verified = Bundle.from_json(bundle.content).verify(verifier)
        assert (verified.index, verified.leaf_hash.hex()) == (1, second["leaf_hash"])

        audit = client.post(
            "/events",
            json=ocn_example("decision_approve"),
            headers={"content-type": "application/cloudevents+json"},
        )
        assert audit.status_code == 201 and audit.json()["type"] == "ocn.weave.audit.v1"
        assert_problem(
            client.get("/v0/receipts", headers={"Authorization": ""}), 401, "unauthorized"
        )
        metrics = client.get("/metrics").text
        assert 'receipts_appended_total{producer="service_role_pipeline"} 3.0' in metrics

        # Read in this thread (the client's read timeout guards it): closing a response that
        # another thread is blocked reading would wait for that read.
        with client.stream("GET", "/v0/stream?after=0", timeout=60) as stream:
            events = sse_events(stream)
            assert next(events)["id"] == "1"
            assert next(events)["id"] == "2"
            audited = next(events)  # the decision's audit event follows it, under its id
            assert (audited["event"], audited["id"]) == ("audit", "2")
            client.post("/v0/receipts", json=refund("r-live"))
            live = next(events)
            assert live["id"] == "3" and json.loads(live["data"])["entity_id"] == "r-live"

    code, err = server.stop()
    assert code in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
    assert "generated signing key" in err
    # One access-log line per request: method, path as sent, status, duration.
    assert re.search(r"^POST /v0/receipts 201 \d+\.\dms$", err, re.M), err
    assert re.search(r"^GET /v0/receipts/[0-9a-f-]{36} 200 \d+\.\dms$", err, re.M), err


@pytest.mark.slow
def test_concurrent_clients_over_real_sockets(server: Server) -> None:
    n = 50

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(
            base_url=server.url, headers=SERVICE, timeout=30, limits=limits
        ) as client:
            return await asyncio.gather(
                *(client.post("/v0/receipts", json=refund(f"r-{i}")) for i in range(n))
            )

    responses = asyncio.run(run())
    assert [r.status_code for r in responses] == [201] * n
    assert sorted(r.json()["seq"] for r in responses) == list(range(n))
    metrics = httpx.get(server.url + "/metrics").text
    assert "receipts_commit_group_receipts_count" in metrics


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, waiting to be reaped by init


@pytest.mark.slow
def test_kill_9_under_load_keeps_every_acknowledged_receipt(tmp_path: Path) -> None:
    server = Server(tmp_path, environment(RECEIPTS_JWT_SECRET=SECRET))
    server.wait_ready()
    (writer,) = _children(server.process.pid)  # the writer process (SQLite file)
    acknowledged: list[str] = []
    stop = threading.Event()

    def client(k: int) -> None:
        with httpx.Client(base_url=server.url, headers=SERVICE, timeout=60) as http:
            for i in range(100_000):
                try:
                    response = http.post("/v0/receipts", json=refund(f"r-{k}-{i}"))
                except httpx.TransportError:
                    return
                if response.status_code == 201:
                    acknowledged.append(response.json()["id"])
                if stop.is_set():
                    return

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(acknowledged) >= 300, timeout=120, what="300 receipts")
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=60)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.stop()
    # The writer sees its socket close and exits: no process is left holding the database.
    wait_until(lambda: _gone(writer), timeout=60, what="the writer process to exit")
    with Ledger.open(tmp_path / "s.db") as reopened:
        size = reopened.size()
        assert size >= len(acknowledged) >= 300
        assert [r.seq for r in reopened.query()] == list(range(size))
        for receipt_id in acknowledged:
            assert reopened.get(receipt_id).id == receipt_id
        reopened.audit()


@pytest.mark.slow
def test_serve_refuses_to_start_without_a_jwt_secret(tmp_path: Path) -> None:
    port = str(free_port())
    result = subprocess.run(
        [RECEIPTS, "--db", str(tmp_path / "s.db"), "serve", "--port", port],
        cwd=tmp_path,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    error = json.loads(result.stderr)
    assert error["code"] == "usage"
    assert "RECEIPTS_JWT_SECRET" in error["message"]
    assert result.stdout == ""
    assert not (tmp_path / "s.db").exists()  # refused before touching anything
    empty = subprocess.run(
        [RECEIPTS, "--db", str(tmp_path / "s.db"), "serve", "--port", port],
        cwd=tmp_path,
        env=environment(RECEIPTS_JWT_SECRET=""),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert empty.returncode != 0 and "RECEIPTS_JWT_SECRET" in json.loads(empty.stderr)["message"]


@pytest.mark.slow
def test_insecure_dev_starts_without_a_secret(tmp_path: Path) -> None:
    running = Server(tmp_path, environment(RECEIPTS_CHECKPOINT_INTERVAL="0"), "--insecure-dev")
    try:
        running.wait_ready()
        # Without a secret every caller is the (local, insecure) service role.
        response = httpx.post(running.url + "/v0/receipts", json=refund(), timeout=60)
        assert response.status_code == 201, response.text
        assert response.json()["producer"] == "service_role_pipeline"
        assert httpx.get(running.url + "/v0/receipts", timeout=60).json()["items"]
    finally:
        code, err = running.stop()
    assert code in (0, -signal.SIGTERM), err
    assert "Traceback" not in err
