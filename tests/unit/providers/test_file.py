"""Unit tests for the file provider (mailbridge.providers.file)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from mailbridge.errors import PermanentProviderError, TemporaryProviderError
from mailbridge.models import Format
from mailbridge.providers.base import Sent
from mailbridge.providers.file import DEFAULT_PATH, FileProvider
from mailbridge.settings import ProviderSettings
from tests.unit.providers.conftest import outbound


def provider_at(path: Path, **overrides: object) -> FileProvider:
    return FileProvider(ProviderSettings(name="out", type="file", path=str(path), **overrides))  # type: ignore[arg-type]


def lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class TestFileProvider:
    async def test_writes_one_line_per_sms(self, tmp_path: Path) -> None:
        """Each SMS is one JSON object; parent folders are created."""
        path = tmp_path / "deep" / "er" / "outbox.jsonl"
        provider = provider_at(path)
        results = await provider.send(
            [
                outbound(sms_id=1, text="Привет\nмир"),
                outbound(sms_id=2, format=Format.VOICE, voice="w", param="1,2,3"),
            ]
        )
        assert [r.provider_id for r in results if isinstance(r, Sent)] == ["mb-1", "mb-2"]
        first, second = lines(path)
        assert {k: v for k, v in first.items() if k != "at"} == {
            "sms_id": 1,
            "request_id": "42",
            "client_ref": "mb-1",
            "recipient": "+79991234567",
            "sender": "Alex",
            "format": 0,
            "text": "Привет\nмир",
        }
        assert str(first["at"]).endswith("+00:00")
        assert (second["format"], second["voice"], second["param"]) == (9, "w", "1,2,3")
        assert "subject" not in second

    async def test_appends(self, tmp_path: Path) -> None:
        """Later sends append; earlier lines stay."""
        path = tmp_path / "outbox.jsonl"
        path.write_text('{"old": true}\n', encoding="utf-8")
        provider = provider_at(path)
        await provider.send([outbound(sms_id=1)])
        await provider.send([outbound(sms_id=2)])
        assert [line.get("sms_id") for line in lines(path)] == [None, 1, 2]

    async def test_concurrent_writers_do_not_interleave(self, tmp_path: Path) -> None:
        """Many sends at once still give whole lines, one per SMS."""
        path = tmp_path / "outbox.jsonl"
        provider = provider_at(path)
        text = "x" * 5000
        await asyncio.gather(*(provider.send([outbound(sms_id=i, text=text)]) for i in range(50)))
        assert sorted(int(str(line["sms_id"])) for line in lines(path)) == list(range(50))

    async def test_concurrent_sends_share_one_fsync(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Sends handed over together are written with one fsync (a group commit)."""
        synced: list[int] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        monkeypatch.setattr(os, "fsync", fsync)
        path = tmp_path / "outbox.jsonl"
        provider = provider_at(path)
        await asyncio.gather(*(provider.send([outbound(sms_id=i)]) for i in range(20)))
        assert len(synced) == 1
        assert [line["sms_id"] for line in lines(path)] == list(range(20))

    async def test_sends_during_a_write_go_in_the_next(self, tmp_path: Path) -> None:
        """A send handed over while a write is under way is written next, not lost."""
        path = tmp_path / "outbox.jsonl"
        provider = provider_at(path)
        first = asyncio.create_task(provider.send([outbound(sms_id=1)]))
        await asyncio.sleep(0)
        second = await provider.send([outbound(sms_id=2)])
        await first
        assert isinstance(second[0], Sent)
        assert [line["sms_id"] for line in lines(path)] == [1, 2]

    async def test_failed_group_write_fails_every_send(self, tmp_path: Path) -> None:
        """When the shared write fails, each send in it is a temporary failure."""
        provider = provider_at(tmp_path)
        outcomes = await asyncio.gather(
            *(provider.send([outbound(sms_id=i)]) for i in range(3)), return_exceptions=True
        )
        assert all(isinstance(o, TemporaryProviderError) for o in outcomes)
        assert all("cannot write" in str(o) for o in outcomes)

    async def test_aclose_waits_for_a_write(self, tmp_path: Path) -> None:
        """aclose() returns after a write under way is on disk."""
        path = tmp_path / "outbox.jsonl"
        provider = provider_at(path)
        sending = asyncio.create_task(provider.send([outbound(sms_id=7)]))
        await asyncio.sleep(0)
        await provider.aclose()
        assert [line["sms_id"] for line in lines(path)] == [7]
        await sending

    async def test_unwritable_is_temporary(self, tmp_path: Path) -> None:
        """A path that cannot be written is a temporary failure."""
        with pytest.raises(TemporaryProviderError, match="cannot write"):
            await provider_at(tmp_path).send([outbound()])

    async def test_narrowed_formats(self, tmp_path: Path) -> None:
        """A format outside ``formats`` fails alone and is not written."""
        path = tmp_path / "o.jsonl"
        provider = provider_at(path, formats=frozenset({Format.SMS}))
        results = await provider.send([outbound(sms_id=1, format=Format.FLASH), outbound(sms_id=2)])
        assert isinstance(results[0], PermanentProviderError)
        assert isinstance(results[1], Sent)
        assert [line["sms_id"] for line in lines(path)] == [2]

    def test_defaults(self) -> None:
        """All formats; an empty path means the default file name."""
        provider = FileProvider(ProviderSettings(name="out", type="file"))
        assert provider.formats == frozenset(Format)
        assert provider.path == Path(DEFAULT_PATH)

    async def test_aclose_is_harmless(self, tmp_path: Path) -> None:
        """Closing holds nothing and may be repeated."""
        provider = provider_at(tmp_path / "o.jsonl")
        await provider.aclose()
        await provider.aclose()
