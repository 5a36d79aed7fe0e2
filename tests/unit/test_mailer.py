"""The reply mailer's wiring to storage notifications, over MemoryStorage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from mailbridge.delivery.mailer import Mailer
from mailbridge.settings import Settings
from mailbridge.storage.memory import MemoryStorage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


class NotifyingStorage(MemoryStorage):
    """MemoryStorage with the ``subscribe_replies`` hook a shared (PostgreSQL) storage has."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: list[Callable[[], None]] = []
        self.subscribed = 0

    def subscribe_replies(self, callback: Callable[[], None]) -> Callable[[], None]:
        self.subscribed += 1
        self.callbacks.append(callback)

        def unsubscribe() -> None:
            self.callbacks.remove(callback)

        return unsubscribe

    def notify(self) -> None:
        """What the storage does when another instance queued a reply."""
        for callback in list(self.callbacks):
            callback()


def mailer(storage: MemoryStorage) -> Mailer:
    return Mailer(storage, Settings(), clock=lambda: T0)


async def test_subscribes_on_start_and_unsubscribes_on_stop() -> None:
    """start() hands the storage its wake(); stop() takes it back."""
    storage = NotifyingStorage()
    m = mailer(storage)
    assert storage.callbacks == []
    await m.start()
    assert storage.callbacks == [m.wake]
    await m.stop(1.0)
    assert storage.callbacks == []


async def test_subscribes_once_however_often_started() -> None:
    """A second start() while running neither subscribes again nor starts a second loop."""
    storage = NotifyingStorage()
    m = mailer(storage)
    await m.start()
    await m.start()
    assert storage.subscribed == 1
    await m.stop(1.0)
    assert storage.callbacks == []


async def test_restart_subscribes_again() -> None:
    """Stopped and started again, the mailer listens again."""
    storage = NotifyingStorage()
    m = mailer(storage)
    await m.start()
    await m.stop(1.0)
    await m.start()
    assert storage.callbacks == [m.wake]
    await m.stop(1.0)
    assert storage.callbacks == []


async def test_a_notification_wakes_the_mailer() -> None:
    """The storage's notification reaches the mailer's wake event."""
    storage = NotifyingStorage()
    m = mailer(storage)
    await m.start()
    try:
        m._wake.clear()
        storage.notify()
        assert m._wake.is_set()
    finally:
        await m.stop(1.0)


async def test_storage_without_notifications() -> None:
    """A storage without subscribe_replies (SQLite, memory) starts and stops as before."""
    m = mailer(MemoryStorage())
    await m.start()
    await m.stop(1.0)
