"""Fixtures of the delivery tests: a fresh MemoryStorage, a ManualClock at T0."""

from __future__ import annotations

import pytest

from mailbridge.delivery.clock import ManualClock
from mailbridge.storage.memory import MemoryStorage
from tests.unit.delivery.support import T0


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)
