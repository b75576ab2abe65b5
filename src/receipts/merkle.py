"""The Merkle log over a store: integrate, roots, proofs, checkpoints.

Node ids come from the pure ``tlog`` package; the store only fetches and keeps hashes. The root
of any size, an inclusion proof and a consistency proof each read O(log n) nodes; integration
costs amortised O(1) hashes per receipt.

Contract: a checkpoint MUST NOT be signed unless the tree it covers was proven consistent with
the previous checkpoint's tree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import keys
from .errors import (
    ErrorDetail,
    NotFoundError,
    TamperedError,
    UnprovableReceiptError,
    UsageError,
    VerificationError,
)
from .model import Receipt
from .store.base import ReadTxn, Store, StoredCheckpoint, WriteTxn
from .tlog import (
    Checkpoint,
    CompactRange,
    Signer,
    consistency_ranges,
    inclusion_ranges,
    range_hash,
    subtree_nodes,
    verify_consistency,
)

PAGE = 1000
INTEGRATE_CHUNK = 100_000  # receipts per integration transaction: bounds memory and lock time


@dataclass(frozen=True, slots=True)
class TreeHead:
    size: int
    root_hash: bytes

    def to_dict(self) -> dict[str, object]:
        return {"size": self.size, "root_hash": self.root_hash.hex()}


def root_at(txn: ReadTxn, size: int) -> bytes:
    """Root hash of the first ``size`` receipts (size ≤ the integrated size)."""
    _check_integrated(txn, size)
    return range_hash(txn.node_hashes(subtree_nodes(0, size)))


def _hashes_of(txn: ReadTxn, ranges: list[tuple[int, int]]) -> list[bytes]:
    nodes = [subtree_nodes(a, b) for a, b in ranges]
    flat = txn.node_hashes([n for group in nodes for n in group])
    out, at = [], 0
    for group in nodes:
        out.append(range_hash(flat[at : at + len(group)]))
        at += len(group)
    return out


def inclusion_proof(txn: ReadTxn, index: int, size: int) -> list[bytes]:
    _check_integrated(txn, size)
    if not 0 <= index < size:
        raise NotFoundError(
            f"receipt seq {index} is not in the tree of size {size}",
            [ErrorDetail("/size", f"expected a size greater than {index}")],
        )
    return _hashes_of(txn, inclusion_ranges(index, size))


def consistency_proof(txn: ReadTxn, old: int, new: int) -> list[bytes]:
    if not 0 <= old <= new:
        raise UsageError(
            f"consistency needs 0 <= old <= new, got {old} and {new}",
            [ErrorDetail("/old_size", f"expected at most {new}")],
        )
    _check_integrated(txn, new)
    return _hashes_of(txn, consistency_ranges(old, new))


def _check_integrated(txn: ReadTxn, size: int) -> None:
    integrated = txn.tree_size()
    if size > integrated:
        raise NotFoundError(
            f"tree size {size} is beyond the integrated log ({integrated} receipts)",
            [ErrorDetail("/size", f"expected at most {integrated}; run `receipts checkpoint`")],
        )


def integrate(store: Store, now: Callable[[], str]) -> TreeHead:
    """Extend the tree over every sequenced receipt; returns the new tree head.

    A receipt whose entry cannot be made stops the tree before it: every receipt before it is
    integrated and committed, then UnprovableReceiptError names it (and does again on every
    later call). A journal that no longer holds what the tree covers raises TamperedError.
    """
    while True:
        blocked: UnprovableReceiptError | None = None
        with store.write() as txn:
            size, end = txn.tree_size(), txn.next_seq()
            if end < size:
                missing = f"seq {end} is" if end == size - 1 else f"seqs {end}..{size - 1} are"
                raise TamperedError(
                    f"the tree covers {size} receipts but the journal holds {end}: "
                    f"{missing} missing; run `receipts verify`",
                    [ErrorDetail(f"/seq/{end}", "integrated, then deleted from the journal")],
                )
            stop = min(end, size + INTEGRATE_CHUNK)
            if stop == size:
                return TreeHead(size, root_at(txn, size))
            try:
                pending = txn.unhashed(size, stop)  # rows that arrived by direct SQL insert
            except UnprovableReceiptError as exc:
                blocked, stop = exc, exc.seq
                pending = txn.unhashed(size, stop)
            head = _extend(txn, size, stop, pending, now()) if stop > size else None
        if blocked is not None:
            raise blocked
        if stop == end and head is not None:
            return head


def _extend(txn: WriteTxn, size: int, stop: int, pending: Sequence[Receipt], now: str) -> TreeHead:
    """Extend the tree of ``size`` receipts to ``stop``; ``pending`` are the direct SQL
    inserts among them, whose bytes are stored first."""
    if pending:
        txn.add_entries(pending)
    edge = CompactRange(size, txn.node_hashes(subtree_nodes(0, size)))
    nodes = []
    for leaf in txn.leaf_hashes(size, stop):
        nodes += edge.append(leaf)
    if edge.size != stop:
        raise TamperedError(
            f"the journal holds {edge.size - size} receipts with seqs {size}..{stop - 1}, "
            f"expected {stop - size}: a row was deleted",
            [ErrorDetail(f"/seq/{size}", "a gap in the journal")],
        )
    txn.add_nodes(nodes)
    txn.add_tree_head(stop, edge.root(), now)
    return TreeHead(stop, edge.root())


def integrate_appended(txn: WriteTxn, receipts: Sequence[Receipt], now: str) -> bool:
    """Extend the tree over receipts just inserted in this transaction, if the tree had caught
    up with the journal (else, e.g. after direct SQL inserts, ``integrate`` catches up later).
    Saves a second transaction, its fsync and re-reading the leaf hashes."""
    if not receipts or txn.tree_size() != receipts[0].seq:
        return False
    size = receipts[0].seq
    edge = CompactRange(size, txn.node_hashes(subtree_nodes(0, size)))
    nodes = []
    for receipt in receipts:
        nodes += edge.append(receipt.leaf_hash)
    txn.add_nodes(nodes)
    txn.add_tree_head(edge.size, edge.root(), now)
    return True


def sign_checkpoint(store: Store, signer: Signer, now: Callable[[], str]) -> StoredCheckpoint:
    """Integrate, prove the new tree consistent with the last checkpoint, then sign and store.

    Refuses a signer that is not the ledger's current key (recording it as the first key if
    the ledger has none). Returns the latest checkpoint unchanged when nothing new was
    integrated since. A receipt that cannot be integrated stops the tree before it: what comes
    before it is still signed (so those receipts can be proven), then the error is raised.
    """
    try:
        integrate(store, now)
    except UnprovableReceiptError as blocked:
        _sign(store, signer, now)
        raise blocked from None
    return _sign(store, signer, now)


def _sign(store: Store, signer: Signer, now: Callable[[], str]) -> StoredCheckpoint:
    with store.write() as txn:
        keys.require_signer(txn, signer, now())  # under the write lock: no rotation in between
        size = txn.tree_size()  # a concurrent integrate may have gone further: sign what is there
        root = root_at(txn, size)
        last = txn.checkpoint()
        if last is not None:
            if last.size == size:
                return last
            proof = consistency_proof(txn, last.size, size)
            try:
                verify_consistency(last.size, size, proof, last.root_hash, root)
            except VerificationError as exc:
                raise TamperedError(
                    f"refusing to sign: the stored tree of size {size} is not consistent with "
                    f"the signed checkpoint of size {last.size} (its nodes or receipts were "
                    "altered); run `receipts verify` to find where",
                    [ErrorDetail(f"/checkpoint/{last.size}", exc.message)],
                ) from exc
        note = Checkpoint(signer.name, size, root).sign(signer)
        stored = StoredCheckpoint(size, root, signer.name, note, now())
        txn.add_checkpoint(stored)
    return stored
