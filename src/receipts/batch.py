"""One write transaction of the append pipeline, and what it takes.

A commit takes, per receipt, one of three shapes (``ToCommit``), plain tuples because groups
cross to the server's writer process pickled, and plain tuples pickle in a fraction of the time
of named tuples (docs/benchmarks.md §5):

- a **pending** request, ``(request, producer, pointer)`` (``Pending`` names the fields): the
  commit makes its receipt;
- a request with an id of its own and its receipt made ahead (``Prebuilt``): that id may be
  stored already, and an idempotent retry gets the first receipt, so the request travels along;
- a receipt made ahead with an id of the ledger's making (``MadeReceipt``), alone: it is new,
  so nothing compares with its request.

Receipts travel back as plain tuples too (``ReceiptTuple``).

``Batch`` resolves ids, revision heads and seqs under the write lock and makes the entries; the
rules of idempotency and revisions are here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from typing import Any, NamedTuple, TypeAlias

import uuid_utils

from .access import may_reuse_id, may_revise
from .errors import (
    ConflictError,
    ErrorDetail,
    IdConflictError,
    NotFoundError,
    RevisionConflictError,
    ValidationError,
)
from .model import Receipt, normalize_uuid
from .store.base import WriteTxn
from .validate import Request


class Pending(NamedTuple):
    """A validated request waiting for the commit that makes its receipt: who writes it, and
    where its errors point."""

    request: Request
    producer: str
    pointer: str


# A ``Pending`` as a plain tuple (``Ledger.pending`` yields these).
PendingTuple: TypeAlias = tuple[Request, str, str]
# A ``Receipt``'s fields as a plain tuple.
ReceiptTuple: TypeAlias = tuple[
    int, str, str, str, str, str, str | None, str, str, str, str, str | None, int, str,
    dict[str, Any], bytes, bytes,
]  # fmt: skip
# A receipt made ahead of its commit, with seq 0 (the commit gives it its seq).
MadeReceipt: TypeAlias = ReceiptTuple
# A pending request with an id of its own, and its receipt made ahead.
Prebuilt: TypeAlias = tuple[Request, str, str, MadeReceipt]
ToCommit: TypeAlias = PendingTuple | Prebuilt | MadeReceipt


def requests_of(items: Iterable[ToCommit]) -> list[Request]:
    """The requests among ``items``: a receipt made ahead with the ledger's id has none."""
    return [item[0] for item in items if len(item) == 3 or len(item) == 4]


def make_ahead(pending: Iterable[PendingTuple], now: str) -> list[Prebuilt | MadeReceipt]:
    """The receipts of new asserts, made ahead of their commit and stamped ``now``: ids, entry
    bytes and leaf hashes. Raises ``ValidationError`` where the commit would (a payload that
    cannot be canonicalized)."""
    out: list[Prebuilt | MadeReceipt] = []
    for request, producer, pointer in pending:
        receipt_id = request.id or str(uuid_utils.uuid7())
        made = _make(0, pointer, _entry(request, receipt_id, producer, now, None))[:]
        out.append((request, producer, pointer, made) if request.id else made)
    return out


def referenced(requests: Sequence[Any]) -> tuple[list[str], list[str]]:
    """The ids and supersedes_ids of raw requests, normalized where they are UUIDs (the others
    fail validation)."""
    ids: list[str] = []
    targets: list[str] = []
    for raw in requests:
        if type(raw) is not dict:
            continue
        for key, found in (("id", ids), ("supersedes_id", targets)):
            value = raw.get(key)
            if type(value) is str:
                with suppress(ValueError):
                    found.append(normalize_uuid(value))
    return ids, targets


class Batch:
    """One write transaction: ids, revision heads and seqs resolved under the write lock."""

    def __init__(self, txn: WriteTxn, now: str) -> None:
        self.txn = txn
        self.now = now
        self.by_id: dict[str, Receipt] = {}
        self.heads: dict[str, Receipt] = {}
        self.new: list[Receipt] = []  # the receipts this transaction inserts, in seq order
        self.pointers: list[str] = []  # where each new receipt's request is ("" if unknown)

    def run(self, items: Iterable[ToCommit], ids: list[str], targets: list[str]) -> list[Receipt]:
        """Store ``items``; returns every item's receipt (new, or the first of a retry).
        ``ids`` and ``targets`` must hold every request's id and supersedes_id."""
        if ids or targets:
            self.by_id = self.txn.find(ids + targets)
            self.heads = self.txn.heads(
                {self.by_id[t].logical_id for t in targets if t in self.by_id}
            )
        out: list[Receipt] = []
        # The store consumes the receipts as they are built: PostgreSQL stores the rows already
        # sent while the next ones are made.
        self.txn.insert(self._build(items, self.txn.next_seq(), out))
        return out

    def _build(self, items: Iterable[ToCommit], seq: int, out: list[Receipt]) -> Iterator[Receipt]:
        """The new receipts, in seq order; ``out`` gets every item's receipt (new or prior)."""
        new, now, by_id, pointers = self.new, self.now, self.by_id, self.pointers
        for position, item in enumerate(items):
            if len(item) == 3:  # pending: the receipt is made here
                request, producer, pointer = item
                receipt_id = request.id or str(uuid_utils.uuid7())
                prior = by_id.get(receipt_id)
                if prior is not None:
                    out.append(_retried(prior, request, producer, pointer))
                    continue
                head = (
                    None  # an assert starting its own logical event, the usual case
                    if request.op == "assert" and request.logical_id is None
                    else self._head(request, producer, pointer)
                )
                receipt = _make(seq, pointer, _entry(request, receipt_id, producer, now, head))
            elif len(item) == 4:  # prebuilt: made ahead, with an id of the request's own
                request, producer, pointer, made = item
                receipt_id = made[1]
                prior = by_id.get(receipt_id)
                if prior is not None:
                    out.append(_retried(prior, request, producer, pointer))
                    continue
                receipt = Receipt._make((seq, *made[1:]))
            else:  # made ahead with an id of the ledger's making: new, from an array's item
                receipt_id, pointer = item[1], f"/{position}"
                receipt = Receipt._make((seq, *item[1:]))
            seq += 1
            pointers.append(pointer)
            by_id[receipt_id] = self.heads[receipt.logical_id] = receipt
            out.append(receipt)
            new.append(receipt)
            yield receipt

    def pointer_of(self) -> dict[int, str]:
        """Where the request of each new receipt is, by the receipt's seq."""
        return {r.seq: p for r, p in zip(self.new, self.pointers, strict=True)}

    def _head(self, request: Request, producer: str, pointer: str) -> Receipt | None:
        """The head a revision supersedes (None for an assert); it must be the current head.

        An end user (producer ``client``) revises only its own events: checked here, under the
        write lock, against the head as stored — a check before the transaction could be raced
        by the head's own commit. Another user's receipt is answered exactly as a receipt that
        does not exist, so a user learns nothing about receipts it cannot read."""
        if request.op == "assert":
            if request.logical_id not in (None, request.id):
                raise ValidationError(
                    "an assert starts its own logical event",
                    [ErrorDetail(f"{pointer}/logical_id", "must be absent or equal to id")],
                )
            return None
        assert request.supersedes_id is not None
        target = self.by_id.get(request.supersedes_id)
        if target is not None:
            head = self.heads.get(target.logical_id, target)
            if not may_revise(producer, request.owner_user_id, target, head):
                target = None
        if target is None:
            raise NotFoundError(
                f"{request.op} supersedes an unknown receipt {request.supersedes_id}",
                [ErrorDetail(f"{pointer}/supersedes_id", "no receipt with this id")],
            )
        head = self.heads.get(target.logical_id, target)
        if head.id != target.id:
            raise RevisionConflictError(
                f"{request.supersedes_id} is not the current head of logical event "
                f"{target.logical_id}: revision {head.revision} ({head.id}) is",
                [ErrorDetail(f"{pointer}/supersedes_id", f"expected the current head {head.id}")],
            )
        _check_same_chain(head, request, pointer)
        return head


def _retried(prior: Receipt, request: Request, producer: str, pointer: str) -> Receipt:
    """``prior``, the receipt stored under the request's id, if the request is its idempotent
    retry; else ``IdConflictError``."""
    if not may_reuse_id(producer, request.owner_user_id, prior):
        raise IdConflictError(
            f"receipt id {prior.id} is already used",
            [ErrorDetail(f"{pointer}/id", "already used; choose another id")],
        )
    _same_or_conflict(prior, request, producer, pointer)
    return prior


def _entry(
    request: Request, receipt_id: str, producer: str, now: str, head: Receipt | None
) -> dict[str, Any]:
    """The entry of a new receipt: an assert (``head`` None) or a revision of ``head``."""
    if head is None:
        logical_id, revision = receipt_id, 0
    else:
        logical_id, revision = head.logical_id, head.revision + 1
    # A revision corrects a fact: unless told otherwise it keeps when it occurred and whose it is.
    return {
        "id": receipt_id,
        "domain": request.domain,
        "event_type": request.event_type,
        "entity_type": request.entity_type,
        "entity_id": request.entity_id,
        "owner_user_id": request.owner_user_id or (head.owner_user_id if head else None),
        "occurred_at": request.occurred_at or (head.occurred_at if head else now),
        "recorded_at": now,
        "op": request.op,
        "logical_id": logical_id,
        "supersedes_id": request.supersedes_id,
        "revision": revision,
        "producer": producer,
        "payload": request.payload,
    }


def _make(seq: int, pointer: str, entry: dict[str, Any]) -> Receipt:
    try:
        return Receipt.from_entry(seq, entry)
    except ValidationError as exc:  # e.g. an integer beyond 2**53, a lone surrogate
        reason = exc.errors[0].message if exc.errors else exc.message
        raise ValidationError(
            "payload cannot be canonicalized (RFC 8785)",
            [ErrorDetail(f"{pointer}/payload", reason)],
        ) from exc


def _check_same_chain(head: Receipt, request: Request, pointer: str) -> None:
    problems = [
        ErrorDetail(f"{pointer}/{key}", f"a revision keeps {key} {getattr(head, key)!r}")
        for key in ("domain", "event_type", "entity_type", "entity_id")
        if getattr(request, key) != getattr(head, key)
    ]
    if request.logical_id not in (None, head.logical_id):
        problems.append(ErrorDetail(f"{pointer}/logical_id", f"expected {head.logical_id}"))
    if problems:
        raise ValidationError("a revision cannot change what the event is about", problems)
    voided = head.op == "void"
    if request.op == "restate" and not voided:
        raise ConflictError(
            "only a voided event can be restated; use amend",
            [ErrorDetail(f"{pointer}/op", f"head {head.id} is not voided")],
        )
    if request.op != "restate" and voided:
        raise ConflictError(
            f"a voided event cannot be {request.op}ed; restate it first",
            [ErrorDetail(f"{pointer}/op", f"head {head.id} is voided")],
        )


def _same_or_conflict(prior: Receipt, request: Request, producer: str, pointer: str) -> None:
    """Idempotency: a retried request (same id, same content, same writer) gets the original
    receipt; anything else claiming the id is a conflict."""
    if producer != prior.producer:
        raise IdConflictError(
            f"receipt {prior.id} already exists, written by another producer",
            [ErrorDetail(f"{pointer}/id", f"already used by a {prior.producer!r} receipt")],
        )
    fields = ("domain", "event_type", "entity_type", "entity_id", "op", "supersedes_id", "payload")
    differ = [f for f in fields if getattr(prior, f) != getattr(request, f)]
    # Fields a request may leave to defaults are compared only when it gives them.
    for key in ("occurred_at", "logical_id", "owner_user_id"):
        value = getattr(request, key)
        if value is not None and value != getattr(prior, key):
            differ.append(key)
    if differ:
        raise IdConflictError(
            f"receipt {prior.id} already exists with different content",
            [ErrorDetail(f"{pointer}/{f}", "differs from the stored receipt") for f in differ],
        )
