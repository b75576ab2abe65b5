"""What a ledger's database URL means, parsed in this one place: which backend it names, the
SQLite file, where the ledger's signing key lives, the log origin it defaults to, and how it is
printed without its password. ``$RECEIPTS_DB`` is read by ``default_url`` only, which the
command line applies; the library's default is ``DEFAULT_DB``.

A plain path or ``sqlite:///…`` means SQLite (``sqlite:///rel.db`` is relative,
``sqlite:////abs.db`` absolute: SQLAlchemy's convention); ``postgresql://…`` or
``postgres://…`` means PostgreSQL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_DB: Final = "receipts.db"


def default_url() -> str:
    """The ledger to open when none is named: ``$RECEIPTS_DB``, else ``receipts.db``."""
    return os.environ.get("RECEIPTS_DB") or DEFAULT_DB


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A database URL, parsed. Parsing never fails: a scheme receipts does not know has
    ``backend`` None, and only opening it is refused (``store.open_store``)."""

    url: str
    backend: str | None  # "sqlite" or "postgresql"; None for a scheme receipts does not know
    path: str | None  # SQLite's file, or ":memory:"; None for any other backend

    @classmethod
    def parse(cls, url: str | Path | DatabaseUrl) -> DatabaseUrl:
        if isinstance(url, DatabaseUrl):
            return url
        text = str(url)
        path = _sqlite_path(text)
        if path is not None:
            return cls(text, "sqlite", path)
        if text.startswith(("postgresql://", "postgres://")):
            return cls(text, "postgresql", None)
        return cls(text, None, None)

    def __bool__(self) -> bool:
        return bool(self.url)  # an empty URL names no database: the default is meant

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0]

    def _file(self) -> str | None:
        return self.path if self.path and self.path != ":memory:" else None

    def key_path(self) -> Path:
        """The private signing key's file: ``$RECEIPTS_KEY``, else beside a SQLite file
        (``receipts.db`` → ``receipts.db.key``), else ``./receipts.key``."""
        if os.environ.get("RECEIPTS_KEY"):
            return Path(os.environ["RECEIPTS_KEY"])
        file = self._file()
        return Path(file + ".key") if file else Path("receipts.key")

    def default_origin(self) -> str:
        """A log's origin names it in every checkpoint; by default ``receipts/<database name>``."""
        file = self._file()
        name = Path(file).stem if file else self.url.rsplit("/", 1)[-1]
        return f"receipts/{name or 'ledger'}"

    def shown(self) -> str:
        """The URL fit to print: a password (in the user part or the query) is ``***``."""
        url = self.url
        if "://" not in url or url.startswith("sqlite:"):
            return url  # a file path: nothing secret (and urlunsplit would respell it)
        parts = urlsplit(url)
        if parts.password is not None:
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(key == "password" for key, _ in query):
            hidden = [(k, "***" if k == "password" else v) for k, v in query]
            parts = parts._replace(query=urlencode(hidden, safe="*"))
        return urlunsplit(parts)


def _sqlite_path(url: str) -> str | None:
    """The file path a SQLite URL or plain path names, or None if ``url`` is not SQLite."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or ":memory:"
    if url.startswith("sqlite://"):
        return url[len("sqlite://") :] or ":memory:"
    if "://" in url:
        return None
    return url
