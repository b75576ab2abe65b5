"""The HTTP service under load, against a bare Starlette endpoint in the same run.

1. 64 concurrent clients (wrk, a separate process) POSTing single receipts to
   ``/v0/receipts`` of ``receipts serve`` on SQLite — every 201 durably committed (group
   commit) — vs the same requests to a bare uvicorn/Starlette endpoint that parses the JSON and
   returns 201 (bench/_bare_app.py). Requests/s, p50 and p99 latency; ratio ours/bare.
   ``receipts serve`` is an HTTP process plus its writer process; the bare endpoint is one
   process. For context the bare endpoint also runs with two uvicorn workers ("bare2").
2. The batch endpoint: POSTs of 1,000-receipt arrays, in receipts/s.
3. CloudEvents encode/decode (structured and binary HTTP) vs the official ``cloudevents`` SDK
   on the same events, in one process.

    python bench/api.py [--seconds 10] [--repeat 3]

Needs ``wrk`` (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
from _workload import machine, make_requests, median

HERE = Path(__file__).resolve().parent
SECRET = "bench-secret-bench-secret-bench-secret!"
# Tokens must carry an expiry (RECEIPTS_JWT_REQUIRE_EXP); a day outlasts any run.
TOKEN = jwt.encode(
    {"role": "service_role", "sub": "bench", "exp": int(time.time()) + 86_400},
    SECRET,
    algorithm="HS256",
)
# wrk sends the same body again and again: a type no lifecycle rule governs (a second
# refund_requested for one refund would be refused, docs/doors.md), of the same size.
RECEIPT = {
    "domain": "moderation",
    "event_type": "report_created",
    "entity_type": "report",
    "entity_id": "rp_bench",
    "payload": {"reporterUserId": "u_1", "targetType": "user", "targetId": "u_2",
                "reasonCode": "spam", "details": "bench"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ours(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "RECEIPTS_JWT_SECRET": SECRET}
    receipts = str(Path(sys.executable).with_name("receipts"))
    cmd = [receipts, "--db", str(workdir / "api.db"), "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=workdir, stderr=subprocess.DEVNULL)
    _wait_health(port)
    return proc, port


def _wait_health(port: int) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"receipts serve on {port} did not start")


def start_bare(workers: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "_bare_app:app", "--port", str(port),
           "--log-level", "warning", "--workers", str(workers)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=HERE)
    for _ in range(200):
        try:
            httpx.post(f"http://127.0.0.1:{port}/v0/receipts", json={}, timeout=1)
            return proc, port
        except httpx.HTTPError:
            time.sleep(0.05)
    raise SystemExit("bare server did not start")


LUA = """
wrk.method = "POST"
local f = io.open("%s", "r")
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


def wrk(port: int, body: str, connections: int, seconds: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as b:
        b.write(body)  # read by the script: a long body inline in Lua is not sent intact
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % (b.name, TOKEN))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name,
         f"http://127.0.0.1:{port}/v0/receipts"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(f.name)
    os.unlink(b.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": _ms(out, "50%"), "p99_ms": _ms(out, "99%"),
            "errors": float(non2xx.group(1)) if non2xx else 0.0}  # fmt: skip


def _ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def bench_http(seconds: int, repeat: int) -> dict[str, object]:
    one = json.dumps(RECEIPT)
    batch = json.dumps([{**RECEIPT, "entity_id": f"rf_{i}"} for i in range(1000)])
    runs: dict[str, list[dict[str, float]]] = {"ours": [], "bare": [], "bare2": [], "batch": []}
    for rep in range(repeat):
        workdir = Path(tempfile.mkdtemp(prefix="receipts-api-"))
        for who in ("ours", "bare", "bare2") if rep % 2 == 0 else ("bare2", "bare", "ours"):
            if who == "ours":
                proc, port = start_ours(workdir)
            else:
                proc, port = start_bare(1 if who == "bare" else 2)
            try:
                runs[who].append(wrk(port, one, 64, seconds))
                if who == "ours":
                    runs["batch"].append(wrk(port, batch, 4, seconds))
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            print(f"repeat {rep + 1}: {who:4s} {runs[who][-1]}")
        print(f"repeat {rep + 1}: batch {runs['batch'][-1]}")
        shutil.rmtree(workdir, ignore_errors=True)
    med = {who: {k: median([r[k] for r in rs]) for k in rs[0]} for who, rs in runs.items()}
    return {"runs": runs, "medians": med, "ratio": med["ours"]["rps"] / med["bare"]["rps"],
            "ratio_bare2": med["ours"]["rps"] / med["bare2"]["rps"],
            "batch_receipts_per_s": med["batch"]["rps"] * 1000}  # fmt: skip


def _round_trips(events: list[Any], encoders: tuple[Any, ...], decode: Any) -> float:
    """Seconds to encode every event in each mode and decode it again."""
    t = time.perf_counter()
    for e in events:
        for encode in encoders:
            headers, body = encode(e)
            decode(headers, body)
    return time.perf_counter() - t


def bench_cloudevents(repeat: int, n: int = 20_000) -> dict[str, object]:
    from cloudevents.v1.conversion import to_binary as sdk_to_binary
    from cloudevents.v1.conversion import to_structured as sdk_to_structured
    from cloudevents.v1.http import CloudEvent
    from cloudevents.v1.http import from_http as sdk_from_http

    from receipts.cloudevents import from_http, to_binary, to_structured

    events = []
    for i, r in enumerate(make_requests(n)):
        events.append({"specversion": "1.0", "id": f"evt-{i}", "source": "urn:bench",
                       "type": f"receipts.{r['domain']}.{r['event_type']}.v0",
                       "subject": f"{r['entity_type']}:{r['entity_id']}",
                       "time": "2026-11-22T10:00:00Z", "datacontenttype": "application/json",
                       "data": r["payload"]})  # fmt: skip
    sdk_events = [
        CloudEvent({k: v for k, v in e.items() if k != "data"}, e["data"]) for e in events
    ]
    times: dict[str, list[float]] = {"ours": [], "sdk": []}
    for _ in range(repeat):
        times["ours"].append(_round_trips(events, (to_structured, to_binary), from_http))
        times["sdk"].append(
            _round_trips(sdk_events, (sdk_to_structured, sdk_to_binary), sdk_from_http)
        )
        print(f"cloudevents round trips: ours {times['ours'][-1]:.2f}s sdk {times['sdk'][-1]:.2f}s")
    return {"n": n, "seconds": times, "speedup": median(times["sdk"]) / median(times["ours"])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    facts = machine()
    print(f"machine: {facts}")
    http = bench_http(args.seconds, args.repeat)
    ce = bench_cloudevents(args.repeat)
    med = http["medians"]
    print(
        f"64 clients, single receipts: ours {med['ours']['rps']:,.0f} req/s "  # type: ignore[index]
        f"(p50 {med['ours']['p50_ms']:.1f} ms, p99 {med['ours']['p99_ms']:.1f} ms), bare "  # type: ignore[index]
        f"{med['bare']['rps']:,.0f} req/s; ratio {http['ratio']:.2f}x (target >= 0.5x, "  # type: ignore[index]
        "p99 < 50 ms)"
    )
    print(f"  context: bare with 2 workers {med['bare2']['rps']:,.0f} req/s; "  # type: ignore[index]
          f"ratio {http['ratio_bare2']:.2f}x")  # fmt: skip
    print(f"batch endpoint: {http['batch_receipts_per_s']:,.0f} receipts/s (target >= 30,000)")
    print(f"CloudEvents encode+decode: {ce['speedup']:.1f}x the SDK (target >= 3x)")
    print(json.dumps({"bench": "api", "machine": facts, "http": http, "cloudevents": ce}))


if __name__ == "__main__":
    main()
