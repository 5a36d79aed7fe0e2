"""The pure limit decisions of SPEC §2, driven by a fake clock."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.core import limits as lim
from mailbridge.core.limits import FloodState
from mailbridge.models import Encoding, Format, Message, SmsRequest, Split
from mailbridge.settings import LimitsSettings

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DEFAULTS = LimitsSettings()


def at(seconds: float) -> datetime:
    """The fake clock: ``seconds`` after T0."""
    return T0 + timedelta(seconds=seconds)


def make_request(**changes: object) -> SmsRequest:
    """A one-message request; keyword arguments replace its fields."""
    message = Message(
        text="hello",
        recipients=("+79990000001", "+79990000002"),
        split=Split(encoding=Encoding.GSM7, parts=("hello",)),
    )
    base = SmsRequest(
        account="alex",
        client_id=None,
        due=at(0),
        translit=0,
        format=Format.SMS,
        sender="Alex",
        test=0,
        messages=(message,),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def other_message(text: str = "hello", recipients: Sequence[str] = ("+79990000001",)) -> Message:
    """A message with the given text and recipients."""
    return Message(
        text=text,
        recipients=tuple(recipients),
        split=Split(encoding=Encoding.GSM7, parts=(text,)),
    )


class TestCanonicalTime:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("", "now"),
            ("0", "now"),
            (" 0 ,3", "now"),
            (",", "now"),
            ("+5", "+5"),
            ("+5,", "+5"),
            ("0105241200,3", "0105241200,3"),
            (" 9-18 , -1 ", "9-18,-1"),
        ],
    )
    def test_table(self, spec: str, expected: str) -> None:
        """Immediate times collapse to one marker; others are kept as written."""
        assert lim.canonical_time(spec) == expected


class TestFingerprint:
    def test_same_request_other_due_instant_matches_when_immediate(self) -> None:
        """Two immediate requests seconds apart share a fingerprint."""
        a = lim.request_fingerprint(make_request(due=at(0)), time_spec="")
        b = lim.request_fingerprint(make_request(due=at(37)), time_spec="0")
        assert a == b

    def test_client_id_and_test_flag_do_not_count(self) -> None:
        """The client id and test flag are not part of the request's content."""
        a = lim.request_fingerprint(make_request(), time_spec="")
        b = lim.request_fingerprint(make_request(client_id="77", test=1), time_spec="")
        assert a == b

    @pytest.mark.parametrize(
        "changes",
        [
            {"account": "bob"},
            {"sender": "Other"},
            {"format": Format.FLASH},
            {"translit": 1},
            {"messages": (other_message("hello!"),)},
            {"messages": (other_message(recipients=("+79990000003",)),)},
            {"subject": "subj"},
        ],
    )
    def test_each_field_counts(self, changes: dict[str, object]) -> None:
        """Changing any field of the parsed request changes the fingerprint."""
        a = lim.request_fingerprint(make_request(), time_spec="")
        b = lim.request_fingerprint(make_request(**changes), time_spec="")
        assert a != b

    def test_time_spec_counts(self) -> None:
        """A different written time is a different request."""
        req = make_request()
        assert lim.request_fingerprint(req, time_spec="+5") != lim.request_fingerprint(
            req, time_spec="+6"
        )
        assert lim.request_fingerprint(req, time_spec="+5") != lim.request_fingerprint(
            req, time_spec=""
        )

    def test_without_time_spec_the_minute_counts(self) -> None:
        """Without a time spec the due instant counts to the minute."""
        same = lim.request_fingerprint(make_request(due=at(1)))
        assert same == lim.request_fingerprint(make_request(due=at(59)))
        assert same != lim.request_fingerprint(make_request(due=at(61)))

    def test_is_sha256_hex(self) -> None:
        """The fingerprint is 64 hex digits."""
        fp = lim.request_fingerprint(make_request(), time_spec="")
        assert len(fp) == 64
        int(fp, 16)


class TestDuplicates:
    @pytest.mark.parametrize(
        ("accepted", "duplicate_max", "refused"),
        [(0, 2, False), (1, 2, False), (2, 2, True), (5, 2, True), (0, 0, True), (1, 1, True)],
    )
    def test_table(self, accepted: int, duplicate_max: int, refused: bool) -> None:
        """More than ``duplicate_max`` identical requests: the next one is refused."""
        limits = LimitsSettings(duplicate_max=duplicate_max)
        assert lim.duplicate_refused(accepted, limits) is refused


class TestFlood:
    @pytest.mark.parametrize(
        ("state", "now", "expected"),
        [
            (None, 0, FloodState(last_at=at(0), streak=1)),
            (FloodState(last_at=at(0), streak=1), 119.9, FloodState(last_at=at(119.9), streak=2)),
            (FloodState(last_at=at(0), streak=7), 120, FloodState(last_at=at(120), streak=1)),
            (FloodState(last_at=at(0), streak=50), 1, FloodState(last_at=at(1), streak=51)),
        ],
    )
    def test_step(self, state: FloodState | None, now: float, expected: FloodState) -> None:
        """A gap under ``flood_gap_s`` continues the streak, a longer one restarts it."""
        assert lim.flood_step(state, at(now), DEFAULTS) == expected

    def test_fifty_first_in_a_streak_is_refused(self) -> None:
        """With the defaults, 50 SMS a minute apart pass and the 51st is refused."""
        state: FloodState | None = None
        for i in range(50):
            plan = lim.flood_plan(["+1"], {"+1": state}, at(60 * i), DEFAULTS)
            assert plan is not None
            state = plan["+1"]
        assert lim.flood_plan(["+1"], {"+1": state}, at(60 * 50), DEFAULTS) is None
        assert lim.flood_plan(["+1"], {"+1": state}, at(60 * 49 + 120), DEFAULTS) is not None

    def test_repeated_number_in_one_request_counts_each(self) -> None:
        """Several messages to one number in one request each count."""
        limits = LimitsSettings(flood_max=2)
        assert lim.flood_plan(["+1", "+1"], {}, at(0), limits) is not None
        assert lim.flood_plan(["+1", "+2", "+1", "+1"], {}, at(0), limits) is None

    def test_plan_returns_each_number_once(self) -> None:
        """The plan holds the final state of each number."""
        plan = lim.flood_plan(["+1", "+2", "+1"], {}, at(5), DEFAULTS)
        assert plan == {
            "+1": FloodState(last_at=at(5), streak=2),
            "+2": FloodState(last_at=at(5), streak=1),
        }


class TestBalance:
    @pytest.mark.parametrize(
        ("n", "balance", "charged", "refused"),
        [
            (5, None, 10**9, False),
            (5, 10, 5, False),
            (6, 10, 5, True),
            (1, 10, 12, True),  # a lowered balance on reload can leave less than nothing
            (0, 0, 0, False),
        ],
    )
    def test_table(self, n: int, balance: int | None, charged: int, refused: bool) -> None:
        """A request of n parts is refused when n exceeds balance minus charged."""
        assert lim.balance_refused(n, balance=balance, charged=charged) is refused

    def test_available(self) -> None:
        """Available parts are the configured balance minus what was charged."""
        assert lim.available_balance(None, 3) is None
        assert lim.available_balance(10, 3) == 7


class TestDecideRequest:
    def decide(self, **changes: object) -> int | None:
        args: dict[str, object] = {
            "n": 2,
            "recipients": ["+1"],
            "duplicates": 0,
            "flood": {},
            "balance": None,
            "charged": 0,
            "now": at(0),
            "limits": LimitsSettings(flood_max=1),
        }
        args.update(changes)
        return lim.decide_request(**args).error  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("changes", "error"),
        [
            ({}, None),
            ({"duplicates": 2}, 9),
            ({"recipients": ["+1", "+1"]}, 8),
            ({"balance": 1}, 3),
            ({"duplicates": 2, "recipients": ["+1", "+1"], "balance": 1}, 9),
            ({"recipients": ["+1", "+1"], "balance": 1}, 8),
        ],
    )
    def test_order(self, changes: dict[str, object], error: int | None) -> None:
        """Duplicates are checked first, then flood, then balance."""
        assert self.decide(**changes) == error

    def test_refused_request_changes_no_flood_state(self) -> None:
        """A refused request carries no new flood states."""
        decision = lim.decide_request(
            n=1,
            recipients=["+1"],
            duplicates=0,
            flood={},
            balance=0,
            charged=0,
            now=at(0),
            limits=DEFAULTS,
        )
        assert decision.error == 3
        assert decision.flood == {}


class TestIpBlock:
    @pytest.mark.parametrize("code", [1, 2, 5, 7])
    def test_counted_codes(self, code: int) -> None:
        """Errors 1, 2, 5 and 7 count towards a block."""
        assert lim.counts_as_ip_error(code)

    @pytest.mark.parametrize("code", [None, 3, 4, 6, 8, 9])
    def test_other_codes(self, code: int | None) -> None:
        """Other answers do not count."""
        assert not lim.counts_as_ip_error(code)

    @pytest.mark.parametrize(
        ("previous", "now", "blocked_until"),
        [
            ([], 0, None),
            ([0, 1], 2, 602),  # the third error within the window blocks
            ([0, 1], 600, None),  # the one at 0 left the window (exclusive bound)
            ([0, 1], 599, 1199),
            ([-5000, 0], 10, None),
        ],
    )
    def test_block_after_error(
        self, previous: list[float], now: float, blocked_until: float | None
    ) -> None:
        """``error_block_after`` errors within the window block from the last one."""
        limits = LimitsSettings(error_block_after=3)
        result = lim.block_until_after_error([at(p) for p in previous], at(now), limits)
        assert result == (None if blocked_until is None else at(blocked_until))

    @pytest.mark.parametrize(
        ("until", "now", "blocked"),
        [(None, 0, False), (600, 599, True), (600, 600, False), (600, 900, False)],
    )
    def test_ip_blocked(self, until: float | None, now: float, blocked: bool) -> None:
        """A block holds strictly before its end."""
        assert lim.ip_blocked(None if until is None else at(until), at(now)) is blocked


class TestReplies:
    @pytest.mark.parametrize(
        ("sent", "rate", "allowed"), [(0, 30, True), (29, 30, True), (30, 30, False), (0, 0, False)]
    )
    def test_table(self, sent: int, rate: int, allowed: bool) -> None:
        """At most ``reply_rate_per_hour`` replies per recipient in the last hour."""
        assert lim.reply_allowed(sent, rate) is allowed
