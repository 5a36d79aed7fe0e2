"""The core never imports I/O libraries: checked in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CORE_MODULES = [
    "mailbridge.errors",
    "mailbridge.models",
    "mailbridge.settings",
    "mailbridge.core.capabilities",
    "mailbridge.core.mail",
    "mailbridge.core.grammar",
    "mailbridge.core.timespec",
    "mailbridge.core.phones",
    "mailbridge.core.translit",
    "mailbridge.core.encoding",
    "mailbridge.core.answers",
    "mailbridge.core.request",
    "mailbridge.core.limits",
    "mailbridge.core.passwords",
    "mailbridge.core.config",
    "mailbridge.core.retry",
    "mailbridge.core.routing",
    "mailbridge.core.receipts",
    "mailbridge.core.inbound",
]

FORBIDDEN = ["asyncio", "aiosmtpd", "aiosmtplib", "httpx", "sqlite3", "structlog"]


@pytest.mark.parametrize("module", CORE_MODULES)
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
