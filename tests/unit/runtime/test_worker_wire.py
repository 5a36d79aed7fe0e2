"""The datagrams SMTP workers send their parent (``mailbridge.runtime.worker_wire``)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.runtime.worker_wire import WakeSender, due_time


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def _received(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(256))
        except BlockingIOError:
            return out


async def test_one_datagram_per_turn_carries_the_earliest_due(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender = WakeSender(pair[0])
    now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    sender.request(now + timedelta(hours=1))
    sender.request(now)
    sender.reply()
    sender.request(now + timedelta(days=1))
    await asyncio.sleep(0)
    [data] = _received(pair[1])
    kinds, _, stamp = data.partition(b"@")
    assert sorted(kinds) == sorted(b"dr")
    assert due_time(stamp) == now


async def test_a_request_without_due_wakes_regardless(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    sender = WakeSender(pair[0])
    sender.request(datetime(2026, 11, 25, tzinfo=UTC))
    sender.request(None)
    await asyncio.sleep(0)
    assert _received(pair[1]) == [b"d"]
    sender.request(datetime(2026, 11, 25, tzinfo=UTC))  # the next turn starts afresh
    await asyncio.sleep(0)
    [data] = _received(pair[1])
    assert due_time(data.partition(b"@")[2]) == datetime(2026, 11, 25, tzinfo=UTC)


@pytest.mark.parametrize("stamp", [b"", b"soon", b"1e400", b"nan"])
def test_unreadable_due_means_wake(stamp: bytes) -> None:
    assert due_time(stamp) is None
