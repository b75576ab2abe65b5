"""Derived states ("doors") as catalog data: what a state is called, what it is keyed by,
which event types it folds and how (docs/doors.md).

A catalog file may hold ``"states"`` beside its ``"event_types"``: each a name and a
definition, checked against ``state-definition.schema.json`` when loaded. Pure.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from typing import Any, Final

import jsonschema_rs
import rfc8785

from ..errors import CatalogError, ErrorDetail, json_pointer

KINDS: Final = ("latest", "machine", "set", "timed", "counter")
META: Final = frozenset(
    ("$entity", "$entity_type", "$entity_id", "$owner_user_id", "$occurred_at", "$recorded_at",
     "$event_type", "$logical_id")
)  # fmt: skip
SAME_ENTITY: Final = "same_entity"  # an event filed under the keys of its entity's other events
NONE: Final = "none"  # a machine's status before its first event

_SCHEMA = json.loads(
    resources.files(__package__).joinpath("state-definition.schema.json").read_text("utf-8")
)
_VALIDATOR = jsonschema_rs.Draft202012Validator(_SCHEMA)


@dataclass(frozen=True)
class Step:
    """What one event type does to a state: its key (if not the state's), the statuses it may
    come from and goes to, and the operations on the state's fields."""

    event_type: str
    key: tuple[Any, ...] | None  # None: the state's key; (SAME_ENTITY,): the entity's other keys
    sources: tuple[str, ...] | None  # allowed statuses before it (machine); None: any
    target: str | None  # status after it (machine)
    ops: dict[str, Any]  # set | add | remove | put | delete | count | sum | start | end


@dataclass(frozen=True)
class StateDef:
    """One derived state, as its catalog file defines it."""

    name: str
    domain: str
    title: str
    kind: str
    key: tuple[Any, ...]  # sources, one per part of the key
    key_names: tuple[str, ...]
    entity_types: tuple[str, ...] | None  # only receipts about these (None: any)
    about: dict[str, Any]  # entity type -> the source of the id of another entity it names
    initial: str | None  # a machine's first status
    rules: bool  # whether its transitions are enforced at write
    values: str
    steps: dict[str, Step]
    definition: dict[str, Any]  # as written in the catalog file

    @cached_property
    def digest(self) -> str:
        """SHA-256 (hex) of the definition's RFC 8785 bytes: what an answer was folded by."""
        return hashlib.sha256(rfc8785.dumps({"name": self.name, **self.definition})).hexdigest()

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "domain": self.domain,
            "title": self.title,
            "kind": self.kind,
            "key": list(self.key_names),
            "events": sorted(self.steps),
            "values": self.values,
            "rules": self.rules,
            "sha256": self.digest,
        }


def parse_states(domain: str, states: Any, origin: str) -> dict[str, StateDef]:
    """The states of one catalog file (its ``"states"`` member), checked in themselves; their
    event types are checked against the whole catalog by ``check_event_types``."""
    problems = [
        ErrorDetail(json_pointer("states", *e.instance_path), e.message)
        for e in _VALIDATOR.iter_errors(states)
    ]
    if problems:
        raise CatalogError(f"catalog file {origin}: malformed states", problems)
    out = {}
    for name, spec in states.items():
        out[name] = _state(domain, name, spec, origin)
    return out


def _state(domain: str, name: str, spec: dict[str, Any], origin: str) -> StateDef:
    pointer = json_pointer("states", name)
    kind = spec["kind"]
    steps = {t: _step(t, s) for t, s in spec["events"].items()}
    machine = any(s.target is not None for s in steps.values())
    if (kind == "machine") != machine:
        raise CatalogError(
            f"catalog file {origin}: state {name!r} is {kind!r}"
            + (" but no event sets a status" if kind == "machine" else " yet an event sets one"),
            [ErrorDetail(f"{pointer}/kind", "a machine's events, and only its, have `to`")],
        )
    return StateDef(
        name=name,
        domain=domain,
        title=spec["title"],
        kind=kind,
        key=tuple(spec["key"]),
        key_names=tuple(spec.get("key_names") or [_key_name(k) for k in spec["key"]]),
        entity_types=tuple(spec["entity_types"]) if "entity_types" in spec else None,
        about=dict(spec.get("about", {})),
        initial=spec.get("initial", NONE) if kind == "machine" else None,
        rules=bool(spec.get("rules", False)),
        values=spec.get("values", ""),
        steps=steps,
        definition=spec,
    )


def _step(event_type: str, spec: dict[str, Any]) -> Step:
    key = spec.get("key")
    ops = {k: v for k, v in spec.items() if k not in ("key", "from", "to")}
    return Step(
        event_type=event_type,
        key=None if key is None else (SAME_ENTITY,) if key == SAME_ENTITY else tuple(key),
        sources=tuple(spec["from"]) if "from" in spec else None,
        target=spec.get("to"),
        ops=ops,
    )


def _key_name(source: Any) -> str:
    if isinstance(source, str):
        return source.lstrip("$/").replace("/", ".")
    return "const"


def check_event_types(states: dict[str, StateDef], known: dict[str, Any]) -> None:
    """Every event type a state folds must be in the catalog."""
    for state in states.values():
        for event_type in state.steps:
            if event_type not in known:
                raise CatalogError(
                    f"state {state.name!r} folds {event_type!r}, which is not in the catalog",
                    [
                        ErrorDetail(
                            json_pointer("states", state.name, "events", event_type),
                            "unknown event type",
                        )
                    ],
                )
