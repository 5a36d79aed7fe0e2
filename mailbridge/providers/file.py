"""The ``file`` provider: each SMS becomes one JSON line appended to ``path``.

The embedded default, so the gateway runs and can be tried with no account
anywhere. Each batch is written in one append, flushed and fsynced before
``send`` returns (a :class:`Sent` means the line is on disk); the blocking
write runs in a worker thread and writers are serialised by a lock. The line
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

from mailbridge.errors import PermanentProviderError, TemporaryProviderError
from mailbridge.models import Format
from mailbridge.providers.base import ALL_FORMATS, Outbound, SendResult, Sent, check_batch
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
        self._lock = asyncio.Lock()

    async def send(self, batch: Sequence[Outbound]) -> list[SendResult]:
        check_batch(self.name, batch, self.max_batch)
        now = datetime.now(UTC)
        lines: list[str] = []
        results: list[SendResult] = []
        for item in batch:
            if item.format not in self.formats:
                results.append(
                    PermanentProviderError(f"{self.name}: format {int(item.format)} not carried")
                )
                continue
            record = outbound_record(item, at=now)
            lines.append(json.dumps(record, ensure_ascii=False) + "\n")
            results.append(Sent(provider_id=item.client_ref, answer=f"written to {self.path}"))
        if lines:
            async with self._lock:
                try:
                    await asyncio.to_thread(_append, self.path, "".join(lines))
                except OSError as exc:
                    raise TemporaryProviderError(
                        f"{self.name}: cannot write {self.path}: {exc.strerror or exc}"
                    ) from exc
        return results

    async def aclose(self) -> None:
        """Nothing stays open between batches."""


def _append(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
