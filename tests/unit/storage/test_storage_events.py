"""The storage contract of delivery receipts and SMS from phones, over every backend.

The same fixtures as ``test_storage.py``: memory, SQLite on a real file, and a
real PostgreSQL (``tests/pg.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from mailbridge.core.inbound import PART_WAIT_S
from mailbridge.core.receipts import ReceiptAction
from mailbridge.core.records import InboundIn, ReceiptIn
from mailbridge.models import InboundState, SmsState
from mailbridge.settings import InboundSettings
from mailbridge.storage.base import Storage
from tests.pg import PgCluster
from tests.unit.storage.test_storage import (  # noqa: F401 (fixtures)
    N1,
    N2,
    RATE,
    REPLY,
    T0,
    Backend,
    PostgresStorage,
    _opened,
    accept,
    at,
    intake,
    message,
    pg_cluster_fixture,
    sms_request,
    states,
)

DOMAIN = "sms.example.com"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend, opened empty (as ``backend`` in test_storage.py)."""
    async with _opened(request.param, request, tmp_path) as opened:
        yield opened


@pytest.fixture(params=["sqlite", "postgres"])
async def durable(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """Each backend that keeps its data across a restart."""
    async with _opened(request.param, request, tmp_path) as opened:
        yield opened


WINDOW = InboundSettings(reply_window_s=3600.0, mail_to="noc@example.com")
KEEP = InboundSettings(reply_window_s=3600.0)


def receipt(
    mid: str, state: str, status: str, *, err: str | None = None, when: float = 5
) -> ReceiptIn:
    """A receipt of provider ``p`` for id ``mid``."""
    return ReceiptIn(
        provider="p", message_id=mid, state=state, status=status, error_code=err, at=at(when)
    )


async def sent(s: Storage, *ids: str, now: datetime = T0) -> list[int]:
    """Claim every due row and mark them sent by provider ``p`` under ``ids``, in row order."""
    jobs = sorted(await s.claim_due(now, limit=100, lease_s=60, owner="w"), key=lambda j: j.sms_id)
    for job, mid in zip(jobs, ids, strict=True):
        await s.mark_sent(job.sms_id, provider="p", provider_id=mid, answer="ok", now=now)
    return [job.sms_id for job in jobs]


async def record(s: Storage, r: ReceiptIn, *, rate: int = RATE, now: float = 10) -> ReceiptAction:
    action = (await s.record_receipt(r, now=at(now), reply_rate_per_hour=rate)).action
    assert type(action) is ReceiptAction
    return action


class TestReceipts:
    async def test_final_receipt_moves_sent_row(self, store: Backend) -> None:
        """DELIVERED on a sent row: delivered, with word, code and time."""
        s = store.storage
        rid, _ = await accept(s, intake())
        await sent(s, "x1")
        assert await record(s, receipt("x1", "delivered", "DELIVRD", err="000")) == "apply"
        detail = await s.show_request(rid)
        assert detail is not None
        (row,) = detail.sms
        assert row.state is SmsState.DELIVERED
        assert (row.receipt_status, row.receipt_error, row.receipt_at) == ("DELIVRD", "000", at(5))
        assert row.sent_at == T0

    async def test_interim_receipt_keeps_state(self, store: Backend) -> None:
        """ENROUTE is recorded on the row; it stays sent."""
        s = store.storage
        rid, _ = await accept(s, intake())
        await sent(s, "x1")
        assert await record(s, receipt("x1", "pending", "ENROUTE")) == "record"
        detail = await s.show_request(rid)
        assert detail is not None
        assert (detail.sms[0].state, detail.sms[0].receipt_status) == (SmsState.SENT, "ENROUTE")

    async def test_duplicates_and_late_states(self, store: Backend) -> None:
        """A repeat is a duplicate; another final state after the first changes nothing."""
        s = store.storage
        rid, _ = await accept(s, intake())
        await sent(s, "x1")
        await record(s, receipt("x1", "delivered", "DELIVRD"))
        assert await record(s, receipt("x1", "delivered", "DELIVRD", when=6)) == "duplicate"
        assert await record(s, receipt("x1", "expired", "EXPIRED", when=7)) == "record"
        detail = await s.show_request(rid)
        assert detail is not None
        assert (detail.sms[0].state, detail.sms[0].receipt_at) == (SmsState.DELIVERED, at(5))

    async def test_receipt_before_send_is_recorded(self, store: Backend) -> None:
        """A receipt for an id not known yet is kept and applied by mark_sent."""
        s = store.storage
        rid, _ = await accept(s, intake())
        (job,) = await s.claim_due(T0, limit=10, lease_s=60, owner="w")
        assert await record(s, receipt("early", "pending", "ACCEPTD", when=1)) == "keep"
        assert await record(s, receipt("early", "delivered", "DELIVRD", when=2)) == "keep"
        assert await record(s, receipt("nobody", "failed", "UNDELIV")) == "keep"
        await s.mark_sent(job.sms_id, provider="p", provider_id="early", answer="", now=at(3))
        detail = await s.show_request(rid)
        assert detail is not None
        assert (detail.sms[0].state, detail.sms[0].receipt_status) == (
            SmsState.DELIVERED,
            "DELIVRD",
        )
        # applied once: the id's kept receipts are gone, a repeat is now a duplicate
        assert await record(s, receipt("early", "delivered", "DELIVRD", when=2)) == "duplicate"

    async def test_receipts_kept_for_rows_sent_together(self, store: Backend) -> None:
        """Rows marked sent in one transaction each get the receipts kept for their ids."""
        s = store.storage
        rid, _ = await accept(s, intake(sms_request(message("hi", (N1, N2)))))
        first, second = await s.claim_due(T0, limit=10, lease_s=60, owner="w")
        assert await record(s, receipt("e1", "delivered", "DELIVRD", when=1)) == "keep"
        assert await record(s, receipt("e2", "failed", "UNDELIV", when=1)) == "keep"
        await asyncio.gather(
            s.mark_sent(first.sms_id, provider="p", provider_id="e1", answer="", now=at(3)),
            s.mark_sent(second.sms_id, provider="p", provider_id="e2", answer="", now=at(3)),
        )
        detail = await s.show_request(rid)
        assert detail is not None
        assert {(r.sms_id, r.state, r.receipt_status) for r in detail.sms} == {
            (first.sms_id, SmsState.DELIVERED, "DELIVRD"),
            (second.sms_id, SmsState.FAILED, "UNDELIV"),
        }

    async def test_same_id_of_another_provider_is_not_matched(self, store: Backend) -> None:
        """Ids are matched per provider."""
        s = store.storage
        rid, _ = await accept(s, intake())
        await sent(s, "x1")
        other = ReceiptIn(
            provider="q", message_id="x1", state="failed", status="UNDELIV", error_code=None, at=T0
        )
        assert (await s.record_receipt(other, now=T0, reply_rate_per_hour=RATE)).action == "keep"
        assert await states(s, rid) == [SmsState.SENT]

    async def test_kept_receipt_survives_restart(self, durable: Backend) -> None:
        """A kept receipt is on disk: applied by mark_sent after a restart."""
        s = durable.storage
        rid, _ = await accept(s, intake())
        (job,) = await s.claim_due(T0, limit=10, lease_s=60, owner="w")
        await record(s, receipt("x9", "failed", "UNDELIV"))
        assert durable.reopen is not None
        s = await durable.reopen()
        await s.mark_sent(job.sms_id, provider="p", provider_id="x9", answer="", now=at(1))
        assert await states(s, rid) == [SmsState.FAILED]


class TestUndeliveredMail:
    async def test_every_row_failed_mails_once(self, store: Backend) -> None:
        """The last failing receipt queues one reply with a line per number; never twice."""
        s = store.storage
        rid, _ = await accept(s, intake(sms_request(message("hi", (N1, N2)))))
        await sent(s, "a", "b")
        await record(s, receipt("a", "failed", "UNDELIV", err="001"))
        assert await s.claim_replies(at(20), limit=10, lease_s=60) == []
        stored = await s.record_receipt(
            receipt("b", "expired", "EXPIRED"), now=at(11), reply_rate_per_hour=RATE
        )
        assert stored.mail_queued
        (mail,) = await s.claim_replies(at(20), limit=10, lease_s=60)
        assert (mail.to, mail.subject, mail.in_reply_to) == (
            REPLY.to,
            REPLY.subject,
            REPLY.in_reply_to,
        )
        assert mail.body.splitlines() == [
            f"ERROR = 8 (Message cannot be delivered), ID - {rid}",
            f"not delivered to {N1}: failed (UNDELIV err 001)",
            f"not delivered to {N2}: expired (EXPIRED)",
        ]
        await record(s, receipt("b", "expired", "EXPIRED"))
        await record(s, receipt("a", "failed", "UNDELIV", err="001"))
        assert await s.claim_replies(at(70), limit=10, lease_s=60) == []

    async def test_one_delivered_no_mail(self, store: Backend) -> None:
        """One SMS delivered: the request was not wholly undelivered."""
        s = store.storage
        await accept(s, intake(sms_request(message("hi", (N1, N2)))))
        await sent(s, "a", "b")
        await record(s, receipt("a", "delivered", "DELIVRD"))
        await record(s, receipt("b", "failed", "UNDELIV"))
        assert await s.claim_replies(at(20), limit=10, lease_s=60) == []

    async def test_handover_failure_and_receipt(self, store: Backend) -> None:
        """One refused at hand-over (no mail for test=0), the other by receipt: one mail."""
        s = store.storage
        await accept(s, intake(sms_request(message("hi", (N1, N2)))))
        jobs = sorted(
            await s.claim_due(T0, limit=10, lease_s=60, owner="w"), key=lambda j: j.sms_id
        )
        await s.mark_failed(
            jobs[0].sms_id,
            provider="p",
            state=SmsState.FAILED,
            answer="7: bad number",
            now=at(1),
            reply_rate_per_hour=RATE,
        )
        assert await s.claim_replies(at(2), limit=10, lease_s=60) == []
        await s.mark_sent(jobs[1].sms_id, provider="p", provider_id="b", answer="", now=at(1))
        await record(s, receipt("b", "failed", "REJECTD"))
        (mail,) = await s.claim_replies(at(20), limit=10, lease_s=60)
        assert mail.body.splitlines()[1:] == [
            f"not delivered to {N1}: failed",
            f"not delivered to {N2}: failed (REJECTD)",
        ]

    async def test_no_reply_address_no_mail(self, store: Backend) -> None:
        """A request that may get no replies (forward, number, suppressed) gets no mail."""
        s = store.storage
        await accept(s, intake(reply=None))
        await sent(s, "a")
        await record(s, receipt("a", "failed", "UNDELIV"))
        assert await s.claim_replies(at(20), limit=10, lease_s=60) == []

    async def test_reply_rate_holds(self, store: Backend) -> None:
        """Beyond reply_rate_per_hour the mail is not queued."""
        s = store.storage
        await accept(s, intake())
        await sent(s, "a")
        await record(s, receipt("a", "failed", "UNDELIV"), rate=0)
        assert await s.claim_replies(at(20), limit=10, lease_s=60) == []

    async def test_resend_clears_the_receipt(self, store: Backend) -> None:
        """queue retry after a failed receipt: the new send starts without a receipt."""
        s = store.storage
        rid, _ = await accept(s, intake())
        await sent(s, "a")
        await record(s, receipt("a", "failed", "UNDELIV"))
        assert await s.retry_request(rid, at(30)) == 1
        await sent(s, "a2", now=at(31))
        detail = await s.show_request(rid)
        assert detail is not None
        row = detail.sms[0]
        assert (row.state, row.provider_id, row.receipt_status, row.sent_at) == (
            SmsState.SENT,
            "a2",
            None,
            at(31),
        )


class TestStatusChecks:
    async def test_rounds(self, store: Backend) -> None:
        """Sent rows of the provider, not again within every_s, not beyond max_age_s."""
        s = store.storage
        await accept(s, intake(sms_request(message("hi", (N1, N2)))))
        await sent(s, "a", "b")

        async def ask(now: float) -> list[str]:
            rows = await s.claim_status_checks(
                "p", now=at(now), every_s=60, max_age_s=3600, limit=10
            )
            return [r.provider_id for r in rows]

        assert await ask(10) == ["a", "b"]
        assert await ask(20) == []
        assert (
            await s.claim_status_checks("q", now=at(80), every_s=60, max_age_s=3600, limit=10) == []
        )
        await record(s, receipt("a", "delivered", "DELIVRD"), now=75)
        assert await ask(80) == ["b"]
        assert await ask(4000) == []  # sent more than max_age_s ago

    async def test_limit_oldest_asked_first(self, store: Backend) -> None:
        """With a limit, the rows asked longest ago come first."""
        s = store.storage
        await accept(s, intake(sms_request(message("hi", (N1, N2)))))
        await sent(s, "a", "b")
        first = await s.claim_status_checks("p", now=at(10), every_s=5, max_age_s=3600, limit=1)
        second = await s.claim_status_checks("p", now=at(11), every_s=5, max_age_s=3600, limit=1)
        third = await s.claim_status_checks("p", now=at(20), every_s=5, max_age_s=3600, limit=1)
        assert [r.provider_id for r in (*first, *second, *third)] == ["a", "b", "a"]
        assert first[0].recipient == N1
        assert first[0].sent_at == T0


def sms(
    text: str = "ack",
    *,
    source: str = N1,
    concat: tuple[int, int, int] | None = None,
    when: float = 100,
) -> InboundIn:
    """An SMS from ``source`` to the gateway's sender ``Alex``."""
    return InboundIn(
        provider="p",
        source=source,
        destination="Alex",
        text=text,
        received_at=at(when),
        concat=concat,
    )


class TestInbound:
    async def test_routed_to_the_last_request_sender(self, store: Backend) -> None:
        """Within the window: the sender of the request that went to the phone, threaded."""
        s = store.storage
        rid, _ = await accept(s, intake())
        await sent(s, "a")
        stored = await s.store_inbound(
            sms(source=N1.removeprefix("+")), now=at(100), settings=WINDOW, domain=DOMAIN
        )
        assert stored.mail_queued
        (mail,) = await s.claim_inbound_mails(at(100), limit=10, lease_s=60)
        assert (mail.to, mail.from_address, mail.subject) == (REPLY.to, f"{N1}@{DOMAIN}", "ack")
        assert (mail.in_reply_to, mail.references) == (REPLY.in_reply_to, REPLY.in_reply_to)
        assert f"in reply to request ID - {rid}" in mail.body
        (view,) = await s.list_inbound()
        assert (view.state, view.to, view.request_id, view.parts, view.text) == (
            "sending",
            REPLY.to,
            rid,
            1,
            "ack",
        )

    async def test_outside_window_fallback_then_kept(self, store: Backend) -> None:
        """Past the window: mail_to; without mail_to: kept, never claimed."""
        s = store.storage
        await accept(s, intake())
        await sent(s, "a")
        late = at(3601)
        await s.store_inbound(sms(when=3601), now=late, settings=WINDOW, domain=DOMAIN)
        (mail,) = await s.claim_inbound_mails(late, limit=10, lease_s=60)
        assert (mail.to, mail.in_reply_to) == ("noc@example.com", "")
        stored = await s.store_inbound(sms("x", when=3602), now=late, settings=KEEP, domain=DOMAIN)
        assert not stored.mail_queued
        assert await s.claim_inbound_mails(at(3610), limit=10, lease_s=60) == []
        views = await s.list_inbound()
        assert [(v.state, v.to) for v in views] == [("kept", None), ("sending", "noc@example.com")]
        assert [v.state for v in views] == [InboundState.KEPT, InboundState.SENDING]
        assert all(type(v.state) is InboundState for v in views)
        assert await s.next_inbound_due() == late + timedelta(seconds=60)

    async def test_parts_joined_repeats_ignored(self, store: Backend) -> None:
        """Parts out of order make one message once all are there; a repeat is a duplicate."""
        s = store.storage

        async def part(seq: int, text: str) -> tuple[int | None, bool]:
            stored = await s.store_inbound(
                sms(text, concat=(9, 3, seq)), now=at(100), settings=WINDOW, domain=DOMAIN
            )
            return stored.inbound_id, stored.duplicate

        assert await part(3, "c") == (None, False)
        assert await part(1, "a") == (None, False)
        assert await part(1, "a") == (None, True)
        inbound_id, duplicate = await part(2, "b")
        assert inbound_id is not None
        assert not duplicate
        assert await part(2, "b") == (None, True)  # repeat after joining: still a duplicate
        (view,) = await s.list_inbound()
        assert (view.inbound_id, view.text, view.parts) == (inbound_id, "abc", 3)

    async def test_missing_part_flushed_with_gap(self, store: Backend) -> None:
        """A message missing a part is stored with a gap once PART_WAIT_S has passed."""
        s = store.storage
        for seq, text in ((1, "a"), (3, "c")):
            await s.store_inbound(
                sms(text, concat=(4, 3, seq)), now=at(100), settings=WINDOW, domain=DOMAIN
            )
        early = await s.flush_inbound_parts(
            now=at(100 + PART_WAIT_S - 1), settings=WINDOW, domain=DOMAIN
        )
        assert early == 0
        assert (
            await s.flush_inbound_parts(now=at(101 + PART_WAIT_S), settings=WINDOW, domain=DOMAIN)
            == 1
        )
        (view,) = await s.list_inbound()
        assert (view.text, view.parts, view.state) == ("a[…]c", 2, "queued")
        assert (
            await s.flush_inbound_parts(now=at(200 + PART_WAIT_S), settings=WINDOW, domain=DOMAIN)
            == 0
        )

    async def test_mail_retry_and_sent(self, store: Backend) -> None:
        """Retried at its due time, then sent: the reply mailer's rules."""
        s = store.storage
        await s.store_inbound(sms(), now=at(100), settings=WINDOW, domain=DOMAIN)
        (mail,) = await s.claim_inbound_mails(at(100), limit=10, lease_s=60)
        await s.mark_inbound_retry(mail.inbound_id, due=at(130), error="down", now=at(101))
        assert await s.claim_inbound_mails(at(120), limit=10, lease_s=60) == []
        (again,) = await s.claim_inbound_mails(at(130), limit=10, lease_s=60)
        assert again.attempts == 1
        await s.mark_inbound_sent(again.inbound_id, at(131))
        (view,) = await s.list_inbound()
        assert (view.state, view.attempts, view.sent_at) == ("sent", 2, at(131))
        assert await s.next_inbound_due() is None

    async def test_parts_survive_restart(self, durable: Backend) -> None:
        """A stored part is on disk: the message completes after a restart."""
        s = durable.storage
        await s.store_inbound(
            sms("a", concat=(1, 2, 1)), now=at(100), settings=WINDOW, domain=DOMAIN
        )
        assert durable.reopen is not None
        s = await durable.reopen()
        stored = await s.store_inbound(
            sms("b", concat=(1, 2, 2)), now=at(101), settings=WINDOW, domain=DOMAIN
        )
        assert stored.mail_queued
        (view,) = await s.list_inbound()
        assert view.text == "ab"


@pytest.fixture
async def instances(
    pg_cluster: PgCluster,
) -> AsyncIterator[tuple[PostgresStorage, PostgresStorage]]:
    """Two storages, as two gateway instances have, on one fresh PostgreSQL schema."""
    url = pg_cluster.create_schema()
    first, second = PostgresStorage(url, max_size=4), PostgresStorage(url, max_size=4)
    await asyncio.gather(first.open(), second.open())
    yield first, second
    await asyncio.gather(first.close(), second.close())


@pytest.mark.skipif(PostgresStorage is None, reason="psycopg is not installed")
class TestTwoInstances:
    async def test_last_receipts_at_once_one_mail(
        self, instances: tuple[PostgresStorage, PostgresStorage]
    ) -> None:
        """The last two failing receipts of a request on two instances at once: one mail."""
        first, second = instances
        for round_ in range(5):
            rid, _ = await accept(
                first, intake(sms_request(message(f"r{round_}", (N1, N2))), now=at(round_))
            )
            a, b = f"a{round_}", f"b{round_}"
            await sent(first, a, b, now=at(round_))
            await asyncio.gather(
                second.record_receipt(
                    receipt(a, "failed", "UNDELIV"), now=at(round_), reply_rate_per_hour=RATE
                ),
                first.record_receipt(
                    receipt(b, "failed", "UNDELIV"), now=at(round_), reply_rate_per_hour=RATE
                ),
            )
            detail = await first.show_request(rid)
            assert detail is not None
            assert [r.body.splitlines()[0] for r in detail.replies] == [
                f"ERROR = 8 (Message cannot be delivered), ID - {rid}"
            ]

    async def test_receipt_kept_while_the_other_records_the_id(
        self, instances: tuple[PostgresStorage, PostgresStorage]
    ) -> None:
        """A receipt kept on one instance while the other records its id is applied."""
        first, second = instances
        for round_ in range(5):
            rid, _ = await accept(first, intake(sms_request(message(f"k{round_}")), now=at(round_)))
            (job,) = await first.claim_due(at(round_), limit=10, lease_s=60, owner="w")
            mid = f"k{round_}"
            await asyncio.gather(
                second.record_receipt(
                    receipt(mid, "delivered", "DELIVRD"), now=at(round_), reply_rate_per_hour=RATE
                ),
                first.mark_sent(
                    job.sms_id, provider="p", provider_id=mid, answer="", now=at(round_)
                ),
            )
            assert await states(first, rid) == [SmsState.DELIVERED]


class TestParts:
    async def test_receipts_per_part(self, store: Backend) -> None:
        """An SMS sent as parts (ids comma-joined): delivered when every part is."""
        s = store.storage
        rid, _ = await accept(s, intake())
        await sent(s, "p1,p2,p3")
        for mid in ("p2", "p1"):
            assert await record(s, receipt(mid, "delivered", "DELIVRD")) == "record"
        assert await states(s, rid) == [SmsState.SENT]
        assert await record(s, receipt("p3", "delivered", "DELIVRD", when=9)) == "apply"
        detail = await s.show_request(rid)
        assert detail is not None
        assert (detail.sms[0].state, detail.sms[0].receipt_at) == (SmsState.DELIVERED, at(9))
        assert await record(s, receipt("p3", "delivered", "DELIVRD")) == "duplicate"

    async def test_one_failed_part_fails_the_sms(self, store: Backend) -> None:
        """A part that failed fails the SMS (and mails the sender), whatever the others say."""
        s = store.storage
        rid, _ = await accept(s, intake())
        await sent(s, "p1,p2")
        await record(s, receipt("p1", "delivered", "DELIVRD"))
        assert await record(s, receipt("p2", "failed", "UNDELIV", err="005")) == "apply"
        assert await states(s, rid) == [SmsState.FAILED]
        (mail,) = await s.claim_replies(at(20), limit=10, lease_s=60)
        assert mail.body.splitlines()[1] == f"not delivered to {N1}: failed (UNDELIV err 005)"

    async def test_part_receipt_before_the_send(self, store: Backend) -> None:
        """Part receipts kept before the ids were recorded are applied by mark_sent."""
        s = store.storage
        rid, _ = await accept(s, intake())
        (job,) = await s.claim_due(T0, limit=10, lease_s=60, owner="w")
        assert await record(s, receipt("q1", "delivered", "DELIVRD")) == "keep"
        assert await record(s, receipt("q2", "delivered", "DELIVRD")) == "keep"
        await s.mark_sent(job.sms_id, provider="p", provider_id="q1,q2", answer="", now=at(1))
        assert await states(s, rid) == [SmsState.DELIVERED]

    async def test_resent_under_new_ids(self, store: Backend) -> None:
        """After queue retry the old part ids no longer reach the row."""
        s = store.storage
        rid, _ = await accept(s, intake())
        await sent(s, "o1,o2")
        await record(s, receipt("o1", "failed", "UNDELIV"))
        assert await s.retry_request(rid, at(30)) == 1
        await sent(s, "n1,n2", now=at(31))
        assert await record(s, receipt("o2", "failed", "UNDELIV")) == "keep"
        await record(s, receipt("n1", "delivered", "DELIVRD"))
        await record(s, receipt("n2", "delivered", "DELIVRD"))
        assert await states(s, rid) == [SmsState.DELIVERED]
