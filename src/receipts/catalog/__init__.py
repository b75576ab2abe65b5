"""The event catalog: domains and event types, loaded from JSON data files.

The built-in catalog ships as one file per domain in ``catalog/data``; users may load extra
files of the same shape (their own domains and types) alongside it. Pure: files are read
only when asked.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import jsonschema_rs

from ..errors import CatalogError, ErrorDetail, NotFoundError, json_pointer
from ..model import PRODUCERS
from .states import StateDef, check_event_types, parse_states

SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_PREFIX: Final = "urn:receipts:schema:"

# The shared payload conventions every event type gets unless it defines the key itself.
CONVENTIONS: Final[dict[str, dict[str, Any]]] = {
    "schema_version": {
        "type": "integer",
        "minimum": 0,
        "default": 0,
        "description": "Version of this event type's payload schema.",
    },
    "source": {
        "type": "string",
        "enum": list(PRODUCERS),
        "description": "Who wrote the receipt; must agree with the ledger-assigned producer.",
    },
    "correlation_id": {
        "type": "string",
        "minLength": 1,
        "description": "Ties receipts of one flow together (see `receipts trace`).",
    },
    "notes": {"type": "string", "description": "Free-text remarks."},
}


def _load_json(name: str) -> Any:
    return json.loads(resources.files(__name__).joinpath(name).read_text("utf-8"))


_FILE_VALIDATOR = jsonschema_rs.Draft202012Validator(_load_json("catalog-file.schema.json"))


@dataclass(frozen=True)
class EventType:
    """One event type: where it lives, what it is about, who may write it, its payload schema."""

    name: str
    domain: str
    entity_types: tuple[str, ...]
    writers: tuple[str, ...]
    why: str | None
    own_source: bool
    payload_schema: dict[str, Any]
    example: dict[str, Any] | None = None

    @property
    def required(self) -> list[str]:
        return list(self.payload_schema.get("required", []))

    @property
    def schema_id(self) -> str:
        return f"{SCHEMA_ID_PREFIX}{self.domain}:{self.name}"

    def schema(self) -> dict[str, Any]:
        """The full, self-contained payload schema: the type's own keys plus the conventions.
        A fresh copy each time: callers may change it."""
        return copy.deepcopy(self._schema())

    def _schema(self) -> dict[str, Any]:
        own = self.payload_schema.get("properties", {})
        properties = {k: v for k, v in CONVENTIONS.items() if k not in own}
        properties.update(own)
        schema: dict[str, Any] = {
            "$schema": SCHEMA_DIALECT,
            "$id": self.schema_id,
            "title": f"{self.domain}.{self.name} payload",
            **{k: v for k, v in self.payload_schema.items() if k != "properties"},
            "properties": properties,
        }
        if self.why:
            schema["description"] = self.why
        schema.setdefault("required", [])
        schema.setdefault("additionalProperties", True)
        return schema

    def summary(self) -> dict[str, Any]:
        return {
            "domain": self.domain,
            "event_type": self.name,
            "entity_types": list(self.entity_types),
            "writers": list(self.writers),
            "required": self.required,
        }


@dataclass(frozen=True)
class Domain:
    name: str
    title: str
    purpose: str | None
    event_types: tuple[str, ...]


@dataclass
class Catalog:
    """Domains and event types by name. Build with :meth:`load`."""

    domains: dict[str, Domain] = field(default_factory=dict)
    types: dict[str, EventType] = field(default_factory=dict)
    states: dict[str, StateDef] = field(default_factory=dict)

    @classmethod
    def load(cls, extra: Iterable[str | Path] = (), *, builtin: bool = True) -> Catalog:
        """The built-in catalog (unless ``builtin=False``) plus any extra catalog files."""
        catalog = cls()
        if builtin:
            data = resources.files(__name__).joinpath("data")
            for item in sorted(data.iterdir(), key=lambda p: p.name):
                if item.name.endswith(".json"):
                    catalog.add(json.loads(item.read_text("utf-8")), origin=f"builtin:{item.name}")
        for path in extra:
            try:
                document = json.loads(Path(path).read_text("utf-8"))
            except (OSError, ValueError) as exc:
                raise CatalogError(f"cannot read catalog file {path}: {exc}") from exc
            catalog.add(document, origin=str(path))
        check_event_types(catalog.states, catalog.types)
        return catalog

    def add(self, document: Any, *, origin: str = "<memory>") -> None:
        """Add one catalog file's domain; its types must not clash with known ones."""
        problems = [
            ErrorDetail(json_pointer(*e.instance_path), e.message)
            for e in _FILE_VALIDATOR.iter_errors(document)
        ]
        if problems:
            raise CatalogError(f"catalog file {origin} is malformed", problems)
        name = document["domain"]
        states = parse_states(name, document.get("states", {}), origin)
        for state_name in states:
            if state_name in self.states:
                raise CatalogError(
                    f"catalog file {origin}: state {state_name!r} is already defined",
                    [ErrorDetail(json_pointer("states", state_name), "duplicate state")],
                )
        types = document.get("event_types", {})
        added = {}  # all or nothing: a bad type leaves the catalog as it was
        for type_name, spec in types.items():
            pointer = json_pointer("event_types", type_name)
            if type_name in self.types:
                raise CatalogError(
                    f"catalog file {origin}: event type {type_name!r} is already defined",
                    [ErrorDetail(pointer, "duplicate event type")],
                )
            added[type_name] = _event_type(name, type_name, spec, origin, pointer)
        self.types.update(added)
        self.states.update(states)
        known = self.domains.get(name)
        names = (known.event_types if known else ()) + tuple(types)
        self.domains[name] = Domain(name, document["title"], document.get("purpose"), names)

    def state(self, name: str) -> StateDef:
        try:
            return self.states[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self.states), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see `receipts catalog states`"
            raise NotFoundError(
                f"unknown state {name!r}", [ErrorDetail("/state", f"not in the catalog; {hint}")]
            ) from None

    def get(self, name: str) -> EventType:
        try:
            return self.types[name]
        except KeyError:
            raise NotFoundError(
                f"unknown event type {name!r}", [ErrorDetail("/event_type", "not in the catalog")]
            ) from None

    def event_types(self, domain: str | None = None) -> list[EventType]:
        if domain is not None and domain not in self.domains:
            raise NotFoundError(
                f"unknown domain {domain!r}",
                [ErrorDetail("/domain", f"expected one of {sorted(self.domains)}")],
            )
        return [t for t in self.types.values() if domain is None or t.domain == domain]

    def __iter__(self) -> Iterator[EventType]:
        return iter(self.types.values())

    def __len__(self) -> int:
        return len(self.types)

    def export(self, directory: str | Path) -> list[Path]:
        """Write ``<event_type>.schema.json`` for every type plus ``index.json``."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for event_type in self:
            path = out / f"{event_type.name}.schema.json"
            path.write_text(json.dumps(event_type.schema(), indent=2) + "\n", "utf-8")
            written.append(path)
        index = [
            {**t.summary(), "schema": f"{t.name}.schema.json", "$id": t.schema_id} for t in self
        ]
        (out / "index.json").write_text(json.dumps(index, indent=2) + "\n", "utf-8")
        return [*written, out / "index.json"]


def _event_type(
    domain: str, name: str, spec: dict[str, Any], origin: str, pointer: str
) -> EventType:
    schema = copy.deepcopy(spec["payload"])
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        raise CatalogError(
            f"catalog file {origin}: payload schema of {name!r} is not valid JSON Schema",
            [ErrorDetail(f"{pointer}/payload", str(exc.message))],
        ) from exc
    own_source = bool(spec.get("own_source", False))
    if not own_source and "source" in schema.get("properties", {}):
        raise CatalogError(
            f"catalog file {origin}: {name!r} defines `source` without own_source: true",
            [ErrorDetail(f"{pointer}/payload/properties/source", "set own_source or remove it")],
        )
    return EventType(
        name=name,
        domain=domain,
        entity_types=tuple(spec["entity_types"]),
        writers=tuple(spec["writers"]),
        why=spec.get("why"),
        own_source=own_source,
        payload_schema=schema,
        example=spec.get("example"),
    )


__all__ = ["CONVENTIONS", "Catalog", "Domain", "EventType", "StateDef"]
