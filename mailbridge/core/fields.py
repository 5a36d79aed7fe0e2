"""The fields of a command read once into typed values (SPEC §1).

The grammar splits a command into strings (:class:`~mailbridge.models.Command`);
:func:`read_fields` reads each field once: the client id, ``<time>,<tz>``,
translit, format, test flag and each message's prefix. From here on the
intake and the request builder use these values and never look at the
strings again.

A field that cannot be read does not fail at once: its error waits in a
:class:`Checked` and is raised by :meth:`Checked.get` when the builder
reaches that field, so the order of the checks (``docs/architecture.md``)
and the answers stay as they are — a wrong password is ERROR 2 even when the
id is invalid too. Until then the intake uses :attr:`Checked.valid`: the id
of a refused mail is the one that could be read, else none. Its test flag is
:attr:`Fields.test_flag` (``01`` counts as 0 there, as it always has, while
the builder reads it as 1).
"""

from __future__ import annotations

import re
from typing import Generic, NamedTuple, TypeVar

from mailbridge.core.grammar import parse_command, split_prefix
from mailbridge.core.timespec import TimeSpec
from mailbridge.errors import RequestError
from mailbridge.models import Command, Format

__all__ = ["MAX_ID", "Checked", "Fields", "read_command", "read_fields"]

#: Largest numeric client id.
MAX_ID = 2_147_483_647

_NUMERIC_ID_RE = re.compile(r"\d+", re.ASCII)
_STRING_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,40}", re.ASCII)
_SMALL_INT_RE = re.compile(r"\d{1,2}", re.ASCII)
_MAX_FORMAT = int(max(Format))
_FLAGS = {"0": 0, "1": 1, "2": 2}

T = TypeVar("T")


class Checked(NamedTuple, Generic[T]):
    """A field's value, or the error reading it gave (then ``value`` is the field's default).

    (Named tuples, here and for :class:`Fields`: immutable and quick to build,
    as every mail builds a handful.)
    """

    value: T
    error: RequestError | None = None

    def get(self) -> T:
        """The value; raises the field's ``RequestError`` when it could not be read."""
        if self.error is not None:
            raise RequestError(self.error.code, self.error.detail)
        return self.value

    @property
    def valid(self) -> T | None:
        """The value when it could be read, else None."""
        return self.value if self.error is None else None


class Fields(NamedTuple):
    """A command with every field read: what the intake and the request builder use."""

    command: Command  # login, password, sender, entries and parameters as split
    client_id: Checked[str | None]
    when: TimeSpec
    translit: Checked[int]
    test: Checked[int]
    test_flag: int  # the flag of a refused mail: 1 or 2 only when written exactly so, else 0
    format: Checked[Format]
    prefix: Checked[str | None]  # the request's prefix, upper case (CALL, MAIL, …)
    texts: tuple[str, ...]  # each entry's text without its prefix


def read_command(text: str) -> Fields:
    """Parse the command text of a mail and read its fields (``RequestError(1)`` on syntax)."""
    return read_fields(parse_command(text))


def read_fields(command: Command) -> Fields:
    """Read the fields of a command the grammar split."""
    names: set[str] = set()
    texts: list[str] = []
    for entry in command.entries:
        name, text = split_prefix(entry.text)
        if name is not None:
            names.add(name)
        texts.append(text)
    prefix: Checked[str | None]
    if len(names) > 1:
        prefix = Checked(None, RequestError(1, "different prefixes in one request"))
    else:
        prefix = Checked(names.pop()) if names else _NO_PREFIX
    fmt = _small_int(command.format, "format", _MAX_FORMAT)
    return Fields(
        command=command,
        client_id=_client_id(command.id),
        when=TimeSpec(command.time.strip(), command.tz.strip()),
        translit=_small_int(command.translit, "translit", 2),
        test=_small_int(command.test, "test", 2),
        test_flag=_FLAGS.get(command.test.strip(), 0),
        format=_FORMATS[fmt.value] if fmt.error is None else Checked(Format.SMS, fmt.error),
        prefix=prefix,
        texts=tuple(texts),
    )


_NO_ID: Checked[str | None] = Checked(None)
_NO_PREFIX: Checked[str | None] = Checked(None)
_SMALL: tuple[Checked[int], ...] = tuple(Checked(i) for i in range(100))
_FORMATS: dict[int, Checked[Format]] = {int(f): Checked(f) for f in Format}


def _client_id(raw: str) -> Checked[str | None]:
    """SPEC §1: 1..2147483647 or ≤40 of ``A-Za-z0-9.-_``; empty: none given."""
    if not raw:
        return _NO_ID
    if _NUMERIC_ID_RE.fullmatch(raw):
        if len(raw) > len(str(MAX_ID)) or not 1 <= int(raw) <= MAX_ID:
            return Checked(None, RequestError(1, "numeric id out of range"))
        return Checked(raw)
    if _STRING_ID_RE.fullmatch(raw) is None:
        return Checked(None, RequestError(1, "invalid id"))
    return Checked(raw)


def _small_int(raw: str, name: str, maximum: int) -> Checked[int]:
    if not raw:
        return _SMALL[0]
    if _SMALL_INT_RE.fullmatch(raw) is None or int(raw) > maximum:
        return Checked(0, RequestError(1, f"invalid {name}"))
    return _SMALL[int(raw)]
