"""Group commit of one kind of small write: many callers, one transaction.

A :class:`Coalescer` takes items from many callers (each awaits its own) and
writes everything that came in meanwhile with one call of its ``write``
function, one transaction, at most one such call at a time: the items that
arrive while a write is under way go into the next one, which starts as soon
as it ends. Under load the batches grow by themselves; alone, an item is
written at once (one turn of the event loop later).

A caller is answered only after the write that holds its item has
returned, i.e. is committed. Should a write of several items fail, each item
is written again alone, so one failing item fails only its own caller (as a
SAVEPOINT per operation would).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Writes items in batches with ``write`` (one transaction for the whole sequence)."""

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[None]]) -> None:
        self._write = write
        self._pending: list[tuple[T, asyncio.Future[None]]] = []
        self._running = False
        self._tasks: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak ones
        self._loop: asyncio.AbstractEventLoop | None = None

    async def add(self, item: T) -> None:
        """Write ``item`` with whatever else is waiting; returns once it is committed."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests): what the old one held is gone
            self._loop, self._pending, self._running = loop, [], False
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((item, future))
        if not self._running:
            self._running = True
            loop.call_soon(self._start, loop)
        await future

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._pending, self._running = self._pending, [], False
        task = loop.create_task(self._commit(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(self, batch: list[tuple[T, asyncio.Future[None]]]) -> None:
        try:
            await self._write([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                _answer(batch[0][1], exc)
                return
            for item, future in batch:  # alone, so that only the failing one fails
                try:
                    await self._write([item])
                except Exception as alone:
                    _answer(future, alone)
                else:
                    _answer(future, None)
            return
        except BaseException:  # cancelled: the write may or may not have committed
            for _, future in batch:
                if not future.done():
                    future.cancel()
            raise
        for _, future in batch:
            _answer(future, None)


def _answer(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():  # the caller gave up waiting; the write stands
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
