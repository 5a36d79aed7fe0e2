"""The storage contract, one suite over every backend (memory, SQLite on a real file)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mailbridge.core.limits import request_fingerprint
from mailbridge.errors import ConfigError, StorageError
from mailbridge.models import (
    AttemptOutcome,
    Encoding,
    Format,
    Message,
    ReplyState,
    RouteKind,
    SmsRequest,
    SmsState,
    Split,
)
from mailbridge.settings import LimitsSettings
from mailbridge.storage.base import Intake, ReplyDraft, ReplyView, Storage
from mailbridge.storage.factory import open_storage
from mailbridge.storage.memory import MemoryStorage
from mailbridge.storage.sqlite import MIGRATIONS, QUERIES, SqliteStorage
from tests.pg import PgCluster, pg_cluster_fixture  # noqa: F401 (the session's server)

try:
    from mailbridge.storage.postgres import MIGRATIONS as PG_MIGRATIONS
    from mailbridge.storage.postgres import PostgresStorage, redact_url
except ImportError:  # psycopg is optional: the postgres params skip
    PostgresStorage = None  # type: ignore[assignment,misc]
    PG_MIGRATIONS = ()

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LIMITS = LimitsSettings()
RATE = 30
N1, N2, N3 = "+79990000001", "+79990000002", "+79990000003"
REPLY = ReplyDraft(
    to="zabbix@example.com", subject="Re: alert", in_reply_to="<m1@example.com>", references=""
)


def at(seconds: float) -> datetime:
    """The fake clock: ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def message(text: str = "hello", recipients: tuple[str, ...] = (N1,), parts: int = 1) -> Message:
    """A message cut into ``parts`` parts (joining them gives the text)."""
    chunks = tuple(f"{text}{i}" for i in range(parts)) if parts > 1 else (text,)
    return Message(
        text="".join(chunks),
        recipients=recipients,
        split=Split(encoding=Encoding.GSM7, parts=chunks),
    )


def sms_request(*messages: Message, due: datetime = T0, test: int = 0) -> SmsRequest:
    """A request of account ``alex`` (one message to N1 by default)."""
    return SmsRequest(
        account="alex",
        client_id=None,
        due=due,
        translit=0,
        format=Format.SMS,
        sender="Alex",
        test=test,
        messages=messages or (message(),),
    )


def intake(
    request: SmsRequest | None = None,
    *,
    error: int | None = None,
    now: datetime = T0,
    ip: str = "192.0.2.1",
    test: int = 0,
    client_id: str | None = None,
    balance: int | None = None,
    reply: ReplyDraft | None = REPLY,
) -> Intake:
    """An intake as the SMTP handler builds it; a plain OK request unless told."""
    if request is None and error is None:
        request = sms_request(test=test)
    return Intake(
        received_at=now,
        client_ip=ip,
        mail_from=reply.to if reply else "",
        rcpt_to=("send@sms.example.com",),
        raw=b"Subject: alert\r\n\r\nalex:pw:::::" + N1.encode() + b":hello\r\n",
        mode=RouteKind.COMMAND,
        account="alex",
        client_id=client_id,
        request=request,
        error=error,
        test=test,
        balance=balance,
        fingerprint=request_fingerprint(request, time_spec="") if request else None,
        reply=reply,
        error_detail="",
    )


@dataclass
class Backend:
    """A storage under test and how to get it back after a restart (None: not durable)."""

    name: str
    storage: Storage
    reopen: Callable[[], Awaitable[Storage]] | None = None


@contextlib.asynccontextmanager
async def _opened(
    name: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Backend]:
    """Backend ``name`` opened empty (PostgreSQL: a fresh schema on a real server)."""
    opened: list[Storage] = []
    pg_url = request.getfixturevalue("pg_cluster").create_schema() if name == "postgres" else ""

    async def make() -> Storage:
        storage: Storage
        if name == "memory":
            storage = MemoryStorage()
        elif name == "sqlite":
            storage = SqliteStorage(tmp_path / "mb.db")
        else:
            storage = PostgresStorage(pg_url, min_size=1, max_size=4)
        await storage.open()
        opened.append(storage)
        return storage

    async def reopen() -> Storage:
        await opened[-1].close()
        return await make()

    first = await make()
    try:
        yield Backend(name=name, storage=first, reopen=reopen if name != "memory" else None)
    finally:
        for storage in opened:
            await storage.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend, opened empty."""
    async with _opened(request.param, request, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgres"])
async def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend that keeps its data across a restart."""
    async with _opened(request.param, request, tmp_path) as opened:
        yield opened


async def accept(
    storage: Storage,
    item: Intake,
    *,
    limits: LimitsSettings = LIMITS,
    rate: int = RATE,
    now: datetime | None = None,
) -> tuple[str, str]:
    """Accept ``item``; return (request id, result line)."""
    result = await storage.accept(
        item, limits=limits, reply_rate_per_hour=rate, now=now or item.received_at
    )
    return result.request_id, result.line


async def states(storage: Storage, request_id: str) -> list[SmsState]:
    """The states of a request's rows, in row order."""
    detail = await storage.show_request(request_id)
    assert detail is not None
    return [s.state for s in detail.sms]


async def _queued_together(
    storage: SqliteStorage, *calls: Callable[[], Awaitable[Any]]
) -> tuple[list[Any], tuple[int, int]]:
    """Run ``calls`` while the writer thread is held, so they queue up for one group.

    Returns their results (exceptions included) and the (transactions,
    operations) committed meanwhile: the holding read's own transaction, then
    the group.
    """
    entered, gate = threading.Event(), threading.Event()

    def hold(_conn: sqlite3.Connection) -> bool:
        entered.set()
        return gate.wait(10)

    try:
        blocker = asyncio.ensure_future(storage.connector.call(hold, write=False))
        await asyncio.to_thread(entered.wait, 10)
        before = storage.stats
        tasks = [asyncio.ensure_future(call()) for call in calls]
        for _ in range(3):
            await asyncio.sleep(0)
        gate.set()
        await blocker
        results = await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        gate.set()
    after = storage.stats
    return results, (
        after.transactions - before.transactions,
        after.operations - before.operations,
    )


class TestAccept:
    async def test_ok(self, backend: Backend) -> None:
        """A request is stored: the answer counts parts × recipients, rows are scheduled."""
        s = backend.storage
        req = sms_request(message("hi", (N1, N2), parts=2))
        result = await s.accept(intake(req), limits=LIMITS, reply_rate_per_hour=RATE, now=T0)
        assert result.line == "OK - 4 SMS, ID - 1"
        assert (result.request_id, result.error, result.sms_count) == ("1", None, 4)
        assert result.reply_queued is False
        assert await states(s, "1") == [SmsState.SCHEDULED, SmsState.SCHEDULED]
        assert await s.next_due() == T0

    @pytest.mark.parametrize(
        ("code", "line"),
        [
            (1, "ERROR = 1 (Error in parameters)"),
            (2, "ERROR = 2 (Invalid login or password)"),
            (5, "ERROR = 5 (Invalid date format)"),
            (6, "ERROR = 6 (Message denied), ID - 1"),
            (7, "ERROR = 7 (Invalid phone number format), ID - 1"),
            (8, "ERROR = 8 (Message cannot be delivered), ID - 1"),
        ],
    )
    async def test_pre_errors(self, backend: Backend, code: int, line: str) -> None:
        """An error found before storage is recorded with its line, a reply and no rows."""
        s = backend.storage
        result = await s.accept(intake(error=code), limits=LIMITS, reply_rate_per_hour=RATE, now=T0)
        assert (result.line, result.error, result.sms_count) == (line, code, 0)
        assert result.reply_queued is True
        assert await s.next_due() is None
        (reply,) = await s.claim_replies(T0, limit=10, lease_s=60)
        assert reply.body == line
        assert (reply.to, reply.subject, reply.in_reply_to) == (
            REPLY.to,
            REPLY.subject,
            REPLY.in_reply_to,
        )

    async def test_ids_increase(self, backend: Backend) -> None:
        """Gateway IDs are increasing integers, errors included."""
        s = backend.storage
        ids = [(await accept(s, intake(sms_request(message(f"m{i}")))))[0] for i in range(3)] + [
            (await accept(s, intake(error=1)))[0]
        ]
        assert ids == ["1", "2", "3", "4"]

    async def test_client_id(self, backend: Backend) -> None:
        """The client's id is the request ID; the newest of equal ids is shown."""
        s = backend.storage
        assert await accept(s, intake(client_id="job-7")) == ("job-7", "OK - 1 SMS, ID - job-7")
        req = sms_request(message("second", (N1, N2)))
        await accept(s, intake(req, client_id="job-7"))
        detail = await s.show_request("job-7")
        assert detail is not None
        assert detail.summary.sms_total == 2
        assert (await accept(s, intake(sms_request(message("x")))))[0] == "3"

    async def test_invalid_intake_is_refused(self, backend: Backend) -> None:
        """An intake with both a request and an error is a caller bug."""
        bad = replace(intake(), error=1)
        with pytest.raises(ValueError, match="exactly one"):
            await accept(backend.storage, bad)

    async def test_failure_midway_leaves_nothing(self, backend: Backend) -> None:
        """An intake that fails inside the transaction writes nothing at all."""
        s = backend.storage
        with pytest.raises(ValueError, match="printable ASCII"):
            await accept(s, intake(client_id="bad id"))
        assert await s.list_requests() == []
        assert await s.next_due() is None
        assert (await accept(s, intake()))[0] == "1"


class TestStorageLimits:
    async def test_duplicates(self, backend: Backend) -> None:
        """The third identical request within 60 s gets 9; after the window it passes."""
        s = backend.storage
        lines = [(await accept(s, intake(now=at(t))))[1] for t in (0, 10, 59)]
        assert lines == [
            "OK - 1 SMS, ID - 1",
            "OK - 1 SMS, ID - 2",
            "ERROR = 9 (Duplicate request, wait a minute)",
        ]
        assert (await accept(s, intake(now=at(60))))[1] == "OK - 1 SMS, ID - 4"
        assert (await accept(s, intake(now=at(61))))[1].startswith("ERROR = 9")

    async def test_flood(self, backend: Backend) -> None:
        """More than flood_max SMS to one number, each < gap after the last: 8, all refused."""
        s = backend.storage
        limits = LimitsSettings(flood_max=3)
        for i in range(3):
            req = sms_request(message(f"m{i}", (N1, N2)))
            assert (await accept(s, intake(req, now=at(i)), limits=limits))[1].startswith("OK")
        req = sms_request(message("m3", (N3, N1)))
        request_id, line = await accept(s, intake(req, now=at(100)), limits=limits)
        assert line == f"ERROR = 8 (Message cannot be delivered), ID - {request_id}"
        assert await states(s, request_id) == []
        # N3 got nothing, so its streak did not start; N1 is free after the gap
        req = sms_request(message("m4", (N3, N1)))
        assert (await accept(s, intake(req, now=at(220)), limits=limits))[1].startswith("OK")

    async def test_flood_of_one_number_across_requests(self, backend: Backend) -> None:
        """Mails to one number each (its streak read back by key): the one past flood_max
        within the gap gets 8 and starts nothing; after the gap the number is free."""
        s = backend.storage
        limits = LimitsSettings(flood_max=2)
        for i in range(2):
            req = sms_request(message(f"m{i}", (N1,)))
            assert (await accept(s, intake(req, now=at(i)), limits=limits))[1].startswith("OK")
        req = sms_request(message("m2", (N1,)))
        request_id, line = await accept(s, intake(req, now=at(5)), limits=limits)
        assert line == f"ERROR = 8 (Message cannot be delivered), ID - {request_id}"
        req = sms_request(message("m3", (N2,)))  # another number has its own streak
        assert (await accept(s, intake(req, now=at(6)), limits=limits))[1].startswith("OK")
        req = sms_request(message("m4", (N1,)))
        assert (await accept(s, intake(req, now=at(200)), limits=limits))[1].startswith("OK")

    async def test_flood_counts_messages_in_one_request(self, backend: Backend) -> None:
        """Two messages to one number in one list-mode request count twice."""
        limits = LimitsSettings(flood_max=1)
        req = sms_request(message("a"), message("b"))
        assert (await accept(backend.storage, intake(req), limits=limits))[1].startswith(
            "ERROR = 8"
        )

    async def test_balance_charge_and_refund(self, backend: Backend) -> None:
        """Parts are charged at accept; 3 when they exceed the rest; a cancel refunds."""
        s = backend.storage
        big = sms_request(message("a", (N1, N2), parts=2))
        assert (await accept(s, intake(big, balance=5)))[1] == "OK - 4 SMS, ID - 1"
        two = sms_request(message("b", (N1, N2)))
        assert (await accept(s, intake(two, balance=5)))[1] == (
            "ERROR = 3 (Insufficient funds), ID - 2"
        )
        one = sms_request(message("c"))
        assert (await accept(s, intake(one, balance=5)))[1] == "OK - 1 SMS, ID - 3"
        assert await s.cancel_request("1", T0) == 2
        assert (await accept(s, intake(two, balance=5)))[1] == "OK - 2 SMS, ID - 4"

    async def test_balance_follows_reloaded_config(self, backend: Backend) -> None:
        """Available is the configured balance now minus what was charged."""
        s = backend.storage
        assert (await accept(s, intake(balance=1)))[1].startswith("OK")
        other = sms_request(message("b"))
        assert (await accept(s, intake(other, balance=1)))[1].startswith("ERROR = 3")
        assert (await accept(s, intake(other, balance=2)))[1].startswith("OK")

    async def test_unlimited_account_is_not_charged(self, backend: Backend) -> None:
        """Without a configured balance nothing is charged against a later one."""
        s = backend.storage
        await accept(s, intake(sms_request(message("a", parts=3))))
        assert (await accept(s, intake(sms_request(message("b")), balance=1)))[1].startswith("OK")


class TestReplies:
    @pytest.mark.parametrize(
        ("kind", "test", "reply", "queued"),
        [
            ("ok", 0, REPLY, False),
            ("ok", 1, REPLY, True),
            ("ok", 2, REPLY, False),
            ("error", 0, REPLY, True),
            ("error", 2, REPLY, True),
            ("error", 1, None, False),
            ("ok", 1, None, False),
        ],
    )
    async def test_rules(
        self, backend: Backend, kind: str, test: int, reply: ReplyDraft | None, queued: bool
    ) -> None:
        """Errors always get a reply, OK only with test=1, never without a draft."""
        s = backend.storage
        item = (
            intake(test=test, reply=reply)
            if kind == "ok"
            else intake(error=7, test=test, reply=reply)
        )
        result = await s.accept(item, limits=LIMITS, reply_rate_per_hour=RATE, now=T0)
        assert result.reply_queued is queued
        replies = await s.claim_replies(T0, limit=10, lease_s=60)
        assert [r.body for r in replies] == ([result.line] if queued else [])

    async def test_rate_per_recipient(self, backend: Backend) -> None:
        """Beyond reply_rate_per_hour per recipient, no reply is queued until the hour passes."""
        s = backend.storage
        queued = []
        for t in (0, 10, 20):
            result = await s.accept(
                intake(error=1, now=at(t)), limits=LIMITS, reply_rate_per_hour=2, now=at(t)
            )
            queued.append(result.reply_queued)
        other = replace(REPLY, to="other@example.com")
        result = await s.accept(
            intake(error=1, reply=other, now=at(30)),
            limits=LIMITS,
            reply_rate_per_hour=2,
            now=at(30),
        )
        queued.append(result.reply_queued)
        result = await s.accept(
            intake(error=1, now=at(3600)), limits=LIMITS, reply_rate_per_hour=2, now=at(3600)
        )
        queued.append(result.reply_queued)
        assert queued == [True, True, False, True, True]

    async def test_claim_lease_and_retry(self, backend: Backend) -> None:
        """A claimed reply is leased; retry queues it again; sent is final."""
        s = backend.storage
        await accept(s, intake(error=1))
        assert await s.next_reply_due() == T0
        (job,) = await s.claim_replies(T0, limit=10, lease_s=60)
        assert (job.request_id, job.attempts) == ("1", 0)
        assert await s.claim_replies(at(59), limit=10, lease_s=60) == []
        assert await s.next_reply_due() == at(60)
        (again,) = await s.claim_replies(at(60), limit=10, lease_s=60)
        await s.mark_reply_retry(again.reply_id, due=at(100), error="421 busy", now=at(61))
        assert await s.next_reply_due() == at(100)
        (third,) = await s.claim_replies(at(100), limit=10, lease_s=60)
        assert third.attempts == 1
        await s.mark_reply_sent(third.reply_id, at(101))
        assert await s.next_reply_due() is None
        assert await s.claim_replies(at(10_000), limit=10, lease_s=60) == []


class TestIpBlock:
    LIMITS = LimitsSettings(error_block_after=3, error_block_window_s=600, error_block_for_s=300)

    async def test_block_after_n_errors_and_expiry(self, backend: Backend) -> None:
        """The n-th counted error within the window blocks the IP until block_for after it."""
        s, lim = backend.storage, self.LIMITS
        for t in (0, 100):
            await accept(s, intake(error=2, now=at(t)), limits=lim)
        assert not await s.ip_blocked("192.0.2.1", at(101), lim)
        await accept(s, intake(error=7, now=at(200)), limits=lim)
        assert await s.ip_blocked("192.0.2.1", at(201), lim)
        assert not await s.ip_blocked("192.0.2.2", at(201), lim)
        await s.record_blocked("192.0.2.1", at(400))
        assert await s.ip_blocked("192.0.2.1", at(499), lim)
        assert not await s.ip_blocked("192.0.2.1", at(500), lim)

    async def test_old_and_uncounted_errors(self, backend: Backend) -> None:
        """Errors outside the window, and errors 3/6/8/9, do not count."""
        s, lim = backend.storage, self.LIMITS
        await accept(s, intake(error=1, now=at(0)), limits=lim)
        for t, code in ((700, 6), (701, 8), (702, 1), (703, 5)):
            await accept(s, intake(error=code, now=at(t)), limits=lim)
        assert not await s.ip_blocked("192.0.2.1", at(704), lim)
        await accept(s, intake(error=5, now=at(705)), limits=lim)
        assert await s.ip_blocked("192.0.2.1", at(706), lim)


class TestDelivery:
    async def test_claim_lease_at_least_once(self, backend: Backend) -> None:
        """A claimed row is leased; once the lease runs out it is claimed again."""
        s = backend.storage
        await accept(s, intake(sms_request(message("hi", (N1, N2)))))
        jobs = await s.claim_due(T0, limit=10, lease_s=30, owner="w1")
        assert [(j.recipient, j.text, j.request_id, j.attempts) for j in jobs] == [
            (N1, "hi", "1", 0),
            (N2, "hi", "1", 0),
        ]
        job = jobs[0]
        assert (job.account, job.sender, job.format, job.encoding, job.parts) == (
            "alex",
            "Alex",
            Format.SMS,
            Encoding.GSM7,
            1,
        )
        assert (job.due, job.first_due, job.last_provider) == (T0, T0, None)
        assert await s.claim_due(at(29), limit=10, lease_s=30, owner="w2") == []
        assert await s.next_due() == at(30)
        again = await s.claim_due(at(30), limit=10, lease_s=30, owner="w2")
        assert [j.sms_id for j in again] == [j.sms_id for j in jobs]
        assert await states(s, "1") == [SmsState.SENDING, SmsState.SENDING]

    async def test_claim_order_limit_and_future(self, backend: Backend) -> None:
        """Oldest due first, at most ``limit``, nothing before its due time."""
        s = backend.storage
        for text, due in (("late", at(50)), ("early", at(10)), ("future", at(1000))):
            await accept(s, intake(sms_request(message(text), due=due)))
        assert await s.next_due() == at(10)
        assert await s.claim_due(at(5), limit=10, lease_s=30, owner="w") == []
        (first,) = await s.claim_due(at(60), limit=1, lease_s=30, owner="w")
        (second,) = await s.claim_due(at(60), limit=5, lease_s=30, owner="w")
        assert (first.text, second.text) == ("early", "late")
        assert await s.next_due() == at(90)

    async def test_zero_limit_claims_nothing(self, backend: Backend) -> None:
        """A limit of 0 hands out nothing (SQL's negative LIMIT never leaks through)."""
        s = backend.storage
        await accept(s, intake(error=1))
        await accept(s, intake())
        assert await s.claim_due(T0, limit=0, lease_s=30, owner="w") == []
        assert await s.claim_replies(T0, limit=-1, lease_s=30) == []
        assert await s.list_requests(limit=-1) == []

    async def test_expiry_after_a_transient_failure(self, backend: Backend) -> None:
        """An expiry that follows a provider's transient failure records it as temporary."""
        s = backend.storage
        await accept(s, intake())
        (job,) = await s.claim_due(T0, limit=10, lease_s=30, owner="w")
        await s.mark_failed(
            job.sms_id,
            provider="main",
            state=SmsState.EXPIRED,
            answer="timeout",
            now=at(1),
            reply_rate_per_hour=RATE,
        )
        detail = await s.show_request("1")
        assert detail is not None
        assert [(a.outcome, a.answer) for a in detail.sms[0].attempts] == [("temporary", "timeout")]
        assert all(type(a.outcome) is AttemptOutcome for a in detail.sms[0].attempts)
        assert detail.sms[0].state is SmsState.EXPIRED

    async def test_mark_sent(self, backend: Backend) -> None:
        """A sent row records the provider, its id and the attempt, and is never claimed."""
        s = backend.storage
        await accept(s, intake())
        (job,) = await s.claim_due(T0, limit=10, lease_s=30, owner="w")
        await s.mark_sent(job.sms_id, provider="main", provider_id="u-1", answer="0: ok", now=at(1))
        detail = await s.show_request("1")
        assert detail is not None
        (row,) = detail.sms
        assert (row.state, row.provider, row.provider_id) == (SmsState.SENT, "main", "u-1")
        assert [(a.at, a.provider, a.outcome, a.answer) for a in row.attempts] == [
            (at(1), "main", "sent", "0: ok")
        ]
        assert row.attempts[0].outcome is AttemptOutcome.SENT
        assert await s.next_due() is None
        assert await s.claim_due(at(10_000), limit=10, lease_s=30, owner="w") == []

    async def test_mark_sent_together(self, backend: Backend) -> None:
        """Rows marked sent at the same time (one transaction) each get their state and one
        attempt; a second mark of the same row, and a row not in sending, change nothing."""
        s = backend.storage
        await accept(s, intake(sms_request(message("hi", (N1, N2, N3)))))
        jobs = await s.claim_due(T0, limit=10, lease_s=30, owner="w")
        assert len(jobs) == 3
        first = jobs[0].sms_id
        await asyncio.gather(
            *(
                s.mark_sent(
                    j.sms_id, provider="main", provider_id=f"u{j.sms_id}", answer="ok", now=at(1)
                )
                for j in jobs
            ),
            s.mark_sent(first, provider="other", provider_id="again", answer="", now=at(2)),
            s.mark_sent(999, provider="main", provider_id="none", answer="", now=at(1)),
        )
        detail = await s.show_request("1")
        assert detail is not None
        assert {(r.sms_id, r.state, r.provider, r.provider_id) for r in detail.sms} == {
            (j.sms_id, SmsState.SENT, "main", f"u{j.sms_id}") for j in jobs
        }
        for row in detail.sms:
            assert [(a.at, a.provider, a.outcome) for a in row.attempts] == [
                (at(1), "main", "sent")
            ]
        assert await s.claim_due(at(10_000), limit=10, lease_s=30, owner="w") == []

    async def test_mark_retry(self, backend: Backend) -> None:
        """A retry puts the row back at its new due time with the attempt counted."""
        s = backend.storage
        await accept(s, intake())
        (job,) = await s.claim_due(T0, limit=10, lease_s=30, owner="w")
        await s.mark_retry(job.sms_id, provider="main", due=at(20), answer="503", now=at(1))
        assert await s.next_due() == at(20)
        assert await s.claim_due(at(19), limit=10, lease_s=30, owner="w") == []
        (again,) = await s.claim_due(at(20), limit=10, lease_s=30, owner="w")
        assert (again.attempts, again.due, again.first_due, again.last_provider) == (
            1,
            at(20),
            T0,
            "main",
        )

    async def test_mark_on_a_row_not_sending_changes_nothing(self, backend: Backend) -> None:
        """State changes apply only to rows in ``sending``."""
        s = backend.storage
        await accept(s, intake())
        detail = await s.show_request("1")
        assert detail is not None
        sms_id = detail.sms[0].sms_id
        await s.mark_sent(sms_id, provider="p", provider_id="x", answer="", now=T0)
        await s.mark_failed(
            sms_id,
            provider="p",
            state=SmsState.FAILED,
            answer="",
            now=T0,
            reply_rate_per_hour=RATE,
        )
        await s.mark_sent(999, provider="p", provider_id="x", answer="", now=T0)
        assert await states(s, "1") == [SmsState.SCHEDULED]

    async def test_mark_failed_refunds_and_follows_up_once(self, backend: Backend) -> None:
        """A final failure refunds its parts; a test=1 request gets one ERROR = 8 reply."""
        s = backend.storage
        req = sms_request(message("hi", (N1, N2), parts=2), test=1)
        result = await s.accept(
            intake(req, test=1, balance=4), limits=LIMITS, reply_rate_per_hour=RATE, now=T0
        )
        assert result.reply_queued
        (ok_reply,) = await s.claim_replies(T0, limit=10, lease_s=60)
        assert ok_reply.body == "OK - 4 SMS, ID - 1"
        jobs = await s.claim_due(T0, limit=10, lease_s=30, owner="w")
        await s.mark_failed(
            jobs[0].sms_id,
            provider="main",
            state=SmsState.FAILED,
            answer="4: rejected",
            now=at(1),
            reply_rate_per_hour=RATE,
        )
        await s.mark_failed(
            jobs[1].sms_id,
            provider=None,
            state=SmsState.EXPIRED,
            answer="validity ended",
            now=at(2),
            reply_rate_per_hour=RATE,
        )
        (followup,) = await s.claim_replies(at(3), limit=10, lease_s=60)
        assert followup.body == "ERROR = 8 (Message cannot be delivered), ID - 1"
        assert followup.to == REPLY.to
        assert await states(s, "1") == [SmsState.FAILED, SmsState.EXPIRED]
        detail = await s.show_request("1")
        assert detail is not None
        assert [len(v.attempts) for v in detail.sms] == [1, 0]
        assert detail.sms[0].error == "4: rejected"
        again = sms_request(message("again", (N1, N2), parts=2))
        assert (await accept(s, intake(again, balance=4, now=at(5))))[1].startswith("OK")

    async def test_no_followup_without_test_flag(self, backend: Backend) -> None:
        """A request answered OK without test=1 gets no follow-up."""
        s = backend.storage
        await accept(s, intake())
        (job,) = await s.claim_due(T0, limit=10, lease_s=30, owner="w")
        await s.mark_failed(
            job.sms_id,
            provider="main",
            state=SmsState.FAILED,
            answer="no",
            now=at(1),
            reply_rate_per_hour=RATE,
        )
        assert await s.claim_replies(at(2), limit=10, lease_s=60) == []

    async def test_mark_failed_takes_only_final_states(self, backend: Backend) -> None:
        """``mark_failed`` with a non-final state is a caller bug."""
        with pytest.raises(ValueError, match="failed or expired"):
            await backend.storage.mark_failed(
                1,
                provider=None,
                state=SmsState.SENT,
                answer="",
                now=T0,
                reply_rate_per_hour=RATE,
            )


class TestQueue:
    async def test_list_filters(self, backend: Backend) -> None:
        """Requests are listed newest first, by state and account, with row counts."""
        s = backend.storage
        await accept(s, intake(sms_request(message("a", (N1, N2)))))
        await accept(s, intake(error=7))
        await accept(s, intake(sms_request(message("b"))))
        await s.cancel_request("3", T0)
        summaries = await s.list_requests()
        assert [(r.request_id, r.sms_total, r.states) for r in summaries] == [
            ("3", 1, {"cancelled": 1}),
            ("2", 0, {}),
            ("1", 2, {"scheduled": 2}),
        ]
        assert all(type(state) is SmsState for r in summaries for state in r.states)
        assert summaries[1].result == "ERROR = 7 (Invalid phone number format), ID - 2"
        assert (summaries[0].account, summaries[0].mode, summaries[0].received_at) == (
            "alex",
            "command",
            T0,
        )
        assert all(r.mode is RouteKind.COMMAND for r in summaries)
        scheduled = await s.list_requests(state=SmsState.SCHEDULED)
        assert [r.request_id for r in scheduled] == ["1"]
        assert await s.list_requests(account="bob") == []
        assert [r.request_id for r in await s.list_requests(limit=1)] == ["3"]

    async def test_show(self, backend: Backend) -> None:
        """``show`` gives the request's envelope, parameters and rows; unknown: None."""
        s = backend.storage
        await accept(s, intake(sms_request(message("a", (N1, N2)), due=at(60))))
        detail = await s.show_request("1")
        assert detail is not None
        assert (detail.client_ip, detail.mail_from, detail.sender, detail.format, detail.due) == (
            "192.0.2.1",
            REPLY.to,
            "Alex",
            0,
            at(60),
        )
        assert [(v.recipient, v.parts, v.due) for v in detail.sms] == [
            (N1, 1, at(60)),
            (N2, 1, at(60)),
        ]
        assert await s.show_request("nope") is None

    async def test_retry_and_cancel(self, backend: Backend) -> None:
        """Retry puts failed/cancelled rows back now; cancel takes only scheduled rows."""
        s = backend.storage
        await accept(s, intake(sms_request(message("a", (N1, N2, N3)), due=at(100))))
        (job, *_) = await s.claim_due(at(100), limit=1, lease_s=30, owner="w")
        assert await s.cancel_request("1", at(101)) == 2
        assert await states(s, "1") == [SmsState.SENDING, SmsState.CANCELLED, SmsState.CANCELLED]
        await s.mark_failed(
            job.sms_id,
            provider="main",
            state=SmsState.FAILED,
            answer="x",
            now=at(102),
            reply_rate_per_hour=RATE,
        )
        assert await s.retry_request("1", at(200)) == 3
        assert await s.cancel_request("nope", T0) == 0
        assert await s.retry_request("nope", T0) == 0
        jobs = await s.claim_due(at(200), limit=10, lease_s=30, owner="w")
        assert {(j.due, j.first_due) for j in jobs} == {(at(200), at(200))}
        assert len(jobs) == 3

    async def test_retry_charges_again(self, backend: Backend) -> None:
        """Retried rows are charged again to a limited account."""
        s = backend.storage
        await accept(s, intake(balance=1))
        await s.cancel_request("1", T0)
        assert await s.retry_request("1", T0) == 1
        other = sms_request(message("other"))
        assert (await accept(s, intake(other, balance=1)))[1].startswith("ERROR = 3")


class TestDurability:
    async def test_restart_keeps_everything(self, durable_backend: Backend) -> None:
        """Closing and reopening the file gives back requests, rows, replies and counters."""
        backend = durable_backend
        assert backend.reopen is not None
        s = backend.storage
        limits = LimitsSettings(error_block_after=1)
        await accept(s, intake(sms_request(message("a", (N1, N2))), balance=2, test=1))
        await accept(s, intake(error=1, ip="198.51.100.9"), limits=limits)
        dup = sms_request(message("dup"), due=at(500))
        for t in (0, 1):
            assert (await accept(s, intake(dup, now=at(t))))[1].startswith("OK")
        (job, _) = await s.claim_due(T0, limit=10, lease_s=30, owner="w")
        await s.mark_sent(job.sms_id, provider="main", provider_id="u1", answer="ok", now=at(1))
        s = await backend.reopen()
        assert await states(s, "1") == [SmsState.SENT, SmsState.SENDING]
        assert await s.ip_blocked("198.51.100.9", at(2), LIMITS)
        assert len(await s.claim_replies(at(2), limit=10, lease_s=60)) == 2
        (leftover,) = await s.claim_due(at(30), limit=10, lease_s=30, owner="w")
        assert leftover.recipient == N2
        assert (await accept(s, intake(sms_request(message("b")), balance=2)))[1].startswith(
            "ERROR = 3"
        )
        assert (await accept(s, intake(dup, now=at(5))))[1].startswith("ERROR = 9")
        assert (await accept(s, intake(sms_request(message("c")))))[0] == "7"

    async def test_concurrent_accepts(self, backend: Backend) -> None:
        """50 concurrent accepts all commit, each with its own ID."""
        s = backend.storage
        results = await asyncio.gather(
            *(
                s.accept(
                    intake(sms_request(message(f"m{i}", (f"+7999000{i:04d}",)))),
                    limits=LIMITS,
                    reply_rate_per_hour=RATE,
                    now=T0,
                )
                for i in range(50)
            )
        )
        ids = {r.request_id for r in results}
        assert ids == {str(i) for i in range(1, 51)}
        assert all(r.error is None for r in results)
        assert len(await s.claim_due(T0, limit=100, lease_s=30, owner="w")) == 50


class TestSqlite:
    """What only the SQLite backend has: a file, a writer thread, SQL."""

    async def test_open_fails_with_storage_error(self, tmp_path: Path) -> None:
        """A database that cannot be opened raises StorageError."""
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        storage = SqliteStorage(blocker / "mb.db")
        with pytest.raises(StorageError):
            await storage.open()
        with pytest.raises(StorageError, match="not open"):
            await storage.next_due()

    async def test_locked_database_raises_and_writes_nothing(self, tmp_path: Path) -> None:
        """A write lock held past busy_timeout: StorageError, and nothing half-written."""
        path = tmp_path / "mb.db"
        storage = SqliteStorage(path, busy_timeout_s=0.05)
        await storage.open()
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            with pytest.raises(StorageError, match="locked"):
                await accept(storage, intake())
            other.execute("ROLLBACK")
            assert await storage.list_requests() == []
            assert (await accept(storage, intake()))[0] == "1"
        finally:
            other.close()
            await storage.close()

    async def test_accepted_is_committed_when_accept_returns(self, tmp_path: Path) -> None:
        """Another connection sees the request as soon as accept has returned."""
        path = tmp_path / "mb.db"
        storage = SqliteStorage(path)
        await storage.open()
        try:
            await accept(storage, intake())
            with sqlite3.connect(path) as other:
                assert other.execute("SELECT request_id, result FROM requests").fetchall() == [
                    ("1", "OK - 1 SMS, ID - 1")
                ]
                assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
                assert other.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        finally:
            await storage.close()

    async def test_group_commit_isolates_a_failing_intake(self, tmp_path: Path) -> None:
        """Intakes queued together commit in one transaction; a failing one is rolled back alone."""
        storage = SqliteStorage(tmp_path / "mb.db")
        await storage.open()
        try:
            results, groups = await _queued_together(
                storage,
                lambda: accept(storage, intake(sms_request(message("a")))),
                lambda: accept(storage, intake(client_id="bad id")),
                lambda: accept(storage, intake(sms_request(message("b")))),
            )
            assert results[0] == ("1", "OK - 1 SMS, ID - 1")
            assert isinstance(results[1], ValueError)
            assert results[2] == ("2", "OK - 1 SMS, ID - 2")
            assert groups == (2, 4)
        finally:
            await storage.close()

    async def test_a_write_failing_inside_a_group_is_rolled_back_alone(
        self, tmp_path: Path
    ) -> None:
        """Operations run without savepoints first; a failure reruns the group with them."""
        storage = SqliteStorage(tmp_path / "mb.db")
        await storage.open()
        runs = {"failing": 0}

        def failing(conn: sqlite3.Connection) -> None:
            runs["failing"] += 1
            conn.execute("INSERT INTO balances (account, charged) VALUES ('half-done', 1)")
            conn.execute("INSERT INTO balances (account, charged) VALUES ('half-done', 2)")

        try:
            results, groups = await _queued_together(
                storage,
                lambda: accept(storage, intake(sms_request(message("a")))),
                lambda: storage.connector.call(failing),
                lambda: accept(storage, intake(sms_request(message("b")))),
            )
            assert results[0] == ("1", "OK - 1 SMS, ID - 1")
            assert isinstance(results[1], StorageError)
            assert "UNIQUE" in str(results[1])
            assert results[2] == ("2", "OK - 1 SMS, ID - 2")
            assert runs["failing"] == 2  # once optimistically, once inside its savepoint
            assert groups == (2, 4)
            charged = await storage.connector.call(
                lambda c: c.execute("SELECT count(*) FROM balances").fetchone()[0], write=False
            )
            assert charged == 0  # the failing operation's first insert was rolled back
        finally:
            await storage.close()

    async def test_limit_tables_are_pruned_at_most_every_second(self, tmp_path: Path) -> None:
        """Old flood and duplicate rows go, at the first intake a second or more after the last."""
        path = tmp_path / "mb.db"
        storage = SqliteStorage(path)
        await storage.open()
        limits = replace(LIMITS, duplicate_window_s=0.5, flood_gap_s=0.5)

        def rows() -> tuple[int, int]:
            with sqlite3.connect(path) as other:
                flood = other.execute("SELECT count(*) FROM flood").fetchone()[0]
                dups = other.execute("SELECT count(*) FROM duplicates").fetchone()[0]
            return flood, dups

        def numbered(i: int, at: datetime) -> Intake:
            return intake(sms_request(message(f"m{i}", (f"+7999000000{i}",))), now=at)

        try:
            for i, offset in enumerate((0.0, 0.6, 0.9)):
                await accept(storage, numbered(i, T0 + timedelta(seconds=offset)), limits=limits)
            assert rows() == (3, 3)  # pruned at the first, not again within the second
            await accept(storage, numbered(3, T0 + timedelta(seconds=1.2)), limits=limits)
            assert rows() == (2, 2)  # those older than 0.5 s at 1.2 s are gone
        finally:
            await storage.close()

    async def test_claiming_uses_the_partial_indexes(self, tmp_path: Path) -> None:
        """The claim query searches the due and lease indexes, never scans the rows."""
        storage = SqliteStorage(tmp_path / "mb.db")
        await storage.open()
        await storage.close()
        with sqlite3.connect(tmp_path / "mb.db") as conn:
            plan = " | ".join(
                row[3]
                for row in conn.execute(
                    "EXPLAIN QUERY PLAN " + QUERIES["claim_due"], {"now": 0.0, "limit": 10}
                )
            )
            due_plan = " | ".join(
                row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + QUERIES["next_due"])
            )
        assert "sms_scheduled_by_due" in plan
        assert "sms_sending_by_lease" in plan
        assert "SCAN sms" not in plan
        assert "sms_scheduled_by_due" in due_plan
        assert "sms_sending_by_lease" in due_plan

    async def test_file_is_private_and_reopenable(self, tmp_path: Path) -> None:
        """The database (it holds whole mails) is owner-only; one instance opens again."""
        path = tmp_path / "mb.db"
        storage = SqliteStorage(path)
        await storage.open()
        await accept(storage, intake())
        await storage.close()
        assert path.stat().st_mode & 0o777 == 0o600
        await storage.open()
        try:
            assert [r.request_id for r in await storage.list_requests()] == ["1"]
        finally:
            await storage.close()

    async def test_newer_schema_is_refused(self, tmp_path: Path) -> None:
        """A database migrated by a newer program is not touched."""
        path = tmp_path / "mb.db"
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA user_version = 99")
        with pytest.raises(StorageError, match="newer"):
            await SqliteStorage(path).open()


class TestMemory:
    async def test_fail_writes(self) -> None:
        """The test switch makes writes raise StorageError like a full disk."""
        storage = MemoryStorage()
        storage.fail_writes = True
        with pytest.raises(StorageError):
            await accept(storage, intake())
        storage.fail_writes = False
        assert (await accept(storage, intake()))[0] == "1"


class TestFactory:
    async def test_sqlite_url_creates_the_folder(self, tmp_path: Path) -> None:
        """``sqlite:////abs`` opens a file, its folder created."""
        path = tmp_path / "deep" / "er" / "mb.db"
        storage = open_storage(f"sqlite:///{path}")
        assert isinstance(storage, SqliteStorage)
        assert path.parent.is_dir()
        await storage.open()
        await storage.close()
        assert path.exists()

    def test_memory_url(self) -> None:
        """``memory://`` gives the in-memory backend."""
        assert isinstance(open_storage("memory://"), MemoryStorage)

    @pytest.mark.parametrize("url", ["mysql://x", "sqlite:///", "mb.db"])
    def test_unknown_urls(self, url: str) -> None:
        """A URL no backend takes is a config error naming the key."""
        with pytest.raises(ConfigError, match=r"storage\.url"):
            open_storage(url)

    def test_uncreatable_folder(self, tmp_path: Path) -> None:
        """A folder that cannot be created is a StorageError."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(StorageError, match="folder"):
            open_storage(f"sqlite:///{blocker}/sub/mb.db")


# --- PostgreSQL: what several instances on one database need ---------------------------


@pytest.fixture
async def pg_pair(pg_cluster: PgCluster) -> AsyncIterator[tuple[PostgresStorage, PostgresStorage]]:
    """Two storages (as two instances would have) on one fresh schema."""
    url = pg_cluster.create_schema()
    first, second = PostgresStorage(url, max_size=8), PostgresStorage(url, max_size=8)
    await asyncio.gather(first.open(), second.open())
    yield first, second
    await asyncio.gather(first.close(), second.close())


def spread(pair: tuple[Storage, Storage], n: int) -> list[Storage]:
    """``n`` storages taking turns: the pair's members alternately."""
    return [pair[i % 2] for i in range(n)]


@pytest.mark.skipif(PostgresStorage is None, reason="psycopg is not installed")
class TestPostgres:
    """Two storage objects on one database, as two instances: shared limits, single claims."""

    async def test_balance_never_overspent(self, pg_pair: tuple[Storage, Storage]) -> None:
        """80 concurrent one-part requests against a balance of 50: exactly 50 pass."""
        results = await asyncio.gather(
            *(
                s.accept(
                    intake(sms_request(message(f"b{i}", (f"+7999100{i:04d}",))), balance=50),
                    limits=LIMITS,
                    reply_rate_per_hour=RATE,
                    now=T0,
                )
                for i, s in enumerate(spread(pg_pair, 80))
            )
        )
        assert sorted(r.error or 0 for r in results) == [0] * 50 + [3] * 30
        ok = sms_request(message("one more"))
        assert (await accept(pg_pair[0], intake(ok, balance=51)))[1].startswith("OK")
        assert (await accept(pg_pair[1], intake(ok, balance=51)))[1].startswith("ERROR = 3")

    async def test_flood_spread_over_instances(self, pg_pair: tuple[Storage, Storage]) -> None:
        """Concurrent SMS to one number from both instances: flood_max pass, the rest get 8."""
        limits = LimitsSettings(flood_max=5)
        results = await asyncio.gather(
            *(
                s.accept(
                    intake(sms_request(message(f"f{i}"))),
                    limits=limits,
                    reply_rate_per_hour=RATE,
                    now=T0,
                )
                for i, s in enumerate(spread(pg_pair, 12))
            )
        )
        assert sorted(r.error or 0 for r in results) == [0] * 5 + [8] * 7

    async def test_duplicates_spread_over_instances(self, pg_pair: tuple[Storage, Storage]) -> None:
        """One request sent ten times at once to both instances: duplicate_max pass."""
        results = await asyncio.gather(
            *(
                s.accept(intake(), limits=LIMITS, reply_rate_per_hour=RATE, now=T0)
                for s in spread(pg_pair, 10)
            )
        )
        assert sorted(r.error or 0 for r in results) == [0, 0] + [9] * 8

    async def test_ip_block_and_reply_rate_spread(self, pg_pair: tuple[Storage, Storage]) -> None:
        """Errors from one IP on both instances block it; replies stay within the rate."""
        limits = LimitsSettings(error_block_after=4)
        results = await asyncio.gather(
            *(
                s.accept(intake(error=2), limits=limits, reply_rate_per_hour=3, now=T0)
                for s in spread(pg_pair, 8)
            )
        )
        assert sum(r.reply_queued for r in results) == 3
        for s in pg_pair:
            assert await s.ip_blocked("192.0.2.1", at(1), limits)
        assert len(await pg_pair[0].claim_replies(T0, limit=100, lease_s=60)) == 3

    async def test_each_row_claimed_once(self, pg_pair: tuple[Storage, Storage]) -> None:
        """Both instances claiming at once in small batches share the rows without overlap."""
        first, second = pg_pair
        await asyncio.gather(
            *(
                accept(s, intake(sms_request(message(f"c{i}", (f"+7999200{i:04d}",)))))
                for i, s in enumerate(spread(pg_pair, 60))
            )
        )

        async def drain(s: Storage, owner: str) -> list[int]:
            got: list[int] = []
            while jobs := await s.claim_due(T0, limit=7, lease_s=30, owner=owner):
                got += [j.sms_id for j in jobs]
            return got

        claims = await asyncio.gather(*(drain(s, f"w{i}") for i, s in enumerate([*pg_pair] * 3)))
        every = [sms_id for got in claims for sms_id in got]
        assert len(every) == len(set(every)) == 60
        # a dead instance's claims come back to the other after the lease
        (lapsed,) = await second.claim_due(at(30), limit=1, lease_s=30, owner="w9")
        await first.mark_sent(lapsed.sms_id, provider="p", provider_id="x", answer="", now=at(31))
        await second.mark_sent(lapsed.sms_id, provider="p", provider_id="y", answer="", now=at(31))
        detail = await first.show_request(lapsed.request_id)
        assert detail is not None
        assert [(v.provider_id, len(v.attempts)) for v in detail.sms] == [("x", 1)]

    async def test_replies_claimed_once(self, pg_pair: tuple[Storage, Storage]) -> None:
        """Reply mails claimed by both instances at once go to one of them each."""
        for i in range(20):
            await accept(pg_pair[i % 2], intake(error=1, reply=replace(REPLY, to=f"r{i}@ex.com")))
        claims = await asyncio.gather(
            *(s.claim_replies(T0, limit=3, lease_s=60) for s in spread(pg_pair, 10))
        )
        every = [job.reply_id for jobs in claims for job in jobs]
        assert len(every) == len(set(every)) == 20

    async def test_one_followup_when_rows_fail_on_both(
        self, pg_pair: tuple[Storage, Storage]
    ) -> None:
        """Two rows of a test=1 request failing on two instances at once: one follow-up."""
        first, second = pg_pair
        req = sms_request(message("hi", (N1, N2)), test=1)
        await accept(first, intake(req, test=1, balance=2))
        await first.claim_replies(T0, limit=10, lease_s=3600)
        jobs = await first.claim_due(T0, limit=10, lease_s=30, owner="w")
        await asyncio.gather(
            *(
                s.mark_failed(
                    job.sms_id,
                    provider="p",
                    state=SmsState.FAILED,
                    answer="no",
                    now=at(1),
                    reply_rate_per_hour=RATE,
                )
                for s, job in zip(pg_pair, jobs, strict=True)
            )
        )
        followups = await second.claim_replies(at(2), limit=10, lease_s=60)
        assert [r.body for r in followups] == ["ERROR = 8 (Message cannot be delivered), ID - 1"]
        again = sms_request(message("again", (N1, N2)))
        assert (await accept(second, intake(again, balance=2, now=at(3))))[1].startswith("OK")

    async def test_notify_wakes_the_other_instance(self, pg_pair: tuple[Storage, Storage]) -> None:
        """A commit of due rows (or a queued reply) on one instance wakes the other's dispatcher."""
        first, second = pg_pair
        assert isinstance(second, PostgresStorage)
        due, replies = asyncio.Event(), asyncio.Event()
        second.subscribe_due(due.set)
        second.subscribe_replies(replies.set)
        async with asyncio.timeout(10):  # a hang guard, not a measurement
            await due.wait()  # the first call comes when the listener is connected
            due.clear()
            replies.clear()
            await accept(first, intake())
            await due.wait()
            await accept(first, intake(error=1))
            await replies.wait()

    async def test_instances_starting_together_migrate_once(self, pg_cluster: PgCluster) -> None:
        """Five storages opening a new database at once: one schema, the latest version."""
        url = pg_cluster.create_schema()
        storages = [PostgresStorage(url, min_size=1, max_size=2) for _ in range(5)]
        await asyncio.gather(*(s.open() for s in storages))
        try:
            assert (await accept(storages[3], intake()))[0] == "1"
            version = await storages[0].connector.raw(
                _fetch_one("SELECT version FROM mailbridge_schema")
            )
            assert version == len(PG_MIGRATIONS)
        finally:
            await asyncio.gather(*(s.close() for s in storages))

    async def test_every_connection_commits_synchronously(self, pg_cluster: PgCluster) -> None:
        """``synchronous_commit`` is on for the storage even when the database default is off."""
        url = pg_cluster.create_database()
        name = url.rsplit("/", 1)[1]
        pg_cluster.admin(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
        storage = PostgresStorage(url, min_size=2, max_size=2)
        await storage.open()
        try:
            show = _fetch_one("SHOW synchronous_commit")
            values = await asyncio.gather(storage.connector.raw(show), storage.connector.raw(show))
            assert list(values) == ["on", "on"]
        finally:
            await storage.close()

    async def test_newer_schema_is_refused(self, pg_cluster: PgCluster) -> None:
        """A database migrated by a newer program is not touched."""
        url = pg_cluster.create_schema()
        storage = PostgresStorage(url, min_size=1, max_size=1)
        await storage.open()
        await storage.connector.raw(
            _fetch_one("UPDATE mailbridge_schema SET version = 99 RETURNING 1")
        )
        await storage.close()
        with pytest.raises(StorageError, match="newer"):
            await storage.open()

    async def test_unreachable_server_is_a_storage_error(self) -> None:
        """No server on the port: ``open`` raises StorageError, without the password."""
        from tests.integration.conftest import free_port

        url = f"postgresql://mb:secret-pw@127.0.0.1:{free_port()}/mb?connect_timeout=1"
        storage = PostgresStorage(url, min_size=1, max_size=1, connect_timeout_s=1.5)
        with pytest.raises(StorageError) as caught:
            await storage.open()
        assert "secret-pw" not in str(caught.value)
        assert "secret-pw" not in repr(storage)
        with pytest.raises(StorageError, match="not open"):
            await storage.next_due()

    def test_factory_routes_postgresql_urls(self) -> None:
        """``postgresql://`` and ``postgres://`` give the PostgreSQL backend (not yet connected)."""
        for url in ("postgresql://db/mb", "postgres://u:p@db:5432/mb"):
            assert isinstance(open_storage(url), PostgresStorage)

    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            ("postgresql://u:pw@h/db", "postgresql://u:***@h/db"),
            (
                "postgresql://h/db?password=pw&sslmode=require",
                "postgresql://h/db?password=***&sslmode=require",
            ),
            ("postgresql://u@h/db", "postgresql://u@h/db"),
        ],
    )
    def test_redact_url(self, url: str, shown: str) -> None:
        """Passwords never reach logs or errors."""
        assert redact_url(url) == shown


def _fetch_one(query: str) -> Callable[[Any], Awaitable[Any]]:
    """A transaction returning the first column of the first row of ``query``."""

    async def work(conn: Any) -> Any:
        row = await (await conn.execute(query)).fetchone()
        return row[0]

    return work


class TestReplyViews:
    """``show_request`` lists a request's reply mails (what ``queue show`` prints)."""

    async def test_no_reply(self, backend: Backend) -> None:
        """A request answered OK without test=1 has no reply mail."""
        s = backend.storage
        rid, _ = await accept(s, intake())
        detail = await s.show_request(rid)
        assert detail is not None
        assert detail.replies == ()

    async def test_queued_then_sent(self, backend: Backend) -> None:
        """A queued reply shows to/body/due; retried and sent, its attempts and sent time."""
        s = backend.storage
        rid, line = await accept(s, intake(error=7))
        detail = await s.show_request(rid)
        assert detail is not None
        (queued,) = detail.replies
        assert queued == ReplyView(
            reply_id=queued.reply_id,
            to=REPLY.to,
            state=ReplyState.QUEUED,
            attempts=0,
            body=line,
            due=T0,
            sent_at=None,
        )
        (job,) = await s.claim_replies(T0, limit=10, lease_s=60)
        await s.mark_reply_retry(job.reply_id, due=at(30), error="421 busy", now=at(1))
        (job,) = await s.claim_replies(at(30), limit=10, lease_s=60)
        await s.mark_reply_sent(job.reply_id, at(31))
        detail = await s.show_request(rid)
        assert detail is not None
        (sent,) = detail.replies
        assert (sent.state, sent.attempts, sent.sent_at, sent.body) == ("sent", 2, at(31), line)
        assert sent.state is ReplyState.SENT

    async def test_dropped_reply_shows(self, backend: Backend) -> None:
        """A reply the smarthost refused for good is listed as dropped, never claimed again."""
        s = backend.storage
        rid, _ = await accept(s, intake(error=7))
        (job,) = await s.claim_replies(T0, limit=10, lease_s=60)
        await s.mark_reply_dropped(job.reply_id, error="550 no such user", now=at(1))
        detail = await s.show_request(rid)
        assert detail is not None
        (dropped,) = detail.replies
        assert (dropped.state, dropped.attempts) == (ReplyState.DROPPED, 1)
        assert dropped.state is ReplyState.DROPPED
        assert await s.claim_replies(at(10_000), limit=10, lease_s=60) == []

    async def test_ok_and_followup(self, backend: Backend) -> None:
        """A test=1 request whose SMS expired lists its OK reply and the ERROR = 8 follow-up."""
        s = backend.storage
        rid, line = await accept(s, intake(test=1))
        (job,) = await s.claim_due(T0, limit=10, lease_s=30, owner="w")
        await s.mark_failed(
            job.sms_id,
            provider=None,
            state=SmsState.EXPIRED,
            answer="validity ended",
            now=at(5),
            reply_rate_per_hour=RATE,
        )
        detail = await s.show_request(rid)
        assert detail is not None
        assert [(r.body, r.state, r.to) for r in detail.replies] == [
            (line, "queued", REPLY.to),
            (f"ERROR = 8 (Message cannot be delivered), ID - {rid}", "queued", REPLY.to),
        ]
        assert detail.replies[0].reply_id < detail.replies[1].reply_id
        assert detail.replies[1].due == at(5)

    async def test_replies_of_the_newest_request_only(self, backend: Backend) -> None:
        """Two requests with one client id: show lists the newest one's replies only."""
        s = backend.storage
        await accept(s, intake(error=8, client_id="dup"))
        rid, line = await accept(s, intake(error=6, client_id="dup", now=at(1)))
        detail = await s.show_request(rid)
        assert detail is not None
        assert [r.body for r in detail.replies] == [line]

    async def test_sqlite_followup_wakes_reply_subscribers(self, tmp_path: Path) -> None:
        """SQLite calls subscribe_replies callbacks when mark_failed queues a follow-up only."""
        storage = SqliteStorage(tmp_path / "mb.db")
        await storage.open()
        calls: list[str] = []
        unsubscribe = storage.subscribe_replies(lambda: calls.append("wake"))
        try:
            plain = sms_request(message("a", (N1,)))
            await accept(storage, intake(plain))
            await accept(storage, intake(test=1, now=at(1)))
            first, second = await storage.claim_due(at(2), limit=10, lease_s=30, owner="w")
            for job in (first, second):
                await storage.mark_failed(
                    job.sms_id,
                    provider="main",
                    state=SmsState.FAILED,
                    answer="4: rejected",
                    now=at(3),
                    reply_rate_per_hour=RATE,
                )
                assert calls == ([] if job is first else ["wake"])
            unsubscribe()
            unsubscribe()  # twice is harmless
        finally:
            await storage.close()

    async def test_sqlite_version_1_database_migrates(self, tmp_path: Path) -> None:
        """A database made by schema version 1 gains the reply columns and keeps its replies."""
        path = tmp_path / "v1.db"
        first = SqliteStorage(path)
        await first.open()
        rid, line = await accept(first, intake(error=7))
        await first.close()
        with contextlib.closing(sqlite3.connect(path)) as conn:  # back to version 1
            undo_migration_3(conn)
            conn.execute("DROP INDEX replies_by_request")
            conn.execute("ALTER TABLE replies DROP COLUMN sent_at")
            conn.execute("PRAGMA user_version = 1")
            conn.commit()
        again = SqliteStorage(path)
        await again.open()
        try:
            (job,) = await again.claim_replies(T0, limit=10, lease_s=60)
            await again.mark_reply_sent(job.reply_id, at(2))
            detail = await again.show_request(rid)
            assert detail is not None
            assert [(r.body, r.state, r.sent_at) for r in detail.replies] == [(line, "sent", at(2))]
        finally:
            await again.close()


def undo_migration_3(conn: sqlite3.Connection) -> None:
    """Take a SQLite database back from schema version 3 to 2 (receipts, inbound SMS)."""
    for table in ("inbound_parts", "inbound", "receipts_kept", "sms_parts"):
        conn.execute(f"DROP TABLE {table}")
    for index in ("sms_by_provider_id", "sms_sent_by_provider", "sms_by_recipient_sent"):
        conn.execute(f"DROP INDEX {index}")
    for column in ("sent_at", "receipt_status", "receipt_error", "receipt_at", "status_checked_at"):
        conn.execute(f"ALTER TABLE sms DROP COLUMN {column}")
    conn.execute("ALTER TABLE requests DROP COLUMN undelivered_sent")
    conn.execute("PRAGMA user_version = 2")


@pytest.fixture(params=["memory", "sqlite"])
async def local_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend that no other process shares (its wake-ups stay in this process)."""
    async with _opened(request.param, request, tmp_path) as opened:
        yield opened


class TestLocalWakeups:
    async def test_followup_wakes_reply_subscribers_only(self, local_backend: Backend) -> None:
        """A follow-up queued by mark_failed wakes the reply subscribers; accepts wake nobody
        (the SMTP handler wakes the dispatcher and the mailer itself)."""
        s = local_backend.storage
        calls: list[str] = []
        stop_due = s.subscribe_due(lambda: calls.append("due"))
        stop_replies = s.subscribe_replies(lambda: calls.append("reply"))
        await accept(s, intake(test=1))
        await accept(s, intake(error=1, now=at(1)))
        assert calls == []
        (job,) = await s.claim_due(at(2), limit=10, lease_s=30, owner="w")
        await s.mark_failed(
            job.sms_id,
            provider="main",
            state=SmsState.FAILED,
            answer="4: rejected",
            now=at(3),
            reply_rate_per_hour=RATE,
        )
        assert calls == ["reply"]
        stop_due()
        stop_replies()
        stop_replies()  # twice is harmless
        assert await s.retry_request("1", at(4)) == 1
        (job,) = await s.claim_due(at(4), limit=10, lease_s=30, owner="w")
        await s.mark_failed(
            job.sms_id,
            provider=None,
            state=SmsState.EXPIRED,
            answer="validity ended",
            now=at(5),
            reply_rate_per_hour=RATE,
        )
        assert calls == ["reply"]  # unsubscribed; and one follow-up per request anyway
