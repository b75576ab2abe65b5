"""CloudEvents v1.0 for receipts: the envelope rules, the HTTP binding, conversions both ways,
and the OCN (Open Checkout Network) event types. Pure: no I/O, no server, no clock."""

from importlib import resources

from ._ocn_schemas import OCN_CONTENT_TYPE, OCN_EVENT_TYPES, ocn_schema
from .convert import cloudevent_to_request, receipt_to_cloudevent
from .envelope import cloudevent_problems, validate_cloudevent
from .http import UnsupportedMediaType, from_http, to_batch, to_binary, to_structured
from .ocn import audit_event, verify_audit

# A catalog file with the `cloudevents` domain, loaded to keep events of unknown types.
UNKNOWN_CATALOG = str(resources.files(__name__).joinpath("unknown-catalog.json"))

__all__ = [
    "OCN_CONTENT_TYPE",
    "OCN_EVENT_TYPES",
    "UNKNOWN_CATALOG",
    "UnsupportedMediaType",
    "audit_event",
    "cloudevent_problems",
    "cloudevent_to_request",
    "from_http",
    "ocn_schema",
    "receipt_to_cloudevent",
    "to_batch",
    "to_binary",
    "to_structured",
    "validate_cloudevent",
    "verify_audit",
]
