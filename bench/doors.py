"""Derived states ("doors", docs/doors.md) at scale, each against its peer in the same run.

1. Ingest with the states filed and the lifecycle rules checked, against the same workload into
   a ledger whose catalog defines no states (nothing filed, nothing checked). Target >= 0.85x.
2. Lookups on the ledger of 1: ``Ledger.state`` of random keys of several states, now and as
   of a time and a seq, p50/p99. Targets: p99 < 5 ms now, < 50 ms as of.
3. Catch-up: the projector filing the whole ledger from nothing (``rebuild_states``), against
   what a user would write otherwise: read every receipt (``Ledger.query``, what ``receipts
   query`` prints) and fold the states in Python dicts, revisions by head. Target >= 5x.

The workload is §1's (every catalog type in turn, scattered entities), except that the types a
rule governs come as valid lifecycles per entity (requested → approved → completed, applied →
lifted, …), so the rules refuse nothing.

    python bench/doors.py [--n 1000000] [--batch 5000] [--repeat 3] [--lookups 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _workload import PRODUCER, machine, make_requests, median

from receipts import Ledger
from receipts.catalog import Catalog
from receipts.store.sqlite import SQLiteStore

LIFECYCLES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "refund": [
        ("refund_requested", {"paymentIntentId": "pi_1", "requestedByUserId": "u_1",
                              "reasonCode": "late"}),
        ("refund_approved", {"approvedBy": "policy"}),
        ("refund_completed", {"providerRefundId": "re_1"}),
    ],
    "payout": [
        ("payout_scheduled", {"eventId": "e", "payeeId": "p", "payeeType": "user", "amount": 10,
                              "scheduledFor": "2026-12-01T00:00:00Z"}),
        ("payout_completed", {"providerPayoutId": "po_1"}),
    ],
    "revenue_split": [
        ("revenue_split_defined", {"eventId": "e", "platformFeePercent": 10,
                                   "partners": [{"partyId": "p", "partyType": "user",
                                                 "percent": 90}]}),
        ("revenue_split_locked", {"lockedAt": "2026-12-01T00:00:00Z", "lockedBy": "system"}),
    ],
    "partnership": [
        ("partnership_proposed", {"eventId": "e", "businessId": "b", "type": "eventBased",
                                  "vibeCompatibilityScore": 0.8}),
        ("partnership_locked", {"eventId": "e", "termsVersion": "1"}),
        ("partnership_completed", {"eventId": "e", "wasDisputed": False}),
    ],
    "user": [
        ("age_verification_submitted", {"method": "document", "version": "1"}),
        ("age_verification_approved", {"reviewedBy": "admin"}),
    ],
    "business": [
        ("business_verification_submitted", {"documents": ["d"], "submittedByUserId": "u"}),
        ("business_verification_denied", {"reviewedBy": "admin"}),
    ],
    "export": [
        ("admin_export_requested", {"requestedByAdminId": "a", "exportType": "refunds",
                                    "filters": {}, "purpose": "audit"}),
        ("admin_export_generated", {"exportId": "x", "rowCount": 1, "storagePath": "s3://x"}),
        ("admin_export_downloaded", {"exportId": "x", "downloadedByAdminId": "a"}),
    ],
    "moderation_action": [
        ("moderation_action_applied", {"action": "mute", "targetType": "user",
                                       "targetId": "TARGET", "durationSeconds": 3600,
                                       "policyRule": "spam"}),
        ("moderation_action_lifted", {"liftReasonCode": "appeal", "liftedBy": "admin"}),
    ],
}  # fmt: skip


def workload(n: int, catalog: Catalog) -> list[dict[str, Any]]:
    """§1's requests with every rule-governed type replaced by valid lifecycles, n in all (the
    later steps of lifecycles in §1's cycle are dropped: an eighth more are made to make up)."""
    ruled = {t for s in catalog.states.values() if s.rules for t in s.steps}
    out: list[dict[str, Any]] = []
    chains = 0
    for request in make_requests(n + n // 8, catalog):
        if len(out) >= n:
            break
        if request["event_type"] not in ruled:
            out.append(request)
            continue
        firsts = {chain[0][0]: kind for kind, chain in LIFECYCLES.items()}
        entity_type = firsts.get(request["event_type"])
        if entity_type is None:
            continue  # a later step of a lifecycle (or a branch not taken): written in a chain
        chains += 1
        for event_type, payload in LIFECYCLES[entity_type]:
            body = dict(payload, notes=f"chain {chains}")
            if body.get("targetId") == "TARGET":
                body["targetId"] = f"user_{chains % 50_000:05d}"
            out.append({"domain": catalog.get(event_type).domain, "event_type": event_type,
                        "entity_type": entity_type, "entity_id": f"chain-{chains:07d}",
                        "payload": body})  # fmt: skip
    return out[:n]


def ingest(path: Path, requests: list[dict[str, Any]], catalog: Catalog, batch: int) -> float:
    with Ledger(SQLiteStore(path), catalog) as ledger:  # rules on; compiling is not timed
        start = time.perf_counter()
        for i in range(0, len(requests), batch):
            ledger.append_batch(requests[i : i + batch], producer=PRODUCER)
        elapsed = time.perf_counter() - start
        assert ledger.size() == len(requests)
    return elapsed


def lookups(path: Path, requests: list[dict[str, Any]], count: int) -> dict[str, Any]:
    rng = random.Random(7)
    keys = {
        "refund": [[f"refund:{r['entity_id']}"] for r in requests
                   if r["event_type"] == "refund_requested"],
        "age_verification": [[f"user:{r['entity_id']}"] for r in requests
                             if r["event_type"] == "age_verification_submitted"],
        "sanctions": [["user", r["payload"]["targetId"]] for r in requests
                      if r["event_type"] == "moderation_action_applied"],
        "expertise_level": [[f"expertise:{r['entity_id']}"] for r in requests
                            if r["event_type"] == "expertise_level_asserted"],
    }  # fmt: skip
    out: dict[str, Any] = {}
    with Ledger.open(path) as ledger:
        size = ledger.size()
        for label, options in (("now", {}), ("as_of", {"as_of": "2026-06-01T00:00:00Z"}),
                               ("at_seq", {"at_seq": size // 2})):  # fmt: skip
            times = []
            for _ in range(count):
                name = rng.choice(sorted(keys))
                key = rng.choice(keys[name])
                t0 = time.perf_counter()
                ledger.state(name, key, **options)
                times.append((time.perf_counter() - t0) * 1000)
            times.sort()
            out[label] = {"p50_ms": statistics.median(times),
                          "p99_ms": times[int(len(times) * 0.99) - 1]}  # fmt: skip
    return out


def user_fold(path: Path, catalog: Catalog) -> float:
    """What a user writes without the ledger's states: every receipt, heads by logical id, then
    the states folded in dicts (here: the status of every machine state, the latest value of the
    others), key by entity."""
    start = time.perf_counter()
    with Ledger.open(path) as ledger:
        heads: dict[str, Any] = {}
        for r in ledger.query():
            known = heads.get(r.logical_id)
            if known is None or r.revision > known.revision:
                heads[r.logical_id] = r
        by_type = {t: s for s in catalog.states.values() for t in s.steps}
        states: dict[tuple[str, str], dict[str, Any]] = {}
        for r in sorted(heads.values(), key=lambda h: h.seq):
            state = by_type.get(r.event_type)
            if state is None or r.op == "void":
                continue
            value = states.setdefault((state.name, r.entity), {})
            step = state.steps[r.event_type]
            if step.target is not None:
                value["status"] = step.target
            for name, source in step.ops.get("set", {}).items():
                if isinstance(source, str) and source.startswith("/"):
                    value[name] = r.payload.get(source[1:])
    return time.perf_counter() - start


def catch_up(path: Path) -> float:
    with Ledger.open(path) as ledger:
        start = time.perf_counter()
        ledger.rebuild_states()
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lookups", type=int, default=2000)
    args = ap.parse_args()
    with_states = Catalog.load()
    without = Catalog.load()
    without.states = {}
    requests = workload(args.n, with_states)
    runs: dict[str, list[float]] = {"states": [], "plain": [], "catch_up": [], "user_fold": []}
    found: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            order = [("states", with_states), ("plain", without)]
            for label, catalog in order if i % 2 == 0 else order[::-1]:
                path = Path(tmp) / f"{label}-{i}.db"
                runs[label].append(len(requests) / ingest(path, requests, catalog, args.batch))
            path = Path(tmp) / f"states-{i}.db"
            found.append(lookups(path, requests, args.lookups))
            runs["user_fold"].append(user_fold(path, with_states))
            runs["catch_up"].append(catch_up(path))
            for stale in Path(tmp).glob(f"*-{i}.db*"):
                stale.unlink()
    ingest_ratio = median(runs["states"]) / median(runs["plain"])
    catch_ratio = median(runs["user_fold"]) / median(runs["catch_up"])
    p99 = {k: median([f[k]["p99_ms"] for f in found]) for k in found[0]}
    p50 = {k: median([f[k]["p50_ms"] for f in found]) for k in found[0]}
    print(
        f"ingest with states and rules {median(runs['states']):,.0f}/s vs without "
        f"{median(runs['plain']):,.0f}/s: {ingest_ratio:.2f}x (target >= 0.85)"
    )
    print(
        f"lookups p50/p99 ms: now {p50['now']:.2f}/{p99['now']:.2f} (target p99 < 5), "
        f"as of a time {p50['as_of']:.2f}/{p99['as_of']:.2f}, as of a seq "
        f"{p50['at_seq']:.2f}/{p99['at_seq']:.2f} (target p99 < 50)"
    )
    print(
        f"catch-up from nothing {median(runs['catch_up']):.1f} s vs a user's fold over query "
        f"{median(runs['user_fold']):.1f} s: {catch_ratio:.2f}x (target >= 5)"
    )
    print(json.dumps({"bench": "doors", "n": len(requests), "batch": args.batch,
                      "repeat": args.repeat, "machine": machine(), "runs": runs,
                      "lookups": found, "ratios": {"ingest": ingest_ratio,
                                                   "catch_up": catch_ratio}}))  # fmt: skip


if __name__ == "__main__":
    main()
