"""Each command field read once into a typed value; errors wait for the builder."""

from __future__ import annotations

import pytest

from mailbridge.core.fields import Checked, read_command
from mailbridge.core.limits import canonical_time
from mailbridge.core.timespec import TimeSpec
from mailbridge.errors import RequestError
from mailbridge.models import Format


def test_typed_values() -> None:
    """Id, time, translit, format, test flag and prefix come out typed."""
    f = read_command("alex:pw:abc-7:+5,2:1,9,Alex,1:+79991234567:__CALL__: hi")
    assert f.client_id.get() == "abc-7"
    assert f.when == TimeSpec("+5", "2")
    assert (f.translit.get(), f.format.get(), f.test.get(), f.test_flag) == (1, Format.VOICE, 1, 1)
    assert (f.prefix.get(), f.texts) == ("CALL", ("hi",))


@pytest.mark.parametrize(
    ("text", "field", "detail"),
    [
        ("a:b:0:::1:x", "client_id", "numeric id out of range"),
        ("a:b:a b:::1:x", "client_id", "invalid id"),
        ("a:b:::3:1:x", "translit", "invalid translit"),
        ("a:b:::,13:1:x", "format", "invalid format"),
        ("a:b:::,,,3:1:x", "test", "invalid test"),
        ("a:b:::::1:__CALL__:x\n2:__MAIL__:y", "prefix", "different prefixes in one request"),
    ],
)
def test_errors_wait_in_checked(text: str, field: str, detail: str) -> None:
    """An unreadable field does not fail the read; its get() raises RequestError(1)."""
    checked = getattr(read_command(text), field)
    assert checked.valid is None
    with pytest.raises(RequestError) as info:
        checked.get()
    assert (info.value.code, info.value.detail) == (1, detail)


def test_get_raises_a_fresh_error_each_time() -> None:
    """The stored error is not re-raised as the same object (no traceback build-up)."""
    checked: Checked[int] = Checked(0, RequestError(1, "x"))
    errors = []
    for _ in range(2):
        with pytest.raises(RequestError) as info:
            checked.get()
        errors.append(info.value)
    assert errors[0] is not errors[1]
    assert errors[0] is not checked.error


@pytest.mark.parametrize(
    ("raw", "flag", "test"), [("", 0, 0), ("1", 1, 1), ("2", 2, 2), ("01", 0, 1)]
)
def test_test_flag_of_a_refused_mail(raw: str, flag: int, test: int) -> None:
    """A refused mail's flag counts only 0/1/2 as written; the builder also reads 01."""
    f = read_command(f"a:b:::,,,{raw}:1:x")
    assert (f.test_flag, f.test.get()) == (flag, test)


@pytest.mark.parametrize("spec", ["", "0", " 0 ,3", "+5", "+5,", "0105241200,3", " 9-18 , -1 "])
def test_time_spec_key_is_the_duplicate_key(spec: str) -> None:
    """The parsed time's key equals the duplicate key of the same spec written as text."""
    f = read_command(f"a:b::{spec}::1:x")
    assert f.when.key == canonical_time(spec)
