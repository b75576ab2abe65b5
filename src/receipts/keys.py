"""The ledger's checkpoint signing keys.

The private key is a C2SP signed-note Ed25519 key in a 0600 file, where the database URL says
(``DatabaseUrl.key_path``: ``$RECEIPTS_KEY``, else beside a SQLite file, else ``./receipts.key``).
A key made by ``receipts keys rotate`` goes next to that file, named ``<file>.<key id>``.

The public keys belong to the ledger: the first is recorded when it is made or at the first
checkpoint, each later one with its rotation statement (``tlog.Rotation``). Contract: a
checkpoint MUST NOT be signed with any key but the ledger's current one.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from .errors import ReceiptsError, SigningKeyError, TamperedError, VerificationError
from .store.base import ReadTxn, StoredKey, WriteTxn
from .tlog import Checkpoint, KeyChain, Rotation, Signer, Verifier, parse_note
from .tlog.rotation import key_label

HOW_TO_POINT = "set RECEIPTS_KEY or --key-file to the file that holds it"


def rotated_path(path: Path, key: Verifier) -> Path:
    """Where ``receipts keys rotate`` writes a new key: next to ``path``, named by its key id."""
    return path.with_name(f"{path.name}.{key.key_id:08x}")


def write_key(path: Path, signer: Signer) -> None:
    """Write a signing key to a new file at ``path`` (mode 0600); never overwrites a file."""
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


def generate_key(path: Path, origin: str) -> Signer:
    """Create a new signing key at ``path`` (mode 0600); never overwrites an existing file."""
    signer = Signer.generate(origin)
    write_key(path, signer)
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


def find_signer(path: Path, current: Verifier | None) -> Signer | None:
    """The signing key at ``path``, or the rotated one beside it that is the ledger's current
    key; None if neither file exists."""
    if current is not None and rotated_path(path, current).exists():
        return load_signer(rotated_path(path, current))
    return load_signer(path) if path.exists() else None


# --- the key records -----------------------------------------------------------------------------


def chain(txn: ReadTxn, trusted: Verifier | None = None) -> KeyChain | None:
    """The ledger's keys as a chain from ``trusted`` (default: its first key), every rotation
    statement checked; None if no key is recorded. TamperedError if a record does not hold."""
    records = txn.keys()
    if not records:
        return None
    try:
        full = _build(records[0].verifier_key, tuple(r.rotation or "" for r in records[1:]))
    except ReceiptsError as exc:
        raise TamperedError(f"the ledger's key records do not check out: {exc.message}") from exc
    for i, (record, key) in enumerate(zip(records, full.keys, strict=True)):
        if (record.index, record.verifier_key, record.from_size) != (
            i,
            key.to_key_string(),
            full.starts[i],
        ):
            raise TamperedError(
                f"key record {record.index} ({record.verifier_key} from tree size "
                f"{record.from_size}) differs from its rotation statement"
            )
    return full if trusted is None else full.trusting(trusted)


@functools.lru_cache(maxsize=16)
def _build(first: str, rotations: tuple[str, ...]) -> KeyChain:
    # Checked once per process: every checkpoint reads the records, and each rotation costs
    # two signature checks. The result depends on nothing but the texts (errors are not kept).
    return KeyChain.build(Verifier.from_key_string(first), rotations)


def check_signer(txn: ReadTxn, signer: Signer) -> bool:
    """Whether ``signer`` is the ledger's current key (True) or may become its first (False);
    raises SigningKeyError naming both keys if it is neither."""
    recorded = chain(txn)
    mine = signer.verifier()
    if recorded is not None:
        if recorded.current != mine:
            raise SigningKeyError(
                f"refusing to sign with {key_label(mine)}: the ledger's signing key is "
                f"{recorded.current.to_key_string()}; {HOW_TO_POINT}" + _retired(recorded, mine)
            )
        return True
    last = txn.checkpoint()
    if last is not None:  # checkpoints from before keys were recorded: their key is the ledger's
        try:
            Checkpoint.open(last.note, mine)
        except VerificationError:
            raise SigningKeyError(
                f"refusing to sign with {key_label(mine)}: the ledger's checkpoints are signed "
                f"by {_signed_by(last.note)}; {HOW_TO_POINT}"
            ) from None
    return False


def _retired(recorded: KeyChain, mine: Verifier) -> str:
    if mine not in recorded.keys:
        return ""
    after = recorded.starts[recorded.keys.index(mine) + 1]
    return f" ({key_label(mine)} was rotated out at tree size {after})"


def _signed_by(note: str) -> str:
    return ", ".join(key_label(s) for s in parse_note(note)[1]) or "nobody"


def require_signer(txn: WriteTxn, signer: Signer, now: str) -> None:
    """Refuse a key that is not the ledger's current one; record it as the first if the ledger
    has none yet."""
    if not check_signer(txn, signer):
        txn.add_key(StoredKey(0, signer.verifier().to_key_string(), 0, None, now))


def check_no_key(txn: ReadTxn) -> None:
    """Refuse to make a first key for a ledger that already has one."""
    recorded = chain(txn)
    if recorded is not None:
        raise SigningKeyError(
            f"the ledger already has a signing key, {recorded.current.to_key_string()}: "
            f"{HOW_TO_POINT}, or make a new one with `receipts keys rotate`"
        )
    last = txn.checkpoint()
    if last is not None:
        raise SigningKeyError(
            f"the ledger's checkpoints are already signed by {_signed_by(last.note)}: "
            f"{HOW_TO_POINT}"
        )


def rotate(txn: WriteTxn, old: Signer, new: Signer, now: str) -> StoredKey:
    """Hand the ledger's checkpoints over from ``old`` (its current key) to ``new``: every
    checkpoint after the latest is signed by ``new``."""
    require_signer(txn, old, now)
    last = txn.checkpoint()
    start = 0 if last is None else last.size + 1
    rotation = Rotation(old.name, start, old.verifier(), new.verifier())
    record = StoredKey(
        len(txn.keys()), new.verifier().to_key_string(), start, rotation.sign(old, new), now
    )
    txn.add_key(record)
    return record


def rotations_for(txn: ReadTxn, size: int) -> list[str]:
    """The rotation statements that lead from the first key to the one that signs the
    checkpoint of tree size ``size``."""
    return [r.rotation for r in txn.keys()[1:] if r.rotation is not None and r.from_size <= size]
