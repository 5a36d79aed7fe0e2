"""Receipts and inbound SMS processed per second, against ``mark_sent`` in the same run.

On a fresh SQLite file (WAL, FULL sync, the daemon's storage), one run:

1. baseline: ``--n`` SMS rows accepted (requests of 100 recipients), claimed,
   and ``mark_sent`` for each with ``--concurrency`` calls in flight: the
   committed state change the dispatcher makes per SMS;
2. receipts: one ``DELIVERED`` receipt per row through the daemon's events
   sink (:class:`~mailbridge.delivery.events.StorageEvents`), same
   concurrency: each is matched by (provider, id) and committed;
3. repeats: the same receipts again (duplicates: matched, nothing written);
4. inbound: ``--n`` single-part SMS from phones through the sink, routed to
   the sender of the request that went to the phone and queued as mails.

Printed: rates, each as a ratio of the baseline, and CPU time per item
(process time, this process only: the SQLite writer thread included).

Run: ``.venv/bin/python bench/bench_receipts.py [--n 5000] [--concurrency 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mailbridge.core.encoding import split_text  # noqa: E402
from mailbridge.delivery.events import StorageEvents  # noqa: E402
from mailbridge.models import Format, Message, SmsRequest  # noqa: E402
from mailbridge.providers.events import InboundSms, Receipt, ReceiptState  # noqa: E402
from mailbridge.settings import InboundSettings, LimitsSettings, Settings  # noqa: E402
from mailbridge.storage.base import Intake, ReplyDraft  # noqa: E402
from mailbridge.storage.sqlite import SqliteStorage  # noqa: E402

LIMITS = LimitsSettings(flood_max=10**9, duplicate_max=10**9)
PER_REQUEST = 100


def _number(i: int) -> str:
    return f"+7999{i:07d}"


async def _in_flight(
    items: Sequence[int], work: Callable[[int], Awaitable[object]], c: int
) -> None:
    queue = list(items)

    async def lane() -> None:
        while queue:
            await work(queue.pop())

    await asyncio.gather(*(lane() for _ in range(c)))


async def _timed(
    label: str, n: int, items: Sequence[int], work: Callable[[int], Awaitable[object]], c: int
) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await _in_flight(items, work, c)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate = n / wall
    print(f"{label:<34} {rate:9.0f} /s   {cpu / n * 1e6:7.0f} µs CPU each", flush=True)
    return rate, cpu / n


async def run(n: int, concurrency: int, folder: Path) -> None:
    storage = SqliteStorage(folder / "bench.db")
    await storage.open()
    now = datetime.now(UTC)
    text = "disk full on db1"
    split = split_text(text)
    for start in range(0, n, PER_REQUEST):
        numbers = tuple(_number(i) for i in range(start, min(n, start + PER_REQUEST)))
        request = SmsRequest(
            account="alex",
            client_id=None,
            due=now,
            translit=0,
            format=Format.SMS,
            sender="Alex",
            test=0,
            messages=(Message(text=text, recipients=numbers, split=split),),
        )
        await storage.accept(
            Intake(
                received_at=now,
                client_ip="127.0.0.1",
                mail_from="zabbix@example.com",
                rcpt_to=("send@sms.example.com",),
                raw=b"Subject: alert\r\n\r\nx\r\n",
                mode="command",
                account="alex",
                client_id=None,
                request=request,
                error=None,
                reply=ReplyDraft(
                    to="zabbix@example.com", subject="Re: alert", in_reply_to="<a@b>", references=""
                ),
            ),
            limits=LIMITS,
            reply_rate_per_hour=30,
            now=now,
        )
    jobs = await storage.claim_due(now, limit=n, lease_s=600, owner="bench")
    ids = {job.sms_id: job for job in jobs}
    rows = sorted(ids)
    print(f"{n} SMS rows, {concurrency} calls in flight, SQLite {folder / 'bench.db'}")

    async def sent(sms_id: int) -> None:
        await storage.mark_sent(
            sms_id, provider="p", provider_id=f"m{sms_id}", answer="ok", now=now
        )

    base, base_cpu = await _timed("baseline: mark_sent", n, rows, sent, concurrency)
    events = StorageEvents(
        storage, Settings(inbound=InboundSettings(mail_to="noc@example.com")), clock=lambda: now
    )

    async def receipt(sms_id: int) -> None:
        await events.receipt(
            Receipt(
                provider="p",
                message_id=f"m{sms_id}",
                state=ReceiptState.DELIVERED,
                status="DELIVRD",
                error_code=None,
                at=now,
            )
        )

    rate, cpu = await _timed("receipts (applied)", n, rows, receipt, concurrency)
    print(f"{'':<34} {rate / base:9.2f} of baseline, CPU {cpu / base_cpu:.2f}×")
    rate, cpu = await _timed("receipts (repeats)", n, rows, receipt, concurrency)
    print(f"{'':<34} {rate / base:9.2f} of baseline, CPU {cpu / base_cpu:.2f}×")

    async def inbound(sms_id: int) -> None:
        await events.inbound(
            InboundSms(
                provider="p",
                source=ids[sms_id].recipient,
                destination="Alex",
                text="ack",
                received_at=now,
            )
        )

    rate, cpu = await _timed("inbound SMS (routed, mail queued)", n, rows, inbound, concurrency)
    print(f"{'':<34} {rate / base:9.2f} of baseline, CPU {cpu / base_cpu:.2f}×")
    await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.n, args.concurrency, Path(tmp)))


if __name__ == "__main__":
    main()
