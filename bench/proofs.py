"""The verifiable log at scale, against peers in the same run.

1. Inclusion proofs per second: ``Ledger.prove`` (reads O(log n) nodes from the SQLite file,
   builds the c2sp tlog-proof text and the bundle) vs pymerkle's in-memory tree
   (``InmemoryTree.prove_inclusion``) over the same leaves.
2. Audit throughput: ``Ledger.audit`` (re-reads every row, re-derives its RFC 8785 bytes, hashes,
   rebuilds the tree, checks stored nodes and checkpoints) vs bare ``hashlib`` leaf hashing of the
   same entry bytes held in memory.
3. Ingest slowdown from integration: batched ingest that extends the tree in every append
   transaction (the default) vs one that leaves the tree alone, on fresh files.

    python bench/proofs.py [--n 1000000] [--repeat 3] [--proofs 2000]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import tempfile
import time
from pathlib import Path

import pymerkle
from _workload import PRODUCER, machine, make_requests, median, without_rules

from receipts import Ledger
from receipts.tlog import Signer

BATCH = 5000


def ingest(path: Path, requests: list[dict], integrate: bool) -> float:
    """Batched ingest; with ``integrate`` every batch also extends the Merkle tree (in the same
    transaction, the default), without it the tree is left for later."""
    with Ledger.open(path, catalog=without_rules()) as ledger:
        ledger.integrate_on_append = integrate
        start = time.perf_counter()
        for i in range(0, len(requests), BATCH):
            ledger.append_batch(requests[i : i + BATCH], producer=PRODUCER)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--proofs", type=int, default=2000)
    parser.add_argument("--ingest-n", type=int, default=200_000)
    args = parser.parse_args()
    facts = machine()
    print(f"machine: {facts}")
    tmp = Path(tempfile.mkdtemp(prefix="receipts-bench-"))
    requests = make_requests(args.n)

    # --- build the 1M-receipt ledger once (not timed) ---
    db = tmp / "big.db"
    ledger = Ledger.open(db, signer=Signer.generate("bench.example/log"), catalog=without_rules())
    t = time.perf_counter()
    for i in range(0, len(requests), BATCH):
        ledger.append_batch(requests[i : i + BATCH], producer=PRODUCER)
    ledger.checkpoint()
    print(f"built {args.n:,} receipts + checkpoint in {time.perf_counter() - t:.1f}s (not timed)")
    entries = [r.entry_bytes for r in ledger.query()]

    t = time.perf_counter()
    tree = pymerkle.InmemoryTree(algorithm="sha256")
    for data in entries:
        tree.append_entry(data)
    print(f"built pymerkle tree of {tree.get_size():,} leaves in {time.perf_counter() - t:.1f}s"
          " (not timed)")  # fmt: skip
    assert tree.get_state() == ledger.root(args.n).root_hash, "pymerkle and receipts disagree"

    rng = random.Random(7)
    picks = [rng.randrange(args.n) for _ in range(args.proofs)]
    ids = {r.seq: r.id for r in ledger.query() if r.seq in set(picks)}
    results: dict[str, list[float]] = {"ours_proofs": [], "pymerkle_proofs": [],
                                       "ours_audit": [], "hashlib": []}  # fmt: skip
    for rep in range(args.repeat):
        t = time.perf_counter()
        for seq in picks:
            ledger.prove(ids[seq])
        results["ours_proofs"].append(args.proofs / (time.perf_counter() - t))
        t = time.perf_counter()
        for seq in picks:
            tree.prove_inclusion(seq + 1, args.n)  # pymerkle counts leaves from 1
        results["pymerkle_proofs"].append(args.proofs / (time.perf_counter() - t))
        t = time.perf_counter()
        report = ledger.audit()
        results["ours_audit"].append(report.receipts / (time.perf_counter() - t))
        t = time.perf_counter()
        sha = hashlib.sha256
        for data in entries:
            sha(b"\x00" + data).digest()
        results["hashlib"].append(len(entries) / (time.perf_counter() - t))
        print(f"repeat {rep + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items()))
    ledger.close()

    slow: dict[str, list[float]] = {"without": [], "with": []}
    sample = requests[: args.ingest_n]
    for rep in range(args.repeat):
        for mode in ("without", "with") if rep % 2 == 0 else ("with", "without"):
            path = tmp / f"ingest-{rep}-{mode}.db"
            slow[mode].append(ingest(path, sample, integrate=mode == "with"))
    slowdown = median(slow["with"]) / median(slow["without"]) - 1

    med = {k: median(v) for k, v in results.items()}
    summary = {
        "bench": "proofs",
        "n": args.n,
        "repeat": args.repeat,
        "machine": facts,
        "per_second_medians": med,
        "ratio_proofs_ours_vs_pymerkle": med["ours_proofs"] / med["pymerkle_proofs"],
        "ratio_audit_vs_hashlib": med["ours_audit"] / med["hashlib"],
        "ingest_seconds": slow,
        "ingest_slowdown_from_integration": slowdown,
    }
    ours, peer = med["ours_proofs"], med["pymerkle_proofs"]
    print(f"inclusion proofs/s: ours {ours:,.0f}  pymerkle {peer:,.0f}"
          f"  ratio {summary['ratio_proofs_ours_vs_pymerkle']:.2f}x (target >= 1x)")  # fmt: skip
    print(f"audit receipts/s: ours {med['ours_audit']:,.0f}  bare hashlib {med['hashlib']:,.0f}"
          f"  ratio {summary['ratio_audit_vs_hashlib']:.3f}x (target >= 0.5x)")  # fmt: skip
    print(
        f"ingest of {args.ingest_n:,} with integration after every batch: "
        f"{slowdown * 100:+.1f}% time (target <= +10%)"
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
