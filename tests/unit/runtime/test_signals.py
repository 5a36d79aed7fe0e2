"""The daemon's signal handling (``mailbridge.runtime.signals``), with real signals."""

from __future__ import annotations

import asyncio
import os
import signal

from mailbridge.runtime.signals import DaemonSignals


async def test_sighup_reloads_and_release_waits_for_it() -> None:
    started = asyncio.Event()
    finish = asyncio.Event()
    done: list[str] = []

    async def reload() -> None:
        started.set()
        await finish.wait()
        done.append("reloaded")

    signals = DaemonSignals(reload)
    signals.install()
    os.kill(os.getpid(), signal.SIGHUP)
    await asyncio.wait_for(started.wait(), 5)
    assert not signals.stop.is_set()
    release = asyncio.ensure_future(signals.release())
    await asyncio.sleep(0)
    assert not release.done()  # a reload under way is awaited
    finish.set()
    await release
    assert done == ["reloaded"]


async def test_sigterm_and_sigint_ask_to_stop() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):

        async def reload() -> None:
            raise AssertionError("no reload on a stop signal")

        signals = DaemonSignals(reload)
        signals.install()
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(signals.stop.wait(), 5)
        await signals.release()


async def test_release_removes_the_handlers() -> None:
    async def reload() -> None:
        return None

    signals = DaemonSignals(reload)
    signals.install()
    await signals.release()
    loop = asyncio.get_running_loop()
    assert not loop.remove_signal_handler(signal.SIGHUP)  # nothing left to remove
