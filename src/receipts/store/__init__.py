"""Storage backends, chosen by URL through :func:`open_store`."""

from __future__ import annotations

from ..catalog import Catalog
from ..dburl import DatabaseUrl
from ..errors import UsageError
from .base import Query, Store, WriteTxn
from .sqlite import SQLiteStore


def open_store(url: str | DatabaseUrl, catalog: Catalog | None = None) -> Store:
    """Open the store a URL names: a plain path or ``sqlite:///…`` means SQLite,
    ``postgresql://…`` (or ``postgres://…``) PostgreSQL. Either is created or migrated."""
    where = DatabaseUrl.parse(url)
    if where.path is not None:
        return SQLiteStore(where.path)
    if where.backend == "postgresql":
        from .postgres import PostgresStore  # psycopg is imported only when used

        return PostgresStore(where.url, catalog)
    raise UsageError(
        f"unsupported database URL scheme {where.scheme!r}; "
        "expected a path, sqlite:/// or postgresql://"
    )


__all__ = ["Query", "SQLiteStore", "Store", "WriteTxn", "open_store"]
