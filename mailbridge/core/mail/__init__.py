"""Read the bytes of one e-mail into a :class:`~mailbridge.models.MailContent` (SPEC §1).

What is read
    The text is the first ``text/plain`` part that is not an attachment
    (``Content-Disposition: attachment``) and not blank; else the first
    ``text/html`` part rendered to text (:mod:`mailbridge.core.mail.html`); else a
    blank ``text/plain`` part; else nothing (empty text). Parts are walked
    depth first in mail order through any ``multipart/*``; a
    ``message/rfc822`` part is somebody else's mail and is not entered.
    Transfer encodings (base64, quoted-printable, uuencode, 7bit/8bit/binary)
    and RFC 2047 encoded words are decoded; line breaks become LF; a leading
    byte-order mark is dropped.

Parsing
    The standard :mod:`email` package does the MIME work:
    ``BytesParser(policy=compat32)`` builds the tree (``policy.default`` is
    about ten times slower), ``get_payload()`` walks it and
    ``get_payload(decode=True)`` undoes the transfer encoding;
    ``get_content_type()``, ``get_content_disposition()`` and
    ``get_param("charset")`` with :func:`email.utils.collapse_rfc2231_value`
    read the part headers; :func:`email.header.decode_header` decodes the
    Subject and :func:`email.utils.parseaddr` reads ``From``. What is added
    here is leniency where those are strict (a type or disposition followed by
    blanks instead of ``;``, a quoted or padded transfer encoding) and the
    guards below, where they are slow.

Charset (SPEC §1 "Charset")
    The declared ``charset=`` (RFC 2231 forms included) when the bytes decode
    strictly in it. Otherwise, and for an unknown charset name (treated as
    undeclared), the charset is detected: pure ASCII needs nothing; bytes that
    are valid UTF-8 are UTF-8; else charset-normalizer chooses among KOI8-R,
    CP1251, CP866 and ISO-8859-5. Its choice is *conclusive* when exactly one
    candidate has the lowest mess and the highest coherence. Short Russian
    texts (a command whose message is ``Да`` or ``ВНИМАНИЕ АВАРИЯ``) often
    leave several candidates tied, because every one of these code pages
    decodes any byte string; the tie is broken by how Russian the decoded
    letters look (letter frequencies, and words that are all lower case, all
    upper case or capitalised), and the tie-break is conclusive only when one
    candidate wins by a clear margin. When nothing is conclusive the
    ``default_charset`` (``koi8-r``, SMSC's default) is used; text that does
    not decode even in it is ``RequestError(1)``.

Command
    The text between the first ``[text]`` and the next ``[/text]`` (ASCII
    case-insensitive; without ``[/text]``, up to the end), else the whole
    text without its RFC 3676 signature: everything from the last line that
    is exactly ``-- `` on. A bare ``--`` line is *not* a delimiter: it is
    common in script output and command text, and SPEC names the line
    ``-- ``. The command is not stripped; the grammar strips its fields.

Headers
    ``subject`` is decoded (raw 8-bit bytes as UTF-8, else detected like an
    undeclared body; then RFC 2047 words, adjacent words of one charset
    joined before decoding so a character split between words survives; an
    unknown charset decodes in the body's charset, a broken word leaves the
    Subject as it is, never an error; of a Subject longer than 2048
    characters only those are decoded, up to the last blank in them).
    ``from_address`` is the addr-spec of ``From`` as ``parseaddr`` reads it
    from the first 1024 characters; where that fails (nested comments, an
    unclosed quote, blanks in the result) the
    ``<…>`` part, else the first word with ``@``, else the first word.
    ``message_id``, ``auto_submitted``, ``precedence`` and ``list_id`` are
    the raw values, unfolded and stripped. In every header value control
    characters (CR, LF, TAB, NUL, …) and Unicode line separators become
    spaces, so no value taken from a mail can break a header line of the reply.

Hostile mail
    Any bytes give a ``MailContent`` or a ``RequestError(1)``; time and memory
    are bounded by these caps:

    ==========================  =====================================
    ``MAX_MAIL_BYTES``          10 MiB of raw mail
    ``MAX_HEADER_BYTES``        64 KiB of header lines, all parts together
    (5000 header lines)         the same, in lines
    ``MAX_DEPTH``               10 nested ``multipart`` levels
    ``MAX_PARTS``               100 MIME entities walked
    ``MAX_TEXT_BYTES``          1 MiB of decoded text in one part
    ==========================  =====================================

    The walk stops at the first usable ``text/plain`` part, so what follows
    it (a giant attachment, a MIME bomb) does not change the answer; a cap
    exceeded before that is ``RequestError(1)``.

    The standard parser has slow paths of its own: every line costs one
    boundary test per enclosing ``multipart`` (0.1 µs; a 300-level bomb of
    16 KB takes 28 ms, 1000 levels raise RecursionError), a header line about
    1.5 µs, a part about 7 µs, a paragraph of a ``message/delivery-status``
    part as much (it becomes a message), and ``get_param`` is quadratic in a
    value full of ``;`` (38 ms for 8 KB), which the parser itself calls for
    every multipart boundary. So one scan before parsing finds every line
    that declares a ``multipart/*`` or ``message/*`` Content-Type (in a
    header, or quoted in a body: the scan cannot tell), the delimiter lines
    of their boundaries (as ``get_boundary`` reads them) and the header
    blocks after those, and the parser is given the mail only up to the
    first of:

    * the 51st declaration, one longer than 1024 bytes or with more than 16
      ``;``, or a ``message/delivery-status`` one (a part that holds no text);
    * the header block after the 201st delimiter line, or the one that takes
      the header lines of the mail over 64 KiB or 5000 lines;
    * the 200 001st line, or the line where (lines) × (multipart
      declarations) passes 50 000.

    A mail cut short is read only if its text part lies wholly before the cut
    (another part starts after it); otherwise it is ``RequestError(1)``. A
    first header block over the caps is refused before parsing, and an
    exception of the parser (RecursionError) is ``RequestError(1)``.
    ``get_param`` reads only a Content-Type of at most 1024 bytes and 16
    ``;`` (a longer one has its charset found by a bounded pattern);
    ``decode_header`` and ``parseaddr`` get bounded input, and an exception
    of theirs falls back as described under Headers. The charset parameter
    and the address of recurring header values are cached.
"""

from __future__ import annotations

from mailbridge.core.mail.charset import DETECTED_CHARSETS, charset_label
from mailbridge.core.mail.guards import (
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    MAX_MAIL_BYTES,
    MAX_PARTS,
    MAX_TEXT_BYTES,
)
from mailbridge.core.mail.reader import read_mail

__all__ = [
    "DETECTED_CHARSETS",
    "MAX_DEPTH",
    "MAX_HEADER_BYTES",
    "MAX_MAIL_BYTES",
    "MAX_PARTS",
    "MAX_TEXT_BYTES",
    "charset_label",
    "read_mail",
]
