"""The group commit of small writes (:class:`mailbridge.storage.batching.Coalescer`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from mailbridge.storage.batching import Coalescer


class Recorder:
    """A write function that records each call; items named ``bad`` make it fail."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.committed: list[str] = []
        self.gate: asyncio.Event | None = None

    async def write(self, items: Sequence[str]) -> None:
        self.calls.append(list(items))
        if self.gate is not None:
            await self.gate.wait()
        if "bad" in items:
            raise ValueError("bad item")
        self.committed.extend(items)


async def test_items_added_together_share_one_write() -> None:
    """Calls under way at the same time end up in one write; each returns once written."""
    rec = Recorder()
    batch = Coalescer(rec.write)
    await asyncio.gather(*(batch.add(name) for name in ("a", "b", "c")))
    assert rec.calls == [["a", "b", "c"]]
    assert rec.committed == ["a", "b", "c"]


async def test_a_caller_returns_only_after_its_write() -> None:
    """While the write is held, nobody is answered."""
    rec = Recorder()
    rec.gate = asyncio.Event()
    batch = Coalescer(rec.write)
    task = asyncio.create_task(batch.add("a"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert rec.calls == [["a"]]
    assert not task.done()
    rec.gate.set()
    await task
    assert rec.committed == ["a"]


async def test_items_added_during_a_write_go_into_another_write() -> None:
    """Nothing added while a write is under way is lost or answered early."""
    rec = Recorder()
    rec.gate = asyncio.Event()
    batch = Coalescer(rec.write)
    first = asyncio.create_task(batch.add("a"))
    for _ in range(3):
        await asyncio.sleep(0)
    second = asyncio.create_task(batch.add("b"))
    for _ in range(3):
        await asyncio.sleep(0)
    assert not second.done()
    rec.gate.set()
    await asyncio.gather(first, second)
    assert sorted(rec.committed) == ["a", "b"]
    assert ["a"] in rec.calls
    assert ["b"] in rec.calls


async def test_a_failing_item_fails_only_its_own_caller() -> None:
    """The batch fails; each item is written again alone, so the others still commit."""
    rec = Recorder()
    batch = Coalescer(rec.write)
    results = await asyncio.gather(
        batch.add("a"), batch.add("bad"), batch.add("c"), return_exceptions=True
    )
    assert results[0] is None
    assert results[2] is None
    assert isinstance(results[1], ValueError)
    assert rec.committed == ["a", "c"]
    assert rec.calls[0] == ["a", "bad", "c"]


async def test_a_caller_that_gives_up_does_not_stop_the_write() -> None:
    """A cancelled caller's item is still written, and the others are answered."""
    rec = Recorder()
    rec.gate = asyncio.Event()
    batch = Coalescer(rec.write)
    quitter = asyncio.create_task(batch.add("a"))
    stayer = asyncio.create_task(batch.add("b"))
    for _ in range(3):
        await asyncio.sleep(0)
    quitter.cancel()
    rec.gate.set()
    await stayer
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert rec.committed == ["a", "b"]
