"""``CommitOptions``: how the write path commits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CommitOptions:
    """How a committer (``open_writer``) groups, bounds and checkpoints its commits."""

    # Receipts submitted and not yet answered beyond which a submit is refused
    # (OverloadedError: the HTTP service answers 429).
    max_queue: int = 10_000
    # Receipts per group commit. Several waiting batches share a transaction, its fsync and
    # the index pages they touch (docs/benchmarks.md §5).
    group_max: int = 4000
    # Seconds a group waits for company once a commit is due (the in-process committer; the
    # writer process takes whatever queued while it committed, without waiting).
    group_wait: float = 0.001
    # Seconds between background checkpoints: the writer integrates and signs one when there
    # is something new and the ledger has a signer. 0: none.
    checkpoint_interval: float = 1.0
    # Commit in a process of its own where the store wants one (``Store.writes_from_a_process``).
    writer_process: bool = True
