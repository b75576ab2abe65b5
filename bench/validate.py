"""Payload validation alone: receipts' compiled validators vs the ``jsonschema`` library.

    python bench/validate.py [--n 200000] [--repeat 5]

Same N generated, catalog-valid receipt requests (see ``_workload.py``) for every contender,
all in ONE process; the run order rotates between repeats; medians are reported.

ours_batch  ``receipts.validate.Validator.validate_batch(requests, "service_role_pipeline")``
            on the whole list: request envelope checks + payload schema + defaults.
ours_raw    the project's per-type compiled ``jsonschema_rs.Draft202012Validator``
            (``validate_formats=True``, as the project builds them) ``is_valid(payload)``.
jsonschema  ``jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)`` built
            once per type before timing (the peer's best shot), ``is_valid(payload)``.

ours_raw and jsonschema run through the identical Python loop over prebuilt
(bound ``is_valid``, payload) pairs, so the loop overhead is the same on both sides.
Target: jsonschema time / ours time >= 50.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jsonschema
from _workload import PRODUCER, machine, make_requests, median

from receipts.catalog import Catalog
from receipts.validate import Validator

TARGET = 50.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_pairs(pairs: list[tuple[Callable[[Any], bool], Any]]) -> float:
    t0 = time.perf_counter()
    ok = all([check(payload) for check, payload in pairs])
    elapsed = time.perf_counter() - t0
    assert ok, "a generated payload was judged invalid"
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=200_000, help="payloads (default 200,000)")
    ap.add_argument(
        "--repeat", type=int, default=5, help="runs per contender; medians are reported"
    )
    args = ap.parse_args(argv)

    info = machine()
    # jsonschema checks "date-time" only when an RFC 3339 parser is importable; say which.
    info["jsonschema_date_time_checked"] = any(
        importlib.util.find_spec(m) is not None for m in ("rfc3339_validator",)
    )
    log(f"machine: {info}")
    catalog = Catalog.load()
    validator = Validator(catalog)  # compiles the jsonschema_rs validators: not timed
    checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
    peers = {}
    for t in catalog:
        schema = t.schema()
        jsonschema.Draft202012Validator.check_schema(schema)
        peers[t.name] = jsonschema.Draft202012Validator(schema, format_checker=checker)

    requests = make_requests(args.n, catalog)
    ours_pairs = [(validator._payload[r["event_type"]].is_valid, r["payload"]) for r in requests]
    peer_pairs = [(peers[r["event_type"]].is_valid, r["payload"]) for r in requests]
    # Warm-up and a correctness check (not timed): everyone must accept every payload.
    assert len(validator.validate_batch(requests, PRODUCER)) == args.n
    run_pairs(ours_pairs[:2000])
    run_pairs(peer_pairs[:2000])
    gc.collect()
    gc.freeze()

    def ours_batch() -> float:
        t0 = time.perf_counter()
        out = validator.validate_batch(requests, PRODUCER)
        elapsed = time.perf_counter() - t0
        assert len(out) == args.n
        return elapsed

    runners: dict[str, Callable[[], float]] = {
        "ours_batch": ours_batch,
        "ours_raw": lambda: run_pairs(ours_pairs),
        "jsonschema": lambda: run_pairs(peer_pairs),
    }
    names = list(runners)
    times: dict[str, list[float]] = {k: [] for k in names}
    for r in range(args.repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            elapsed = runners[name]()
            times[name].append(elapsed)
            log(
                f"repeat {r + 1}/{args.repeat} {name:10s} {elapsed:8.3f}s  "
                f"{args.n / elapsed:14,.0f} payloads/s"
            )

    med = {k: median(v) for k, v in times.items()}
    pps = {k: args.n / v for k, v in med.items()}
    ratios = {
        "jsonschema/ours_raw": med["jsonschema"] / med["ours_raw"],
        "jsonschema/ours_batch": med["jsonschema"] / med["ours_batch"],
    }
    per_repeat = {
        "jsonschema/ours_raw": [
            j / o for j, o in zip(times["jsonschema"], times["ours_raw"], strict=True)
        ],
        "jsonschema/ours_batch": [
            j / o for j, o in zip(times["jsonschema"], times["ours_batch"], strict=True)
        ],
    }
    versions = info["versions"]
    print(
        f"validate: n={args.n:,} repeat={args.repeat} "
        f"(nproc={info['nproc']}, Python {info['python']}, "
        f"jsonschema {versions['jsonschema']}, jsonschema-rs {versions['jsonschema-rs']})"
    )
    labels = {
        "ours_batch": "receipts Validator.validate_batch",
        "ours_raw": "receipts compiled jsonschema_rs is_valid",
        "jsonschema": "jsonschema Draft202012Validator is_valid",
    }
    for k in names:
        runs = ", ".join(f"{args.n / t:,.0f}" for t in times[k])
        print(
            f"  {labels[k]:42s} median {pps[k]:14,.0f} payloads/s "
            f"({med[k] / args.n * 1e6:7.2f} us each)   runs: {runs}"
        )
    for key, value in ratios.items():
        verdict = "MET" if value >= TARGET else "NOT MET"
        spread = ", ".join(f"{x:.1f}" for x in per_repeat[key])
        print(
            f"  speed-up {key:22s} {value:7.1f}x  target >= {TARGET:.0f}x: {verdict}   "
            f"(per repeat: {spread})"
        )
    print(json.dumps({
        "bench": "validate", "n": args.n, "repeat": args.repeat, "machine": info,
        "seconds": times, "median_payloads_per_s": pps,
        "speedups_of_medians": ratios, "speedups_per_repeat": per_repeat, "target": TARGET,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
