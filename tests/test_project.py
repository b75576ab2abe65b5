"""The project's promises about itself: README commands, CI script, layering, public API."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import receipts

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "receipts"


def readme_commands() -> list[str]:
    """The commands of the README's first code block, comments stripped."""
    text = (ROOT / "README.md").read_text()
    first_screen = "\n".join(text.splitlines()[:40])
    block = re.search(r"```sh\n(.*?)```", first_screen, re.S)
    assert block, "the README's first screen has no ```sh block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_first_screen_has_install_demo_and_test_commands() -> None:
    install, demo, test = readme_commands()
    assert install.startswith("pip install")
    assert demo == "receipts demo"
    assert test == "pytest"


def test_ci_runs_the_readme_install_and_test_commands() -> None:
    install, _, test = readme_commands()
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert install in ci
    assert ci[-1] == test


def test_readme_demo_command_runs_on_a_fresh_folder(tmp_path: Path) -> None:
    _, demo, _ = readme_commands()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIPTS_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for _ in range(2):  # the demo works when run twice in the same folder
        result = subprocess.run(
            demo, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert "payments" in result.stdout and "Trace" in result.stdout
    assert (tmp_path / "receipts.db").exists()


# The layers of src/receipts/ as the tree has them, bottom to top: a module may import only from
# its own layer or below. (DESIGN.md's diagram in the same order; its views/ and commit/ get a
# row here when they exist.)
LAYERS = {
    "errors": 0,  # the error tree
    "limits": 0,  # configured sizes
    "dburl": 0,  # what a database URL means
    "jsontext": 1,
    "tlog": 1,
    "model": 1,
    "catalog": 1,
    "access": 1,  # who may write and read what
    "validate": 2,
    "bundle": 2,
    "fold": 2,  # a derived state's value from receipts (pure)
    "answer": 2,  # an answer bundle, checked offline (pure)
    "store": 3,
    "keys": 4,
    "merkle": 4,
    "batch": 4,
    "ledger": 4,
    "audit": 4,
    "project": 4,  # the derived states' index, and the rules at write
    "commit": 5,  # group commit and the writer process drive the ledger's transactions
    "cli": 6,
    "api": 6,
    "cloudevents": 6,
}
PURE = {"tlog", "model", "bundle", "fold", "answer"}
IMPURE_MODULES = {"sqlite3", "psycopg", "socket", "subprocess", "time", "random"}


def _imports(path: Path) -> list[tuple[str, int]]:
    """(absolute module name, line) of every import in a source file."""
    # A package's __init__ counts as a module inside it, so ``..x`` climbs as from a sibling.
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: -node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append((name, node.lineno))
    return out


def _layer_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "receipts" else None


def test_dependencies_point_down_only() -> None:
    problems = []
    for path in SRC.rglob("*.py"):
        own = _layer_of(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
        if own is None or own == "__init__":
            continue
        assert own in LAYERS, f"{path}: module {own!r} has no layer in this test"
        for name, line in _imports(path):
            target = _layer_of(name)
            if target and target in LAYERS and LAYERS[target] > LAYERS[own]:
                problems.append(f"{path.relative_to(ROOT)}:{line} ({own}) imports {name}")
            top = name.split(".")[0]
            if own in PURE and top in IMPURE_MODULES:
                problems.append(f"{path.relative_to(ROOT)}:{line} pure {own} imports {name}")
    assert not problems, "\n".join(problems)


def _module_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Every module of the package (``receipts.x.y``) and the package modules it imports
    (``from .x import f`` imports module x; ``from . import y`` module y if y is one)."""
    paths = {}
    for path in src.rglob("*.py"):
        parts = path.relative_to(src.parent).with_suffix("").parts
        paths[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.stem == "__init__" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                subs = {f"{base}.{a.name}" for a in node.names} & set(paths)
                targets |= subs or {base}
        graph[name] = {t for t in targets if t in paths}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 on the path, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            # a package's __init__ importing its own modules (and they it) is no loop of layers
            if target == name or name.startswith(target + ".") or target.startswith(name + "."):
                continue
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_no_import_cycles() -> None:
    cycles = _cycles(_module_graph())
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_the_cycle_check_finds_a_loop(tmp_path: Path) -> None:
    package = tmp_path / "receipts"
    (package / "api").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "api" / "__init__.py").write_text("")
    (package / "api" / "app.py").write_text("def f():\n    from . import routes\n")
    (package / "api" / "routes.py").write_text("from .app import f\n")
    graph = _module_graph(package)
    assert graph["receipts.api.app"] == {"receipts.api.routes"}
    assert _cycles(graph) == [["receipts.api.app", "receipts.api.routes", "receipts.api.app"]]


def test_the_edges_use_the_ledger_facade_only() -> None:
    """api/ and cli/ go through Ledger: no `.store` of it, no store module imported."""
    problems = []
    for folder in ("api", "cli"):
        for path in (SRC / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            where = path.relative_to(ROOT)
            problems += [
                f"{where}:{line} imports {name}"
                for name, line in _imports(path)
                if name.startswith("receipts.store")
            ]
            problems += [
                f"{where}:{node.lineno} uses .store"
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr == "store"
            ]
    assert not problems, "\n".join(problems)


MAX_FUNCTION_LINES = 60


def test_functions_are_short() -> None:
    """No function over ~60 lines: a longer one is doing several things."""
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert not long, "\n".join(long)


def test_every_layer_is_in_the_tree() -> None:
    modules = {p.stem for p in SRC.glob("*.py")} | {p.name for p in SRC.iterdir() if p.is_dir()}
    assert set(LAYERS) <= modules, f"layers without a module: {set(LAYERS) - modules}"


def test_public_api_is_sorted_and_resolves() -> None:
    assert receipts.__all__ == sorted(receipts.__all__)
    for name in receipts.__all__:
        assert getattr(receipts, name) is not None
    public = {n for n in dir(receipts) if not n.startswith("_")}
    submodules = {p.stem for p in SRC.iterdir()} | {p.name for p in SRC.iterdir() if p.is_dir()}
    assert public - set(receipts.__all__) - submodules == set()


def test_every_error_has_a_stable_code_status_and_exit_code() -> None:
    errors = [getattr(receipts, n) for n in receipts.__all__ if n.endswith("Error")]
    codes = [e.code for e in errors]
    assert len(codes) == len(set(codes)), "error codes must be unique"
    for cls in errors:
        assert issubclass(cls, receipts.ReceiptsError)
        assert 400 <= cls.http_status < 600 and cls.exit_code in (1, 2)


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    import click

    out = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += _commands(command, f"{prefix}{name} ")
        else:
            out.append((f"{prefix}{name}", command))
    return out


def test_every_cli_command_has_help_and_is_documented() -> None:
    from receipts.cli import cli

    docs = "\n".join(
        p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    )
    for name, command in _commands(cli):
        assert (command.help or "").strip(), f"`receipts {name}` has no help text"
        # `receipts [--db …] NAME`: options may stand between the program and the command.
        pattern = rf"receipts (?:--?\S+(?: \S+)? )*{re.escape(name)}\b"
        assert re.search(pattern, docs), f"`receipts {name}` is not shown in README.md or docs/"


def test_every_receipts_variable_is_documented() -> None:
    names = set()
    for folder in ("src", "tests", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(re.findall(r"RECEIPTS_[A-Z][A-Z0-9_]*", path.read_text()))
    documented = (ROOT / "docs" / "configuration.md").read_text()
    missing = sorted(n for n in names if f"`{n}`" not in documented)
    assert not missing, f"not in docs/configuration.md: {missing}"
