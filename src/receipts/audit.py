"""The audit (`receipts verify`): re-derive the whole log from the receipts and name every
rewrite.

One read snapshot, streamed, constant memory. Every row is checked against its hashed entry
(bytes, leaf hash, every column a query reads); the tree is rebuilt from the entries as they are
now; then every record the ledger kept while it grew — stored tree nodes, the root of each
integration step (tree heads), the signed checkpoints — is compared with the rebuilt tree.

Blame: a row that no longer matches its own entry, or a missing seq, is named exactly. A rewrite
that left each row consistent with itself (entry, leaf hash and tree nodes all rebuilt, rows
swapped or renumbered) only shows against the roots recorded earlier: the first altered receipt
lies below the smallest size whose recorded root no longer matches and at or above the largest
smaller size whose root still does, narrowed by the stored nodes that still differ. The audit
reports that seq, or the narrowest range the records allow.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Final

from .errors import ErrorDetail, ReceiptsError, StorageError, TamperedError
from .model import Receipt, leaf_hash
from .store.base import ReadTxn, Row, Store, StoredCheckpoint, checked_receipt
from .tlog import Checkpoint, CompactRange, KeyChain, Node, parse_note
from .validate import Validator

# Leaves per step: the nodes they complete are compared with the stored ones in one query.
_STEP: Final = 4096
# A placeholder leaf for a missing seq, so that the receipts after it keep their positions.
_MISSING: Final = b"\x00" * 32
_MAX_REPORTED: Final = 100


@dataclass(frozen=True, slots=True)
class AuditReport:
    receipts: int
    tree_size: int
    root_hash: bytes
    checkpoints: int
    signatures_checked: bool
    unintegrated: int = 0  # receipts sequenced but not yet in the tree

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": True,
            "receipts": self.receipts,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash.hex(),
            "checkpoints": self.checkpoints,
            "signatures_checked": self.signatures_checked,
            "unintegrated": self.unintegrated,
        }


@dataclass(order=True, frozen=True)
class Finding:
    """One thing that does not check out, ordered by the first seq it concerns."""

    seq: int
    pointer: str = field(compare=False)
    message: str = field(compare=False)


@dataclass
class _Evidence:
    rows: list[Finding] = field(default_factory=list)  # exact: a row or a missing seq
    records: list[Finding] = field(default_factory=list)  # a stored node or checkpoint itself
    matching: list[int] = field(default_factory=list)  # sizes whose recorded root matches
    differing: list[tuple[int, str]] = field(default_factory=list)  # (size, what recorded it)
    nodes: list[tuple[Node, str]] = field(default_factory=list)  # stored nodes that differ
    validator: Validator | None = None

    def add_row(self, seq: int, why: str, receipt_id: object = None) -> None:
        if len(self.rows) < _MAX_REPORTED:
            who = f"seq {seq}" + (f" (id {receipt_id})" if receipt_id else "")
            self.rows.append(Finding(seq, f"/seq/{seq}", f"{who}: {why}"))


def audit(
    store: Store,
    verifier: KeyChain | None = None,
    progress: Callable[[int], None] | None = None,
    validator: Validator | None = None,
) -> AuditReport:
    """Check the whole log; raise ``TamperedError`` naming the first altered receipt (and every
    other finding in its ``errors``), else return what was checked. With a ``validator``, the
    receipts not yet in the tree are also checked against the catalog and its writers."""
    evidence = _Evidence(validator=validator)
    try:
        with store.read() as txn:
            report = _scan(txn, verifier, progress, evidence)
    except StorageError as exc:  # e.g. a value the driver cannot even read
        raise TamperedError(f"audit failed: {exc.message}", exc.errors) from exc
    findings = _blame(evidence)
    if findings:
        first = findings[0]
        raise TamperedError(
            f"audit failed at {first.message}",
            [ErrorDetail(f.pointer, f.message) for f in findings[:_MAX_REPORTED]],
        )
    return report


def _scan(
    txn: ReadTxn,
    verifier: KeyChain | None,
    progress: Callable[[int], None] | None,
    evidence: _Evidence,
) -> AuditReport:
    total, integrated = txn.next_seq(), txn.tree_size()
    checkpoints = list(txn.checkpoints())
    extent = max(total, integrated)
    roots = _RecordedRoots(txn, checkpoints, verifier, evidence)
    edge = CompactRange()
    roots.compare(edge)  # the empty tree (a checkpoint of size 0)
    built: list[tuple[Node, bytes]] = []
    for row in _with_gaps(txn.rows(0, total), evidence):
        leaf = _MISSING if row is None else _leaf(row, integrated, evidence)
        nodes = edge.append(leaf)
        if edge.size <= integrated:
            built += nodes
        roots.compare(edge)
        if edge.size % _STEP == 0:
            _compare_nodes(txn, built, evidence)
            built = []
            if progress is not None:
                progress(_STEP)
    if progress is not None and edge.size % _STEP:
        progress(edge.size % _STEP)
    for seq in range(edge.size, extent):  # the tree or a checkpoint covers receipts now gone
        evidence.add_row(seq, "missing: the Merkle tree covers it but the journal does not")
        edge.append(_MISSING)
        roots.compare(edge)
    _compare_nodes(txn, built, evidence)
    roots.finish(edge.size)
    return AuditReport(
        receipts=total,
        tree_size=integrated,
        root_hash=edge.root(),
        checkpoints=len(checkpoints),
        signatures_checked=verifier is not None,
        unintegrated=max(0, total - integrated),
    )


def _with_gaps(rows: Iterator[Row], evidence: _Evidence) -> Iterator[Row | None]:
    """The rows in seq order, with None where a seq is missing."""
    expected = 0
    for row in rows:
        while expected < row.seq:
            evidence.add_row(expected, "missing: the journal skips it")
            yield None
            expected += 1
        yield row
        expected = row.seq + 1


def _leaf(row: Row, integrated: int, evidence: _Evidence) -> bytes:
    """The leaf hash of the row's content as it is now (its entry bytes), noting any way the row
    disagrees with its own entry."""
    if row.entry is None and row.seq < integrated:
        evidence.add_row(
            row.seq, "its entry bytes are gone, yet the tree covers it", row.columns[0]
        )
    try:
        receipt = checked_receipt(row, full=True)
        # Rows with entry bytes were written by the ledger, which validated them first (a
        # direct insert on PostgreSQL gets its bytes at integration, checked by its trigger).
        if row.seq >= integrated and row.entry is not None and evidence.validator is not None:
            _validate(receipt, evidence.validator, evidence)
        return receipt.leaf_hash
    except TamperedError as exc:
        evidence.add_row(row.seq, exc.errors[0].message, row.columns[0])
    except ReceiptsError as exc:
        evidence.add_row(row.seq, exc.message, row.columns[0])
    return leaf_hash(row.entry) if row.entry is not None else _MISSING


def _validate(receipt: Receipt, validator: Validator, evidence: _Evidence) -> None:
    """A receipt not yet in the tree is only as good as the database's access control: it must
    at least be one the ledger would have written."""
    request = {
        key: getattr(receipt, key)
        for key in ("id", "domain", "event_type", "entity_type", "entity_id", "payload",
                    "owner_user_id", "occurred_at", "op", "logical_id", "supersedes_id")
        if getattr(receipt, key) is not None
    }  # fmt: skip
    try:
        validator.validate(request, receipt.producer)
    except ReceiptsError as exc:
        why = exc.errors[0].message if exc.errors else exc.message
        where = exc.errors[0].pointer if exc.errors else ""
        evidence.add_row(receipt.seq, f"not a receipt the ledger writes: {where} {why}", receipt.id)


class _RecordedRoots:
    """The roots the ledger recorded as it grew — signed checkpoints and tree heads — compared
    with the rebuilt tree as it reaches each of their sizes."""

    def __init__(
        self,
        txn: ReadTxn,
        checkpoints: list[StoredCheckpoint],
        verifier: KeyChain | None,
        evidence: _Evidence,
    ) -> None:
        self.txn = txn
        self.evidence = evidence
        self.checkpoints: dict[int, bytes] = {}
        for cp in checkpoints:
            root = _checkpoint_root(cp, verifier, evidence)
            if root is not None:
                self.checkpoints[cp.size] = root
        self.heads: dict[int, bytes] = {}
        self.heads_to = 0  # tree heads below this size are loaded (or compared)

    def compare(self, edge: CompactRange) -> None:
        size = edge.size
        if size >= self.heads_to:
            self.heads = dict(self.txn.tree_heads(size, size + _STEP))
            self.heads_to = size + _STEP
        for recorded, what in ((self.checkpoints, "checkpoint"), (self.heads, "tree head")):
            root = recorded.get(size)
            if root is None:
                continue
            if root == edge.root():
                self.evidence.matching.append(size)
            else:
                self.evidence.differing.append((size, what))

    def finish(self, rebuilt: int) -> None:
        beyond = [s for s in self.checkpoints if s > rebuilt]
        for size in sorted(beyond):
            self.evidence.records.append(
                Finding(size, f"/checkpoint/{size}", f"checkpoint of size {size}: beyond the log")
            )


def _checkpoint_root(
    cp: StoredCheckpoint, verifier: KeyChain | None, evidence: _Evidence
) -> bytes | None:
    """The root a stored checkpoint vouches for, or None (and a finding) if the checkpoint
    itself does not check out: its signature, or its columns against its note."""
    where = f"/checkpoint/{cp.size}"
    try:
        if verifier is not None:  # the ledger's key at the checkpoint's size
            signed = verifier.open_checkpoint(cp.note)
        else:
            signed = Checkpoint.from_text(parse_note(cp.note)[0])
    except ReceiptsError as exc:
        why = f"checkpoint of size {cp.size} was altered: {exc.message}"
        evidence.records.append(Finding(cp.size, where, why))
        return None
    if (signed.size, signed.root_hash) != (cp.size, cp.root_hash):
        why = f"checkpoint of size {cp.size} was altered: its columns differ from its signed note"
        evidence.records.append(Finding(cp.size, where, why))
        return None
    return signed.root_hash


def _compare_nodes(txn: ReadTxn, built: list[tuple[Node, bytes]], evidence: _Evidence) -> None:
    if not built:
        return
    stored = _stored_nodes(txn, [node for node, _ in built])
    for node, expected in built:
        found = stored.get(node)
        if found != expected and len(evidence.nodes) < _MAX_REPORTED:
            evidence.nodes.append((node, "missing" if found is None else "differs"))


def _stored_nodes(txn: ReadTxn, nodes: list[Node]) -> dict[Node, bytes]:
    try:
        return dict(zip(nodes, txn.node_hashes(nodes), strict=True))
    except StorageError:  # some are missing: find which, one by one
        out = {}
        for node in nodes:
            with contextlib.suppress(StorageError):
                out[node] = txn.node_hashes([node])[0]
        return out


def _node_finding(node: Node, state: str) -> Finding:
    level, idx = node
    first, last = idx << level, ((idx + 1) << level) - 1
    return Finding(
        first,
        f"/node/{level}/{idx}",
        f"Merkle node ({level}, {idx}) covering seqs {first}..{last} was altered: it {state} "
        "from the tree rebuilt from the receipts, which every recorded root confirms",
    )


def _record_finding(size: int, what: str) -> Finding:
    where = "/checkpoint" if what == "checkpoint" else "/tree_head"
    return Finding(size, f"{where}/{size}", f"the {what} of size {size} no longer matches")


def _blame(evidence: _Evidence) -> list[Finding]:
    """Every finding, the first altered receipt first."""
    findings = sorted(evidence.rows) + sorted(evidence.records)
    if not evidence.differing:
        # The receipts match every recorded root: a differing stored node was itself altered.
        findings += [_node_finding(node, state) for node, state in evidence.nodes]
        return sorted(findings)
    size, what = min(evidence.differing)
    low = max((s for s in evidence.matching if s < size), default=0)
    high = size
    for node, _ in sorted(evidence.nodes):  # the smallest differing subtrees first
        level, idx = node
        first, end = idx << level, (idx + 1) << level
        if first < high and end > low:
            low, high = max(low, first), min(high, end)
            break
    heads = [(s, w) for s, w in sorted(evidence.differing) if w == "tree head"][:1]
    checkpoints = [(s, w) for s, w in sorted(evidence.differing) if w == "checkpoint"]
    findings += [_record_finding(s, w) for s, w in checkpoints + heads]
    exact = [f for f in evidence.rows if low <= f.seq < high]
    if exact:
        return [exact[0], *[f for f in findings if f is not exact[0]]]
    because = f"the {what} of size {size} no longer matches the receipts"
    if low > 0:
        because += f", the root recorded at size {low} still does"
    if high - low == 1:
        lead = Finding(low, f"/seq/{low}", f"seq {low}: altered ({because})")
    else:
        lead = Finding(
            low,
            f"/seq/{low}",
            f"seq {low}: the first altered receipt is one of seqs {low}..{high - 1} ({because}; "
            "the records kept cannot tell which)",
        )
    return [lead, *findings]
