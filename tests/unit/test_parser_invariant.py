"""The parser invariant: any bytes give a command or a RequestError, every field valid UTF-8."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailbridge.core.grammar import parse_command
from mailbridge.core.mail import read_mail
from mailbridge.errors import RequestError
from mailbridge.models import Command

#: Bytes that make decoding hard: 8-bit, encoded words, literal escapes, separators.
PIECES = st.sampled_from(
    [
        b"alex",
        b":",
        b"pw",
        b"+79991234567",
        b"\xff\xfe",
        b"\xed\xa0\xbd",
        b"\xd0\xbf\xd1\x80",
        b"\\ud83d\\ude00",
        b"\\U0001F600",
        b"=?utf-8?q?caf=C3=A9?=",
        b"=?utf-7?q?+2D0-?=",
        b"\r\n",
        b" ",
        b"[text]",
        b"[/text]",
    ]
)


def strings_of(command: Command) -> list[str]:
    values: list[str] = []
    for field in dataclasses.fields(command):
        value = getattr(command, field.name)
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, tuple):
            for entry in value:
                values.extend(str(getattr(entry, f.name)) for f in dataclasses.fields(entry))
    return values


def check(raw: bytes) -> None:
    try:
        content = read_mail(raw)
    except RequestError:
        return
    for name in content.__slots__:
        getattr(content, name).encode("utf-8")
    try:
        command = parse_command(content.command)
    except RequestError:
        return
    for value in strings_of(command):
        value.encode("utf-8")  # no lone surrogate anywhere


class TestInvariant:
    @settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
    @given(subject=st.lists(PIECES, max_size=10), body=st.lists(PIECES, max_size=20))
    def test_hostile_mails(self, subject: list[bytes], body: list[bytes]) -> None:
        """Hostile Subjects and bodies: a command or RequestError, every field UTF-8."""
        raw = b"From: a@example.com\nSubject: " + b" ".join(subject) + b"\n\n" + b"".join(body)
        check(raw)

    @given(st.binary(max_size=1500))
    def test_any_bytes(self, raw: bytes) -> None:
        """Any bytes at all: a command or RequestError, every field UTF-8."""
        check(raw)
