"""Helpers shared by the test suites."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["skip_unless_ci"]


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip for a missing tool on a developer's machine; fail under CI, which installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} — .ci/run installs it, so under CI this is a failure")
    pytest.skip(reason)
