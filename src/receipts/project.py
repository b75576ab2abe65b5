"""The projector: files every receipt under the derived states' keys it folds into (the
index ``Ledger.state`` reads), and checks the lifecycle rules at write.

The ledger files the receipts it writes in the transaction that writes them, so its index is
never behind its own writes. Rows it did not write (direct SQL inserts on PostgreSQL, a
ledger from before the states existed, new state definitions) are filed from a persisted
cursor: on the next write, or before the next answer (``catch_up``). The index is a function
of the journal and the definitions only: made again from nothing it is the same, row for row.

Most states are keyed by the receipt's entity alone: those are filed by one SQL statement over
a range of seqs (``file_by_entity``), no receipt read into Python. The others (keys from the
payload, a lift filed under its entity's earlier keys) are filed here, from their receipts.
The index follows the journal's columns; whether the columns are the receipt's hashed bytes
is the audit's to say (and a read that folds an altered row refuses it, naming its seq).
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from .catalog import Catalog, StateDef
from .catalog.states import SAME_ENTITY
from .errors import ErrorDetail, RuleViolationError, TamperedError
from .fold import Answer, Key, fold, key_text, own_key, resolve, violations
from .model import Receipt
from .store.base import ReadTxn, Row, WriteTxn, checked_receipt

NAME: Final = "states"  # the projector's row in ledger_projector_v0
PAGE: Final = 5000
IndexRow = tuple[str, str, int, str]  # state, key (RFC 8785 text), seq, logical_id
ENTITY: Final = ("$entity",)


class Projection:
    """The catalog's states, ready to file receipts and check rules."""

    def __init__(self, catalog: Catalog, *, rules: bool = True) -> None:
        self.states = catalog.states
        self._cursor = -1  # the next seq to file, as this process last left it
        self.rules = rules
        self.by_type: dict[str, list[StateDef]] = {}  # the states keyed in Python
        self.by_entity: list[tuple[str, str, str]] = []  # (event type, state, entity type | '')
        self.ruled_by_entity: dict[str, list[StateDef]] = {}
        self.about: dict[str, list[StateDef]] = {}  # the states naming entities in their values
        # (entity type named, state, source, event types, entity types) of states keyed by the
        # entity: noted in SQL on catch-up where the source can be said in SQL
        self.mentions_by_entity: list[tuple[str, str, Any, list[str], tuple[str, ...] | None]] = []
        for state in self.states.values():
            for event_type in state.steps if state.about else ():
                self.about.setdefault(event_type, []).append(state)
            if all((step.key or state.key) == ENTITY for step in state.steps.values()):
                self.mentions_by_entity += [
                    (named, state.name, source, sorted(state.steps), state.entity_types)
                    for named, source in state.about.items()
                ]
                for event_type in state.steps:
                    self.by_entity += [
                        (event_type, state.name, t) for t in state.entity_types or ("",)
                    ]
                    if state.rules:
                        self.ruled_by_entity.setdefault(event_type, []).append(state)
                continue
            for event_type in state.steps:
                self.by_type.setdefault(event_type, []).append(state)
        # Writing with the rules off is recorded where there are rules to switch off and the
        # catalog has the ledger's own types to record it with.
        self.suspends = (
            not rules
            and any(s.rules for s in self.states.values())
            and "lifecycle_rules_suspended" in catalog.types
        )
        names = sorted((name, s.digest) for name, s in self.states.items())
        self.digest = hashlib.sha256(repr(names).encode()).hexdigest()

    # --- filing ---------------------------------------------------------------------------------

    def rows(self, txn: ReadTxn, receipts: Iterable[Receipt]) -> list[IndexRow]:
        """The index rows of ``receipts`` for the states not keyed by the entity alone (in seq
        order; earlier ones may name the entity keys of later ``same_entity`` events)."""
        rows: list[IndexRow] = []
        linked: dict[tuple[str, str, str], list[str]] = {}  # (state, entity) -> its keys
        stored: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for r in receipts:
            for state in self.by_type.get(r.event_type, ()):
                step = state.steps[r.event_type]
                link = (state.name, r.entity_type, r.entity_id)
                if step.key == (SAME_ENTITY,):
                    entity = (r.entity_type, r.entity_id)
                    if entity not in stored:
                        stored[entity] = txn.entity_state_keys(*entity)
                    keys = [k for s, k in stored[entity] if s == state.name]
                    keys += [k for k in linked.get(link, []) if k not in keys]
                else:
                    key = own_key(state, r)
                    keys = [] if key is None else [key_text(key)]
                    for k in keys:
                        if k not in linked.setdefault(link, []):
                            linked[link].append(k)
                rows += [(state.name, k, r.seq, r.logical_id) for k in keys]
        return rows

    def _file(
        self, txn: WriteTxn, receipts: Sequence[Receipt], skip: Iterable[str] = ()
    ) -> list[IndexRow]:
        """File ``receipts`` for the states not keyed by the entity alone, and note the
        entities their values name (a state's ``about``; not for the states in ``skip``,
        noted in SQL); returns the index rows."""
        rows = self.rows(txn, receipts)
        txn.add_state_index(rows)
        txn.add_state_mentions(self._mentions(receipts, rows, frozenset(skip)))
        return rows

    def _mentions(
        self, receipts: Sequence[Receipt], rows: list[IndexRow], skip: frozenset[str]
    ) -> list[tuple[str, str, str]]:
        """``(entity, state, key)`` for each entity a receipt names in a state's value (its
        ``about``), under the keys it files in: from ``rows``, or its entity's."""
        filed: dict[tuple[str, int], list[str]] = {}
        for name, key, seq, _ in rows:
            filed.setdefault((name, seq), []).append(key)
        out: dict[tuple[str, str, str], None] = {}
        for r in receipts:
            for state in self.about.get(r.event_type, ()):
                if state.name in skip:
                    continue
                keys = filed.get((state.name, r.seq))
                if keys is None:  # keyed by its entity, filed in SQL
                    own = own_key(state, r)
                    keys = [] if own is None else [key_text(own)]
                for entity_type, source in state.about.items():
                    value = resolve(source, r)
                    if isinstance(value, str) and value:
                        out.update(((f"{entity_type}:{value}", state.name, k), None) for k in keys)
        return list(out)

    def behind(self, txn: ReadTxn) -> bool:
        """Whether the index misses receipts (or was made by other definitions)."""
        found = txn.projector(NAME)
        return found != (txn.next_seq(), self.digest)

    def catch_up(self, txn: WriteTxn) -> int:
        """File every receipt the index misses; returns how many receipts were read. Other
        definitions than the index was made by: it is made again from the first receipt."""
        found = txn.projector(NAME)
        start = found[0] if found is not None and found[1] == self.digest else 0
        if found is not None and start == 0:
            txn.clear_state_index()
        end = txn.next_seq()
        txn.file_by_entity(self.by_entity, start, end)
        left = txn.mention_by_entity(self.mentions_by_entity, start, end)
        in_sql = {state for _, state, _, _, _ in self.mentions_by_entity} - left
        about = {t for t, states in self.about.items() if any(s.name not in in_sql for s in states)}
        types = sorted(self.by_type.keys() | about)
        for first in range(start, end, PAGE):
            page = list(_intact(txn.rows_of_types(types, first, min(first + PAGE, end))))
            self._file(txn, page, skip=in_sql)
        if found != (end, self.digest):
            txn.set_projector(NAME, end, self.digest)
        return end - start

    def rebuild(self, txn: WriteTxn) -> int:
        txn.clear_state_index()
        txn.set_projector(NAME, 0, self.digest)
        return self.catch_up(txn)

    def file_new(
        self,
        txn: WriteTxn,
        new: Sequence[Receipt],
        now: str,
        pointers: Callable[[], dict[int, str]],
    ) -> None:
        """File the receipts this transaction inserted (and first what the index missed before
        them), then check the lifecycle rules they touch: ``RuleViolationError`` (pointing at
        ``pointers()[seq]``, the request of the receipt at that seq) aborts the transaction."""
        if not new:
            return
        # Seqs are dense: if this process's last commit filed up to the first new seq, nobody
        # wrote since, and the stored cursor need not be read.
        cursor, self._cursor = self._cursor, -1  # until this transaction commits
        if cursor != new[0].seq and txn.projector(NAME) != (new[0].seq, self.digest):
            self.catch_up(txn)  # files the new rows too
            rows = self.rows(txn, new)
        else:
            txn.file_by_entity(self.by_entity, new[0].seq, new[-1].seq + 1)
            rows = self._file(txn, new)
            txn.set_projector(NAME, new[-1].seq + 1, self.digest)
        if self.rules:
            by_entity = [
                (state.name, key_text((r.entity,)), r.seq, r.logical_id)
                for r in new
                for state in self.ruled_by_entity.get(r.event_type, ())
                if state.entity_types is None or r.entity_type in state.entity_types
            ]
            self._check(txn, rows + by_entity, new, now, pointers)

    def committed(self, new: Sequence[Receipt]) -> None:
        """The transaction that filed ``new`` committed: the stored cursor is past them."""
        if new:
            self._cursor = new[-1].seq + 1

    # --- answers --------------------------------------------------------------------------------

    def receipts(self, txn: ReadTxn, keys: Sequence[tuple[StateDef, Key]]) -> list[list[Receipt]]:
        """Every revision of every logical event filed under each state's key: one read."""
        texts = [(state.name, key_text(key)) for state, key in keys]
        found = txn.state_receipts(texts) if texts else {}
        return [found[text] for text in texts]

    # --- rules ----------------------------------------------------------------------------------

    def _check(
        self,
        txn: WriteTxn,
        rows: list[IndexRow],
        new: Sequence[Receipt],
        now: str,
        pointers: Callable[[], dict[int, str]],
    ) -> None:
        """Refuse the new receipts if they break a transition that held before them: each
        state and key they touch is folded without them and with them."""
        first = new[0].seq
        self._check_linked(rows, new, pointers)
        touched = list(dict.fromkeys((s, k) for s, k, _, _ in rows if self.states[s].rules))
        made = {r.seq: r for r in new}
        filed = txn.state_receipts(touched, made) if touched else {}  # one read for all keys
        for name, text in touched:
            state = self.states[name]
            key = tuple(orjson.loads(text))
            receipts = filed[(name, text)]
            after = violations(state, key, receipts)
            if not after:
                continue  # the common case: one light fold
            known = {v["logical_id"] for v in violations(state, key, receipts, at_seq=first)}
            broken = [v for v in after if v["logical_id"] not in known]
            if broken:
                before = fold(state, key, receipts, now=now, at_seq=first)
                pointer = pointers().get(broken[0]["seq"], "")
                raise _violation(state, key, broken[0], before, pointer)

    def _check_linked(
        self, rows: list[IndexRow], new: Sequence[Receipt], pointers: Callable[[], dict[int, str]]
    ) -> None:
        """A rule's ``same_entity`` event (a lift) must find its entity's earlier receipts."""
        filed = {(s, seq) for s, _, seq, _ in rows}
        for r in new:
            for state in self.by_type.get(r.event_type, ()):
                step = state.steps[r.event_type]
                if state.rules and step.key == (SAME_ENTITY,) and (state.name, r.seq) not in filed:
                    entity = f"{r.entity_type}:{r.entity_id}"
                    broken = {"event_type": r.event_type, "found": "nothing",
                              "allowed": [f"an earlier receipt about {entity}"]}  # fmt: skip
                    empty = Answer(state.name, (), {}, [])
                    pointer = pointers().get(r.seq, "")
                    raise _violation(state, (entity,), broken, empty, pointer)


class Suspension:
    """A writer's switch of the lifecycle rules off (a back-fill), as the ledger records it:
    ``lifecycle_rules_suspended`` with its first receipt written unchecked, and
    ``lifecycle_rules_resumed`` when it closes (the ``ledger`` domain of the catalog)."""

    def __init__(self, reason: str) -> None:
        program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
        self.writer = f"{program} on {socket.gethostname()} (pid {os.getpid()})"
        self.reason = reason
        self.receipt_id: str | None = None  # the suspension, once recorded

    def suspended(self) -> dict[str, Any]:
        return self._request("lifecycle_rules_suspended", {"reason": self.reason})

    def resumed(self) -> dict[str, Any]:
        return self._request("lifecycle_rules_resumed", {"suspension": self.receipt_id})

    def _request(self, event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
        payload = {**payload, "writer": self.writer}
        return {"domain": "ledger", "event_type": event_type, "entity_type": "ledger",
                "entity_id": "lifecycle_rules", "payload": payload}  # fmt: skip


def _intact(rows: Iterable[Row]) -> Iterator[Receipt]:
    """The receipts of ``rows``, leaving out a row that is not one (a direct insert the log
    cannot take, an altered row): it is the audit's to name, and it must not stop the writes
    of everyone else. Left out the same way every time, so a rebuild files what this did."""
    for row in rows:
        try:
            yield checked_receipt(row)
        except TamperedError:
            continue


def _violation(
    state: StateDef, key: Key, broken: dict[str, Any], before: Answer, pointer: str
) -> RuleViolationError:
    found, event_type = broken["found"], broken["event_type"]
    needs = " or ".join(map(repr, broken["allowed"]))
    consulted = ", ".join(f"seq {e['seq']} {e['event_type']}" for e in before.evidence)
    message = (
        f"rule {state.name!r} refuses {event_type} for {state.name} {list(key)}: it needs "
        f"{needs}, found {found!r} (receipts consulted: {consulted or 'none'})"
    )
    return RuleViolationError(
        message,
        [ErrorDetail(f"{pointer}/event_type", f"{state.name} is {found!r}; needs {needs}")],
        rule=state.name,
        found=found,
        consulted=before.evidence,
    )
