"""A CLI command that works on the storage: open it, run the command, close it.

``queue`` and ``balance`` work on the live database beside a running daemon.
Storage that cannot be opened prints ``cannot open storage: …``; a storage
failure while the command runs prints the command's own prefix and the
error; both exit with :data:`EXIT_STORAGE`. The storage is closed whatever
happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TextIO

from mailbridge.errors import MailbridgeError
from mailbridge.settings import Settings
from mailbridge.storage.base import Storage

__all__ = ["EXIT_STORAGE", "StorageOpener", "run_with_storage"]

#: The exit status of a command whose storage could not be opened or failed.
EXIT_STORAGE = 3

#: Opens the storage a URL names (default: :func:`mailbridge.storage.factory.open_storage`).
StorageOpener = Callable[[str], Storage]


async def _with_storage(
    settings: Settings,
    open_storage: StorageOpener,
    body: Callable[[Storage], Awaitable[int]],
    err: TextIO,
    failed: str,
) -> int:
    try:
        storage = open_storage(settings.storage.url)
        await storage.open()
    except MailbridgeError as exc:
        print(f"cannot open storage: {exc}", file=err)
        return EXIT_STORAGE
    try:
        return await body(storage)
    except MailbridgeError as exc:
        print(f"{failed}: {exc}", file=err)
        return EXIT_STORAGE
    finally:
        await storage.close()


def run_with_storage(
    settings: Settings,
    body: Callable[[Storage], Awaitable[int]],
    *,
    err: TextIO,
    failed: str,
    open_storage: StorageOpener | None = None,
) -> int:
    """Run ``body`` on the opened storage in a fresh event loop; its exit status, or
    :data:`EXIT_STORAGE` (``failed``: the prefix of the line a storage failure prints)."""
    if open_storage is None:
        from mailbridge.storage.factory import open_storage as factory

        open_storage = factory
    return asyncio.run(_with_storage(settings, open_storage, body, err, failed))
