"""Stopping a background task (``mailbridge.runtime.tasks``)."""

from __future__ import annotations

import asyncio

import pytest

from mailbridge.runtime.tasks import cancel_and_wait


async def test_a_running_task_is_cancelled_and_has_ended() -> None:
    cleaned: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.append("done")

    task = asyncio.get_running_loop().create_task(forever())
    await asyncio.sleep(0)
    await cancel_and_wait(task)
    assert task.cancelled()
    assert cleaned == ["done"]


async def test_none_is_nothing_to_stop() -> None:
    await cancel_and_wait(None)


async def test_an_error_the_task_ended_with_is_raised() -> None:
    async def broken() -> None:
        raise RuntimeError("broke")

    task = asyncio.get_running_loop().create_task(broken())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="broke"):
        await cancel_and_wait(task)
