"""receipts.tlog stays pure: no I/O, no clock, no database, no other receipts modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TLOG = Path(__file__).parent.parent / "src" / "receipts" / "tlog"
ALLOWED = {
    "__future__",
    "base64",
    "binascii",
    "collections.abc",
    "cryptography.exceptions",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "dataclasses",
    "hashlib",
    "re",
    "receipts.errors",
}
FORBIDDEN_CALLS = {"open", "print", "input", "exec", "eval", "__import__"}


def _imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", sorted(TLOG.glob("*.py")), ids=lambda p: p.name)
def test_module_is_pure(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert _imports(tree) <= ALLOWED
    calls = {
        n.func.id
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert not calls & FORBIDDEN_CALLS
