"""The fast MAIL/RCPT address path agrees with aiosmtpd's own parser."""

from __future__ import annotations

import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import given
from hypothesis import strategies as st

from mailbridge.smtp.session import simple_address


class _NoHandler:
    pass


_SMTP = SMTP(_NoHandler(), hostname="test.invalid")

CASES = [
    "<a@b.c>",
    "<a@b.c> SIZE=100",
    "<>",
    "<> SIZE=1",
    " <a.b+c@d-e.f> BODY=8BITMIME",
    '<"q u"@b.c>',
    "<@r:a@b.c>",
    "<a@b.c>x",
    "<a..b@c>",
    "<a@[1.2.3.4]>",
    "a@b.c",
    "<A@B.C>",
    "<.a@b>",
    "<a@b.>",
    "<a@b>  ",
    "<" + "a" * 70 + "@b.c>",
    "<a@b.c>\tX=1",
    "<a@b.c",
    "<a b@c>",
]


@pytest.mark.parametrize("arg", CASES)
def test_fast_path_matches_aiosmtpd(arg: str) -> None:
    """Where the fast path answers, it answers exactly what aiosmtpd would."""
    fast = simple_address(arg, _SMTP.local_part_limit)
    if fast is not None:
        assert fast == _SMTP._getaddr(arg)


def test_fast_path_takes_the_common_form() -> None:
    """The plain form is handled without the slow parser."""
    assert simple_address("<zabbix@example.com> SIZE=512", 0) == ("zabbix@example.com", "SIZE=512")
    assert simple_address("<>", 0) == ("<>", "")


def test_local_part_limit_refuses() -> None:
    """A local part over the limit is refused as aiosmtpd refuses it."""
    assert simple_address("<" + "a" * 65 + "@b.c>", 64) == (None, None)


_ADDRESS_CHARS = st.text(alphabet=st.sampled_from(list('ab.-+@<> \t"()[]:,;\\=Z9_')), max_size=30)


@given(_ADDRESS_CHARS)
def test_fast_path_never_disagrees(arg: str) -> None:
    """For any argument, the fast path either defers or agrees with aiosmtpd."""
    fast = simple_address(arg, 64)
    if fast is not None:
        _SMTP.local_part_limit = 64
        assert fast == _SMTP._getaddr(arg)
