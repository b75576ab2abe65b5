"""The three OCN CloudEvent types and their JSON Schemas (package data in ``schemas/``).

Each schema describes a whole event in the JSON format: the envelope and the OCN data contract.
The catalog's ``ocn`` domain carries the same data contracts as receipt payloads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any, Final

import jsonschema_rs

OCN_DOMAIN: Final = "ocn"
OCN_CONTENT_TYPE: Final = "application/vnd.ocn.ap2+json; version=1"
DECISION: Final = "ocn.orca.decision.v1"
EXPLANATION: Final = "ocn.orca.explanation.v1"
AUDIT: Final = "ocn.weave.audit.v1"

# CloudEvent type -> catalog event type (domain ``ocn``).
OCN_EVENT_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {DECISION: "orca_decision", EXPLANATION: "orca_explanation", AUDIT: "weave_audit"}
)


@cache
def _text(ce_type: str) -> str:
    if ce_type not in OCN_EVENT_TYPES:
        raise KeyError(f"not an OCN CloudEvent type: {ce_type!r}")
    name = ce_type.removeprefix("ocn.") + ".schema.json"
    return resources.files(__package__).joinpath("schemas", name).read_text("utf-8")


def ocn_schema(ce_type: str) -> dict[str, Any]:
    """A fresh copy of the JSON Schema (Draft 2020-12) of an OCN CloudEvent type."""
    schema: dict[str, Any] = json.loads(_text(ce_type))
    return schema


@cache
def ocn_validator(ce_type: str) -> Any:
    """The compiled validator of an OCN CloudEvent type (formats asserted)."""
    return jsonschema_rs.Draft202012Validator(ocn_schema(ce_type), validate_formats=True)
