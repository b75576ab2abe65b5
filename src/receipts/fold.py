"""The fold: a derived state's value from the receipts about its key, with its evidence.

Revisions count exactly as in the current view: each logical event contributes its head
revision (an amend replaces, a restate restores, a void removes), at the place of its first
receipt. Events are folded in ledger order (the ``seq`` of each logical event's first
receipt), so a new receipt always folds last and a rule checked at write sees what a later
answer sees. As of a ``seq`` only receipts before it count (what the ledger knew); as of an
``occurred_at`` time only events that occurred by then, and timed facts are judged at that
time (valid time). Pure: the caller passes the time of "now".
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

import orjson
import rfc8785

from .catalog.states import SAME_ENTITY, StateDef, Step
from .model import Receipt, format_time, parse_time

MISSING: Final = object()
END_OF_TIME: Final = "9999-12-31T23:59:59.999999Z"
Key = tuple[str, ...]


def resolve(source: Any, receipt: Receipt) -> Any:
    """The value ``source`` names in ``receipt`` (MISSING if the payload lacks it)."""
    value: Any
    if isinstance(source, dict):
        if "const" in source:
            return source["const"]
        for option in source["first"]:
            value = resolve(option, receipt)
            if value is not MISSING and value is not None:
                return value
        return MISSING
    if source.startswith("/"):
        value = receipt.payload
        for part in source[1:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(value, dict) and part in value:
                value = value[part]
            elif (
                isinstance(value, list)
                and part.isascii()
                and part.isdigit()
                and int(part) < len(value)
            ):
                value = value[int(part)]
            else:
                return MISSING
        return value
    if source == "$entity":
        return receipt.entity
    return getattr(receipt, source[1:])


def rfc8785_text(value: Any) -> str:
    return rfc8785.dumps(value).decode()


def key_part(value: Any) -> str:
    """A key part as text: a string as it is, any other JSON value as its RFC 8785 text."""
    return value if isinstance(value, str) else rfc8785_text(value)


def key_text(key: Key) -> str:
    """How a key is stored: the RFC 8785 JSON array of its parts (no separator to collide).
    The parts are strings, which orjson writes as RFC 8785 does (tested on every character
    class); anything else goes the long way."""
    if all(type(part) is str for part in key):
        try:
            return orjson.dumps(list(key)).decode()
        except orjson.JSONEncodeError:  # a lone surrogate: rfc8785 says what is wrong
            pass
    return rfc8785_text(list(key))


def own_key(state: StateDef, receipt: Receipt) -> Key | None:
    """The key ``receipt`` files under by its own content (None: it lacks a part, is about
    another entity type, or files under its entity's other keys)."""
    step = state.steps.get(receipt.event_type)
    if step is None or step.key == (SAME_ENTITY,):
        return None
    if state.entity_types is not None and receipt.entity_type not in state.entity_types:
        return None
    parts = [resolve(s, receipt) for s in (step.key or state.key)]
    if any(p is MISSING or p is None for p in parts):
        return None
    return tuple(key_part(p) for p in parts)


@dataclass
class Answer:
    """A state's value for one key, and the receipts that determined it."""

    state: str
    key: Key
    value: dict[str, Any]
    evidence: list[dict[str, Any]]
    violations: list[dict[str, Any]] = field(default_factory=list)
    as_of: dict[str, Any] = field(default_factory=dict)
    definition: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "key": list(self.key),
            "value": self.value,
            "evidence": self.evidence,
            "violations": self.violations,
            "as_of": self.as_of,
            "definition": self.definition,
        }


@dataclass
class _Event:
    head: Receipt
    first_seq: int
    keyed: Receipt  # what says where it files: the head, or for a void the revision it voided


def current_events(
    receipts: Iterable[Receipt], at_seq: int | None = None, known_at: str | None = None
) -> list[_Event]:
    """Each logical event's head revision (before ``at_seq``, recorded by ``known_at``), in
    the order of its first receipt; void heads included (they are evidence of a removal)."""
    heads: dict[str, Receipt] = {}
    live: dict[str, Receipt] = {}  # the latest revision that is not a void
    first: dict[str, int] = {}
    for r in receipts:
        if (at_seq is not None and r.seq >= at_seq) or (
            known_at is not None and r.recorded_at > known_at
        ):
            continue
        lid = r.logical_id
        if lid not in heads or r.revision > heads[lid].revision:
            heads[lid] = r
        if r.op != "void" and (lid not in live or r.revision > live[lid].revision):
            live[lid] = r
        first[lid] = min(first.get(lid, r.seq), r.seq)
    events = [_Event(h, first[lid], live.get(lid, h)) for lid, h in heads.items()]
    events.sort(key=lambda e: e.first_seq)
    return events


def _evidence(head: Receipt) -> dict[str, Any]:
    return {"seq": head.seq, "id": head.id, "logical_id": head.logical_id,
            "event_type": head.event_type, "op": head.op, "revision": head.revision,
            "occurred_at": head.occurred_at}  # fmt: skip


def fold(
    state: StateDef,
    key: Key,
    receipts: Iterable[Receipt],
    *,
    now: str,
    at_seq: int | None = None,
    valid_at: str | None = None,
    known_at: str | None = None,
    entity_keys: Callable[[Receipt], Sequence[Key]] | None = None,
) -> Answer:
    """``state``'s value for ``key`` from ``receipts`` (every revision of every logical event
    that may file under it; others are ignored). ``entity_keys`` gives the keys a
    ``same_entity`` event files under (default: those of its entity's events in
    ``receipts``)."""
    folder = _Folder(state)
    evidence = [
        _evidence(head)
        for head in _fold_into(folder, key, receipts, at_seq, valid_at, known_at, entity_keys)
    ]
    judged_at = valid_at or now
    as_of = {"seq": at_seq, "recorded_at": known_at, "occurred_at": valid_at,
             "judged_at": judged_at}  # fmt: skip
    return Answer(state.name, key, folder.value(judged_at), evidence, folder.violations,
                  as_of, state.digest)  # fmt: skip


def violations(
    state: StateDef, key: Key, receipts: Iterable[Receipt], *, at_seq: int | None = None
) -> list[dict[str, Any]]:
    """The transitions ``fold`` would name as not allowed, and nothing else (what a rule
    checks at write): no value made, no evidence listed."""
    folder = _Folder(state, rules_only=True)
    for _ in _fold_into(folder, key, receipts, at_seq, None, None, None):
        pass
    return folder.violations


def _fold_into(
    folder: _Folder,
    key: Key,
    receipts: Iterable[Receipt],
    at_seq: int | None,
    valid_at: str | None,
    known_at: str | None,
    entity_keys: Callable[[Receipt], Sequence[Key]] | None,
) -> Iterator[Receipt]:
    """Apply to ``folder`` the head of each logical event that files under ``key``, in ledger
    order; yields each head (a void's too: it is evidence of a removal)."""
    state = folder.state
    events = current_events(receipts, at_seq, known_at)
    lookup = entity_keys or _entity_keys_in(state, [e.head for e in events if e.head.op != "void"])
    for event in events:
        head = event.head
        if valid_at is not None and head.occurred_at > valid_at:
            continue
        if key not in _keys(state, event.keyed, lookup):
            continue
        yield head
        if head.op != "void":
            folder.apply(state.steps[head.event_type], head)


def _keys(
    state: StateDef, receipt: Receipt, entity_keys: Callable[[Receipt], Sequence[Key]]
) -> Sequence[Key]:
    step = state.steps.get(receipt.event_type)
    if step is None:
        return ()
    if step.key == (SAME_ENTITY,):
        return entity_keys(receipt)
    key = own_key(state, receipt)
    return () if key is None else (key,)


def _entity_keys_in(
    state: StateDef, heads: Sequence[Receipt]
) -> Callable[[Receipt], Sequence[Key]]:
    by_entity: dict[tuple[str, str], list[Key]] = {}
    for head in heads:
        key = own_key(state, head)
        if key is not None and head.op != "void":
            keys = by_entity.setdefault((head.entity_type, head.entity_id), [])
            if key not in keys:
                keys.append(key)
    return lambda r: by_entity.get((r.entity_type, r.entity_id), [])


class _Folder:
    """Applies steps to one key's value, recording transitions the state does not allow."""

    def __init__(self, state: StateDef, *, rules_only: bool = False) -> None:
        self.state = state
        self.rules_only = rules_only  # only what can break a rule: transitions, timed facts
        self.record: dict[str, Any] = {}
        if state.initial is not None:
            self.record["status"] = state.initial
        self.facts: dict[str, list[dict[str, Any]]] = {
            step.ops["start"]["field"]: [] for step in state.steps.values() if "start" in step.ops
        }
        self.violations: list[dict[str, Any]] = []

    def apply(self, step: Step, r: Receipt) -> None:
        record = self.record
        if step.target is not None:
            found = record.get("status")
            if step.sources is not None and found not in step.sources:
                self._violate(r, found, list(step.sources))
            record["status"] = step.target
            record["since"] = r.occurred_at
        ops = step.ops
        if self.rules_only:
            if "start" in ops:
                self._start(ops["start"], r)
            if "end" in ops:
                self._end(ops["end"], r)
            return
        for name, source in ops.get("set", {}).items():
            value = resolve(source, r)
            if value is not MISSING:
                record[name] = value
        for name, source in ops.get("add", {}).items():
            _add(record.setdefault(name, []), resolve(source, r))
        for name, source in ops.get("remove", {}).items():
            value = resolve(source, r)
            if value in record.get(name, []):
                record[name].remove(value)
        for name, spec in ops.get("put", {}).items():
            member = resolve(spec["key"], r)
            if member is not MISSING:
                attrs = {k: resolve(s, r) for k, s in spec.get("set", {}).items()}
                members = record.setdefault(name, {})
                members[key_part(member)] = {k: v for k, v in attrs.items() if v is not MISSING}
        for name, source in ops.get("delete", {}).items():
            member = resolve(source, r)
            if member is not MISSING:
                record.get(name, {}).pop(key_part(member), None)
        for name in ops.get("count", []):
            record[name] = record.get(name, 0) + 1
        for name, source in ops.get("sum", {}).items():
            value = resolve(source, r)
            if isinstance(value, int | float) and not isinstance(value, bool):
                record[name] = record.get(name, 0) + value
        if "start" in ops:
            self._start(ops["start"], r)
        if "end" in ops:
            self._end(ops["end"], r)

    def _violate(self, r: Receipt, found: Any, allowed: Any) -> None:
        self.violations.append({"seq": r.seq, "id": r.id, "logical_id": r.logical_id,
                                "event_type": r.event_type, "found": found,
                                "allowed": allowed})  # fmt: skip

    def _start(self, spec: dict[str, Any], r: Receipt) -> None:
        seconds = resolve(spec["seconds"], r) if "seconds" in spec else MISSING
        until = None
        if isinstance(seconds, int | float) and not isinstance(seconds, bool) and seconds >= 0:
            try:
                until = format_time(parse_time(r.occurred_at) + timedelta(seconds=seconds))
            except OverflowError:  # beyond year 9999: as good as for ever
                until = END_OF_TIME
        fact_id = resolve(spec["id"], r)
        if fact_id is MISSING:
            return
        fact = {"id": key_part(fact_id), "since": r.occurred_at, "until": until,
                "ended_at": None, "started_by": r.id}  # fmt: skip
        for name, source in spec.get("set", {}).items():
            value = resolve(source, r)
            if value is not MISSING:
                fact[name] = value
        facts = self.facts.setdefault(spec["field"], [])
        facts[:] = [f for f in facts if f["id"] != fact["id"]] + [fact]

    def _end(self, spec: dict[str, Any], r: Receipt) -> None:
        found = resolve(spec["id"], r)
        wanted = "" if found is MISSING else key_part(found)
        for fact in self.facts.get(spec["field"], []):
            if fact["id"] == wanted and _active(fact, r.occurred_at):
                fact["ended_at"] = r.occurred_at
                fact["ended_by"] = r.id
                for name, source in spec.get("set", {}).items():
                    value = resolve(source, r)
                    if value is not MISSING:
                        fact[name] = value
                return
        self._violate(r, "no active fact", [f"an active {spec['field']} {wanted!r}"])

    def value(self, judged_at: str) -> dict[str, Any]:
        out = copy.deepcopy(self.record)
        for name, facts in self.facts.items():
            ordered = sorted(facts, key=lambda f: (f["since"], f["id"]))
            out[name] = {
                "active": [f for f in ordered if _active(f, judged_at)],
                "ended": [f for f in ordered if not _active(f, judged_at)],
            }
        return out


def _active(fact: dict[str, Any], at: str) -> bool:
    if fact["since"] > at:
        return False
    if fact["ended_at"] is not None and fact["ended_at"] <= at:
        return False
    return fact["until"] is None or at < fact["until"]


def _add(items: list[Any], value: Any) -> None:
    if value is not MISSING and value not in items:
        items.append(value)
        items.sort(key=key_part)
