"""Core benchmark: one mail through the whole pure core, against a bare stdlib parse.

The baseline, measured in the same run: ``email.message_from_bytes(raw)``
(compat32) and ``get_payload(decode=True)`` of the first text part. The
whole core is ``read_mail`` (MIME, charset, ``[text]``, signature) +
``read_command`` + ``build_request`` (validation, phone numbers,
transliteration, part splitting). Printed: median µs of each and the ratio
(target: whole core ≤ 3× the baseline for a typical mail), then the worst
time of each hostile mail of the corpus through the same core (target ≤ 50 ms).

    .venv/bin/python bench/bench_core.py [--repeat 2000]
"""

from __future__ import annotations

import argparse
import email
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

from mailbridge.core.fields import read_command
from mailbridge.core.mail import read_mail
from mailbridge.core.request import build_request
from mailbridge.errors import RequestError
from mailbridge.models import Format
from mailbridge.settings import Account

ROOT = Path(__file__).resolve().parents[1]
MAILS = ROOT / "tests" / "data" / "mails"
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
ACCOUNT = Account(login="alex", senders=("Alex", "Zabbix"), default_sender="Alex")
FORMATS = frozenset(Format)

#: A typical alert mail: ≈ 500 bytes, declared charset, one command.
TYPICAL = (
    b"Return-Path: <zabbix@example.com>\r\n"
    b"From: Zabbix <zabbix@example.com>\r\n"
    b"To: send@sms.example.com\r\n"
    b"Subject: =?koi8-r?B?8NLPwszFzcEgzsEg08XS18XSxQ==?=\r\n"
    b"Date: Tue, 24 Nov 2026 09:00:00 +0300\r\n"
    b"Message-ID: <alert.4711@zabbix.example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=koi8-r\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    + "alex:secret:4711::,,Zabbix:+79991234567,89997654321:Проблема: диск / заполнен на 95%"
    " на сервере db-01, время 09:00\r\n".encode("koi8-r")
)

HOSTILE = [
    "mime_bomb_1000_levels.eml",
    "mime_bomb_after_text.eml",
    "too_many_parts.eml",
    "huge_header.eml",
    "giant_base64_attachment.eml",
    "large_100kb.eml",
    "lying_charset_utf8_is_cp1251.eml",
    "lying_charset_ascii_is_koi8r.eml",
]


def bare(raw: bytes) -> object:
    """The baseline: the stdlib's compat32 parse and the first text payload decoded."""
    msg = email.message_from_bytes(raw)
    part: Message = msg
    for sub in msg.walk():
        if sub.get_content_maintype() == "text":
            part = sub
            break
    return part.get_payload(decode=True)


def core(raw: bytes) -> object:
    """The whole core: bytes to a validated request (or the SMSC error)."""
    try:
        content = read_mail(raw, default_charset="koi8-r")
        fields = read_command(content.command)
        return build_request(fields, account=ACCOUNT, now=NOW, region="RU", formats=FORMATS)
    except RequestError as exc:
        return exc


def median_us(fn: Callable[[bytes], object], raw: bytes, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter_ns()
        fn(raw)
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


def worst_ms(fn: Callable[[bytes], object], raw: bytes, repeat: int) -> float:
    worst = 0
    for _ in range(repeat):
        t = time.perf_counter_ns()
        fn(raw)
        worst = max(worst, time.perf_counter_ns() - t)
    return worst / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args()
    result = core(TYPICAL)
    assert not isinstance(result, RequestError), result
    for fn in (bare, core):  # warm caches (phone numbers, regexes) as a running gateway has them
        for _ in range(50):
            fn(TYPICAL)
    base = median_us(bare, TYPICAL, args.repeat)
    whole = median_us(core, TYPICAL, args.repeat)
    print(f"core bench: typical mail of {len(TYPICAL)} bytes, median of {args.repeat} runs")
    print(f"  baseline  compat32 parse + payload decode : {base:8.1f} µs")
    print(f"  mailbridge whole core                     : {whole:8.1f} µs")
    print(f"  ratio core / baseline                     : {whole / base:8.2f}  (target <= 3)")
    for name in ("koi8r_declared.eml", "outlook_alternative_cp1251.eml", "zabbix_alert.eml"):
        raw = (MAILS / name).read_bytes()
        b, c = median_us(bare, raw, args.repeat // 4), median_us(core, raw, args.repeat // 4)
        print(f"  {name:34s} core {c:7.1f} µs  baseline {b:7.1f} µs  ratio {c / b:5.2f}")
    print("hostile mails through the whole core (worst of 20 runs; target <= 50 ms):")
    for name in HOSTILE:
        raw = (MAILS / name).read_bytes()
        ms = worst_ms(core, raw, 20)
        verdict = "ok" if ms <= 50 else "OVER"
        print(f"  {name:34s} {len(raw):>8d} B  {ms:7.2f} ms  {verdict}")


if __name__ == "__main__":
    main()
