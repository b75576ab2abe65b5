"""The ledger's checkpoint signing key: a C2SP signed-note Ed25519 key in a 0600 file.

Location: ``$RECEIPTS_KEY``, else next to the SQLite database (``receipts.db`` →
``receipts.db.key``), else ``./receipts.key``.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SigningKeyError
from .store import sqlite_path
from .tlog import Signer


def key_path(db_url: str) -> Path:
    if os.environ.get("RECEIPTS_KEY"):
        return Path(os.environ["RECEIPTS_KEY"])
    path = sqlite_path(db_url)
    if path and path != ":memory:":
        return Path(path + ".key")
    return Path("receipts.key")


def default_origin(db_url: str) -> str:
    """A log's origin names it in every checkpoint; by default ``receipts/<database name>``."""
    path = sqlite_path(db_url)
    name = Path(path).stem if path and path != ":memory:" else db_url.rsplit("/", 1)[-1]
    return f"receipts/{name or 'ledger'}"


def generate_key(path: Path, origin: str) -> Signer:
    """Create a new signing key at ``path`` (mode 0600); never overwrites an existing file."""
    signer = Signer.generate(origin)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise SigningKeyError(
            f"{path} already exists; refusing to overwrite a signing key"
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(signer.to_key_string() + "\n")
    return signer


def load_signer(path: Path) -> Signer:
    try:
        text = path.read_text("utf-8").strip()
    except FileNotFoundError:
        raise SigningKeyError(
            f"no signing key at {path}; create one with `receipts keys generate`"
        ) from None
    except OSError as exc:
        raise SigningKeyError(f"cannot read {path}: {exc.strerror}") from None
    return Signer.from_key_string(text)
