"""Every error `receipts` raises, under one root.

Each class carries a stable ``code`` (for programs), an ``http_status`` (for the API)
and an ``exit_code`` (for the CLI), so both edges map errors in exactly one place.

    ReceiptsError
    ├── UsageError                  bad arguments or configuration       400 / exit 2
    ├── ValidationError             a request breaks the catalog          422 / exit 1
    ├── ConflictError               the ledger's state says no            409 / exit 1
    │   ├── IdConflictError         same id, different content
    │   ├── RevisionConflictError   revision does not supersede the head
    │   └── RuleViolationError      a lifecycle rule refuses the receipt (docs/doors.md)
    ├── NotFoundError               no such receipt / entity / type       404 / exit 1
    ├── PermissionDeniedError       the writer may not do this            403 / exit 1
    ├── UnauthorizedError           no valid credentials                  401 / exit 1
    ├── CatalogError                a catalog file is malformed           500 / exit 1
    ├── FormatError                 malformed input: JSON, note, checkpoint, proof    400 / exit 1
    │   ├── PayloadTooLargeError    the body is over the size limit       413
    │   ├── HeadersTooLargeError    the request line and headers are too large        431
    │   └── UnsupportedMediaTypeError  the content type is not accepted  415
    ├── RequestTimeoutError         the request was not sent in time      408 / exit 1
    ├── VerificationError           a signature, proof or hash does not check out     422 / exit 1
    │   └── TamperedError           stored data no longer matches what the log proves  500
    │       └── UnprovableReceiptError  a stored row the log cannot be extended over
    ├── SigningKeyError             signing keys missing or unusable      500 / exit 1
    ├── OverloadedError             too much work queued; retry later     429 / exit 1
    └── StorageError                the database failed (driver errors end here)       503 / exit 1
        └── AppendOnlyError         an UPDATE/DELETE on the journal was refused
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


def json_pointer(*tokens: str | int) -> str:
    """An RFC 6901 JSON pointer from path tokens (``json_pointer("payload", "a/b")`` ->
    ``/payload/a~1b``)."""
    return "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)


@dataclass(frozen=True, slots=True)
class ErrorDetail:
    """One problem: a JSON pointer into the request and what was expected there."""

    pointer: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"pointer": self.pointer, "message": self.message}


class ReceiptsError(Exception):
    """Root of every error raised by `receipts`."""

    code: ClassVar[str] = "error"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, errors: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors: list[ErrorDetail] = list(errors or [])

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled whole (the writer process sends errors back): message, errors and any
        # attribute a subclass adds, whatever its constructor takes.
        return _restore, (type(self), self.message, self.__dict__)

    def extensions(self) -> dict[str, Any]:
        """Members an error adds to its JSON (and its problem+json) beyond code, message and
        errors."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "errors": [e.to_dict() for e in self.errors],
            **self.extensions(),
        }


def _restore(cls: type[ReceiptsError], message: str, state: dict[str, Any]) -> ReceiptsError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class UsageError(ReceiptsError):
    code = "usage"
    http_status = 400
    exit_code = 2


class ValidationError(ReceiptsError):
    code = "validation_failed"
    http_status = 422


class ConflictError(ReceiptsError):
    code = "conflict"
    http_status = 409


class IdConflictError(ConflictError):
    code = "id_conflict"


class RevisionConflictError(ConflictError):
    code = "revision_conflict"


class RuleViolationError(ConflictError):
    """A lifecycle rule of a derived state refuses a receipt: ``rule`` names the state,
    ``found`` what it was, ``consulted`` the receipts it was derived from."""

    code = "rule_violated"

    def __init__(
        self,
        message: str,
        errors: list[ErrorDetail] | None = None,
        *,
        rule: str = "",
        found: Any = None,
        consulted: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message, errors)
        self.rule = rule
        self.found = found
        self.consulted = list(consulted or [])

    def extensions(self) -> dict[str, Any]:
        return {"rule": self.rule, "found": self.found, "consulted": self.consulted}


class NotFoundError(ReceiptsError):
    code = "not_found"
    http_status = 404


class PermissionDeniedError(ReceiptsError):
    code = "forbidden"
    http_status = 403


class UnauthorizedError(ReceiptsError):
    code = "unauthorized"
    http_status = 401


class OverloadedError(ReceiptsError):
    code = "overloaded"
    http_status = 429

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CatalogError(ReceiptsError):
    code = "catalog_invalid"


class FormatError(ReceiptsError):
    code = "format_invalid"
    http_status = 400


class PayloadTooLargeError(FormatError):
    code = "payload_too_large"
    http_status = 413


class HeadersTooLargeError(FormatError):
    code = "headers_too_large"
    http_status = 431


class UnsupportedMediaTypeError(FormatError):
    code = "unsupported_media_type"
    http_status = 415


class RequestTimeoutError(ReceiptsError):
    code = "request_timeout"
    http_status = 408


class VerificationError(ReceiptsError):
    code = "verification_failed"
    http_status = 422


class TamperedError(VerificationError):
    """The ledger's own stored data does not check out: a row, node or checkpoint was altered
    outside the ledger. Never the caller's fault, and never answered with the altered data."""

    code = "tampered"
    http_status = 500


class UnprovableReceiptError(TamperedError):
    """A stored receipt whose entry cannot be made (a row that breaks the ledger's rules, e.g.
    inserted with the journal's triggers disabled): the log stops before it, at ``seq``."""

    code = "unprovable_receipt"

    def __init__(
        self,
        message: str,
        errors: list[ErrorDetail] | None = None,
        *,
        seq: int = -1,
        receipt_id: str = "",
    ) -> None:
        super().__init__(message, errors)
        self.seq = seq
        self.receipt_id = receipt_id

    @classmethod
    def at(cls, seq: int, receipt_id: str, why: str) -> UnprovableReceiptError:
        return cls(
            f"receipt seq {seq} (id {receipt_id}) cannot be integrated: {why}; the log stops "
            "before it (was it inserted with the journal's triggers disabled?)",
            [ErrorDetail(f"/seq/{seq}", why)],
            seq=seq,
            receipt_id=receipt_id,
        )


class SigningKeyError(ReceiptsError):
    code = "key_error"


class StorageError(ReceiptsError):
    code = "storage_error"
    http_status = 503


class AppendOnlyError(StorageError):
    code = "append_only"
    http_status = 500
