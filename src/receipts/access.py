"""Who may write and read which receipts: the one home of the ownership and visibility rules.

Callers are Supabase's roles (docs/service.md): ``service_role`` and edge functions write as
the pipeline and read everything; an ``authenticated`` end user writes as ``client``, only
receipts it owns (``owner_user_id`` is its id), revises only its own events, and reads the
receipts it owns or whose entity it was granted (``Ledger.grant``); ``anon`` neither writes
nor reads. Every edge applies these rules through this module: the HTTP service
(``Principal``), the write transaction (``may_revise``, ``may_reuse_id``) and the reads
(``Ledger.readable``, ``Ledger.query(visible_to=...)``). The same rule of visibility is written
in SQL once for each store's queries (``store/sql.py``) and in PostgreSQL's row-level security
(migration 0003), which direct readers of the table meet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from .errors import ErrorDetail, PermissionDeniedError
from .model import Receipt

END_USER: Final = "client"  # the producer of an end user's receipts
PRODUCER_OF: Final = {
    "authenticated": END_USER,
    "edge_function": "edge_function",
    "service_role": "service_role_pipeline",
}
READS_EVERYTHING: Final = frozenset(("service_role", "edge_function"))


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a role (anon | authenticated | edge_function | service_role) and, for an
    end user, its id (``sub``)."""

    role: str
    sub: str | None = None

    @property
    def producer(self) -> str:
        """The producer its receipts are written as; ``PermissionDeniedError`` if it may not
        write."""
        try:
            return PRODUCER_OF[self.role]
        except KeyError:
            raise PermissionDeniedError(f"role {self.role!r} may not write receipts") from None

    @property
    def reads_everything(self) -> bool:
        return self.role in READS_EVERYTHING

    @property
    def visible_to(self) -> str | None:
        """The ``visible_to`` of its reads: None (everything) or the end user's id. Fails
        closed: a caller that reads neither everything nor as a user reads nothing."""
        if self.reads_everything:
            return None
        if self.sub is None:
            raise PermissionDeniedError(f"role {self.role!r} may not read receipts")
        return self.sub

    def require_reader(self) -> None:
        if self.role == "anon":
            raise PermissionDeniedError("role 'anon' may not read receipts")

    def claim(self, raw: Any, pointer: str) -> None:
        """Make a raw receipt request the principal's to write: an end user's gets its id as
        ``owner_user_id`` when absent or null, and is refused if it names another owner."""
        if self.role != "authenticated" or type(raw) is not dict:
            return
        owner = raw.get("owner_user_id")
        if owner is None:
            raw["owner_user_id"] = self.sub
        elif owner != self.sub:
            raise PermissionDeniedError(
                "an end user may only write receipts it owns",
                [ErrorDetail(f"{pointer}/owner_user_id", f"expected {self.sub!r} or absent")],
            )


def owns(owner_user_id: str | None, receipt: Receipt) -> bool:
    """Whether the end user ``owner_user_id`` owns ``receipt``."""
    return owner_user_id is not None and receipt.owner_user_id == owner_user_id


def may_revise(producer: str, owner_user_id: str | None, target: Receipt, head: Receipt) -> bool:
    """Whether a revision written as ``producer`` for ``owner_user_id`` may supersede ``target``,
    whose logical event's head is ``head``: an end user revises only its own events."""
    return producer != END_USER or (owns(owner_user_id, target) and owns(owner_user_id, head))


def may_reuse_id(producer: str, owner_user_id: str | None, prior: Receipt) -> bool:
    """Whether a request may name the id of ``prior`` (to retry it): an end user only the id of
    a receipt of its own, so an id tells it nothing about other users' receipts."""
    return producer != END_USER or prior.owner_user_id == owner_user_id


def readable(
    receipt: Receipt, user_id: str | None, granted: Callable[[str, str, str], bool]
) -> bool:
    """Whether ``receipt`` is visible to ``user_id`` (None: a reader of everything): its owner,
    or a user ``granted(entity_type, entity_id, user_id)`` the receipt's entity."""
    if user_id is None or receipt.owner_user_id == user_id:
        return True
    return granted(receipt.entity_type, receipt.entity_id, user_id)
