"""A reply mail the smarthost refuses for good (5xx) is dropped with one log line; a
temporary refusal (4xx) is tried again."""

from __future__ import annotations

import asyncio
from typing import Any

from aiosmtpd.smtp import SMTP
from structlog.testing import capture_logs

from .conftest import DaemonFactory, command


class RefusingSmarthost:
    """A real SMTP server answering RCPT with ``answer`` and counting the tries."""

    def __init__(self, answer: str) -> None:
        self.answer = answer
        self.rcpts = 0
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.rcpts += 1
        return self.answer

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="smarthost.test"), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._server is not None:
            self._server.close()


async def _reply_state(daemon: Any, request_id: str) -> tuple[str, int, str]:
    detail = await daemon.detail(request_id)
    (reply,) = detail.replies
    return reply.state, reply.attempts, getattr(reply, "error", "") or ""


async def test_5xx_drops_the_reply_with_one_line(start_daemon: DaemonFactory) -> None:
    refusing = RefusingSmarthost("550 5.1.1 <gone@example.com>: Recipient address rejected")
    await refusing.start()
    try:
        daemon = await start_daemon({"reply": {"smarthost": f"127.0.0.1:{refusing.port}"}})
        with capture_logs() as logs:
            code, message = await daemon.send(
                command(options=",,,1", mes="ping"), mail_from="gone@example.com"
            )
            assert code == 250, message
            for _ in range(100):
                if refusing.rcpts:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)  # several retry_first_s (0.2 s) later: no second try
        assert refusing.rcpts == 1
        state, attempts, _ = await _reply_state(daemon, "1")
        assert (state, attempts) == ("dropped", 1)
        dropped = [e for e in logs if e.get("event") == "reply_dropped"]
        assert len(dropped) == 1
        assert dropped[0]["answer"].startswith("550 5.1.1")
        assert not [e for e in logs if e.get("event") == "reply_retry"]
    finally:
        refusing.stop()


async def test_4xx_is_tried_again(start_daemon: DaemonFactory) -> None:
    refusing = RefusingSmarthost("450 4.2.1 Mailbox busy, try later")
    await refusing.start()
    try:
        daemon = await start_daemon(
            {"reply": {"smarthost": f"127.0.0.1:{refusing.port}"},
             "delivery": {"retry_first_s": 0.1, "retry_max_s": 0.2}}
        )  # fmt: skip
        code, _ = await daemon.send(command(options=",,,1", mes="ping"))
        assert code == 250
        for _ in range(100):
            if refusing.rcpts >= 2:
                break
            await asyncio.sleep(0.05)
        assert refusing.rcpts >= 2
        state, _, _ = await _reply_state(daemon, "1")
        assert state in {"queued", "sending"}
    finally:
        refusing.stop()
