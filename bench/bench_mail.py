"""Time ``read_mail``: the corpus against a bare stdlib parse, and hostile mails.

Usage::

    python bench/bench_mail.py [FILE.eml ...]   # default: every mail of tests/data/mails
    python bench/bench_mail.py --hostile        # generated hostile mails of about 60-95 KB

Prints the best of several runs. The baseline is ``email.message_from_bytes``
(compat32) plus decoding every leaf payload, which is what the standard
library needs to get at the text; it is ``nan`` where the standard parser
itself fails (RecursionError on a deep MIME bomb). ``read_mail`` caches the
charset parameter and the address of recurring header values; the ``cold``
column clears those caches before every call.
"""

from __future__ import annotations

import contextlib
import email
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

from mailbridge.core.mail import charset as mail_charset
from mailbridge.core.mail import headers as mail_headers
from mailbridge.core.mail import read_mail
from mailbridge.errors import RequestError

__all__ = ["bare_parse", "bare_us", "best_us", "hostile_mails", "main", "read", "read_cold"]

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "mails"
SIZE = 95_000


def bare_parse(raw: bytes) -> None:
    """Parse with compat32 and decode every leaf payload, as the stdlib would."""
    for part in email.message_from_bytes(raw).walk():
        if not part.is_multipart():
            part.get_payload(decode=True)


def read(raw: bytes) -> None:
    """``read_mail``, its RequestError counting as an answer."""
    with contextlib.suppress(RequestError):
        read_mail(raw)


def read_cold(raw: bytes) -> None:
    """``read`` with the header-value caches of mailbridge.core.mail emptied first."""
    mail_charset._charset_param.cache_clear()
    mail_headers._address.cache_clear()
    read(raw)


def bare_us(raw: bytes, *, budget_s: float = 0.2) -> float:
    """``best_us`` of ``bare_parse``, nan where the standard parser fails."""
    try:
        return best_us(bare_parse, raw, budget_s=budget_s)
    except RecursionError:
        return float("nan")


def best_us(function: Callable[[bytes], None], raw: bytes, *, budget_s: float = 0.2) -> float:
    """Best time of one call, in microseconds, over about ``budget_s`` of runs."""
    timer = timeit.Timer(lambda: function(raw))
    number, elapsed = timer.autorange()
    repeat = max(3, min(50, int(budget_s / max(elapsed, 1e-9))))
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e6


def _mail(headers: bytes, body: bytes) -> bytes:
    return b"From: a@example.com\nSubject: x\n" + headers + b"\n" + body


def _nested(depth: int) -> bytes:
    """The head of a mail ``depth`` multiparts deep, its last part open."""
    return b"Subject: x\n" + b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\n\n--b%d\n' % (i, i) for i in range(depth)
    )


def hostile_mails() -> dict[str, bytes]:
    """Mails built to hit the slow paths of a parser, each at most about 95 KB."""
    html = b"Content-Type: text/html; charset=utf-8\n"
    plain = b"Content-Type: text/plain; charset=utf-8\n"
    mixed = b'Content-Type: multipart/mixed; boundary="x"\n'
    russian = "Сервер недоступен, проверьте питание. " * 2000
    units = {
        "lt": b"<",
        "lt-a-quote": b'<a "',
        "br": b"<br>",
        "b": b"<b>",
        "pre": b"<pre>\n",
        "comment": b"<!--",
        "endtag": b"</",
        "td": b"<td>",
        "charref": b"&#1055;",
        "br-p": b"<br><p>",
        "attr-eq": b"<a =",
        "script": b"<script>",
        "div-open": b"<div",
    }
    mails = {
        f"html {name}": _mail(html, unit * (SIZE // len(unit))) for name, unit in units.items()
    }
    mails |= {
        "subject 4000 encoded words": b"Subject: " + b"=?utf-8?q?a?= " * 4000 + b"\n\nbody",
        "subject 30000 '=?'": b"Subject: " + b"=?" * 30000 + b"\n\nbody",
        "from 60000 '('": b"From: " + b"(" * 60000 + b"\n\nbody",
        "from 30000 '\"\\'": b"From: " + b'"\\' * 30000 + b"\n\nbody",
        "content-type 60000 ';' in quotes": _mail(
            b'Content-Type: text/plain; a="' + b";" * 60000 + b'"\n', b"body"
        ),
        "content-type 12000 params": _mail(
            b"Content-Type: text/plain" + b"; a=b" * 12000 + b"\n", b"x"
        ),
        "content-type 60000 blanks": _mail(
            b"Content-Type: text/plain;" + b" " * 60000 + b"x\n", b"x"
        ),
        "content-type 30000 '\"\\'": _mail(
            b"Content-Type: text/plain; a=" + b'"\\' * 30000 + b"\n", b"x"
        ),
        "headers 20000 short lines": b"a:\n" * 20000 + b"\nbody",
        "headers 20000 folds": b"Subject: x\n" + b" y\n" * 20000 + b"\nbody",
        "undeclared koi8-r 76 KB": _mail(b"", russian.encode("koi8-r")),
        "undeclared cp1251 76 KB": _mail(b"", russian.encode("cp1251")),
        "lying utf-8, binary": _mail(plain, bytes(range(256)) * (SIZE // 256)),
        "utf-8 broken at the end": _mail(plain, "ж".encode() * (SIZE // 2) + b"\xff"),
        "24000 signature lines": _mail(b"", b"-- \n" * (SIZE // 4)),
        "99 parts, 600-byte content types": _mail(
            mixed, (b'--x\nContent-Type: a/b; a="' + b";" * 600 + b'"\n\n\n') * 99 + b"--x--\n"
        ),
        "30000 delimiters on one line": _mail(mixed, b"--x" * 30000),
        "19000 near-delimiters": _mail(mixed, b"--xy\n" * 19000),
        "qp all '='": _mail(plain + b"Content-Transfer-Encoding: quoted-printable\n", b"=" * SIZE),
        "NUL bytes": b"\x00" * SIZE,
        "CR only": b"\r" * SIZE,
        # the slow paths of the standard parser, which the guards of read_mail cut off
        "19000 empty parts": _mail(mixed, b"--x\n\n" * 19000),
        "part headers 30000 short lines": _mail(mixed, b"--x\n" + b"a:\n" * 30000 + b"\nx\n"),
        "multipart, 90000 empty lines": _mail(mixed, b"--x\n\n" + b"\n" * 90000),
        "10 nested multiparts, 90000 lines": _nested(10) + b"\n" * 90000,
        "50 nested multiparts, 88000 lines": _nested(50) + b"\n" * 88000,
        "300 nested multiparts": _nested(300),
        "1000 nested message/rfc822": b"Content-Type: message/rfc822\n\n" * 1000 + b"x",
        "multipart boundary after 8 KB of ';'": (
            b'Content-Type: multipart/mixed; a="' + b";" * 8000 + b'"; boundary=x\n\n'
            b"--x\n\nx\n--x--\n"
        ),
        "multipart with 12000 params": (
            b"Content-Type: multipart/mixed" + b"; a=b" * 12000 + b"; boundary=x\n\n--x\n\nx\n"
        ),
        "subject 7000 unclosed encoded words": b"Subject: " + b"=?a?q?x " * 7000 + b"\n\nbody",
        "from 1024 '@' then 59000 '('": b"From: " + b"@" * 1024 + b"(" * 59000 + b"\n\nbody",
        "delivery-status, 20000 paragraphs": _mail(
            b"Content-Type: message/delivery-status\n", b"a:\n\n" * 20000
        ),
        "message/rfc822 part, 30000 header lines": _mail(
            mixed, b"--x\nContent-Type: message/rfc822\n\n" + b"a:\n" * 30000
        ),
        "digest, 190 parts of 160 header lines": _mail(
            b'Content-Type: multipart/digest; boundary="x"\n', (b"--x\n\n" + b"a:\n" * 160) * 190
        ),
        "uuencoded text, 47000 lines": _mail(
            plain + b"Content-Transfer-Encoding: x-uuencode\n", b"begin 644 x\n" + b"a\n" * 47000
        ),
    }
    return mails


def main(argv: list[str]) -> None:
    if argv == ["--hostile"]:
        print(f"{'hostile mail':40} {'bytes':>7} {'read_mail ms':>13} {'compat32 ms':>12}")
        for name, raw in hostile_mails().items():
            ours = best_us(read, raw, budget_s=0.1) / 1000
            bare = bare_us(raw, budget_s=0.1) / 1000
            print(f"{name:40} {len(raw):7} {ours:13.2f} {bare:12.2f}")
        return
    files = [Path(arg) for arg in argv] or sorted(CORPUS.glob("*.eml"))
    print(
        f"{'mail':40} {'bytes':>7} {'read_mail µs':>13} {'cold µs':>8} {'compat32 µs':>12}"
        f" {'ratio':>6}"
    )
    for path in files:
        raw = path.read_bytes()
        ours = best_us(read, raw)
        cold = best_us(read_cold, raw)
        bare = bare_us(raw)
        print(
            f"{path.name:40} {len(raw):7} {ours:13.1f} {cold:8.1f} {bare:12.1f} {ours / bare:6.2f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
