"""The RCPT rules: one mode per transaction, number-address cap, allowed senders."""

from __future__ import annotations

from mailbridge.core.recipients import MAX_NUMBER_RCPTS, Route, RouteKind, admit_recipient
from mailbridge.settings import ForwardAlias, NumberAddressSettings, Settings

ALIAS = ForwardAlias(
    address="oncall@localhost", account="alex", to=("+79991112233",),
    allowed_senders=("zabbix@example.com",),
)  # fmt: skip
SETTINGS = Settings(
    forward=(ALIAS,),
    number_addresses=NumberAddressSettings(
        enabled=True, account="alex", allowed_senders=("*@example.com",)
    ),
)
COMMAND = Route(kind=RouteKind.COMMAND, address="send@localhost")
FORWARD = Route(kind=RouteKind.FORWARD, address="oncall@localhost", alias=ALIAS)


def number(i: int) -> Route:
    return Route(kind=RouteKind.NUMBER, address=f"+7999{i:07d}@localhost", number=f"+7999{i:07d}")


def test_first_recipient_is_taken() -> None:
    """The command mailbox takes any sender."""
    assert admit_recipient(COMMAND, [], "", SETTINGS) == ("250 2.1.5 OK", True)


def test_same_address_again_is_ok_but_not_added() -> None:
    """A repeated recipient is answered OK and not listed twice."""
    assert admit_recipient(COMMAND, [COMMAND], "a@b", SETTINGS) == ("250 2.1.5 OK", False)


def test_one_mode_per_transaction() -> None:
    """A recipient of another kind, or a second forward alias, waits for another mail."""
    too_many = "452 4.5.3 Too many recipients, send this one in another mail"
    assert admit_recipient(number(1), [COMMAND], "x@example.com", SETTINGS) == (too_many, False)
    other = Route(kind=RouteKind.FORWARD, address="other@localhost", alias=ALIAS)
    assert admit_recipient(other, [FORWARD], "zabbix@example.com", SETTINGS) == (too_many, False)


def test_number_addresses_share_a_mail_up_to_the_cap() -> None:
    """Up to MAX_NUMBER_RCPTS number addresses in one mail."""
    routes = [number(i) for i in range(MAX_NUMBER_RCPTS - 1)]
    assert admit_recipient(number(999), routes, "x@example.com", SETTINGS)[1] is True
    routes.append(number(999))
    answer, add = admit_recipient(number(1000), routes, "x@example.com", SETTINGS)
    assert (answer[:3], add) == ("452", False)


def test_allowed_senders() -> None:
    """Forward and number addresses check the envelope sender; the null sender never passes."""
    assert admit_recipient(FORWARD, [], "zabbix@example.com", SETTINGS) == ("250 2.1.5 OK", True)
    assert admit_recipient(FORWARD, [], "other@example.com", SETTINGS) == (
        "550 5.7.1 Sender not allowed to write to this address", False,
    )  # fmt: skip
    assert admit_recipient(number(1), [], "", SETTINGS) == (
        "550 5.7.1 Sender not allowed to write to number addresses", False,
    )  # fmt: skip
