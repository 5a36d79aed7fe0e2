"""Tests for mailbridge.core.timespec: the <time>,<tz> fields resolved against a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.core.timespec import resolve_due, zone_for
from mailbridge.errors import RequestError

# 2025-03-10 09:30 UTC is 12:30 in Moscow (UTC+3 all year).
NOW = datetime(2025, 3, 10, 9, 30, tzinfo=UTC)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# (id, time, tz, account_tz, now, expected due)
CASES = [
    ("empty", "", "", 0, NOW, NOW),
    ("zero", "0", "", 0, NOW, NOW),
    ("compact-moscow", "1103251200", "", 0, NOW, utc(2025, 3, 11, 9, 0)),
    ("compact-tz-0-is-moscow", "1103251200", "0", 5, NOW, utc(2025, 3, 11, 9, 0)),
    ("compact-tz-plus2", "1103251200", "2", 0, NOW, utc(2025, 3, 11, 7, 0)),
    ("compact-tz-minus3-is-utc", "1103251200", "-3", 0, NOW, utc(2025, 3, 11, 12, 0)),
    ("compact-account-tz", "1103251200", "", 4, NOW, utc(2025, 3, 11, 5, 0)),
    ("compact-local-midnight-wraps-utc", "1103250100", "", 0, NOW, utc(2025, 3, 10, 22, 0)),
    ("compact-past-is-now", "0903251200", "", 0, NOW, NOW),
    ("compact-leap-day", "2902281200", "", 0, NOW, utc(2028, 2, 29, 9, 0)),
    ("moscow-summer-is-utc+3", "0107251200", "", 0, NOW, utc(2025, 7, 1, 9, 0)),
    ("dotted", "11.03.25 12.00", "", 0, NOW, utc(2025, 3, 11, 9, 0)),
    ("dotted-short-fields", "1.4.25 9.05", "", 0, NOW, utc(2025, 4, 1, 6, 5)),
    ("dotted-four-digit-year", "11.03.2025 12.00", "1", 0, NOW, utc(2025, 3, 11, 8, 0)),
    ("dotted-two-spaces", "11.03.25  12.00", "", 0, NOW, utc(2025, 3, 11, 9, 0)),
    ("unix", "01767225600", "", 0, NOW, utc(2026, 1, 1)),
    ("unix-ignores-tz", "01767225600", "5", 0, NOW, utc(2026, 1, 1)),
    ("unix-past", "01000000000", "", 0, NOW, NOW),
    ("unix-epoch", "00", "", 0, NOW, NOW),
    ("relative", "+30", "", 0, NOW, NOW + timedelta(minutes=30)),
    ("relative-zero", "+0", "", 0, NOW, NOW),
    ("relative-day", "+1440", "-5", 0, NOW, NOW + timedelta(days=1)),
    ("window-inside", "9-18", "", 0, NOW, NOW),
    ("window-before-start", "14-18", "", 0, NOW, utc(2025, 3, 10, 11, 0)),
    ("window-after-end", "9-12", "", 0, NOW, utc(2025, 3, 11, 6, 0)),
    ("window-end-exclusive", "9-12", "", 0, utc(2025, 3, 10, 9, 0), utc(2025, 3, 11, 6, 0)),
    ("window-start-inclusive", "12-13", "", 0, utc(2025, 3, 10, 9, 0), utc(2025, 3, 10, 9, 0)),
    ("window-other-zone", "9-18", "7", 0, NOW, utc(2025, 3, 10, 23, 0)),
    ("window-whole-day", "0-24", "", 0, utc(2025, 3, 10, 20, 59), utc(2025, 3, 10, 20, 59)),
    ("window-until-midnight", "22-0", "", 0, utc(2025, 3, 10, 20, 0), utc(2025, 3, 10, 20, 0)),
    (
        "overnight-inside-late",
        "22-6",
        "",
        0,
        utc(2025, 3, 10, 20, 0),
        utc(2025, 3, 10, 20, 0),
    ),
    (
        "overnight-inside-early",
        "22-6",
        "",
        0,
        utc(2025, 3, 10, 1, 0),
        utc(2025, 3, 10, 1, 0),
    ),
    ("window-overnight-outside", "22-6", "", 0, NOW, utc(2025, 3, 10, 19, 0)),
    ("window-empty", "9-9", "", 0, NOW, utc(2025, 3, 11, 6, 0)),
    ("window-next-day-month-end", "8-9", "", 0, utc(2025, 3, 31, 20, 0), utc(2025, 4, 1, 5, 0)),
    (
        "window-local-date-not-utc",
        "9-10",
        "",
        0,
        utc(2025, 3, 10, 22, 0),
        utc(2025, 3, 11, 6, 0),
    ),
    ("window-blanks", " 9 - 18 ", "", 0, NOW, NOW),
    ("tz-plus-sign", "1103251200", "+1", 0, NOW, utc(2025, 3, 11, 8, 0)),
    ("tz-blanks", "1103251200", " -1 ", 0, NOW, utc(2025, 3, 11, 10, 0)),
    ("tz-east-limit", "1103251200", "11", 0, NOW, utc(2025, 3, 10, 22, 0)),
    ("tz-west-limit", "1103251200", "-15", 0, NOW, utc(2025, 3, 12, 0, 0)),
]


class TestResolveDue:
    @pytest.mark.parametrize(
        ("time", "tz", "account_tz", "now", "due"),
        [c[1:] for c in CASES],
        ids=[c[0] for c in CASES],
    )
    def test_due(self, time: str, tz: str, account_tz: int, now: datetime, due: datetime) -> None:
        """Each time format resolves to the expected UTC instant."""
        got = resolve_due(time, tz, account_tz=account_tz, now=now)
        assert got == due
        assert got.tzinfo is UTC

    def test_now_in_other_zone(self) -> None:
        """A `now` given in another zone is the same instant."""
        now = NOW.astimezone(timezone(timedelta(hours=-7)))
        assert resolve_due("", "", account_tz=0, now=now) == NOW

    def test_naive_now_is_a_bug(self) -> None:
        """A naive `now` is a programming error, not a request error."""
        with pytest.raises(ValueError, match="aware"):
            resolve_due("", "", account_tz=0, now=datetime(2025, 1, 1))


# (id, time, tz)
BAD = [
    ("garbage", "tomorrow", ""),
    ("compact-day-32", "3203251200", ""),
    ("compact-month-13", "0113251200", ""),
    ("compact-hour-24", "1103252400", ""),
    ("compact-minute-60", "1103251260", ""),
    ("compact-feb-29-non-leap", "2902251200", ""),
    ("compact-nine-digits", "110325120", ""),
    ("dotted-bad-day", "31.04.25 12.00", ""),
    ("dotted-no-time", "11.03.25", ""),
    ("dotted-colon-style", "11.03.25 12-00", ""),
    ("dotted-one-digit-minute", "11.03.25 12.5", ""),
    ("window-h1-24", "24-6", ""),
    ("window-h2-25", "9-25", ""),
    ("window-three-numbers", "9-12-15", ""),
    ("relative-negative", "-30", ""),
    ("relative-garbage", "+x", ""),
    ("relative-huge", "+99999999", ""),
    ("unix-year-10000", "0999999999999", ""),
    ("tz-garbage", "", "msk"),
    ("tz-fraction", "", "2.5"),
    ("tz-too-far-east", "", "12"),
    ("tz-too-far-west", "", "-16"),
    ("tz-with-comma", "", "1,2"),
    ("fullwidth-digits", "１１０３２５１２００", ""),
]


class TestBadTimes:
    @pytest.mark.parametrize(("time", "tz"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
    def test_bad(self, time: str, tz: str) -> None:
        """A time or tz that cannot be read is ERROR = 5."""
        with pytest.raises(RequestError) as info:
            resolve_due(time, tz, account_tz=0, now=NOW)
        assert info.value.code == 5


class TestProperties:
    @given(st.text(max_size=30), st.text(max_size=5), st.integers(-15, 11))
    def test_any_input(self, time: str, tz: str, account_tz: int) -> None:
        """Any fields give an instant not before now, or RequestError(5)."""
        try:
            due = resolve_due(time, tz, account_tz=account_tz, now=NOW)
        except RequestError as exc:
            code = exc.code
        else:
            code = 0
            assert due >= NOW
            assert due.utcoffset() == timedelta(0)
        assert code in (0, 5)

    @given(
        st.integers(0, 23),
        st.integers(0, 24),
        st.integers(-15, 11),
        st.datetimes(datetime(2000, 1, 1), datetime(2090, 1, 1), timezones=st.just(UTC)),
    )
    def test_window(self, h1: int, h2: int, tz: int, now: datetime) -> None:
        """An hour window answers now inside it, else the next h1:00 within a day."""
        due = resolve_due(f"{h1}-{h2}", str(tz), account_tz=0, now=now)
        local_now = now.astimezone(zone_for(tz))
        hour = local_now.hour
        inside = h1 <= hour < h2 if h1 <= h2 else (hour >= h1 or hour < h2)
        if inside:
            assert due == now
        else:
            local_due = due.astimezone(zone_for(tz))
            assert (local_due.hour, local_due.minute, local_due.second) == (h1, 0, 0)
            assert now < due <= now + timedelta(days=1)

    @given(st.datetimes(datetime(2001, 1, 1), datetime(2098, 12, 31), timezones=st.just(UTC)))
    def test_compact_round_trip(self, when: datetime) -> None:
        """A future DDMMYYhhmm in Moscow time resolves to that minute."""
        when = when.replace(second=0, microsecond=0)
        text = when.astimezone(zone_for(0)).strftime("%d%m%y%H%M")
        past = datetime(2000, 1, 1, tzinfo=UTC)
        assert resolve_due(text, "", account_tz=0, now=past) == when
