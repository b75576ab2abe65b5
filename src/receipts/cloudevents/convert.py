"""Receipts shown as CloudEvents, and CloudEvents turned into receipt requests.

A receipt of a catalog domain becomes ``receipts.<domain>.<event_type>.v<schema_version>``
with the payload as ``data``. A receipt of the ``ocn`` domain holds an OCN CloudEvent as
received (payload ``{"data": …, "cloudevent": {attributes}}``) and is shown as that event
again. Either way the ledger's position rides along in extension attributes. Pure.
"""

from __future__ import annotations

import copy
import re
import uuid
from typing import Any, Final

from ..catalog import Catalog
from ..errors import ErrorDetail, ValidationError
from ..model import Receipt, normalize_time
from ._ocn_schemas import OCN_DOMAIN, OCN_EVENT_TYPES
from .envelope import DATA_MEMBERS, INT32, SPECVERSION, is_json_media_type, validate_cloudevent

_NAME = r"([a-z][a-z0-9_]*)"
RECEIPT_TYPE: Final = re.compile(rf"receipts\.{_NAME}\.{_NAME}\.v(0|[1-9][0-9]*)")
# Extension attributes that say where a receipt sits in a ledger. Re-derived on every export,
# so an OCN event's own values for them are not stored (re-ingesting our export is a retry).
LEDGER_EXTENSIONS: Final = ("seq", "logicalid", "revision", "op", "correlationid", "leafhash")
# uuid5 namespace of request ids: id = uuid5(NS, source + "\n" + id), so that a CloudEvent
# sent again (same source and id) is the same receipt request (idempotent retry).
REQUEST_ID_NAMESPACE: Final = uuid.UUID("2920aebe-fbb2-439d-9606-8dc9f98b84bd")
OCN_ENTITY_TYPE: Final = "trace"
_JSON: Final = "application/json"
_FRACTION: Final = re.compile(r"[0-9]{2}:[0-9]{2}:[0-9]{2}\.([0-9]+)")
# Payload members the ledger fills in (docs/catalog.md) when a request leaves them out.
CONVENTIONS: Final = ("schema_version", "source")


def receipt_to_cloudevent(receipt: Receipt, *, source: str, catalog: Catalog) -> dict[str, Any]:
    """The receipt as a CloudEvent (JSON format); ``source`` is the ledger's URI-reference.

    An ``ocn`` receipt that asserts a received event is shown as that event; its revisions,
    which no OCN producer sent, take the ``receipts.ocn.*`` form like any other receipt.
    """
    if receipt.domain == OCN_DOMAIN and receipt.op == "assert":
        original: dict[str, Any] = receipt.payload["cloudevent"]
        event = {k: v for k, v in original.items() if k not in LEDGER_EXTENSIONS}
        data = receipt.payload["data"]
    else:
        version = receipt.payload.get("schema_version", 0)
        event = {
            "specversion": SPECVERSION,
            "id": receipt.id,
            "source": source,
            "type": f"receipts.{receipt.domain}.{receipt.event_type}.v{version}",
            "subject": receipt.entity,
            "time": receipt.occurred_at,
            "datacontenttype": _JSON,
        }
        # A void's payload is the void's reason, not the event type's schema.
        if receipt.op != "void":
            event["dataschema"] = catalog.get(receipt.event_type).schema_id
        data = receipt.payload
    event.update(_ledger_extensions(receipt))
    event["data"] = copy.deepcopy(data)
    validate_cloudevent(event)
    return event


def _ledger_extensions(receipt: Receipt) -> dict[str, Any]:
    extensions: dict[str, Any] = {
        "seq": _integer(receipt.seq),
        "logicalid": receipt.logical_id,
        "revision": _integer(receipt.revision),
        "op": receipt.op,
    }
    if receipt.correlation_id is not None:
        extensions["correlationid"] = receipt.correlation_id
    extensions["leafhash"] = receipt.leaf_hash.hex()
    return extensions


def _integer(value: int) -> int | str:
    """A CloudEvents Integer is 32-bit; a larger count goes as its decimal string."""
    return value if INT32[0] <= value <= INT32[1] else str(value)


def cloudevent_to_request(event: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """A receipt request (for ``Ledger.append``) from a valid CloudEvent.

    ``receipts.<domain>.<event_type>.v<N>``: subject ``TYPE:ID`` is the entity, data the
    payload. OCN types: domain ``ocn``, entity ``trace:<subject>``, the event kept whole in
    the payload, ``correlation_id`` = subject. The request id is derived from (source, id).
    """
    validate_cloudevent(event)
    ce_type: str = event["type"]
    if ce_type in OCN_EVENT_TYPES:
        domain, name = OCN_DOMAIN, OCN_EVENT_TYPES[ce_type]
        _known(catalog, domain, name)
        entity_type, entity_id = OCN_ENTITY_TYPE, event["subject"]
        attributes = {
            k: v
            for k, v in event.items()
            if k not in DATA_MEMBERS and k not in LEDGER_EXTENSIONS and v is not None
        }
        payload = {"data": event["data"], "cloudevent": attributes, "correlation_id": entity_id}
    else:
        match = RECEIPT_TYPE.fullmatch(ce_type)
        if match is None:
            ocn = " or ".join(OCN_EVENT_TYPES)
            raise ValidationError(
                f"unknown CloudEvent type {ce_type!r}",
                [ErrorDetail("/type", f"expected receipts.<domain>.<event_type>.v<N> or {ocn}")],
            )
        domain, name = match.group(1), match.group(2)
        _known(catalog, domain, name)
        entity_type, entity_id, payload = _receipt_parts(event, int(match.group(3)))
    request = {
        "id": request_id(event["source"], event["id"]),
        "domain": domain,
        "event_type": name,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "payload": copy.deepcopy(payload),
    }
    if event.get("time") is not None:
        request["occurred_at"] = event["time"]
    return request


def instant(text: str) -> tuple[str, str]:
    """An RFC 3339 time as the instant it names: UTC to the microsecond, and the digits of the
    second's fraction beyond it (``…Z``, ``+00:00`` and trailing zeros spell the same)."""
    match = _FRACTION.search(text)
    beyond = match.group(1)[6:].rstrip("0") if match else ""
    return normalize_time(text), beyond


def as_stored(prior: Receipt, request: dict[str, Any]) -> dict[str, Any] | None:
    """``request`` (from a CloudEvent) as the stored ``prior`` has it if they mean the same
    event, spelled otherwise: the same attributes and data as JSON values, the ``time`` the
    same instant. Retrying it then returns ``prior``. None if they differ in meaning."""
    fields = ("domain", "event_type", "entity_type", "entity_id")
    if any(getattr(prior, f) != request[f] for f in fields):
        return None
    given = request["payload"]
    stored = {k: v for k, v in prior.payload.items() if k in given or k not in CONVENTIONS}
    if _meaning(stored) != _meaning(given):
        return None
    if "occurred_at" in request and normalize_time(request["occurred_at"]) != prior.occurred_at:
        return None
    return {**request, "payload": copy.deepcopy(prior.payload), "occurred_at": prior.occurred_at}


def _meaning(payload: dict[str, Any]) -> dict[str, Any]:
    attributes = payload.get("cloudevent")
    if not isinstance(attributes, dict) or not isinstance(attributes.get("time"), str):
        return payload
    try:
        when = instant(attributes["time"])
    except ValueError:
        return payload
    return {**payload, "cloudevent": {**attributes, "time": when}}


def request_id(source: str, event_id: str) -> str:
    """The receipt id for the CloudEvent (source, id): the same event always maps to it."""
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{source}\n{event_id}"))


def _known(catalog: Catalog, domain: str, name: str) -> None:
    event_type = catalog.types.get(name)
    if event_type is None or event_type.domain != domain:
        raise ValidationError(
            f"unknown event type {domain}.{name}",
            [ErrorDetail("/type", f"the catalog has no event type {name!r} in domain {domain!r}")],
        )


def _receipt_parts(event: dict[str, Any], version: int) -> tuple[str, str, dict[str, Any]]:
    problems: list[ErrorDetail] = []
    subject = event.get("subject")
    entity_type, _, entity_id = (subject or "").partition(":")
    if not entity_type or not entity_id:
        problems.append(ErrorDetail("/subject", "required: the entity as TYPE:ID"))
    data = event.get("data")
    if "data_base64" in event:
        binary = (
            "a receipt payload is JSON, not binary (binary mode: Content-Type: application/json)"
        )
        problems.append(ErrorDetail("/data_base64", binary))
    elif not isinstance(data, dict):
        problems.append(ErrorDetail("/data", "required: the receipt payload, a JSON object"))
    elif data.get("schema_version", version) != version:
        problems.append(ErrorDetail("/data/schema_version", f"type says v{version}"))
    if not is_json_media_type(event.get("datacontenttype")):
        problems.append(ErrorDetail("/datacontenttype", "a receipt payload is JSON"))
    if event.get("op", "assert") != "assert":
        problems.append(
            ErrorDetail("/op", "only op assert can be ingested; revise through the ledger")
        )
    if problems:
        raise ValidationError("CloudEvent is not a receipt request", problems)
    assert isinstance(data, dict)
    return entity_type, entity_id, {"schema_version": version, **data}
