"""The RCPT rules: any mix of recipients up to the cap, allowed senders, invalid numbers."""

from __future__ import annotations

from mailbridge.core.recipients import (
    MAX_NUMBER_RCPTS,
    Route,
    RouteKind,
    admit_recipient,
    invalid_number_address,
    route_groups,
)
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


def test_any_mix_in_one_transaction() -> None:
    """SPEC §3: the command address, aliases and numbers share one mail (it was one mode per
    transaction, 452 for the second kind)."""
    ok = ("250 2.1.5 OK", True)
    assert admit_recipient(number(1), [COMMAND], "x@example.com", SETTINGS) == ok
    other = Route(kind=RouteKind.FORWARD, address="other@localhost", alias=ALIAS)
    assert admit_recipient(other, [FORWARD], "zabbix@example.com", SETTINGS) == ok
    assert admit_recipient(COMMAND, [FORWARD, number(1)], "zabbix@example.com", SETTINGS) == ok


def test_route_groups() -> None:
    """The requests of a mixed mail: the command first, then each alias and the numbers."""
    other = Route(kind=RouteKind.FORWARD, address="other@localhost", alias=ALIAS)
    groups = route_groups([number(1), FORWARD, COMMAND, number(2), other])
    assert groups == [[COMMAND], [number(1), number(2)], [FORWARD], [other]]
    assert route_groups([]) == []


def test_invalid_number_address() -> None:
    """A number-looking local part on a served domain: the answer says the number is invalid."""
    settings = Settings(
        number_addresses=NumberAddressSettings(enabled=True, account="alex"),
    )
    assert invalid_number_address("12@localhost", settings)
    assert invalid_number_address("+7 999@localhost", settings)
    assert not invalid_number_address("nobody@localhost", settings)
    assert not invalid_number_address("12@elsewhere.test", settings)
    assert not invalid_number_address("12@localhost", Settings())  # number addresses off


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
