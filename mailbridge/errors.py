"""The error tree of mailbridge.

    MailbridgeError
     ├── RequestError          a mail that gets an ``ERROR = N (…)`` answer (SPEC §2)
     ├── ConfigError           a bad configuration; names the key
     ├── StorageError          storage could not commit (the SMTP answer is 451)
     └── ProviderError         an upstream provider refused or failed
          ├── TemporaryProviderError   retry later (timeouts, 5xx, 429, connection errors)
          │    └── ProviderUnavailableError   the provider refuses the gateway itself
          │                                   (credentials, account, a refused SMPP bind)
          └── PermanentProviderError   give up at once (this number or this message rejected)

Anything else escaping the core parser is a bug.
"""

from __future__ import annotations

__all__ = [
    "ERRORS_WITH_ID",
    "ERROR_DESCRIPTIONS",
    "ConfigError",
    "MailbridgeError",
    "PermanentProviderError",
    "ProviderError",
    "ProviderUnavailableError",
    "RequestError",
    "StorageError",
    "TemporaryProviderError",
]

#: The SMSC error numbers and their descriptions, as the reply lines spell them.
ERROR_DESCRIPTIONS: dict[int, str] = {
    1: "Error in parameters",
    2: "Invalid login or password",
    3: "Insufficient funds",
    4: "IP address temporarily blocked",
    5: "Invalid date format",
    6: "Message denied",
    7: "Invalid phone number format",
    8: "Message cannot be delivered",
    9: "Duplicate request, wait a minute",
}

#: Errors whose answer carries ``, ID - <id>`` (SPEC §2).
ERRORS_WITH_ID: frozenset[int] = frozenset({3, 6, 7, 8})


class MailbridgeError(Exception):
    """Base of every error mailbridge raises on purpose."""


class RequestError(MailbridgeError):
    """A request refused with an SMSC error number.

    ``detail`` is for logs only (never secrets, never the body); the answer
    line uses the fixed description of ``code``.
    """

    def __init__(self, code: int, detail: str = "") -> None:
        if code not in ERROR_DESCRIPTIONS:
            raise ValueError(f"unknown SMSC error number {code}")
        self.code = code
        self.detail = detail
        super().__init__(
            f"ERROR = {code} ({ERROR_DESCRIPTIONS[code]})" + (f": {detail}" if detail else "")
        )

    @property
    def description(self) -> str:
        return ERROR_DESCRIPTIONS[self.code]

    @property
    def with_id(self) -> bool:
        """Whether the answer line carries the request ID."""
        return self.code in ERRORS_WITH_ID


class ConfigError(MailbridgeError):
    """A configuration error; the message is one line naming the key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"config error: {key}: {message}")


class StorageError(MailbridgeError):
    """Storage could not read or commit; callers answer with a temporary failure."""


class ProviderError(MailbridgeError):
    """An upstream provider did not take an SMS."""

    def __init__(self, message: str, *, provider_answer: str = "") -> None:
        self.provider_answer = provider_answer
        super().__init__(message)


class TemporaryProviderError(ProviderError):
    """Worth retrying later; ``retry_after_s`` is the provider's own hint, if any."""

    def __init__(
        self, message: str, *, provider_answer: str = "", retry_after_s: float | None = None
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, provider_answer=provider_answer)


class ProviderUnavailableError(TemporaryProviderError):
    """The provider refuses the gateway itself: credentials, account blocked or out of money,
    a refused SMPP bind, a bad URL (SPEC §4: a provider fault, not the SMS's).

    Nothing about the SMS: its breaker opens, the SMS fail over along their
    route or wait (within ``validity_s``) until the operator fixes the
    configuration. A :class:`TemporaryProviderError` so that any caller that
    knows only the two kinds retries rather than fails the SMS.
    """


class PermanentProviderError(ProviderError):
    """Retrying cannot help: the SMS fails at once."""
