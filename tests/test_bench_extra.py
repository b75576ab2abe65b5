"""`pip install -e '.[bench]'` gives the bench scripts everything they import."""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# Modules whose distribution has another name, or comes with a listed one.
DISTRIBUTION = {"jwt": "pyjwt", "starlette": "fastapi"}
# Submodules that import what only an extra of their distribution installs.
NEEDS_EXTRA = {"eventsourcing.postgres": ("eventsourcing", "postgres")}  # psycopg_pool


def imported(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module)
    return out


def test_the_bench_extra_installs_what_every_bench_script_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["bench"]]
    extras = {canonicalize_name(r.name): r.extras for r in map(Requirement, wanted)}
    local = {p.stem for p in BENCH.glob("*.py")} | {"receipts"}
    missing = []
    for path in sorted(BENCH.glob("*.py")):
        for module in sorted(imported(path)):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in local:
                continue
            dist = canonicalize_name(DISTRIBUTION.get(top, top))
            if dist not in extras:
                missing.append(f"{path.name}: {module} ({dist})")
            need = NEEDS_EXTRA.get(module)
            if need and need[1] not in extras.get(canonicalize_name(need[0]), set()):
                missing.append(f"{path.name}: {module} needs {need[0]}[{need[1]}]")
    assert not missing, missing
