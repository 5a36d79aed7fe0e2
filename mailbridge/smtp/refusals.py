"""One log line for every refusal the gateway answers, rate-limited per client IP.

Every ``4xx``/``5xx`` a session sends (at connect, ``MAIL``, ``RCPT``, ``DATA`` or any other
command: the handler's answers and aiosmtpd's own, such as ``552`` for a mail too large) is
logged as event ``refused`` with the stage (the command, or ``connect``), the client IP, the
envelope sender, the recipient(s), the code and the reason, so an operator sees why a mail
bounces. Each IP may write :data:`PER_WINDOW` such lines per :data:`WINDOW_S` seconds
(:class:`~mailbridge.core.throttle.LineThrottle`); the first line after a quiet spell
carries ``suppressed=N`` for the lines left out. Nothing of the mail's text, and no
credential, is logged (an ``AUTH`` argument never is).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from mailbridge.core.throttle import LineThrottle
from mailbridge.log import get_logger

__all__ = ["PER_WINDOW", "WINDOW_S", "RefusalLog"]

#: Refusal lines one client IP may write per window.
PER_WINDOW = 20
#: The window, in seconds.
WINDOW_S = 60.0

log = get_logger("mailbridge.smtp")

_ADDRESS_STAGES = frozenset({"RCPT", "VRFY", "EXPN"})


class RefusalLog:
    """The ``refused`` lines of every session of one server (one throttle for all)."""

    def __init__(
        self,
        *,
        per_window: int = PER_WINDOW,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._throttle = LineThrottle(per_window=per_window, window_s=window_s)
        self._clock = clock

    def refused(
        self,
        answer: str,
        *,
        stage: str,
        client_ip: str,
        sender: str | None = None,
        recipients: Sequence[str] = (),
    ) -> None:
        """Log the refusal ``answer`` (a whole reply line) unless ``client_ip`` is over budget."""
        verdict = self._throttle.check(client_ip, self._clock())
        if not verdict.log:
            return
        code, _, reason = answer.partition(" ")
        fields: dict[str, object] = {
            "stage": stage,
            "client_ip": client_ip,
            "code": code[:3],
            "reason": reason.strip()[:200],
        }
        if sender is not None:
            fields["sender"] = sender or "<>"
        if recipients:
            fields["recipient"] = ",".join(recipients)[:500]
        if verdict.suppressed:
            fields["suppressed"] = verdict.suppressed
        log.warning("refused", **fields)

    @staticmethod
    def address_of(arg: str | None) -> str:
        """The address of a ``FROM:<a@b> …`` / ``TO:<a@b>`` argument ("" when none)."""
        if not arg:
            return ""
        address = arg.split(":", 1)[-1].strip()
        return address.split(">", 1)[0].lstrip("<").strip()[:254]

    @staticmethod
    def recipients_of(stage: str, arg: str | None, rcpt_tos: Sequence[str]) -> list[str]:
        """The recipient(s) a refusal at ``stage`` is about: the RCPT's address, else the
        transaction's accepted recipients."""
        if stage in _ADDRESS_STAGES:
            address = RefusalLog.address_of(arg)
            return [address] if address else []
        return list(rcpt_tos)
