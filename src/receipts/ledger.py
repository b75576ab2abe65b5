"""The ledger facade: append, revise, query.

Contract:
- ``append`` MUST NOT return before every receipt it returns is durably committed.
- A batch is all-or-nothing: if any request is invalid, conflicts or is forbidden, nothing
  of the batch is written.
- The only mutations are inserts; a correction is a new receipt that supersedes the head.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from itertools import repeat
from pathlib import Path
from typing import Any, Final, NamedTuple

import uuid_utils

from . import keys, merkle
from .audit import AuditReport, audit
from .bundle import Bundle
from .catalog import Catalog
from .dburl import DatabaseUrl, default_url
from .errors import (
    ConflictError,
    ErrorDetail,
    FormatError,
    IdConflictError,
    NotFoundError,
    ReceiptsError,
    RevisionConflictError,
    SigningKeyError,
    ValidationError,
    VerificationError,
)
from .merkle import TreeHead
from .model import Receipt, format_time, normalize_time, normalize_uuid, split_entity
from .store import open_store
from .store.base import Query, Store, StoredCheckpoint, StoredKey, WriteTxn, tampered
from .tlog import Checkpoint, KeyChain, Signer, TlogProof, Verifier, parse_note, verify_inclusion
from .validate import Request, Validator

SERVICE_ROLE: Final = "service_role_pipeline"
PAGE: Final = 1000


def _now() -> datetime:
    return datetime.now(UTC)


class Ledger:
    """A receipts ledger over one store and one catalog."""

    def __init__(
        self,
        store: Store,
        catalog: Catalog | None = None,
        *,
        clock: Callable[[], datetime] = _now,
        signer: Signer | None = None,
        integrate_on_append: bool | None = None,
    ) -> None:
        self.store = store
        self.integrate_on_append = (
            store.integrate_on_append if integrate_on_append is None else integrate_on_append
        )
        self.catalog = catalog or Catalog.load()
        self.validator = Validator(self.catalog)
        self.signer = signer
        self._clock = clock

    @classmethod
    def open(
        cls,
        url: str | Path | DatabaseUrl | None = None,
        *,
        catalog_files: Iterable[str | Path] = (),
        signer: Signer | None = None,
    ) -> Ledger:
        """Open (and create or migrate) the ledger at ``url``; default ``$RECEIPTS_DB``, else
        ``receipts.db`` (``dburl.default_url``).

        The checkpoint signer defaults to the key file (``DatabaseUrl.key_path``), or the one a
        rotation wrote beside it that holds the ledger's current key, if there is one.
        """
        where = DatabaseUrl.parse(url or default_url())
        catalog = Catalog.load(catalog_files)
        ledger = cls(open_store(where, catalog), catalog, signer=signer)
        if signer is None:
            try:
                ledger.signer = keys.find_signer(where.key_path(), ledger._recorded_key())
            except BaseException:
                ledger.close()
                raise
        return ledger

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------

    def append(self, request: dict[str, Any], *, producer: str = SERVICE_ROLE) -> Receipt:
        """Validate and durably store one receipt request; returns the stored receipt."""
        (valid,) = self.validator.validate_batch([request], producer, pointers=[""])
        return self.commit([Pending(valid, producer, "")])[0]

    def append_batch(
        self,
        requests: Sequence[dict[str, Any]],
        *,
        producer: str = SERVICE_ROLE,
        pointers: Sequence[str] | None = None,
    ) -> list[Receipt]:
        """Store a batch atomically. Pointers in errors start with the request's index
        (or with ``pointers[i]``, e.g. a line of a JSON Lines file)."""
        prefixes = (
            list(pointers) if pointers is not None else [f"/{i}" for i in range(len(requests))]
        )
        # Validated as the batch streams to the store: PostgreSQL stores the rows already sent
        # while the next requests are checked and built. The lookups a batch needs (ids it
        # reuses, receipts it supersedes) are made first, from the requests' raw ids.
        valid = self.validator.iter_valid(requests, producer, pointers=prefixes)
        # The i-th valid is the i-th request.
        pending = zip(valid, repeat(producer), prefixes, repeat(None))
        ids, targets = _referenced(requests)
        try:
            return self._store(pending, ids, targets)
        except (ConflictError, NotFoundError, ValidationError):
            # Refused while building: validation problems later in the batch are reported
            # instead, exactly as when the whole batch is validated before it is stored.
            for _ in valid:
                pass
            raise

    def amend(self, head_id: str, payload: dict[str, Any], **fields: Any) -> Receipt:
        return self._revise("amend", head_id, payload, fields)

    def void(self, head_id: str, reason: str, voided_by: str, **fields: Any) -> Receipt:
        return self._revise(
            "void", head_id, {"void_reason": reason, "voided_by": voided_by}, fields
        )

    def restate(self, head_id: str, payload: dict[str, Any], **fields: Any) -> Receipt:
        return self._revise("restate", head_id, payload, fields)

    def _revise(
        self, op: str, head_id: str, payload: dict[str, Any], fields: dict[str, Any]
    ) -> Receipt:
        producer = fields.pop("producer", SERVICE_ROLE)
        head = self.get(head_id)
        request = {
            "domain": head.domain,
            "event_type": head.event_type,
            "entity_type": head.entity_type,
            "entity_id": head.entity_id,
            "owner_user_id": head.owner_user_id,
            **fields,
            "op": op,
            "supersedes_id": head.id,
            "payload": payload,
        }
        return self.append(request, producer=producer)

    def commit(self, pending: Sequence[Item]) -> list[Receipt]:
        """Durably store already validated requests in ONE transaction (all or nothing).
        ``pending`` holds ``Pending`` or plain tuples of the same fields (``Item``)."""
        requests = [p[0] for p in pending if p[0] is not None]
        ids = [r.id for r in requests if r.id]
        return self._store(pending, ids, [r.supersedes_id for r in requests if r.supersedes_id])

    def _store(self, pending: Iterable[Item], ids: list[str], targets: list[str]) -> list[Receipt]:
        """Store ``pending`` in one transaction. ``ids`` and ``targets`` must include every
        request's id and supersedes_id (they are looked up before the first row is written)."""
        now = format_time(self._clock())
        with self.store.write() as txn:
            batch = _Batch(txn, now)
            stored = batch.run(pending, ids, targets)
            if self.integrate_on_append:
                merkle.integrate_appended(txn, batch.new, now)
            return stored

    def commit_groups(
        self, groups: Sequence[Sequence[Item]]
    ) -> list[list[Receipt] | ReceiptsError]:
        """Group commit: store several independent atomic groups (e.g. concurrent HTTP
        requests) in ONE transaction when all succeed. If any is refused, fall back to one
        transaction per group, so one writer's conflict never fails another's receipts.
        Returns, per group, its receipts or its error."""
        flat = [item for group in groups for item in group]
        try:
            stored = self.commit(flat)
        except (ConflictError, NotFoundError, ValidationError):
            if len(groups) == 1:
                raise
        else:
            out: list[list[Receipt] | ReceiptsError] = []
            for group in groups:
                out.append(stored[: len(group)])
                stored = stored[len(group) :]
            return out
        results: list[list[Receipt] | ReceiptsError] = []
        for group in groups:
            try:
                results.append(self.commit(group))
            except (ConflictError, NotFoundError, ValidationError) as error:
                results.append(error)
        return results

    def prebuild(self, pending: Sequence[Pending]) -> Sequence[Pending]:
        """Make the receipts of a group of new asserts ahead of their commit: ids, entry bytes
        and leaf hashes, stamped now. ``commit`` then only gives them their seqs, unless an id
        turns out to be stored already (an idempotent retry gets its first receipt, as always).
        Lets another process do this work: the server's HTTP process, for its writer process.

        All or nothing: a group holding a revision (which needs the head it supersedes, read
        at commit) is returned as it is, so that the receipts of one request always share one
        ``recorded_at``. Raises ``ValidationError`` where ``commit`` would (a payload that
        cannot be canonicalized)."""
        if not all(p.request.op == "assert" and p.request.logical_id is None for p in pending):
            return pending
        now = format_time(self._clock())
        out = []
        for request, producer, pointer, _ in pending:
            receipt_id = request.id or str(uuid_utils.uuid7())
            entry = _entry(request, receipt_id, producer, now, None)
            out.append(Pending(request, producer, pointer, tuple(_make(0, pointer, entry))))
        return out

    # --- reading -------------------------------------------------------------------------------

    def get(self, receipt_id: str) -> Receipt:
        try:
            key = normalize_uuid(receipt_id)
        except ValueError:  # a malformed id is the caller's mistake, not a missing receipt
            raise ValidationError(
                f"not a receipt id: {receipt_id!r}",
                [ErrorDetail("/id", "expected a UUID, e.g. 0190b2a4-5c6d-7e8f-9a0b-1c2d3e4f5a6b")],
            ) from None
        receipt = self.store.get(key)
        if receipt is None:
            raise NotFoundError(f"no receipt {receipt_id!r}", [ErrorDetail("/id", "not found")])
        return receipt

    def query(
        self,
        *,
        entity: str | None = None,
        correlation_id: str | None = None,
        domain: str | None = None,
        event_type: str | None = None,
        since: str | None = None,
        until: str | None = None,
        after: int | None = None,
        limit: int | None = None,
        visible_to: str | None = None,
    ) -> Iterator[Receipt]:
        """Receipts matching every given filter, in ``seq`` order, fetched page by page.
        A domain, event type or entity type the catalog does not know is refused (a typo
        would otherwise match nothing, silently)."""
        entity_type, entity_id = self._entity(entity) if entity else (None, None)
        _check_filters(self.catalog, domain, event_type)
        bounds = {k: _time_arg(k, v) for k, v in (("since", since), ("until", until))}
        left = limit
        while left is None or left > 0:
            page = self.store.query(
                Query(entity_type, entity_id, correlation_id, domain, event_type,
                      bounds["since"], bounds["until"], after,
                      PAGE if left is None else min(left, PAGE), visible_to)
            )  # fmt: skip
            yield from page
            if len(page) < PAGE:
                return
            after = page[-1].seq
            left = None if left is None else left - len(page)

    def history(self, entity: str) -> Iterator[Receipt]:
        """Every receipt about the entity, all revisions, in ``seq`` order."""
        return self.query(entity=entity)

    def trace(self, correlation_id: str) -> Iterator[Receipt]:
        return self.query(correlation_id=correlation_id)

    def current(self, entity: str, *, include_voided: bool = False) -> list[Receipt]:
        """The current view: the latest revision of each logical event about the entity."""
        heads = self.store.current(*self._entity(entity))
        return [r for r in heads if include_voided or r.op != "void"]

    def _entity(self, ref: str) -> tuple[str, str]:
        """``TYPE:ID`` split, its type checked against the catalog."""
        entity_type, entity_id = split_entity(ref)
        known = {t for event_type in self.catalog for t in event_type.entity_types}
        if entity_type not in known:
            raise ValidationError(
                f"unknown entity type {entity_type!r}",
                [ErrorDetail("/entity", _unknown("entity type", entity_type, known))],
            )
        return entity_type, entity_id

    def size(self) -> int:
        return self.store.size()

    def grant(self, entity: str, user_id: str, *, granted_by: str = SERVICE_ROLE) -> None:
        """Let ``user_id`` read every receipt about ``entity`` (TYPE:ID), e.g. a community's
        members or a partnership's parties. Idempotent."""
        self.store.grant(*split_entity(entity), user_id, granted_by)

    # --- the verifiable log --------------------------------------------------------------------

    def _stamp(self) -> str:
        return format_time(self._clock())

    def integrate(self) -> TreeHead:
        """Extend the Merkle tree over every sequenced receipt."""
        return merkle.integrate(self.store, self._stamp)

    def checkpoint(self, signer: Signer | None = None) -> StoredCheckpoint:
        """Integrate, prove consistency with the previous checkpoint, sign and store a new one.
        Only the ledger's current key signs (the first key used is recorded as the ledger's)."""
        signer = signer or self.signer
        if signer is None:
            current = self.current_key()
            if current is not None:
                raise SigningKeyError(
                    f"no private key for the ledger's signing key {current.to_key_string()}: "
                    f"{keys.HOW_TO_POINT}"
                )
            raise SigningKeyError("no signing key; create one with `receipts keys generate`")
        return merkle.sign_checkpoint(self.store, signer, self._stamp)

    # --- the signing keys ----------------------------------------------------------------------

    def key_history(self) -> list[StoredKey]:
        """The ledger's signing keys, first to current, each rotation statement checked."""
        with self.store.read() as txn:
            keys.chain(txn)
            return txn.keys()

    def current_key(self) -> Verifier | None:
        """The key that signs the ledger's next checkpoint (None before the first is recorded)."""
        with self.store.read() as txn:
            chain = keys.chain(txn)
        return None if chain is None else chain.current

    def _recorded_key(self) -> Verifier | None:
        """The last recorded key, unchecked (only to find its file)."""
        with self.store.read() as txn:
            records = txn.keys()
        with suppress(ReceiptsError):
            return Verifier.from_key_string(records[-1].verifier_key) if records else None
        return None

    def check_signer(self, signer: Signer) -> None:
        """Raise SigningKeyError, naming both keys, unless ``signer`` is the ledger's current
        key or may become its first."""
        with self.store.read() as txn:
            keys.check_signer(txn, signer)

    def generate_key(self, path: Path, origin: str) -> Signer:
        """Make the ledger's first signing key: written to a new file at ``path`` (0600), then
        recorded. Refused if the ledger has a key (recorded, or signing its checkpoints)."""
        with self.store.read() as txn:
            keys.check_no_key(txn)
        signer = keys.generate_key(path, origin)
        try:
            with self.store.write() as txn:
                keys.check_no_key(txn)  # again, under the write lock: one first key
                keys.require_signer(txn, signer, self._stamp())
        except BaseException:
            path.unlink(missing_ok=True)  # ours: made above, never recorded
            raise
        self.signer = signer
        return signer

    def rotate_key(self, path: Path, new: Signer | None = None) -> StoredKey:
        """Hand checkpoint signing over from the current key (``self.signer``) to ``new``
        (default: a new key of the same name), written to a new file at ``path``. Records a
        rotation statement both keys sign; checkpoints after the latest use the new key."""
        old = self.signer
        if old is None:
            raise SigningKeyError("no signing key to rotate from; `receipts keys generate` first")
        new = new or Signer.generate(old.name)
        with self.store.read() as txn:
            keys.check_signer(txn, old)
        keys.write_key(path, new)
        try:
            with self.store.write() as txn:
                record = keys.rotate(txn, old, new, self._stamp())
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        self.signer = new
        return record

    def prove(self, receipt_id: str, size: int | None = None) -> Bundle:
        """An offline bundle: the receipt's entry and its inclusion proof in a signed checkpoint."""
        receipt = self.get(receipt_id)
        with self.store.read() as txn:
            checkpoint = txn.checkpoint(size)
            if checkpoint is None:
                what = "no checkpoint yet" if size is None else f"no checkpoint of size {size}"
                raise NotFoundError(what, [ErrorDetail("/size", "run `receipts checkpoint` first")])
            if receipt.seq >= checkpoint.size:
                raise NotFoundError(
                    f"receipt seq {receipt.seq} is not covered by the checkpoint of size "
                    f"{checkpoint.size}",
                    [ErrorDetail("/size", "run `receipts checkpoint` to cover it")],
                )
            hashes = merkle.inclusion_proof(txn, receipt.seq, checkpoint.size)
            rotations = keys.rotations_for(txn, checkpoint.size)
        try:  # never hand out a proof that does not prove: the row or the tree was altered
            signed = Checkpoint.from_text(parse_note(checkpoint.note)[0])
            verify_inclusion(receipt.leaf_hash, receipt.seq, signed.size, hashes, signed.root_hash)
        except (VerificationError, FormatError):
            raise tampered(
                receipt.seq, receipt.id,
                f"it does not prove into the signed checkpoint of size {checkpoint.size}",
            ) from None  # fmt: skip
        proof = TlogProof(receipt.seq, hashes, checkpoint.note)
        return Bundle(receipt.entry(), proof.to_text(), tuple(rotations))

    def consistency(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 consistency proof between two integrated tree sizes."""
        with self.store.read() as txn:
            return merkle.consistency_proof(txn, old, new)

    def root(self, size: int | None = None) -> TreeHead:
        with self.store.read() as txn:
            n = txn.tree_size() if size is None else size
            return TreeHead(n, merkle.root_at(txn, n))

    def audit(
        self, verifier: Verifier | None = None, progress: Callable[[int], None] | None = None
    ) -> AuditReport:
        """Re-derive every receipt's bytes and leaf hash, rebuild the tree, check every stored
        node, tree head and checkpoint — each checkpoint signed by the ledger's key at its size,
        following the recorded rotations from ``verifier`` (default: the ledger's first key);
        ``TamperedError`` names the first altered receipt."""
        with self.store.read() as txn:
            chain = keys.chain(txn, verifier)
        if chain is None:  # no key recorded yet: the given key, or the one loaded
            trusted = verifier or (self.signer.verifier() if self.signer else None)
            chain = None if trusted is None else KeyChain.follow(trusted)
        return audit(self.store, chain, progress, self.validator)


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {close[0]!r}?" if close else "see `receipts catalog list`"
    return f"unknown {what} {name!r} in the catalog; {hint}"


def _check_filters(catalog: Catalog, domain: str | None, event_type: str | None) -> None:
    problems = []
    if domain is not None and domain not in catalog.domains:
        problems.append(ErrorDetail("/domain", _unknown("domain", domain, catalog.domains)))
    if event_type is not None:
        spec = catalog.types.get(event_type)
        if spec is None:
            message = _unknown("event type", event_type, catalog.types)
            problems.append(ErrorDetail("/event_type", message))
        elif domain is not None and domain in catalog.domains and spec.domain != domain:
            message = f"event type {event_type!r} belongs to domain {spec.domain!r}"
            problems.append(ErrorDetail("/event_type", message))
    if problems:
        raise ValidationError("bad query filter: nothing could match", problems)


def _time_arg(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return normalize_time(value)
    except ValueError as exc:
        raise ValidationError(f"bad --{name}", [ErrorDetail(f"/{name}", str(exc))]) from None


# A new receipt made ahead of its commit (``Ledger.prebuild``): a ``Receipt`` as a plain tuple
# (it crosses a process boundary), with seq 0 until the commit gives it one.
Built = tuple[Any, ...]
# What Pending holds, as a plain tuple too. The request may be None beside a receipt made ahead
# with an id of its own making (``Ledger.prebuild``): it is new, so nothing compares with it.
Item = tuple[Request | None, str, str, Built | None]


class Pending(NamedTuple):
    """A validated request waiting to be committed: who writes it, where errors point, and
    its receipt if that was made ahead (``Ledger.prebuild``)."""

    request: Request
    producer: str
    pointer: str
    built: Built | None = None


class _Batch:
    """One write transaction: ids, revision heads and seqs resolved under the write lock."""

    def __init__(self, txn: WriteTxn, now: str) -> None:
        self.txn = txn
        self.now = now
        self.by_id: dict[str, Receipt] = {}
        self.heads: dict[str, Receipt] = {}
        self.new: list[Receipt] = []  # the receipts this transaction inserts, in seq order

    def run(self, pending: Iterable[Item], ids: list[str], targets: list[str]) -> list[Receipt]:
        if ids or targets:
            self.by_id = self.txn.find(ids + targets)
            self.heads = self.txn.heads(
                {self.by_id[t].logical_id for t in targets if t in self.by_id}
            )
        out: list[Receipt] = []
        # The store consumes the receipts as they are built: PostgreSQL stores the rows already
        # sent while the next ones are made.
        self.txn.insert(self._build(pending, self.txn.next_seq(), out))
        return out

    def _build(self, pending: Iterable[Item], seq: int, out: list[Receipt]) -> Iterator[Receipt]:
        """The new receipts, in seq order; ``out`` gets every request's receipt (new or prior).
        ``pending`` holds (request, producer, pointer, built) like ``Pending``."""
        new, now = self.new, self.now
        for request, producer, pointer, built in pending:
            if built is None:
                assert request is not None  # only a receipt made ahead may come without it
                receipt_id = request.id or str(uuid_utils.uuid7())
            else:
                receipt_id = built[1]
            prior = self.by_id.get(receipt_id)
            if prior is not None:
                assert request is not None  # an id of the ledger's making is new
                if producer == "client" and prior.owner_user_id != request.owner_user_id:
                    raise IdConflictError(
                        f"receipt id {receipt_id} is already used",
                        [ErrorDetail(f"{pointer}/id", "already used; choose another id")],
                    )
                _same_or_conflict(prior, request, producer, pointer)
                out.append(prior)
                continue
            if built is not None:  # a new assert, made ahead (Ledger.prebuild): give it its seq
                receipt = Receipt._make((seq, *built[1:]))
            else:
                assert request is not None
                head = (
                    None  # an assert starting its own logical event, the usual case
                    if request.op == "assert" and request.logical_id is None
                    else self._head(request, producer, pointer)
                )
                receipt = _make(seq, pointer, _entry(request, receipt_id, producer, now, head))
            seq += 1
            self.by_id[receipt_id] = self.heads[receipt.logical_id] = receipt
            out.append(receipt)
            new.append(receipt)
            yield receipt

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
        if target is not None and producer == "client":
            head = self.heads.get(target.logical_id, target)
            if not _owns(request, target) or not _owns(request, head):
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


def _owns(request: Request, receipt: Receipt) -> bool:
    """Whether an end user's request (its owner_user_id is the user's id) owns ``receipt``."""
    return request.owner_user_id is not None and receipt.owner_user_id == request.owner_user_id


def _referenced(requests: Sequence[Any]) -> tuple[list[str], list[str]]:
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
