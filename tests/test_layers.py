"""The package's shape: layers point down, no import cycle, no private name borrowed, and
imports that cost the user nothing they do not use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kwa_batch"
ROOT = PACKAGE.parent


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def resolve(node: ast.ImportFrom, current: str, package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = current.split(".")
    base = base if package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def module_level_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(imported module, names) for the imports that run when the module is imported:
    not those inside functions, nor those under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    current = module_name(path)
    found: list[tuple[str, list[str]]] = []

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.ImportFrom):
                found.append(
                    (resolve(node, current, is_package(path)), [a.name for a in node.names])
                )
            elif isinstance(node, ast.Import):
                found.extend((alias.name, []) for alias in node.names)
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)

    visit(tree.body)
    return found


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_the_layering_contract_holds() -> None:
    """import-linter's contracts in pyproject.toml (layers; the emulator's independence)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_no_import_cycle_at_module_level() -> None:
    graph: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        edges = set()
        for target, names in module_level_imports(path):
            for candidate in [f"{target}.{n}" for n in names] + [target]:
                if candidate in MODULES and candidate != name:
                    edges.add(candidate)
                    break
        graph[name] = edges
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node)


def test_no_module_borrows_another_modules_private_names() -> None:
    borrowed = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level + bool(
                (node.module or "").startswith("kwa_batch")
            ):
                target = resolve(node, name, is_package(path))
                if target == name:
                    continue
                borrowed += [
                    f"{name} imports {target}.{a.name}"
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert borrowed == []


def imported_after(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_import_kwa_batch_loads_no_server() -> None:
    modules = imported_after("import kwa_batch")
    assert "werkzeug" not in modules
    assert "pandas" not in modules


def test_help_and_version_load_neither_pandas_nor_pandera() -> None:
    for flag in ("--help", "--version"):
        modules = imported_after(
            "from kwa_batch.cli import main\n"
            f"sys.argv = ['kwa-batch', '{flag}']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass"
        )
        assert "kwa_batch.cli" in modules
        assert not {"pandas", "pandera", "werkzeug", "pyarrow", "urllib3", "requests"} & modules, (
            flag
        )


def test_the_accessor_is_registered_whichever_is_imported_first() -> None:
    for code in ("import kwa_batch\nimport pandas", "import pandas\nimport kwa_batch"):
        modules = imported_after(f"{code}\nassert hasattr(pandas.DataFrame, 'kwa')")
        assert "kwa_batch.accessor" in modules


def test_no_two_modules_share_a_name() -> None:
    """One name, one room: ``windows.py`` twice (or ``results.py`` in two packages) makes a
    reader open the wrong one."""
    seen: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if path.name not in {"__init__.py", "__main__.py"}:
            seen.setdefault(path.stem, []).append(module_name(path))
    assert {name: homes for name, homes in seen.items() if len(homes) > 1} == {}
