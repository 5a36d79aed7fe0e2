"""Fakes that tests, benchmarks and end-to-end runs share.

The names are loaded on first use, so that ``python -m tests.fakes.provider_server``
does not find its own module already imported by this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.provider_server import PATHS, FakeProviderServer, Faults, RecordedRequest

__all__ = ["PATHS", "FakeProviderServer", "Faults", "RecordedRequest"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("tests.fakes.provider_server"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
