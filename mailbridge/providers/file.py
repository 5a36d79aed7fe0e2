"""The ``file`` provider: each SMS becomes one JSON line appended to ``path``.

The embedded default, so the gateway runs and can be tried with no account
anywhere. Each batch is written in one append, flushed and fsynced before
``send`` returns (a :class:`Sent` means the line is on disk); the blocking
write runs in a worker thread, one write at a time, and batches handed over
while a write is under way go out together in the next one (one fsync for
all of them: a group commit). The line
holds ``at`` (UTC, ISO 8601), ``sms_id``, ``request_id``, ``client_ref``,
``recipient``, ``sender``, ``format``, ``text`` and, when set, ``subject``,
``voice``, ``param``. ``provider_id`` is the client ref. An empty ``path``
means :data:`DEFAULT_PATH` in the working directory.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from mailbridge.errors import TemporaryProviderError
from mailbridge.models import Format
from mailbridge.providers.base import (
    ALL_FORMATS,
    Outbound,
    SendResult,
    Sent,
    check_batch,
    format_refused,
)
from mailbridge.settings import ProviderSettings

__all__ = ["DEFAULT_PATH", "FILE_FORMATS", "FileProvider", "outbound_record"]

FILE_FORMATS: frozenset[Format] = ALL_FORMATS
DEFAULT_PATH = "mailbridge-outbox.jsonl"


def outbound_record(item: Outbound, *, at: datetime) -> dict[str, object]:
    """The JSON object written for one SMS."""
    record: dict[str, object] = {
        "at": at.isoformat(),
        "sms_id": item.sms_id,
        "request_id": item.request_id,
        "client_ref": item.client_ref,
        "recipient": item.recipient,
        "sender": item.sender,
        "format": int(item.format),
        "text": item.text,
    }
    for key in ("subject", "voice", "param"):
        value = getattr(item, key)
        if value is not None:
            record[key] = value
    return record


class FileProvider:
    """Appends SMS as JSON lines to a file."""

    max_batch = 100

    def __init__(self, settings: ProviderSettings) -> None:
        self.name = settings.name
        self.formats = FILE_FORMATS & (settings.formats or FILE_FORMATS)
        self.path = Path(settings.path or DEFAULT_PATH)
        self._pending: list[tuple[bytes, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]:
        check_batch(self.name, batch, self.max_batch)
        now = datetime.now(UTC)
        lines: list[str] = []
        results: list[SendResult] = []
        for item in batch:
            if (refused := format_refused(self.name, self.formats, item)) is not None:
                results.append(refused)
                continue
            record = outbound_record(item, at=now)
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            results.append(Sent(provider_id=item.client_ref, answer=f"written to {self.path}"))
        if lines:
            try:
                await self._write("".join(lines).encode("utf-8"))
            except OSError as exc:
                raise TemporaryProviderError(
                    f"{self.name}: cannot write {self.path}: {exc.strerror or exc}"
                ) from exc
        return results

    async def aclose(self) -> None:
        """Wait for a write under way; nothing stays open between batches."""
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            await asyncio.shield(flusher)

    async def _write(self, data: bytes) -> None:
        """Append ``data`` durably, together with whatever else is waiting."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((data, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name=f"mailbridge-file-{self.name}")
        await done

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            group, self._pending = self._pending, []
            error: BaseException | None = None
            try:
                await loop.run_in_executor(None, _append, self.path, b"".join(d for d, _ in group))
            except BaseException as exc:
                error = exc
            for _, done in group:
                if done.done():  # the caller gave up waiting
                    continue
                if error is None:
                    done.set_result(None)
                elif isinstance(error, OSError):
                    done.set_exception(OSError(error.errno, error.strerror, error.filename))
                else:  # cancelled (the loop is shutting down) or a bug: not written
                    done.set_exception(OSError(f"write interrupted ({type(error).__name__})"))
            if error is not None and not isinstance(error, Exception):
                group, self._pending = self._pending, []
                for _, done in group:
                    if not done.done():
                        done.set_exception(OSError("write interrupted"))
                raise error


def _append(path: Path, data: bytes) -> None:
    try:
        out = path.open("ab")
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        out = path.open("ab")
    with out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
