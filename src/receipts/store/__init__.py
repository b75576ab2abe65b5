"""Storage backends, chosen by URL through :func:`open_store`."""

from __future__ import annotations

from ..errors import UsageError
from .base import Query, Store, WriteTxn
from .sqlite import SQLiteStore


def sqlite_path(url: str) -> str | None:
    """The file path a SQLite URL or plain path names, or None if ``url`` is not SQLite.

    ``sqlite:///rel.db`` is relative, ``sqlite:////abs.db`` absolute (SQLAlchemy's convention).
    """
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or ":memory:"
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :] or ":memory:"
    if "://" in url:
        return None
    return url


def open_store(url: str) -> Store:
    """Open the store a URL names: a plain path or ``sqlite:///…`` means SQLite."""
    path = sqlite_path(url)
    if path is not None:
        return SQLiteStore(path)
    scheme = url.split("://", 1)[0]
    raise UsageError(f"unsupported database URL scheme {scheme!r}; expected a path or sqlite:///")


__all__ = ["Query", "SQLiteStore", "Store", "WriteTxn", "open_store", "sqlite_path"]
