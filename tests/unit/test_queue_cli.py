"""`mailbridge queue list|show|retry|cancel` over MemoryStorage."""

from __future__ import annotations

import argparse
import io
from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.cli.queue import (
    EXIT_BAD_ARGS,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_STORAGE,
    kept_line,
    parse_state,
    queue_cancel,
    queue_list,
    queue_retry,
    queue_show,
    run_queue_command,
)
from mailbridge.core.encoding import split_text
from mailbridge.models import Format, Message, RouteKind, SmsRequest, SmsState
from mailbridge.settings import LimitsSettings, Settings, StorageSettings
from mailbridge.storage.base import Intake, ReplyDraft, Storage
from mailbridge.storage.memory import MemoryStorage

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def _enqueue(storage: MemoryStorage, recipients: tuple[str, ...], account: str) -> str:
    request = SmsRequest(
        account=account,
        client_id=None,
        due=T0,
        translit=0,
        format=Format.SMS,
        sender="Alex",
        test=0,
        messages=(Message(text="hi", recipients=recipients, split=split_text("hi")),),
    )
    intake = Intake(
        received_at=T0,
        client_ip="127.0.0.1",
        mail_from="ops@example.com",
        rcpt_to=("send@localhost",),
        raw=b"alex:SECRETPW::::+79990000001:hi",
        mode=RouteKind.COMMAND,
        account=account,
        client_id=None,
        request=request,
        error=None,
    )
    result = await storage.accept(intake, limits=LimitsSettings(), reply_rate_per_hour=0, now=T0)
    return result.request_id


@pytest.fixture
async def storage() -> MemoryStorage:
    s = MemoryStorage()
    await _enqueue(s, ("+79990000001", "+79990000002"), "alex")
    await _enqueue(s, ("+79990000003",), "bob")
    jobs = await s.claim_due(T0, limit=1, lease_s=60, owner="t")
    await s.mark_retry(jobs[0].sms_id, provider="main", due=T0, answer="HTTP 503", now=T0)
    jobs = await s.claim_due(T0, limit=1, lease_s=60, owner="t")
    await s.mark_sent(jobs[0].sms_id, provider="main", provider_id="uuid-1", answer="ok", now=T0)
    return s


class TestList:
    async def test_lists_newest_first(self, storage: MemoryStorage) -> None:
        """Every request appears, newest first, with its states counted."""
        out = io.StringIO()
        assert await queue_list(storage, out=out) == EXIT_OK
        lines = out.getvalue().splitlines()
        assert lines[0].split()[:3] == ["ID", "ACCOUNT", "RECEIVED"]
        assert lines[1].split()[:2] == ["2", "bob"]
        assert lines[2].split()[:2] == ["1", "alex"]
        assert "scheduled=1 sent=1" in lines[2]

    @pytest.mark.parametrize(
        ("state", "account", "ids"),
        [(SmsState.SENT, None, ["1"]), (None, "bob", ["2"]), (SmsState.FAILED, None, [])],
    )
    async def test_filters(
        self, storage: MemoryStorage, state: SmsState | None, account: str | None, ids: list[str]
    ) -> None:
        """--state and --account narrow the list."""
        out = io.StringIO()
        await queue_list(storage, out=out, state=state, account=account)
        rows = out.getvalue().splitlines()[1:]
        assert [r.split()[0] for r in rows if r != "no requests"] == ids


class TestKept:
    async def test_list_says_what_is_kept(self, storage: MemoryStorage) -> None:
        """queue list ends with what retention keeps, and for how long."""
        out = io.StringIO()
        retention = StorageSettings(retention_days=30, raw_retention_days=7)
        assert await queue_list(storage, out=out, retention=retention) == EXIT_OK
        last = out.getvalue().splitlines()[-1]
        assert last.startswith("kept: finished requests")
        assert "30 days" in last
        assert "raw mails (password masked) 7 days" in last

    def test_for_ever(self) -> None:
        """An age of 0 reads as for ever."""
        line = kept_line(StorageSettings(retention_days=0, raw_retention_days=0))
        assert line.count("for ever") == 2


class TestShow:
    async def test_shows_rows_and_attempts(self, storage: MemoryStorage) -> None:
        """show prints each SMS and every attempt with the provider's answer."""
        out = io.StringIO()
        assert await queue_show(storage, "1", out=out) == EXIT_OK
        text = out.getvalue()
        assert "+79990000001" in text
        assert "+79990000002" in text
        assert "HTTP 503" in text
        assert "uuid-1" in text
        assert "SECRETPW" not in text

    async def test_parts_and_messages_apart(self, storage: MemoryStorage) -> None:
        """The parts (the n of the result line) and the SMS rows by state are two lines, not
        one "sms: 2 (sent=1)" mixing them."""
        long = "x" * 300  # 2 parts
        request = SmsRequest(
            account="alex", client_id=None, due=T0, translit=0, format=Format.SMS,
            sender="Alex", test=0,
            messages=(Message(text=long, recipients=("+79990000005",), split=split_text(long)),),
        )  # fmt: skip
        intake = Intake(
            received_at=T0, client_ip="127.0.0.1", mail_from="ops@example.com",
            rcpt_to=("send@localhost",), raw=b"", mode=RouteKind.COMMAND, account="alex",
            client_id=None, request=request, error=None,
        )  # fmt: skip
        result = await storage.accept(
            intake, limits=LimitsSettings(), reply_rate_per_hour=0, now=T0
        )
        out = io.StringIO()
        assert await queue_show(storage, result.request_id, out=out) == EXIT_OK
        lines = out.getvalue().splitlines()
        assert any(line.startswith("parts:    2 ") for line in lines), lines
        assert "messages: 1 (scheduled=1)" in lines

    async def test_unknown_id(self, storage: MemoryStorage) -> None:
        """An unknown ID exits 1."""
        out = io.StringIO()
        assert await queue_show(storage, "404", out=out) == EXIT_NOT_FOUND
        assert "no request 404" in out.getvalue()


class TestActions:
    async def test_cancel_then_retry(self, storage: MemoryStorage) -> None:
        """cancel stops the scheduled SMS; retry puts them back in the queue."""
        out = io.StringIO()
        assert await queue_cancel(storage, "1", out=out, now=T0) == EXIT_OK
        assert "1 SMS cancelled" in out.getvalue()
        detail = await storage.show_request("1")
        assert detail is not None
        assert sorted(s.state for s in detail.sms) == [SmsState.CANCELLED, SmsState.SENT]
        out = io.StringIO()
        assert await queue_retry(storage, "1", out=out, now=T0) == EXIT_OK
        assert "1 SMS scheduled again" in out.getvalue()

    @pytest.mark.parametrize("action", [queue_retry, queue_cancel])
    async def test_unknown_id(self, storage: MemoryStorage, action: object) -> None:
        """retry/cancel of an unknown ID exits 1."""
        out = io.StringIO()
        assert await action(storage, "nope", out=out, now=T0) == EXIT_NOT_FOUND  # type: ignore[operator]


class TestCommand:
    def test_run_with_injected_storage(self, storage: MemoryStorage) -> None:
        """run_queue_command opens the storage, runs the action and closes it."""
        args = argparse.Namespace(queue_command="show", id="2", config=None)
        out, err = io.StringIO(), io.StringIO()

        def opener(url: str) -> Storage:
            return storage

        code = run_queue_command(Settings(), args, out=out, err=err, open_storage=opener)
        assert code == EXIT_OK
        assert "+79990000003" in out.getvalue()

    def test_storage_failure_exits_3(self, storage: MemoryStorage) -> None:
        """A write the storage cannot commit prints ``storage error: …`` and exits 3."""
        storage.fail_writes = True
        args = argparse.Namespace(queue_command="retry", id="2")
        out, err = io.StringIO(), io.StringIO()

        def opener(url: str) -> Storage:
            return storage

        code = run_queue_command(Settings(), args, out=out, err=err, open_storage=opener)
        assert code == EXIT_STORAGE
        assert err.getvalue() == "storage error: storage cannot commit (fail_writes is set)\n"
        assert out.getvalue() == ""

    def test_bad_state(self, storage: MemoryStorage) -> None:
        """An unknown --state exits 2 naming the choices."""
        args = argparse.Namespace(queue_command="list", state="lost", account=None, limit=10)
        err = io.StringIO()

        def opener(url: str) -> Storage:
            return storage

        code = run_queue_command(Settings(), args, out=io.StringIO(), err=err, open_storage=opener)
        assert code == EXIT_BAD_ARGS
        assert "scheduled" in err.getvalue()

    @pytest.mark.parametrize(
        ("raw", "state"), [("SENT", SmsState.SENT), (" failed ", SmsState.FAILED), (None, None)]
    )
    def test_parse_state(self, raw: str | None, state: SmsState | None) -> None:
        """States are read case-insensitively."""
        assert parse_state(raw) is state


async def _enqueue_replied(storage: MemoryStorage) -> str:
    """A test=1 request from ops@example.com: its OK line is queued as a reply mail."""
    request = SmsRequest(
        account="alex",
        client_id=None,
        due=T0,
        translit=0,
        format=Format.SMS,
        sender="Alex",
        test=1,
        messages=(Message(text="hi", recipients=("+79990000009",), split=split_text("hi")),),
    )
    intake = Intake(
        received_at=T0,
        client_ip="127.0.0.1",
        mail_from="ops@example.com",
        rcpt_to=("send@localhost",),
        raw=b"alex:SECRETPW:::,,,1:+79990000009:hi",
        mode=RouteKind.COMMAND,
        account="alex",
        client_id=None,
        request=request,
        error=None,
        test=1,
        reply=ReplyDraft(
            to="ops@example.com", subject="Re: alert", in_reply_to="<m@example.com>", references=""
        ),
    )
    result = await storage.accept(intake, limits=LimitsSettings(), reply_rate_per_hour=30, now=T0)
    assert result.reply_queued
    return result.request_id


class TestShowReplies:
    async def test_queued_reply_is_shown(self, storage: MemoryStorage) -> None:
        """A reply kept in the database (no smarthost) is listed: to, queued, attempts, line."""
        rid = await _enqueue_replied(storage)
        out = io.StringIO()
        assert await queue_show(storage, rid, out=out) == EXIT_OK
        lines = out.getvalue().splitlines()
        (head,) = [line for line in lines if line.lstrip().startswith("reply ")]
        assert "to ops@example.com" in head
        assert "queued" in head
        assert "attempts 0" in head
        assert "due 2025-03-01T12:00:00Z" in head
        body = lines[lines.index(head) + 1]
        assert body == f"    OK - 1 SMS, ID - {rid}"
        assert "SECRETPW" not in out.getvalue()

    async def test_sent_reply_shows_when(self, storage: MemoryStorage) -> None:
        """A reply the smarthost took is shown sent, with its time and attempts."""
        rid = await _enqueue_replied(storage)
        (job,) = await storage.claim_replies(T0, limit=10, lease_s=60)
        later = T0 + timedelta(seconds=5)
        await storage.mark_reply_sent(job.reply_id, later)
        out = io.StringIO()
        assert await queue_show(storage, rid, out=out) == EXIT_OK
        (head,) = [line for line in out.getvalue().splitlines() if "reply " in line]
        assert "sent" in head
        assert "attempts 1" in head
        assert "sent 2025-03-01T12:00:05Z" in head

    async def test_no_reply_no_reply_lines(self, storage: MemoryStorage) -> None:
        """A request without reply mail prints no reply section."""
        out = io.StringIO()
        assert await queue_show(storage, "1", out=out) == EXIT_OK
        assert "reply " not in out.getvalue()
