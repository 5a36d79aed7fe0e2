"""The shape of the package: the core imports no I/O library, and no import cycle anywhere."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mailbridge

PACKAGE = Path(mailbridge.__file__).resolve().parent

#: The frozen values every layer shares; pure like the core.
SHARED_VALUES = ["mailbridge.errors", "mailbridge.models", "mailbridge.settings"]

FORBIDDEN = ["asyncio", "aiosmtpd", "aiosmtplib", "httpx", "sqlite3", "structlog"]


def module_name(path: Path) -> str:
    """``mailbridge/core/mail/reader.py`` -> ``mailbridge.core.mail.reader``."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def core_modules() -> list[str]:
    """Every module under ``mailbridge/core/``, found by walking the folder."""
    return sorted(module_name(p) for p in (PACKAGE / "core").rglob("*.py"))


def test_the_walk_finds_the_core() -> None:
    """The folder walk sees the core's modules, nested packages included."""
    found = core_modules()
    assert "mailbridge.core.grammar" in found
    assert "mailbridge.core.mail.reader" in found
    assert all(name.startswith("mailbridge.core") for name in found)


@pytest.mark.parametrize("module", SHARED_VALUES + core_modules())
def test_core_module_imports_no_io_library(module: str) -> None:
    """Importing a core module pulls in none of the I/O libraries."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def imports_of(path: Path) -> set[str]:
    """The ``mailbridge`` modules one file imports, at module level or inside functions."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mailbridge"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if not base.startswith("mailbridge"):
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(
                    sub
                    if (PACKAGE.parent / sub.replace(".", "/")).exists()
                    or (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists()
                    else base
                )
    return found - {name}


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports, deferred imports included."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {i for i in imports_of(path) if i in modules} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    """The checker itself sees a cycle when there is one."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    """No module of the package reaches itself through imports, deferred ones included."""
    assert find_cycle(import_graph()) is None


def test_core_imports_only_core_and_values() -> None:
    """``core/`` imports nothing of storage, providers, smtp, delivery, runtime or cli."""
    allowed = ("mailbridge.core", *SHARED_VALUES, "mailbridge")
    graph = import_graph()
    wrong = {
        (module, target)
        for module in core_modules()
        for target in graph[module]
        if not (target in allowed or target.startswith("mailbridge.core."))
    }
    assert wrong == set()
