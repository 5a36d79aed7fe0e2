"""Who may import storage, and how its clients reach it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import mailbridge

PACKAGE = Path(mailbridge.__file__).parent


def _core_modules() -> list[str]:
    core = PACKAGE / "core"
    return sorted(
        "mailbridge."
        + ".".join(path.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for path in core.rglob("*.py")
    )


def test_core_imports_nothing_of_storage() -> None:
    """Every module under core/, intake included, loads without any storage module."""
    modules = _core_modules()
    assert "mailbridge.core.intake" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('mailbridge.storage'))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []


def test_clients_reach_subscriptions_by_their_protocol() -> None:
    """The dispatcher and the mailer call ``subscribe_*`` directly, never through getattr."""
    for name in ("dispatcher", "mailer"):
        tree = ast.parse((PACKAGE / "delivery" / f"{name}.py").read_text())
        getattr_names = [
            node.args[1].value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
        ]
        assert not [n for n in getattr_names if str(n).startswith("subscribe")], name
