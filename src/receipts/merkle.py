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

from .errors import (
    ErrorDetail,
    NotFoundError,
    ReceiptsError,
    StorageError,
    TamperedError,
    UnprovableReceiptError,
    UsageError,
    VerificationError,
)
from .model import Receipt, entry_bytes, leaf_hash
from .store.base import Query, ReadTxn, Store, StoredCheckpoint, WriteTxn
from .tlog import (
    Checkpoint,
    CompactRange,
    Node,
    Signer,
    Verifier,
    consistency_ranges,
    inclusion_ranges,
    parse_note,
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
                    f"{missing} missing",
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

    Returns the latest checkpoint unchanged when nothing new was integrated since.
    """
    integrate(store, now)
    with store.write() as txn:
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
                raise VerificationError(
                    f"refusing to sign: tree of size {size} is not consistent with the "
                    f"checkpoint of size {last.size}: {exc.message}"
                ) from exc
        note = Checkpoint(signer.name, size, root).sign(signer)
        stored = StoredCheckpoint(size, root, signer.name, note, now())
        txn.add_checkpoint(stored)
    return stored


@dataclass(frozen=True, slots=True)
class AuditReport:
    receipts: int
    tree_size: int
    root_hash: bytes
    checkpoints: int
    signatures_checked: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": True,
            "receipts": self.receipts,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "checkpoints": self.checkpoints,
            "signatures_checked": self.signatures_checked,
        }


def _bad(seq: int, receipt_id: str | None, why: str) -> VerificationError:
    who = f"seq {seq}" + (f" (id {receipt_id})" if receipt_id else "")
    return VerificationError(f"audit failed at {who}: {why}", [ErrorDetail(f"/seq/{seq}", why)])


def _check_checkpoint(cp: StoredCheckpoint, root: bytes, verifier: Verifier | None) -> None:
    try:
        if verifier is not None:
            signed = Checkpoint.open(cp.note, verifier)
        else:
            signed = Checkpoint.from_text(parse_note(cp.note)[0])
    except ReceiptsError as exc:
        raise _bad(cp.size, None, f"checkpoint of size {cp.size}: {exc.message}") from exc
    if (signed.size, signed.root_hash) != (cp.size, cp.root_hash) or cp.root_hash != root:
        raise _bad(cp.size, None, f"checkpoint of size {cp.size} does not match the rebuilt tree")


def audit(
    store: Store, verifier: Verifier | None = None, progress: Callable[[int], None] | None = None
) -> AuditReport:
    """Re-read every receipt, re-derive its bytes and leaf hash, rebuild the tree, and check
    every stored node and checkpoint. Streams: memory stays constant for any log size."""
    with store.read() as txn:
        total, integrated = txn.next_seq(), txn.tree_size()
        checkpoints = list(txn.checkpoints())
    pending = list(checkpoints)
    edge = CompactRange()
    while pending and pending[0].size == 0:
        _check_checkpoint(pending.pop(0), edge.root(), verifier)
    seq = 0
    while seq < total:
        try:
            page = store.query(Query(after=seq - 1, limit=PAGE))
        except StorageError as exc:
            raise VerificationError(f"audit failed: {exc.message}", exc.errors) from exc
        if not page:
            raise _bad(seq, None, f"the journal ends at seq {seq}, expected {total} receipts")
        built: list[tuple[Node, bytes]] = []
        for r in page:
            if r.seq != seq:
                raise _bad(seq, None, f"seq gap: the next stored receipt has seq {r.seq}")
            data = entry_bytes(r.entry())
            if data != r.entry_bytes:
                raise _bad(seq, r.id, "stored entry bytes differ from the JCS encoding of its row")
            if leaf_hash(data) != r.leaf_hash:
                raise _bad(seq, r.id, "stored leaf_hash does not match its entry bytes")
            nodes = edge.append(r.leaf_hash)
            if seq < integrated:
                built += nodes
            seq += 1
            while pending and pending[0].size == edge.size:
                _check_checkpoint(pending.pop(0), edge.root(), verifier)
        _check_nodes(store, built)
        if progress is not None:
            progress(len(page))
    if pending:
        raise _bad(pending[0].size, None, f"checkpoint of size {pending[0].size} is beyond the log")
    return AuditReport(total, integrated, edge.root(), len(checkpoints), verifier is not None)


def _check_nodes(store: Store, built: list[tuple[Node, bytes]]) -> None:
    if not built:
        return
    with store.read() as txn:
        stored = txn.node_hashes([node for node, _ in built])
    for (node, expected), found in zip(built, stored, strict=True):
        if found != expected:
            level, idx = node
            first = idx << level
            raise _bad(first, None, f"stored Merkle node {node} covering seqs {first}.."
                       f"{first + (1 << level) - 1} differs from the rebuilt tree")  # fmt: skip
