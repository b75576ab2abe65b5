"""What one connection may cost ``receipts serve``, tried on a real server with raw sockets:
headers over the limit are refused (431) without the process growing, a client that sends its
headers or body too slowly is answered 408 and cut off; the ``listening on`` line and the
access log; and a writer process that dies answers 503, never 500, on every write path."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from test_api_server import Server, _children, environment
from test_api_support import SECRET, SERVICE, ocn_example, refund, wait_until

pytestmark = pytest.mark.slow

BOUND = 60.0  # seconds: only a bound for failure, far above every timeout set here


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = environment(
        RECEIPTS_JWT_SECRET=SECRET,
        RECEIPTS_CHECKPOINT_INTERVAL="0",
        RECEIPTS_HEADER_TIMEOUT="1",
        RECEIPTS_BODY_TIMEOUT="1",
    )
    running = Server(tmp_path, env)
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def connect(server: Server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def peak_rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status)[1])  # type: ignore[index]


def test_headers_over_the_limit_are_431(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 20_000 + b"\r\n")
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer
    assert b"content-type: application/problem+json" in answer
    assert b'"code":"headers_too_large"' in answer
    assert b"over the limit of 16384 bytes" in answer
    noted = "- - 431 - (the request line and headers are over the limit of 16384 bytes)\n"
    wait_until(lambda: noted in server.err, what="the refusal in the access log")
    # Under the limit, the same is served.
    fine = httpx.get(server.url + "/health", headers={"X-Padding": "a" * 10_000}, timeout=BOUND)
    assert fine.status_code == 200


def test_a_64_mib_header_is_refused_without_the_process_growing(server: Server) -> None:
    pid = server.process.pid
    httpx.get(server.url + "/health", timeout=BOUND)  # warm: what serving a request costs
    before = peak_rss_kib(pid)
    sent, chunk = 0, b"a" * 65536
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ")
        try:
            while sent < 64 << 20:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # cut off: what we expect
    assert sent < 64 << 20, "the server took all 64 MiB"
    assert peak_rss_kib(pid) - before < 16 * 1024
    assert httpx.get(server.url + "/health", timeout=BOUND).status_code == 200


def slow_client_is_cut_off(server: Server, opening: bytes, trickle: bytes) -> bytes:
    """Send ``opening``, then ``trickle`` every 0.1 s (a slowloris) until the server closes
    the connection; what it answered."""
    with connect(server) as sock:
        sock.sendall(opening)
        sock.settimeout(0.1)
        deadline = time.monotonic() + BOUND
        received = b""
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                try:
                    sock.sendall(trickle)
                except (BrokenPipeError, ConnectionResetError):
                    return received
                continue
            except ConnectionResetError:
                return received
            if not chunk:
                return received
            received += chunk
    raise AssertionError(f"still connected after {BOUND} s")


def test_headers_sent_a_line_at_a_time_are_cut_off(server: Server) -> None:
    answer = slow_client_is_cut_off(
        server, b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-Slow: 1\r\n"
    )
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"the request's headers took over 1 s" in answer
    # A connection that never sends anything is closed too.
    with connect(server) as sock:
        assert read_all(sock).startswith(b"HTTP/1.1 408 ")


def test_a_body_sent_a_byte_at_a_time_is_cut_off(server: Server) -> None:
    head = (
        "POST /v0/receipts HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
        f"content-length: 100000\r\nauthorization: {SERVICE['Authorization']}\r\n\r\n{{"
    ).encode()
    answer = slow_client_is_cut_off(server, head, b" ")
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"the request's body took over 1 s" in answer
    assert httpx.get(server.url + "/health", timeout=BOUND).status_code == 200


def test_a_keep_alive_connection_serves_requests_after_one_another(server: Server) -> None:
    """The timers are per request: a connection that is used well is never cut."""
    with httpx.Client(base_url=server.url, headers=SERVICE, timeout=BOUND) as client:
        for i in range(3):
            assert client.post("/v0/receipts", json=refund(f"r-{i}")).status_code == 201
            assert client.get("/health").status_code == 200


def test_listening_line_and_access_log(tmp_path: Path) -> None:
    running = Server(tmp_path, environment(RECEIPTS_JWT_SECRET=SECRET))
    try:
        running.wait_ready()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", running.url)
        httpx.get(running.url + "/v0/receipts?limit=1", headers=SERVICE, timeout=BOUND)
        httpx.get(running.url + "/v0/nothing%0Ahere", timeout=BOUND)
    finally:
        code, err = running.stop()
    assert code in (0, -signal.SIGTERM), err
    lines = err.splitlines()
    assert lines.index(f"listening on {running.url}") < len(lines) - 2
    assert re.search(r"^GET /v0/receipts 200 \d+\.\dms$", err, re.M), err
    # The path as sent, percent-encoded: a request cannot forge a log line.
    assert re.search(r"^GET /v0/nothing%0Ahere 404 \d+\.\dms$", err, re.M), err

    quiet = Server(tmp_path, environment(RECEIPTS_JWT_SECRET=SECRET), "--no-access-log")
    try:
        quiet.wait_ready()
        httpx.get(quiet.url + "/health", timeout=BOUND)
    finally:
        _, err = quiet.stop()
    assert "/health" not in err and f"listening on {quiet.url}" in err


# --- a writer process that dies ----------------------------------------------------------------


def test_a_dying_writer_process_answers_503_on_every_write_path(server: Server) -> None:
    """Kill the writer process again and again under writes on every path: each answer is a
    201 or a 503 (retry), never a 500 or a cut connection, and writes go on afterwards."""
    statuses: dict[int, int] = {}
    problems: list[str] = []
    stop = threading.Event()
    structured = SERVICE.plus(content_type="application/cloudevents+json")

    def write(k: int) -> None:
        with httpx.Client(base_url=server.url, timeout=BOUND) as client:
            for i in range(100_000):
                if stop.is_set():
                    return
                if i % 3 == 0:
                    response = client.post(
                        "/v0/receipts", json=refund(f"r-{k}-{i}"), headers=SERVICE
                    )
                elif i % 3 == 1:
                    batch = [refund(f"r-{k}-{i}-{j}") for j in range(20)]  # made ahead
                    response = client.post("/v0/receipts", json=batch, headers=SERVICE)
                else:
                    event = {**ocn_example("decision_approve"), "id": f"evt-{k}-{i}"}
                    response = client.post("/events", json=event, headers=structured)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                if response.status_code not in (201, 503):
                    problems.append(response.text)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(5):
            (writer,) = wait_for_writer(server)
            done = sum(statuses.values())
            wait_until(lambda d=done: sum(statuses.values()) >= d + 20, timeout=BOUND)
            os.kill(writer, signal.SIGKILL)
            wait_until(lambda w=writer: wait_for_writer(server) != [w], timeout=BOUND)
    finally:
        stop.set()
        for t in threads:
            t.join(BOUND)
    assert not problems, problems[:3]
    assert statuses.get(503, 0) >= 1 and statuses.get(201, 0) >= 100, statuses
    response = httpx.post(server.url + "/v0/receipts", json=refund("r-last"), headers=SERVICE)
    assert response.status_code == 201
    _, err = server.stop()
    assert "handler is closed" not in err and "unhandled error" not in err


def wait_for_writer(server: Server) -> list[int]:
    """The writer process's pid (one child), once there is one."""
    wait_until(lambda: len(_children(server.process.pid)) == 1, timeout=BOUND, what="a writer")
    return _children(server.process.pid)
