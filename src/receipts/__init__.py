"""receipts: a verifiable receipts ledger.

Typed, validated, append-only receipts in an RFC 9162 Merkle log with signed checkpoints.
"""

from .catalog import Catalog, Domain, EventType
from .errors import (
    AppendOnlyError,
    CatalogError,
    ConflictError,
    ErrorDetail,
    FormatError,
    HeadersTooLargeError,
    IdConflictError,
    NotFoundError,
    OverloadedError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ReceiptsError,
    RequestTimeoutError,
    RevisionConflictError,
    RuleViolationError,
    SigningKeyError,
    StorageError,
    TamperedError,
    UnauthorizedError,
    UnprovableReceiptError,
    UnsupportedMediaTypeError,
    UsageError,
    ValidationError,
    VerificationError,
)
from .ledger import Ledger
from .model import Receipt, canonical_bytes, leaf_hash
from .store import Query, open_store
from .validate import Request, Validator

__all__ = [
    "AppendOnlyError",
    "Catalog",
    "CatalogError",
    "ConflictError",
    "Domain",
    "ErrorDetail",
    "EventType",
    "FormatError",
    "HeadersTooLargeError",
    "IdConflictError",
    "Ledger",
    "NotFoundError",
    "OverloadedError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Query",
    "Receipt",
    "ReceiptsError",
    "Request",
    "RequestTimeoutError",
    "RevisionConflictError",
    "RuleViolationError",
    "SigningKeyError",
    "StorageError",
    "TamperedError",
    "UnauthorizedError",
    "UnprovableReceiptError",
    "UnsupportedMediaTypeError",
    "UsageError",
    "ValidationError",
    "Validator",
    "VerificationError",
    "canonical_bytes",
    "leaf_hash",
    "open_store",
]
