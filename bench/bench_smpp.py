"""SMPP benchmark: SMS per second through the dispatcher to a loopback SMSC, against a bare loop.

In one run, against the same fake SMSC (``tests/fakes/smsc.py``, smpplib's
codec) in a child process so it does not share this process's CPU, for each
window (1, 10, 50):

1. the bare loop: one :class:`~mailbridge.providers.smpp_session.SmppSession`
   (the gateway's own SMPP client, the "library" here) bound to the SMSC,
   ``window`` ``submit_sm`` in flight, ``--n`` of them, nothing else;
2. the dispatcher: ``--n`` single-recipient requests committed to a fresh
   SQLite database, then sent through the ``smpp`` provider with that window
   (``concurrency`` = window, no rate limit), every state change committed;
   the clock stops when the last ``mark_sent`` has returned.

The ratio dispatcher / bare loop of each pair is printed, with the CPU time
per SMS of this process (the SQLite writer thread included). Each pair is
repeated ``--repeat`` times (loopback rates on a shared machine vary), the
median ratio printed last.

3. receipts: the SMSC sends a delivery receipt after each ``submit_sm_resp``;
   receipts parsed and handed to a counting sink per second (the storage side
   of receipts is measured with it once it exists), CPU per receipt.
4. for orientation, when ``smpp34`` is installed (not a dependency): its bare
   loop against the same SMSC at each window;
5. the dispatcher's own floor: the same rows through a provider that answers
   at once without any I/O (CPU per SMS of claim, settle and the SQLite
   commits alone), which bounds the ratio of 2. from above.

Run: ``.venv/bin/python bench/bench_smpp.py [--n 3000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_delivery import CountingStorage, _rate, fill  # noqa: E402
from mailbridge.delivery.dispatcher import Dispatcher  # noqa: E402
from mailbridge.models import Format  # noqa: E402
from mailbridge.providers.base import Sent  # noqa: E402
from mailbridge.providers.events import InboundSms, Receipt  # noqa: E402
from mailbridge.providers.factory import build_providers  # noqa: E402
from mailbridge.providers.smpp_codec import Cmd, encode_gsm7, submit_sm_body  # noqa: E402
from mailbridge.providers.smpp_session import SmppSession  # noqa: E402
from mailbridge.settings import (  # noqa: E402
    DeliverySettings,
    ProviderSettings,
    RoutingSettings,
    Settings,
    SmppSettings,
)

PASSWORD = "secret"
#: concurrency = FACTOR × window, as the config sets it by default
FACTOR = 2


@contextlib.contextmanager
def fake_smsc(receipts: str = "none") -> Iterator[int]:
    """The fake SMSC in a child process; yields its port."""
    cmd = [sys.executable, "-m", "tests.fakes.smsc", "--port", "0", "--receipts", receipts]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(10)


def smpp_settings(port: int, window: int, *, receipts: bool = False) -> SmppSettings:
    return SmppSettings(
        host="127.0.0.1",
        port=port,
        system_id="client",
        window=window,
        registered_delivery=receipts,
    )


def body(i: int) -> bytes:
    return submit_sm_body(
        source="Alex",
        source_ton=5,
        source_npi=0,
        destination=f"7999{i:07d}",
        dest_ton=1,
        dest_npi=1,
        short_message=encode_gsm7(f"bench {i}"),
    )


async def bare_loop(port: int, n: int, window: int) -> tuple[float, float]:
    """SMS per second and CPU µs per SMS of one bound session, ``window`` in flight."""
    session = SmppSession(
        provider="bare",
        settings=smpp_settings(port, window),
        password=PASSWORD,
        bind=Cmd.BIND_TRANSCEIVER,
        timeout_s=30.0,
        connect_timeout_s=5.0,
        on_deliver=None,
    )
    session.start()
    while not session.bound:
        await session.wait_change(1.0)
    bodies = [body(i) for i in range(n)]
    counter = iter(bodies)

    async def worker() -> None:
        for item in counter:
            pdu = await session.submit(item)
            assert pdu.status == 0

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(window)))
    result = _rate(n, started, cpu)
    await session.close(5.0)
    return result


async def smpp34_loop(port: int, n: int, window: int) -> tuple[float, float] | None:
    """The same bare loop with smpp34 (Rust core), when it is installed."""
    try:
        import smpp34  # type: ignore[import-not-found]
    except ImportError:
        return None
    client = smpp34.Client("127.0.0.1", port, "client", PASSWORD, bind_type="TRX")
    smsc = await client.connect()
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            resp = await smsc.submit_sm(
                f"7999{i:07d}", f"bench {i}".encode(), source_addr="Alex", source_addr_ton=5
            )
            assert resp.is_success

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(window)))
    result = _rate(n, started, cpu)
    await smsc.unbind()
    return result


def settings_for(port: int, window: int) -> Settings:
    provider = ProviderSettings(
        name="smpp",
        type="smpp",
        password=PASSWORD,
        concurrency=FACTOR * window,  # the config default is 2: sends queue at the window
        smpp=smpp_settings(port, window),
    )
    return Settings(
        providers=(provider,),
        routing=RoutingSettings(default=("smpp",)),
        delivery=DeliverySettings(batch_size=max(200, window * 4)),
    )


async def dispatch_rate(port: int, n: int, window: int, folder: Path) -> tuple[float, float]:
    """SMS per second and CPU µs per SMS from committed rows to ``mark_sent``."""
    storage = CountingStorage(folder / f"smpp-{window}-{time.monotonic_ns()}.db")
    await storage.open()
    try:
        await fill(storage, n, same_text=False, due=datetime.now(UTC))
        storage.target = n
        storage.done = asyncio.Event()
        settings = settings_for(port, window)
        providers = build_providers(settings.providers)
        dispatcher = Dispatcher(storage, providers, settings, owner="b")
        await asyncio.sleep(0.3)  # bound before the clock starts, as the bare loop is
        started, cpu = time.perf_counter(), time.process_time()
        await dispatcher.start()
        await asyncio.wait_for(storage.done.wait(), 600)
        result = _rate(n, started, cpu)
        await dispatcher.stop(5)
        return result
    finally:
        await storage.close()


class NullProvider:
    """Takes every SMS at once, no I/O: the dispatcher's and storage's own cost."""

    name = "smpp"
    formats = frozenset({Format.SMS})
    max_batch = 1

    async def send(self, batch: Any) -> list[Any]:
        await asyncio.sleep(0)
        return [Sent(provider_id=str(o.sms_id), answer="ok") for o in batch]

    async def aclose(self) -> None:
        pass


async def floor_rate(n: int, folder: Path) -> tuple[float, float]:
    """SMS per second and CPU µs per SMS through the dispatcher to :class:`NullProvider`."""
    storage = CountingStorage(folder / f"floor-{time.monotonic_ns()}.db")
    await storage.open()
    try:
        await fill(storage, n, same_text=False, due=datetime.now(UTC))
        storage.target = n
        storage.done = asyncio.Event()
        settings = settings_for(0, 10)
        dispatcher = Dispatcher(storage, {"smpp": NullProvider()}, settings, owner="f")
        started, cpu = time.perf_counter(), time.process_time()
        await dispatcher.start()
        await asyncio.wait_for(storage.done.wait(), 600)
        result = _rate(n, started, cpu)
        await dispatcher.stop(5)
        return result
    finally:
        await storage.close()


class CountingSink:
    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.done = asyncio.Event()

    async def receipt(self, receipt: Receipt) -> None:
        self.count += 1
        if self.count >= self.target:
            self.done.set()

    async def inbound(self, sms: InboundSms) -> None:
        pass


async def receipt_rate(n: int) -> tuple[float, float]:
    """Receipts per second (parsed, handed to a sink, answered) and CPU µs per receipt."""
    from mailbridge.providers.base import Outbound
    from mailbridge.providers.smpp import SmppProvider

    with fake_smsc("after") as port:
        settings = ProviderSettings(
            name="smpp",
            type="smpp",
            password=PASSWORD,
            smpp=smpp_settings(port, 50, receipts=True),
        )
        sink = CountingSink(n)
        provider = SmppProvider(settings, sink)

        items = [
            Outbound(
                sms_id=i,
                request_id=str(i),
                recipient=f"+7999{i:07d}",
                text=f"bench {i}",
                sender="Alex",
                format=Format.SMS,
            )
            for i in range(n)
        ]
        counter = iter(items)

        async def worker() -> None:
            for item in counter:
                await provider.send([item])

        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(50)))
        await asyncio.wait_for(sink.done.wait(), 120)
        wall = time.perf_counter() - started
        spent = time.process_time() - cpu
        await provider.aclose()
        # submits and receipts share the clock: report receipts per second over the run
        return n / wall, spent / n * 1e6


async def main(args: argparse.Namespace) -> None:
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    n = args.n
    print(f"SMPP benchmark: {n} SMS per run, {args.repeat} run(s) per window")
    with tempfile.TemporaryDirectory() as tmp, fake_smsc() as port:
        folder = Path(tmp)
        for window in (1, 10, 50):
            ratios: list[float] = []
            for run in range(args.repeat):
                bare, bare_cpu = await bare_loop(port, n, window)
                through, through_cpu = await dispatch_rate(port, n, window, folder)
                ratios.append(through / bare)
                print(
                    f"window {window:>2} run {run + 1}: bare loop {bare:7.0f} SMS/s"
                    f" ({bare_cpu:5.0f} µs CPU/SMS) | dispatcher {through:7.0f} SMS/s"
                    f" ({through_cpu:5.0f} µs CPU/SMS) | ratio {through / bare:.2f}"
                )
            print(f"window {window:>2}: median ratio {statistics.median(ratios):.2f}")
            other = await smpp34_loop(port, n, window)
            if other is not None:
                print(
                    f"window {window:>2}: smpp34 bare loop {other[0]:7.0f} SMS/s"
                    f" ({other[1]:5.0f} µs CPU/SMS), for orientation"
                )
        floor, floor_cpu = await floor_rate(n, folder)
        print(f"dispatcher floor (no-I/O provider): {floor:.0f} SMS/s, {floor_cpu:.0f} µs CPU/SMS")
    rate, cpu = await receipt_rate(n)
    print(
        f"receipts: {rate:.0f}/s (submit + receipt per SMS, window 50, counting sink),"
        f" {cpu:.0f} µs CPU per SMS and its receipt"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
