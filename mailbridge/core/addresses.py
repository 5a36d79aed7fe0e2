"""Whether an address of MAIL FROM or RCPT TO can be taken at all (SPEC §2, RFC 6531).

aiosmtpd decodes command lines as UTF-8 with ``surrogateescape``: bytes that
are not UTF-8 reach the handler as lone surrogates, which nothing can store
(the commit failed with ``UnicodeEncodeError``, a ``451`` on every retry).
An address is refused at its own command, with a 5xx that tells a relay not
to try again:

* bytes that are not UTF-8: ``553 5.1.7`` (sender) / ``553 5.1.3`` (recipient);
* 8-bit (UTF-8) without ``MAIL … SMTPUTF8``: ``553 5.6.7`` (RFC 6531 §3.5).
"""

from __future__ import annotations

import re

__all__ = ["recipient_problem", "sender_problem"]

_SURROGATE = re.compile("[\ud800-\udfff]")

BAD_SENDER_BYTES = "553 5.1.7 Sender address is not valid UTF-8"
BAD_RECIPIENT_BYTES = "553 5.1.3 Recipient address is not valid UTF-8"
NO_SMTPUTF8 = "553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter"


def _problem(address: str, *, smtputf8: bool, bad_bytes: str) -> str | None:
    if address.isascii():
        return None
    if _SURROGATE.search(address):
        return bad_bytes
    if not smtputf8:
        return NO_SMTPUTF8
    return None


def sender_problem(address: str, *, smtputf8: bool) -> str | None:
    """The SMTP reply refusing MAIL FROM ``address``, or None when it can be taken."""
    return _problem(address, smtputf8=smtputf8, bad_bytes=BAD_SENDER_BYTES)


def recipient_problem(address: str, *, smtputf8: bool) -> str | None:
    """The SMTP reply refusing RCPT TO ``address``, or None when it can be taken."""
    return _problem(address, smtputf8=smtputf8, bad_bytes=BAD_RECIPIENT_BYTES)
