"""Reply mail out: queued replies → ``[reply] smarthost`` (SPEC §2).

A background task claims due replies from storage under a lease
(``claim_replies``), sends each through the smarthost with aiosmtplib and the
null envelope sender (``MAIL FROM:<>``), and marks it sent right after its
SMTP transaction. When the smarthost is down the reply goes back to the
queue with exponential backoff (``[delivery] retry_first_s`` doubling up to
``retry_max_s``, decided by :func:`mailbridge.core.retry.decide_reply`). A
reply the smarthost refuses for good (5xx at RCPT or DATA) is marked
``dropped`` with one ``reply_dropped`` line instead (:func:`permanent_refusal`).
A crash between the smarthost's
250 and ``mark_reply_sent`` sends that one reply again once its lease runs
out (``[delivery] lease_s``, as for SMS rows). That window is one SQLite
commit wide, and the copy carries the same ``Message-ID`` (made from the
reply's row), so the receiving side can drop it.

The mail is built with :class:`email.message.EmailMessage` and
``email.policy.SMTP``, which refuses CR/LF inside a header value; every value
taken from the incoming mail is also cleaned (:func:`~mailbridge.core.intake.clean_header`)
first, so nothing from it can add a header.

Without a smarthost replies stay queued; that is logged once.

The mails of SMS from phones (:mod:`mailbridge.core.inbound`) go the same
way, claimed with ``claim_inbound_mails`` after the replies of each round:
same smarthost, null envelope sender, retries and lease; ``From:`` the phone
at the gateway's domain, ``Auto-Submitted: auto-generated``
(:func:`build_inbound`).

A storage shared by several instances (PostgreSQL) offers
``subscribe_replies``: the mailer subscribes its :meth:`Mailer.wake` on start
(and unsubscribes on stop), so a reply queued by another instance, or by the
dispatcher's follow-up, goes out at once instead of at the next idle check.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from typing import Protocol

import aiosmtplib

from mailbridge.core.intake import clean_header
from mailbridge.core.records import InboundMailJob, ReplyJob
from mailbridge.core.retry import decide_reply, reply_backoff_s
from mailbridge.delivery.clock import Clock, as_clock
from mailbridge.log import get_logger
from mailbridge.observe import NULL_OBSERVER, Observer
from mailbridge.settings import Settings
from mailbridge.storage.base import ReplyStore

__all__ = [
    "MAX_IDLE_S",
    "Mailer",
    "build_inbound",
    "build_reply",
    "permanent_refusal",
    "reply_backoff_s",
    "reply_message_id",
    "split_hostport",
]

#: Longest sleep with nothing due (replies queued by another process are seen this late).
MAX_IDLE_S = 30.0
_BATCH = 50
#: Pause after an unexpected failure of the send loop (storage down).
_ERROR_PAUSE_S = 1.0

log = get_logger("mailbridge.mailer")


def permanent_refusal(exc: BaseException) -> str | None:
    """The smarthost's answer when it refused a reply for good (every recipient, or the
    DATA, answered 5xx), else None (4xx and the rest are tried again)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        refusals = exc.recipients
        if refusals and all(r.code >= 500 for r in refusals):
            return f"{refusals[0].code} {refusals[0].message}"[:200]
        return None
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code >= 500:
        return f"{exc.code} {exc.message}"[:200]
    return None


def split_hostport(value: str, default_port: int = 25) -> tuple[str, int]:
    """``host:port``, ``[v6]:port`` or ``host`` → (host, port)."""
    text = value.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    return host, int(port) if port else default_port


def reply_message_id(job: ReplyJob, hostname: str) -> str:
    """A Message-ID fixed per reply row: a copy sent again after a crash carries the same one."""
    domain = re.sub(r"[^A-Za-z0-9.\-]", "", hostname) or "localhost"
    request = re.sub(r"[^A-Za-z0-9.\-_]", "", job.request_id)
    return f"<reply.{request}.{job.reply_id}@{domain}>"


def build_reply(job: ReplyJob, *, from_address: str, hostname: str, now: datetime) -> EmailMessage:
    """The reply mail of ``job``: plain text, the result line(s) as body."""
    return _plain_mail(job, _REPLY, from_address, reply_message_id(job, hostname), now)


def inbound_message_id(job: InboundMailJob, hostname: str) -> str:
    """A Message-ID fixed per inbound SMS row (a copy sent again carries the same one)."""
    domain = re.sub(r"[^A-Za-z0-9.\-]", "", hostname) or "localhost"
    return f"<inbound.{job.inbound_id}@{domain}>"


def build_inbound(job: InboundMailJob, *, hostname: str, now: datetime) -> EmailMessage:
    """The mail of one SMS from a phone: plain text, ``Auto-Submitted: auto-generated``."""
    return _plain_mail(job, _INBOUND, job.from_address, inbound_message_id(job, hostname), now)


class _MailRow(Protocol):
    """What a claimed mail row (a reply, an inbound SMS's mail) gives its mail."""

    @property
    def to(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def in_reply_to(self) -> str: ...
    @property
    def references(self) -> str: ...
    @property
    def body(self) -> str: ...


@dataclass(frozen=True, slots=True)
class _MailKind:
    """What tells the two kinds of mail apart besides their rows."""

    default_subject: str  # when the row's subject is empty once cleaned
    auto_submitted: str  # RFC 3834


_REPLY = _MailKind(default_subject="Re:", auto_submitted="auto-replied")
_INBOUND = _MailKind(default_subject="SMS", auto_submitted="auto-generated")


def _plain_mail(
    row: _MailRow, kind: _MailKind, from_address: str, message_id: str, now: datetime
) -> EmailMessage:
    """A plain-text UTF-8 mail the gateway writes, its headers in one fixed order."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = clean_header(from_address, limit=320)
    msg["To"] = clean_header(row.to, limit=320)
    msg["Subject"] = clean_header(row.subject) or kind.default_subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = message_id
    in_reply_to = clean_header(row.in_reply_to, limit=998)
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    references = clean_header(row.references, limit=998)
    if references:
        msg["References"] = references
    msg["Auto-Submitted"] = kind.auto_submitted
    msg.set_content(row.body.rstrip("\n") + "\n", charset="utf-8")
    return msg


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """One claimed mail of either kind, with what the send loop needs to settle it."""

    kind: str  # "reply" | "inbound"
    row_id: int
    label: str  # the request id of a reply, "inbound <id>" otherwise
    to: str
    attempts: int
    message: EmailMessage


class Mailer:
    """Sends queued reply mails and the mails of SMS from phones; see the module docstring."""

    def __init__(
        self,
        storage: ReplyStore,
        settings: Settings,
        *,
        clock: Clock | Callable[[], datetime] | None = None,
        lease_s: float | None = None,
        observer: Observer = NULL_OBSERVER,
    ) -> None:
        self._storage = storage
        self._observer = observer  # told each reply sent, retried or refused
        self._settings = settings
        self._clock = as_clock(clock).now
        self._lease_s = lease_s  # None: [delivery] lease_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned_no_smarthost = False
        self._unsubscribe: Callable[[], None] | None = None
        self.sent = 0
        self.inbound_sent = 0

    async def start(self) -> None:
        """Start the send loop (returns at once)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="mailbridge-mailer")
            # a storage shared by several instances (PostgreSQL) wakes us on their replies
            if self._unsubscribe is None:
                self._unsubscribe = self._storage.subscribe_replies(self.wake)

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the reply being sent (within ``timeout_s``), then stop."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def wake(self) -> None:
        """A reply was queued: look now."""
        self._wake.set()

    def reload(self, settings: Settings) -> None:
        self._settings = settings
        self._warned_no_smarthost = False
        self.wake()

    _stopping = False

    async def _run(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except Exception:  # storage trouble: log, pause, try again
                log.exception("mailer_failed")
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), _ERROR_PAUSE_S)
                continue
            if self._stopping:
                return
            if worked:
                continue
            await self._sleep()

    async def _sleep(self) -> None:
        # Clear before looking at the queue: a wake() from now on is never lost.
        self._wake.clear()
        timeout = MAX_IDLE_S
        if self._settings.reply.smarthost:
            with contextlib.suppress(Exception):
                dues = [
                    await self._storage.next_reply_due(),
                    await self._storage.next_inbound_due(),
                ]
                for due in dues:
                    if due is not None:
                        timeout = min(timeout, max((due - self._clock()).total_seconds(), 0.0))
        if timeout <= 0 or self._stopping:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def run_once(self) -> int:
        """Claim due replies and inbound mails and try each once; returns how many were claimed."""
        settings = self._settings
        reply = settings.reply
        if not reply.smarthost:
            if not self._warned_no_smarthost:
                self._warned_no_smarthost = True
                log.warning("reply_not_sent", reason="no [reply] smarthost; replies stay queued")
            return 0
        lease_s = self._lease_s if self._lease_s is not None else settings.delivery.lease_s
        now = self._clock()
        replies = await self._storage.claim_replies(now, limit=_BATCH, lease_s=lease_s)
        inbound: list[InboundMailJob] = []
        if len(replies) < _BATCH:
            inbound = await self._storage.claim_inbound_mails(
                now, limit=_BATCH - len(replies), lease_s=lease_s
            )
        jobs = [self._reply_outgoing(job, now) for job in replies]
        jobs.extend(self._inbound_outgoing(job, now) for job in inbound)
        if not jobs:
            return 0
        host, port = split_hostport(reply.smarthost)
        client = aiosmtplib.SMTP(
            hostname=host,
            port=port,
            timeout=reply.timeout_s,
            start_tls=bool(reply.starttls),
            username=reply.username,
            password=reply.password,
            local_hostname=settings.smtp.hostname,
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            for job in jobs:
                await self._retry(job, exc)
            return len(jobs)
        try:
            for i, job in enumerate(jobs):
                if self._stopping and i:
                    # claimed but not tried: back to the queue at once
                    await self._mark_retry(job, due=self._clock(), error="shutdown")
                    continue
                await self._send_one(client, job)
        finally:
            with contextlib.suppress(Exception):
                await client.quit()
        return len(jobs)

    def _reply_outgoing(self, job: ReplyJob, now: datetime) -> _Outgoing:
        settings = self._settings
        msg = build_reply(
            job, from_address=settings.reply.from_address, hostname=settings.smtp.hostname, now=now
        )
        return _Outgoing("reply", job.reply_id, job.request_id, job.to, job.attempts, msg)

    def _inbound_outgoing(self, job: InboundMailJob, now: datetime) -> _Outgoing:
        msg = build_inbound(job, hostname=self._settings.smtp.hostname, now=now)
        label = f"inbound {job.inbound_id}"
        return _Outgoing("inbound", job.inbound_id, label, job.to, job.attempts, msg)

    async def _send_one(self, client: aiosmtplib.SMTP, job: _Outgoing) -> None:
        try:
            if not client.is_connected:
                await client.connect()
            await client.send_message(job.message, sender="", recipients=[job.to])
        except (aiosmtplib.SMTPRecipientsRefused, aiosmtplib.SMTPDataError) as exc:
            answer = permanent_refusal(exc)
            if answer is not None and job.kind == "reply":
                # refused for good (5xx at RCPT or DATA): retrying would loop forever
                await self._storage.mark_reply_dropped(job.row_id, error=answer, now=self._clock())
                log.warning("reply_dropped", id=job.label, to=job.to, answer=answer)
                return
            await self._retry(job, exc, permanent=isinstance(exc, aiosmtplib.SMTPRecipientsRefused))
            return
        except (aiosmtplib.SMTPException, OSError) as exc:
            await self._retry(job, exc)
            with contextlib.suppress(Exception):
                client.close()
            return
        now = self._clock()
        if job.kind == "reply":
            await self._storage.mark_reply_sent(job.row_id, now)
            self._observer.reply("sent")
            self.sent += 1
            log.info("reply_sent", id=job.label, attempts=job.attempts + 1)
        else:
            await self._storage.mark_inbound_sent(job.row_id, now)
            self.inbound_sent += 1
            log.info("inbound_mail_sent", inbound_id=job.row_id, attempts=job.attempts + 1)

    async def _mark_retry(self, job: _Outgoing, *, due: datetime, error: str) -> None:
        now = self._clock()
        if job.kind == "reply":
            await self._storage.mark_reply_retry(job.row_id, due=due, error=error, now=now)
            return
        await self._storage.mark_inbound_retry(job.row_id, due=due, error=error, now=now)

    async def _retry(self, job: _Outgoing, exc: BaseException, *, permanent: bool = False) -> None:
        now = self._clock()
        due = decide_reply(
            attempt=job.attempts + 1, now=now, permanent=permanent, settings=self._settings.delivery
        )
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
        await self._mark_retry(job, due=due, error=error)
        if job.kind == "reply":
            self._observer.reply("failed" if permanent else "retry")
        log.warning(
            "reply_retry" if job.kind == "reply" else "inbound_mail_retry",
            id=job.label,
            attempts=job.attempts + 1,
            error=type(exc).__name__,
        )
