"""The ``<time>,<tz>`` fields → the instant an SMS is due (SPEC §1).

Moscow time is UTC+3 all year (no DST since 2014), so a request's zone is the
fixed offset UTC+3+``tz`` and the arithmetic needs no tz database.

Decisions where the seed is silent:

* ``DDMMYYhhmm`` is exactly ten digits; any other digit string starting with
  ``0`` is ``0<unix ts>``. ``YY`` is 20YY.
* ``DD.MM.YY hh.mm``: day, month and hour may have one or two digits, the year
  two or four; ``hh:mm`` cannot occur (a colon ends the field).
* ``h1-h2`` (``h1`` 0..23, ``h2`` 0..24): now if the local time is in
  ``[h1, h2)``, else the next ``h1:00``. ``h1 > h2`` is a window across
  midnight (``22-6``); ``h1 == h2`` is an empty window (the next ``h1:00``).
* ``tz`` is a whole number of hours, ``-15..+11`` (UTC-12..UTC+14).
* A time in the past is now; there is no upper bound.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple

from mailbridge.errors import RequestError

__all__ = ["MOSCOW_OFFSET_H", "TimeSpec", "resolve_due", "zone_for"]

#: Moscow's offset from UTC in hours; ``tz`` counts from here.
MOSCOW_OFFSET_H = 3

# seed: "DDMMYYhhmm or DD.MM.YY hh.mm."
_COMPACT_RE = re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)", re.ASCII)
_DOTTED_RE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4}|\d{2})[ \t]+(\d{1,2})\.(\d{2})", re.ASCII)
# seed: "h1-h2. Sets the time range in hours."
_WINDOW_RE = re.compile(r"(\d{1,2})[ \t]*-[ \t]*(\d{1,2})", re.ASCII)
# seed: "0ts, where ts is timestamp, the time in seconds since January 1, 1970."
_UNIX_RE = re.compile(r"0(\d{1,12})", re.ASCII)
# seed: "+m. Sets the relative time offset from the current time in minutes."
_RELATIVE_RE = re.compile(r"\+[ \t]*(\d{1,7})", re.ASCII)
# seed: "The tz parameter can be either positive or negative."
_TZ_RE = re.compile(r"[+-]?\d{1,2}", re.ASCII)


_NOW_MARKER = "now"


class TimeSpec(NamedTuple):
    """The ``<time>,<tz>`` fields of a command, read once (each stripped, ``""`` when absent)."""

    time: str = ""
    tz: str = ""

    @classmethod
    def read(cls, spec: str) -> TimeSpec:
        """``"<time>,<tz>"`` as written (``<tz>`` optional; the time never holds a comma)."""
        time, _, tz = spec.partition(",")
        return cls(time.strip(), tz.strip())

    @property
    def key(self) -> str:
        """The time as the duplicate key sees it (SPEC §2, ERROR = 9).

        An empty time or ``0`` means "now" whatever the tz, so two immediate
        requests match although their due instants differ; any other spec is
        kept as written, so ``+5`` matches ``+5`` and not ``+6``.
        """
        if self.time in ("", "0"):
            return _NOW_MARKER
        return f"{self.time},{self.tz}" if self.tz else self.time

    def due(self, *, account_tz: int, now: datetime) -> datetime:
        """The UTC instant this spec names for an account in ``account_tz`` (see resolve_due)."""
        return resolve_due(self.time, self.tz, account_tz=account_tz, now=now)


def zone_for(tz: int) -> timezone:
    """The fixed zone of ``tz`` hours relative to Moscow."""
    return timezone(timedelta(hours=MOSCOW_OFFSET_H + tz))


def resolve_due(time: str, tz: str, *, account_tz: int, now: datetime) -> datetime:
    """The UTC instant a request with these ``time``/``tz`` fields is due.

    ``now`` must be timezone-aware. Raises ``RequestError(5)`` for a time or
    tz that cannot be read or names no real date.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(UTC)
    zone = zone_for(_parse_tz(tz, account_tz))
    time = time.strip()
    try:
        due = _due(time, zone, now)
    except (ValueError, OverflowError, OSError) as exc:
        raise RequestError(5, "time names no real instant") from exc
    return max(due, now)


def _parse_tz(tz: str, account_tz: int) -> int:
    tz = tz.strip()
    if not tz:
        return account_tz
    if not _TZ_RE.fullmatch(tz):
        raise RequestError(5, "tz is not a whole number of hours")
    value = int(tz)
    if not -12 <= MOSCOW_OFFSET_H + value <= 14:
        raise RequestError(5, "tz out of range")
    return value


def _due(time: str, zone: timezone, now: datetime) -> datetime:
    if time in ("", "0"):
        return now
    if m := _COMPACT_RE.fullmatch(time):
        day, month, year, hour, minute = (int(g) for g in m.groups())
        return _local(2000 + year, month, day, hour, minute, zone)
    if m := _DOTTED_RE.fullmatch(time):
        day, month, year, hour, minute = (int(g) for g in m.groups())
        return _local(year if year >= 100 else 2000 + year, month, day, hour, minute, zone)
    if m := _UNIX_RE.fullmatch(time):
        return datetime.fromtimestamp(int(m[1]), UTC)
    if m := _RELATIVE_RE.fullmatch(time):
        return now + timedelta(minutes=int(m[1]))
    if m := _WINDOW_RE.fullmatch(time):
        return _window(int(m[1]), int(m[2]), zone, now)
    raise RequestError(5, "unknown time format")


def _local(year: int, month: int, day: int, hour: int, minute: int, zone: timezone) -> datetime:
    # datetime() raises ValueError for a day, month, hour or minute out of range.
    return datetime(year, month, day, hour, minute, tzinfo=zone).astimezone(UTC)


def _window(h1: int, h2: int, zone: timezone, now: datetime) -> datetime:
    if h1 > 23 or h2 > 24:
        raise RequestError(5, "hour window out of range")
    local = now.astimezone(zone)
    hour = local.hour
    inside = h1 <= hour < h2 if h1 <= h2 else (hour >= h1 or hour < h2)
    if inside:
        return now
    start = local.replace(hour=h1, minute=0, second=0, microsecond=0)
    if start < local:
        start += timedelta(days=1)
    return start.astimezone(UTC)
