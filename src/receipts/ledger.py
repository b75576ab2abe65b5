"""The ledger facade: append, revise, query.

Contract:
- ``append`` MUST NOT return before every receipt it returns is durably committed.
- A batch is all-or-nothing: if any request is invalid, conflicts or is forbidden, nothing
  of the batch is written.
- The only mutations are inserts; a correction is a new receipt that supersedes the head.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Final

import orjson

from . import access, keys, merkle
from .answer import AnswerBundle
from .audit import AuditReport, audit
from .batch import Batch, PendingTuple, ToCommit, make_ahead, referenced, requests_of
from .bundle import Bundle
from .catalog import Catalog, StateDef
from .dburl import DEFAULT_DB, DatabaseUrl
from .errors import (
    ConflictError,
    ErrorDetail,
    FormatError,
    NotFoundError,
    ReceiptsError,
    SigningKeyError,
    ValidationError,
    VerificationError,
)
from .fold import Answer, Key, fold, key_text, rfc8785_text
from .merkle import TreeHead
from .model import Receipt, format_time, normalize_time, normalize_uuid, split_entity
from .project import Projection, Suspension
from .store import open_store
from .store.base import Query, Store, StoredCheckpoint, StoredKey, tampered
from .tlog import Checkpoint, KeyChain, Signer, TlogProof, Verifier, parse_note, verify_inclusion
from .validate import Validator

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
        rules: bool = True,
        rules_off_reason: str = "a back-fill (Ledger opened with rules=False)",
    ) -> None:
        self.store = store
        self.integrate_on_append = (
            store.integrate_on_append if integrate_on_append is None else integrate_on_append
        )
        self.catalog = catalog or Catalog.load()
        self.validator = Validator(self.catalog)
        self.projection = Projection(self.catalog, rules=rules)
        self.signer = signer
        self._clock = clock
        # Writing with the rules off is recorded: a lifecycle_rules_suspended receipt in the
        # transaction of the first receipt written so, lifecycle_rules_resumed on close.
        self._rules_off = Suspension(rules_off_reason) if self.projection.suspends else None

    @classmethod
    def open(
        cls,
        url: str | Path | DatabaseUrl | None = None,
        *,
        catalog_files: Iterable[str | Path] = (),
        signer: Signer | None = None,
        rules: bool = True,
        rules_off_reason: str = "a back-fill (Ledger opened with rules=False)",
        catalog: Catalog | None = None,
    ) -> Ledger:
        """Open (and create or migrate) the ledger at ``url``; default ``receipts.db`` (the
        command line's default, ``$RECEIPTS_DB``, is ``dburl.default_url``).

        The checkpoint signer defaults to the key file (``DatabaseUrl.key_path``), or the one a
        rotation wrote beside it that holds the ledger's current key, if there is one.
        ``rules=False`` writes without checking the lifecycle rules (a back-fill), and records
        that it does, with ``rules_off_reason`` (docs/doors.md). ``catalog`` is a catalog made
        in memory, instead of the built-in one and ``catalog_files``.
        """
        where = DatabaseUrl.parse(url or DEFAULT_DB)
        catalog = catalog or Catalog.load(catalog_files)
        store = open_store(where, catalog)
        ledger = cls(store, catalog, signer=signer, rules=rules, rules_off_reason=rules_off_reason)
        if signer is None:
            try:
                ledger.signer = keys.find_signer(where.key_path(), ledger._recorded_key())
            except BaseException:
                ledger.close()
                raise
        return ledger

    def close(self) -> None:
        """Close the store; a writer that suspended the rules first records that it resumes
        them (if it cannot, the suspension stays open in the ledger: what it claims is true)."""
        off, self._rules_off = self._rules_off, None  # recorded once, if closed twice too
        try:
            if off is not None and off.receipt_id is not None:
                with suppress(ReceiptsError):
                    self.append(off.resumed())
        finally:
            self.store.close()

    @property
    def location(self) -> str:
        """The database URL as it may be printed (without a password)."""
        return DatabaseUrl.parse(self.store.url).shown()

    @property
    def migrations_applied(self) -> list[str]:
        """The schema migrations applied when the ledger was opened."""
        return list(self.store.applied)

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing -------------------------------------------------------------------------------

    def pending(
        self,
        requests: Sequence[Any],
        *,
        producer: str = SERVICE_ROLE,
        pointers: Sequence[str] | None = None,
    ) -> Iterator[PendingTuple]:
        """The append pipeline's first step: raw requests validated into pending ones,
        ``(request, producer, pointer)`` (a ``Pending`` as a plain tuple), the i-th for
        ``requests[i]``. Pointers in errors start with the request's index (or with
        ``pointers[i]``, e.g. a line of a JSON Lines file).

        All or nothing, as it goes: yields while every request so far is valid; after a problem
        it yields nothing more, checks the rest, and once exhausted raises one error naming
        every problem of every request. ``list()`` it to validate a whole batch first."""
        prefixes = (
            list(pointers) if pointers is not None else [f"/{i}" for i in range(len(requests))]
        )
        valid = self.validator.iter_valid(requests, producer, pointers=prefixes)
        return zip(valid, repeat(producer), prefixes)

    def append(self, request: dict[str, Any], *, producer: str = SERVICE_ROLE) -> Receipt:
        """Validate and durably store one receipt request; returns the stored receipt."""
        return self.commit(list(self.pending([request], producer=producer, pointers=[""])))[0]

    def append_batch(
        self,
        requests: Sequence[dict[str, Any]],
        *,
        producer: str = SERVICE_ROLE,
        pointers: Sequence[str] | None = None,
    ) -> list[Receipt]:
        """Store a batch atomically. Pointers in errors start with the request's index
        (or with ``pointers[i]``, e.g. a line of a JSON Lines file)."""
        # Validated as the batch streams to the store: PostgreSQL stores the rows already sent
        # while the next requests are checked and built. The lookups a batch needs (ids it
        # reuses, receipts it supersedes) are made first, from the requests' raw ids.
        pending = self.pending(requests, producer=producer, pointers=pointers)
        ids, targets = referenced(requests)
        try:
            return self._store(pending, ids, targets)
        except (ConflictError, NotFoundError, ValidationError):
            # Refused while building: problems of the requests not yet validated win, exactly
            # as when the whole batch is validated before it is stored.
            _validate_the_rest(pending)
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

    def commit(self, items: Sequence[ToCommit]) -> list[Receipt]:
        """Durably store validated requests in ONE transaction (all or nothing): pending ones
        (``pending``), or their receipts made ahead (``prebuild``)."""
        requests = requests_of(items)
        ids = [r.id for r in requests if r.id]
        return self._store(items, ids, [r.supersedes_id for r in requests if r.supersedes_id])

    def _store(
        self, items: Iterable[ToCommit], ids: list[str], targets: list[str]
    ) -> list[Receipt]:
        """Store ``items`` in one transaction. ``ids`` and ``targets`` must include every
        request's id and supersedes_id (they are looked up before the first row is written)."""
        now = format_time(self._clock())
        off = self._rules_off if self._rules_off and self._rules_off.receipt_id is None else None
        if off is not None:  # recorded with the first receipt written unchecked
            items = chain(self.pending([off.suspended()], pointers=[""]), items)
        with self.store.write() as txn:
            batch = Batch(txn, now)
            stored = batch.run(items, ids, targets)
            self.projection.file_new(txn, batch.new, now, batch.pointer_of)
            if self.integrate_on_append:
                merkle.integrate_appended(txn, batch.new, now)
        self.projection.committed(batch.new)
        if off is not None:
            off.receipt_id = stored[0].id
            return stored[1:]
        return stored

    def commit_groups(
        self, groups: Sequence[Sequence[ToCommit]]
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

    def prebuild(self, pending: Sequence[PendingTuple]) -> Sequence[ToCommit]:
        """Make the receipts of a group of new asserts ahead of their commit: ids, entry bytes
        and leaf hashes, stamped now. ``commit`` then only gives them their seqs, unless an id
        turns out to be stored already (an idempotent retry gets its first receipt, as always).
        Lets another process do this work: the server's HTTP process, for its writer process.

        All or nothing: a group holding a revision (which needs the head it supersedes, read
        at commit) is returned as it is, so that the receipts of one request always share one
        ``recorded_at``. Raises ``ValidationError`` where ``commit`` would (a payload that
        cannot be canonicalized)."""
        if not all(r.op == "assert" and r.logical_id is None for r, _, _ in pending):
            return pending
        return make_ahead(pending, format_time(self._clock()))

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

    def receipt_at(self, seq: int) -> Receipt:
        """The receipt at ``seq``; ``NotFoundError`` if there is none."""
        found = list(self.query(after=seq - 1, limit=1))
        if not found or found[0].seq != seq:
            raise NotFoundError(f"no receipt at seq {seq}", [ErrorDetail("/seq", "not found")])
        return found[0]

    def readable(self, receipt: Receipt, user_id: str | None) -> bool:
        """Whether ``receipt`` is visible to ``user_id`` (None: a reader of everything), by the
        rules of ``access``: its owner, or a user granted its entity."""
        return access.readable(receipt, user_id, self.store.granted)

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

    # --- derived states ("doors", docs/doors.md) -----------------------------------------------

    def state(
        self,
        name: str,
        key: Sequence[str],
        *,
        at_seq: int | None = None,
        as_of: str | None = None,
        known_at: str | None = None,
        visible_to: str | None = None,
    ) -> Answer:
        """The derived state ``name`` of ``key`` (its parts, as the state's ``key`` names
        them), with the receipts that determined it. As of what the ledger knew: before
        ``at_seq``, or recorded by ``known_at``; as of valid time: occurred by ``as_of`` (timed
        facts judged then). ``visible_to``: only receipts that user may read count."""
        state, parts, receipts = self._state_receipts(name, key, visible_to)
        bounds = {k: _time_arg(k, v) for k, v in (("as_of", as_of), ("known_at", known_at))}
        return fold(state, parts, receipts, now=self._stamp(), at_seq=at_seq,
                    valid_at=bounds["as_of"], known_at=bounds["known_at"])  # fmt: skip

    def prove_state(
        self,
        name: str,
        key: Sequence[str],
        *,
        at_seq: int | None = None,
        as_of: str | None = None,
        visible_to: str | None = None,
    ) -> AnswerBundle:
        """The answer of ``state`` as of the latest signed checkpoint (or ``at_seq`` within
        it), as an offline bundle: the definition and every receipt folded, each with its
        inclusion proof in that checkpoint (``receipts verify-answer``)."""
        latest = self.latest_checkpoint()
        if latest is None:
            raise NotFoundError(
                "no checkpoint yet", [ErrorDetail("/size", "run `receipts checkpoint` first")]
            )
        if at_seq is not None and at_seq > latest.size:
            raise ValidationError(
                f"seq {at_seq} is beyond the latest checkpoint (size {latest.size})",
                [ErrorDetail("/at_seq", f"expected at most {latest.size}")],
            )
        bound = latest.size if at_seq is None else at_seq
        state, parts, receipts = self._state_receipts(name, key, visible_to)
        receipts = [r for r in receipts if r.seq < bound]
        answer = fold(state, parts, receipts, now=self._stamp(), at_seq=bound,
                      valid_at=_time_arg("as_of", as_of))  # fmt: skip
        bundles = tuple(self.prove(r.id, latest.size) for r in receipts)
        described = {"name": state.name, "domain": state.domain, "definition": state.definition}
        return AnswerBundle(answer.to_dict(), described, bundles)

    def _state_receipts(
        self, name: str, key: Sequence[str], visible_to: str | None
    ) -> tuple[StateDef, Key, list[Receipt]]:
        """The state, its key checked, and the receipts filed under it that the reader sees."""
        state = self.catalog.state(name)
        parts = tuple(key)
        if len(parts) != len(state.key) or not all(type(p) is str and p for p in parts):
            raise ValidationError(
                f"state {name!r} is keyed by {len(state.key)} part(s)",
                [ErrorDetail("/key", f"expected {' '.join(state.key_names)}")],
            )
        return state, parts, self._filed([(state, parts)], visible_to)[0]

    def _filed(
        self, keys: Sequence[tuple[StateDef, Key]], visible_to: str | None
    ) -> list[list[Receipt]]:
        """The receipts filed under each state's key that the reader sees, in one read, the
        index caught up first."""
        self._states_caught_up()
        with self.store.read() as txn:
            found = self.projection.receipts(txn, keys)
        if visible_to is None:
            return found
        granted: dict[tuple[str, str], bool] = {}  # an entity's grant, looked up once

        def lookup(entity_type: str, entity_id: str, user_id: str) -> bool:
            entity = (entity_type, entity_id)
            if entity not in granted:
                granted[entity] = self.store.granted(entity_type, entity_id, user_id)
            return granted[entity]

        return [[r for r in rs if access.readable(r, visible_to, lookup)] for rs in found]

    def why(
        self,
        entity: str,
        *,
        at_seq: int | None = None,
        as_of: str | None = None,
        known_at: str | None = None,
        visible_to: str | None = None,
    ) -> list[Answer]:
        """Every derived state about ``entity`` (TYPE:ID): the states its receipts file
        under, those keyed by it (a sanctions target, a club member) and those whose value
        names it (a community's member: the state's ``about``), with evidence."""
        entity_type, entity_id = split_entity(entity)
        bounds = {k: _time_arg(k, v) for k, v in (("as_of", as_of), ("known_at", known_at))}
        self._states_caught_up()
        with self.store.read() as txn:
            found = set(txn.entity_state_keys(entity_type, entity_id))
            found.update(txn.state_keys_mentioning(entity))
            for exact, part in (((entity_type, entity_id), entity), ((entity,), entity_id)):
                found.update(txn.state_keys_naming(key_text(exact), rfc8785_text(part)))
        keys = [(self.catalog.states[name], tuple(orjson.loads(text)))
                for name, text in sorted(found) if name in self.catalog.states]  # fmt: skip
        now = self._stamp()
        answers = [
            fold(state, key, receipts, now=now, at_seq=at_seq, valid_at=bounds["as_of"],
                 known_at=bounds["known_at"])
            for (state, key), receipts in zip(keys, self._filed(keys, visible_to), strict=True)
        ]  # fmt: skip
        return [a for a in answers if a.evidence]

    def rebuild_states(self) -> int:
        """Make the derived states' index again from the journal; returns the receipts read."""
        with self.store.write() as txn:
            return self.projection.rebuild(txn)

    def _states_caught_up(self) -> None:
        """Read-your-writes: file what the index misses (rows the ledger did not write)."""
        with self.store.read() as txn:
            behind = self.projection.behind(txn)
        if behind:
            with self.store.write() as txn:
                self.projection.catch_up(txn)

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
        proof, rotations = self._inclusion(receipt.seq, receipt.leaf_hash, size, receipt.id)
        return Bundle(receipt.entry(), proof, tuple(rotations))

    def prove_leaf(
        self, seq: int, leaf_hash: bytes, size: int | None = None
    ) -> tuple[str, list[str]]:
        """The inclusion proof (C2SP tlog-proof text) of the leaf ``leaf_hash`` at ``seq`` in a
        signed checkpoint, and the key rotations since: hashes only, no entry, for anyone who
        holds the leaf hash (an OCN audit event's ``transaction_hash``). NotFoundError if the
        leaf at ``seq`` is not that hash (which says nothing of what it is)."""
        with self.store.read() as txn:
            found = txn.node_hashes([(0, seq)]) if seq < txn.tree_size() else []
        if found != [leaf_hash]:
            raise NotFoundError(
                f"no leaf with this hash at seq {seq}",
                [ErrorDetail("/leaf_hash", "not the leaf hash at this seq in the tree")],
            )
        return self._inclusion(seq, leaf_hash, size, None)

    def _inclusion(
        self, seq: int, leaf_hash: bytes, size: int | None, receipt_id: str | None
    ) -> tuple[str, list[str]]:
        """The tlog-proof text of leaf ``seq`` in the checkpoint of ``size`` (the latest), checked
        against the signed root before it is handed out, and the key rotations up to it."""
        with self.store.read() as txn:
            checkpoint = txn.checkpoint(size)
            if checkpoint is None:
                what = "no checkpoint yet" if size is None else f"no checkpoint of size {size}"
                raise NotFoundError(what, [ErrorDetail("/size", "run `receipts checkpoint` first")])
            if seq >= checkpoint.size:
                raise NotFoundError(
                    f"receipt seq {seq} is not covered by the checkpoint of size {checkpoint.size}",
                    [ErrorDetail("/size", "run `receipts checkpoint` to cover it")],
                )
            hashes = merkle.inclusion_proof(txn, seq, checkpoint.size)
            rotations = keys.rotations_for(txn, checkpoint.size)
        try:  # never hand out a proof that does not prove: the row or the tree was altered
            signed = Checkpoint.from_text(parse_note(checkpoint.note)[0])
            verify_inclusion(leaf_hash, seq, signed.size, hashes, signed.root_hash)
        except (VerificationError, FormatError):
            raise tampered(
                seq, receipt_id,
                f"it does not prove into the signed checkpoint of size {checkpoint.size}",
            ) from None  # fmt: skip
        return TlogProof(seq, hashes, checkpoint.note).to_text(), list(rotations)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The latest signed checkpoint, or None before the first."""
        with self.store.read() as txn:
            return txn.checkpoint()

    def first_checkpoint_over(self, seq: int) -> StoredCheckpoint | None:
        """The first signed checkpoint whose tree holds receipt ``seq`` (None: none yet). It
        never changes once there is one: what an answer pinned to it says stays the same."""
        with self.store.read() as txn:
            return txn.first_checkpoint_over(seq)

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
        raise ValidationError(
            f"bad --{name.replace('_', '-')}", [ErrorDetail(f"/{name}", str(exc))]
        ) from None


def _validate_the_rest(pending: Iterator[PendingTuple]) -> None:
    """Validate what is left of a batch the store did not get to: raises the error naming
    every problem of the batch, if there is any."""
    deque(pending, maxlen=0)
