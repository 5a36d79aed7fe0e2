"""A loopback HTTP server answering with a body as large as asked (Miatel's success line first)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
from collections.abc import AsyncIterator

__all__ = ["ACCEPTED", "BodyServer", "serving"]

ACCEPTED = b"0: Accepted for delivery. id:5f1c. count:1. code:0 "


class BodyServer:
    """Answers every request with ``status`` and a body of ``size`` bytes (optionally gzipped)."""

    def __init__(
        self, size: int, *, gzipped: bool = False, chunked: bool = False, big_first: int = -1
    ) -> None:
        self.size = size
        self.big_first = big_first  # answers with the big body before small ones; -1: all
        self.requests = 0
        self.gzipped = gzipped
        self.chunked = chunked
        self.sent = 0
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            big = self.big_first < 0 or self.requests <= self.big_first
            body = ACCEPTED + b"x" * (self.size if big else 0)
            head = "HTTP/1.1 202 Accepted\r\nContent-Type: text/plain\r\n"
            if self.gzipped:
                body = gzip.compress(body, compresslevel=9)
                head += "Content-Encoding: gzip\r\n"
            if self.chunked:
                head += "Transfer-Encoding: chunked\r\n\r\n"
            else:
                head += f"Content-Length: {len(body)}\r\n\r\n"
            writer.write(head.encode())
            step = 256 * 1024
            for i in range(0, len(body), step):
                piece = body[i : i + step]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if self.chunked else piece)
                await writer.drain()
                self.sent += len(piece)
            if self.chunked:
                writer.write(b"0\r\n\r\n")
            await writer.drain()
        writer.close()


@contextlib.asynccontextmanager
async def serving(server: BodyServer) -> AsyncIterator[str]:
    """Run ``server`` on 127.0.0.1; yields a Miatel-shaped URL."""
    srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{server.port}/sendsms"
    finally:
        srv.close()
