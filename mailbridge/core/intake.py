"""What one mail means, before storage: templates, reply drafts, the intake (SPEC §2–3).

Pure functions over values: :mod:`mailbridge.core.pipeline` calls them with
the envelope, the parsed mail and the settings, and the SMTP handler hands
the resulting :class:`~mailbridge.core.records.Intake` to ``IntakeStore.accept``.
No I/O, no clock (``received_at`` is passed in), no password checks (the
caller passes the account it verified).

Decisions where the SPEC is silent:

* Templates fill ``{subject}``, ``{body}`` and ``{from}`` in one pass; other
  braces are kept as written, and a value that itself holds ``{body}`` is not
  expanded again. ``{from}`` is the address of the ``From:`` header, else the
  envelope sender.
* A reply draft is also withheld for senders whose local part is
  ``mailer-daemon`` (RFC 3834 §2).
* ``on_error = "reject"``: the SMTP reply is the only answer; no reply mail
  at all, not even the OK line of ``test=1`` (it is in the 250 reply).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from ipaddress import IPv4Address, IPv6Address, ip_address

from mailbridge.core.encoding import truncate_to_parts
from mailbridge.core.fields import Fields
from mailbridge.core.limits import request_fingerprint
from mailbridge.core.mail.headers import decode_subject, header_text
from mailbridge.core.records import Intake, ReplyDraft
from mailbridge.errors import ERRORS_WITH_ID, RequestError
from mailbridge.models import MailContent, OnError, RouteKind, SmsRequest
from mailbridge.settings import Account, Network, Settings

__all__ = [
    "MailEnvelope",
    "RequestBuilder",
    "clean_header",
    "command_intake",
    "error_intake",
    "fallback_content",
    "fill_template",
    "ip_in",
    "normalize_ip",
    "reply_draft",
    "request_intake",
    "template_text",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MailEnvelope:
    """The SMTP transaction of one mail, as the handler saw it."""

    received_at: datetime
    client_ip: str
    mail_from: str  # "" for the null sender <>
    rcpt_to: tuple[str, ...]
    raw: bytes


#: ``request.build_request`` bound to now, region and formats.
RequestBuilder = Callable[[Fields, Account], SmsRequest]


_PLACEHOLDER_RE = re.compile(r"\{(subject|body|from)\}")
_BRACKETS = {"(": ")", "[": "]", "{": "}", "<": ">", "«": "»", '"': '"', "'": "'"}
_OPENING = "".join(_BRACKETS)
_CLOSING = "".join(_BRACKETS.values())


def fill_template(template: str, *, subject: str, body: str, sender: str) -> str:
    """``template`` with ``{subject}``, ``{body}`` (trailing whitespace stripped), ``{from}``.

    An empty field takes its separator with it, so no dangling ``": "`` is left: the
    template text between it and the filled field before it goes, or, when no field before
    it is filled, the text between it and the next field (``"{subject}: {body}"`` with no
    subject is the body alone; with no body, the subject alone). Brackets or quotes right
    around an empty field go as well (``"{subject} ({from})"`` with no sender: the subject).
    """
    values = {"subject": subject.strip(), "body": body.rstrip(), "from": sender.strip()}
    pieces = _PLACEHOLDER_RE.split(template)
    texts, names = pieces[0::2], pieces[1::2]  # texts[i] precedes names[i]; one text more
    filled = [values[name] for name in names]
    for i, value in enumerate(filled):
        if value:
            continue
        before, after = texts[i], texts[i + 1]
        if before and after and _BRACKETS.get(before[-1]) == after[0]:
            texts[i], texts[i + 1] = before[:-1], after[1:]  # "({from})": the brackets go too
        if any(filled[:i]):
            # the separator after the last filled field, but not the brackets closing it
            closing = texts[i][: len(texts[i]) - len(texts[i].lstrip(_CLOSING))]
            texts[i] = closing
        elif i + 1 < len(names):
            # the separator before the next field, but not the brackets opening it
            nxt = texts[i + 1]
            texts[i + 1] = nxt[len(nxt.rstrip(_OPENING)) :]
    out = [texts[0]]
    for value, text in zip(filled, texts[1:], strict=True):
        out += [value, text]
    return "".join(out)


def template_text(template: str, max_parts: int, *, content: MailContent, mail_from: str) -> str:
    """The SMS text of a forward or number-address mail, cut to ``max_parts`` parts with ``...``."""
    text = fill_template(
        template,
        subject=content.subject,
        body=content.text,
        sender=content.from_address or mail_from,
    ).strip()
    if not text:
        return text
    return truncate_to_parts(text, max_parts)


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_SPACES_RE = re.compile(r"\s+")
_MSGID_RE = re.compile(r"<[!-;=?-~]{1,900}>")
_REPLY_PREFIX_RE = re.compile(r"re\s*:", re.IGNORECASE)


def clean_header(value: str, *, limit: int = 200) -> str:
    """``value`` made safe for one header line: no control characters, no CR/LF, cut."""
    text = _SPACES_RE.sub(" ", _CONTROL_RE.sub(" ", value)).strip()
    return text[:limit].rstrip()


def _clean_msgid(value: str) -> str:
    m = _MSGID_RE.search(value)
    return m.group(0) if m else ""


def reply_draft(mail_from: str, content: MailContent) -> ReplyDraft | None:
    """Where the reply to this mail goes, or None when none may go (SPEC §2)."""
    sender = clean_header(mail_from, limit=320)
    if not sender or "@" not in sender or " " in sender:
        return None
    if sender.rpartition("@")[0].lower() == "mailer-daemon":
        return None
    auto = content.auto_submitted.split(";", 1)[0].strip().lower()
    if auto and auto != "no":
        return None
    if content.precedence.strip().lower() in {"bulk", "junk", "list"}:
        return None
    if content.list_id.strip():
        return None
    subject = clean_header(content.subject)
    if not _REPLY_PREFIX_RE.match(subject):
        subject = f"Re: {subject}".rstrip()
    msgid = _clean_msgid(content.message_id)
    return ReplyDraft(to=sender, subject=subject, in_reply_to=msgid, references=msgid)


def _header_text(value: object) -> str:
    """A header of a mail the core could not read, decoded as ``read_mail`` does its own."""
    if value is None:
        return ""
    raw = str(value).encode("utf-8", "surrogateescape")  # the parser's 8-bit bytes back
    return decode_subject(header_text(raw, _FALLBACK_CODEC), _FALLBACK_CODEC)


_FALLBACK_CODEC = "koi8_r"  # SMSC's default charset, as `[smtp] default_charset`


def fallback_content(raw: bytes) -> MailContent:
    """The headers of a mail the core could not read, for the reply draft only."""
    try:
        msg = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
    except Exception:  # the stdlib parser is lenient; anything it raises means "no headers"
        return MailContent(subject="", text="", command="", charset="")
    return MailContent(
        subject=_header_text(msg.get("Subject")),
        text="",
        command="",
        charset="",
        message_id=_header_text(msg.get("Message-ID")),
        auto_submitted=_header_text(msg.get("Auto-Submitted")),
        precedence=_header_text(msg.get("Precedence")),
        list_id=_header_text(msg.get("List-Id")),
    )


def normalize_ip(peer: object) -> str:
    """The client IP of an asyncio peer name; IPv4-mapped IPv6 written as IPv4."""
    host = peer[0] if isinstance(peer, tuple) and peer else peer
    return _normalize_host(str(host or ""))


@functools.lru_cache(maxsize=4096)
def _normalize_host(text: str) -> str:
    """``normalize_ip`` of a host string; cached, as every SMTP command of a session asks."""
    try:
        ip = ip_address(text.split("%", 1)[0])
    except ValueError:
        return text
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def ip_in(ip: str, networks: Iterable[Network]) -> bool:
    """Whether ``ip`` lies in one of ``networks``."""
    addr = _address(ip)
    if addr is None:
        return False
    return any(addr.version == net.version and addr in net for net in networks)


@functools.lru_cache(maxsize=4096)
def _address(ip: str) -> IPv4Address | IPv6Address | None:
    """``ip`` parsed (None: not an address); cached, as every connection asks."""
    try:
        return ip_address(ip)
    except ValueError:
        return None


def _draft(env: MailEnvelope, content: MailContent | None, settings: Settings) -> ReplyDraft | None:
    if settings.smtp.on_error == OnError.REJECT or content is None:
        return None
    return reply_draft(env.mail_from, content)


def error_intake(
    env: MailEnvelope,
    *,
    mode: RouteKind,
    code: int,
    detail: str,
    settings: Settings,
    content: MailContent | None = None,
    account: str | None = None,
    client_id: str | None = None,
    test: int = 0,
    balance: int | None = None,
) -> Intake:
    """An intake refused before storage with SMSC error ``code``."""
    reply = _draft(env, content, settings) if mode == RouteKind.COMMAND else None
    return Intake(
        received_at=env.received_at,
        client_ip=env.client_ip,
        mail_from=env.mail_from,
        rcpt_to=env.rcpt_to,
        raw=env.raw,
        mode=mode,
        account=account,
        client_id=client_id if code in ERRORS_WITH_ID else None,
        request=None,
        error=code,
        test=test,
        balance=balance,
        reply=reply,
        error_detail=detail,
    )


def request_intake(
    env: MailEnvelope,
    *,
    mode: RouteKind,
    request: SmsRequest,
    account: Account,
    settings: Settings,
    fingerprint: str | None = None,
    content: MailContent | None = None,
) -> Intake:
    """An intake carrying a built request; storage still checks 9, 8 and 3.

    ``fingerprint`` defaults to the duplicate key of an immediate request.
    """
    if fingerprint is None:
        fingerprint = request_fingerprint(request, time_spec="")
    reply = _draft(env, content, settings) if mode == RouteKind.COMMAND else None
    return Intake(
        received_at=env.received_at,
        client_ip=env.client_ip,
        mail_from=env.mail_from,
        rcpt_to=env.rcpt_to,
        raw=env.raw,
        mode=mode,
        account=account.login,
        client_id=request.client_id,
        request=request if request.mode == mode else replace(request, mode=mode),
        error=None,
        test=request.test,
        balance=account.balance,
        fingerprint=fingerprint,
        reply=reply,
    )


def command_intake(
    env: MailEnvelope,
    *,
    settings: Settings,
    content: MailContent,
    fields: Fields,
    account: Account | None,
    login_known: bool,
    build: RequestBuilder,
) -> Intake:
    """The intake of a command mail whose credentials were checked (``account`` None: refused).

    ``build`` is ``request.build_request`` bound to ``now``, region and formats.
    """
    client_id = fields.client_id.valid
    test = fields.test_flag
    if account is None:
        return error_intake(
            env,
            mode=RouteKind.COMMAND,
            code=2,
            detail="login, password or client IP refused",
            settings=settings,
            content=content,
            account=fields.command.login.strip() if login_known else None,
            test=test,
        )
    if account.allowed_ips and not ip_in(env.client_ip, account.allowed_ips):
        return error_intake(
            env,
            mode=RouteKind.COMMAND,
            code=2,
            detail="client IP not allowed for the account",
            settings=settings,
            content=content,
            account=account.login,
            test=test,
        )
    try:
        request = build(fields, account)
    except RequestError as exc:
        return error_intake(
            env,
            mode=RouteKind.COMMAND,
            code=exc.code,
            detail=exc.detail,
            settings=settings,
            content=content,
            account=account.login,
            client_id=client_id,
            test=test,
            balance=account.balance,
        )
    return request_intake(
        env,
        mode=RouteKind.COMMAND,
        request=request,
        account=account,
        settings=settings,
        fingerprint=request_fingerprint(request, when=fields.when),
        content=content,
    )
