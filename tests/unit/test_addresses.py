"""MAIL FROM / RCPT TO addresses that cannot be taken get a 5xx at their command."""

from __future__ import annotations

import pytest

from mailbridge.core.addresses import recipient_problem, sender_problem

NOT_UTF8 = b"\xff\xfe@localhost".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    ("address", "smtputf8", "code"),
    [
        ("ops@example.com", False, None),
        ("<>", False, None),
        (NOT_UTF8, False, "553 5.1.7"),
        (NOT_UTF8, True, "553 5.1.7"),
        ("опс@example.com", False, "553 5.6.7"),
        ("опс@example.com", True, None),
    ],
)
def test_sender(address: str, smtputf8: bool, code: str | None) -> None:
    """Bytes not UTF-8 are 5.1.7; UTF-8 without SMTPUTF8 is 5.6.7; else taken."""
    answer = sender_problem(address, smtputf8=smtputf8)
    assert (answer[:9] if answer else None) == code


def test_recipient_bytes() -> None:
    """A recipient with bytes that are not UTF-8 is 553 5.1.3."""
    answer = recipient_problem("+7999" + NOT_UTF8, smtputf8=True)
    assert answer is not None
    assert answer.startswith("553 5.1.3")


def test_every_answer_is_ascii_5xx() -> None:
    """Every refusal is a permanent ASCII reply line."""
    for answer in (
        sender_problem(NOT_UTF8, smtputf8=False),
        recipient_problem("é@x", smtputf8=False),
    ):
        assert answer is not None
        assert answer.isascii()
        assert answer[0] == "5"
