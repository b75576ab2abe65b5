"""Storage backends, chosen by URL through :func:`open_store`."""

from __future__ import annotations

from ..catalog import Catalog
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


def open_store(url: str, catalog: Catalog | None = None) -> Store:
    """Open the store a URL names: a plain path or ``sqlite:///…`` means SQLite,
    ``postgresql://…`` (or ``postgres://…``) PostgreSQL. Either is created or migrated."""
    path = sqlite_path(url)
    if path is not None:
        return SQLiteStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresStore  # psycopg is imported only when used

        return PostgresStore(url, catalog)
    scheme = url.split("://", 1)[0]
    raise UsageError(
        f"unsupported database URL scheme {scheme!r}; expected a path, sqlite:/// or postgresql://"
    )


__all__ = ["Query", "SQLiteStore", "Store", "WriteTxn", "open_store", "sqlite_path"]
