"""The few points where the gateway reports what it did, for metrics and the status page.

The SMTP handler, the dispatcher, the reply mailer and storage each hold an
:class:`Observer` and call it at one clear place (a mail answered, a session
opened or closed, a provider attempt settled, a reply sent, a commit made).
The default, :data:`NULL_OBSERVER`, does nothing; ``mailbridge.http.metrics``
implements it with ``prometheus_client``. No I/O here and nothing to import
but the standard library, so every layer may depend on it.

Arguments are plain values: never a password, an API key or a message text.
"""

from __future__ import annotations

__all__ = ["NULL_OBSERVER", "Observer"]


class Observer:
    """Every hook does nothing; subclasses override what they count."""

    __slots__ = ()

    # --- SMTP -------------------------------------------------------------------

    def session_opened(self) -> None:
        """An SMTP session was admitted."""

    def session_closed(self) -> None:
        """An admitted SMTP session ended."""

    def smtp_refused(self, stage: str, code: int, client_ip: str = "") -> None:
        """The session refused something before a result line: ``stage`` is ``connect``,
        ``mail``, ``rcpt``, ``data`` or ``auth``; ``code`` the SMTP reply code."""

    def mail(
        self,
        mode: str,
        error: int | None,
        *,
        request_id: str = "",
        account: str | None = None,
        client_ip: str = "",
    ) -> None:
        """A mail got its result line: ``error`` is the SMSC number, None for OK.

        ``mode``: ``command``, ``forward`` or ``number``.
        """

    def mail_tempfail(self) -> None:
        """A mail got ``451`` (storage could not commit, or an unexpected error)."""

    # --- delivery ---------------------------------------------------------------

    def attempt(self, provider: str | None, outcome: str, seconds: float, count: int = 1) -> None:
        """``count`` SMS rows settled after one provider call (or without one).

        ``outcome``: ``sent``, ``temporary``, ``permanent``, ``deferred`` (every
        provider of the route paused), ``failed``/``expired`` (no attempt made).
        ``seconds``: the provider call's duration (0 without a call).
        """

    def transition(self, provider: str | None, old: str, new: str, count: int = 1) -> None:
        """``count`` SMS rows moved from state ``old`` to ``new`` through ``provider``."""

    def accepted(self, provider: str, seconds: float) -> None:
        """A provider accepted an SMS ``seconds`` after it became due (its 250 when sent now)."""

    def rate_wait(self, provider: str, seconds: float) -> None:
        """The dispatcher waited ``seconds`` for ``provider``'s rate limit."""

    def reply(self, outcome: str) -> None:
        """A reply mail was handed to the smarthost (``sent``) or not (``retry``/``failed``)."""

    # --- storage ----------------------------------------------------------------

    def commit(self, seconds: float) -> None:
        """Storage committed one transaction in ``seconds`` (may be called from a thread)."""


#: The observer of a gateway without metrics.
NULL_OBSERVER = Observer()
