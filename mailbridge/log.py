"""Logging: structlog set up for the gateway, with secrets kept out.

``configure_logging`` writes one JSON object per line when the stream is not
a terminal and a readable console format when it is (``[logging] format``
``auto``; ``json`` and ``console`` force one), with ISO-8601 UTC timestamps
and the ``[logging] level`` filter. Records of the standard ``logging``
module (asyncio, aiosmtpd, httpx) go through the same processors and out the
same stream.

``redact_secrets`` is the first processor: the value of any key that names a
secret or a message text (``password``, ``psw``, ``apikey``, ``token``,
``body``, ``text``, ``mes``, ``raw`` …, also inside nested dicts and lists)
becomes ``"[redacted]"``, and ``password=…``/``psw=…``-style pairs inside
strings (an upstream URL with its query) are cut to ``password=[redacted]``.
Values bound with ``structlog.contextvars.bind_contextvars`` are redacted
the same way as they are merged into the line.

Two libraries log secrets of their own at low levels: aiosmtpd logs every
SMTP command line (``AUTH`` continuation lines included) and httpx logs each
request URL (the miatel and jsonapi passwords travel in the query). Their
loggers are held at ``warning`` whatever the configured level.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Mapping
from typing import Any, Final, TextIO, cast

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor, WrappedLogger

from mailbridge.settings import LoggingSettings

__all__ = [
    "REDACTED",
    "SECRET_KEYS",
    "configure_logging",
    "get_logger",
    "redact_secrets",
]

#: What a secret value is replaced with.
REDACTED: Final = "[redacted]"

#: Keys (compared in lower case, ``-`` read as ``_``) whose values never reach a log.
SECRET_KEYS: Final = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "psw",
        "password_hash",
        "apikey",
        "api_key",
        "apikey_hash",
        "secret",
        "token",
        "authorization",
        "credentials",
        "body",
        "text",
        "mes",
        "raw",
    }
)
_SECRET_SUFFIXES: Final = ("_password", "_psw", "_apikey", "_api_key", "_secret", "_token")

_PAIR_RE: Final = re.compile(
    r"(?i)(?<![A-Za-z0-9])(_?(?:password|passwd|pwd|psw|apikey|api_key|token|secret))"
    r"=[^&\s\"',;]*"
)

#: Standard-library loggers that log credentials below ``warning``.
_QUIET_LOGGERS: Final = ("mail.log", "httpx", "httpcore", "aiosmtplib")

_LEVELS: Final[Mapping[str, int]] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _is_secret_name(key)


@functools.lru_cache(maxsize=1024)
def _is_secret_name(key: str) -> bool:
    """Whether a key names a secret; cached, as the same few keys come on every line."""
    k = key.lower().replace("-", "_")
    return k in SECRET_KEYS or k.endswith(_SECRET_SUFFIXES)


#: Values with nothing to scrub (checked before the slower ``Mapping`` test).
_PLAIN_TYPES: Final = frozenset({int, float, bool, type(None)})


def _scrub(value: Any) -> Any:
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, str):
        return _PAIR_RE.sub(r"\1=" + REDACTED, value) if "=" in value else value
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_secret_key(k) else _scrub(v)) for k, v in value.items()}
    if type(value) is list:
        return [_scrub(v) for v in value]
    if type(value) is tuple:
        return tuple(_scrub(v) for v in value)
    return value


def redact_secrets(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Replace secret values in ``event_dict`` with ``"[redacted]"`` (a structlog processor)."""
    for key, value in list(event_dict.items()):
        if isinstance(key, str):
            if key.startswith("_"):
                continue  # structlog's own (``_record``, ``_from_structlog``)
            if _is_secret_name(key):
                event_dict[key] = REDACTED
                continue
        kind = type(value)
        if kind in _PLAIN_TYPES or (kind is str and "=" not in value):
            continue  # what _scrub gives back unchanged, without calling it
        event_dict[key] = _scrub(value)
    return event_dict


def _merge_contextvars_redacted(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """``merge_contextvars``, redacting what it merges in.

    The same as ``merge_contextvars`` followed by ``redact_secrets`` when
    ``redact_secrets`` already ran: only the merged values are still unread.
    """
    context = structlog.contextvars.get_contextvars()
    for key, value in context.items():
        if key not in event_dict:
            event_dict[key] = REDACTED if _is_secret_key(key) else _scrub(value)
    return event_dict


class _NamedWriteLogger(structlog.WriteLogger):
    """A ``WriteLogger`` that knows the name ``get_logger`` gave it."""

    def __init__(self, file: TextIO, name: str) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    """One :class:`_NamedWriteLogger` per name, kept for this configuration (every log
    call asks for its logger again: ``cache_logger_on_first_use`` stays off, so that
    ``configure_logging`` may be called again; the writer itself holds no state but
    the file)."""

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._loggers: dict[str, _NamedWriteLogger] = {}

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = str(args[0]) if args else ""
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers.setdefault(name, _NamedWriteLogger(self._file, name))
        return logger


def _add_logger_name(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    name = getattr(logger, "name", "")
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``configure_logging`` installs (and replaces when called again)."""


def _renderer(settings: LoggingSettings, stream: TextIO) -> tuple[Processor, bool]:
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    fmt = settings.format.lower()
    console = fmt == "console" or (fmt == "auto" and tty)
    if console:
        # plain_traceback: rich's formatter would print local variables.
        return structlog.dev.ConsoleRenderer(
            colors=tty, exception_formatter=structlog.dev.plain_traceback
        ), True
    return structlog.processors.JSONRenderer(), False


def configure_logging(settings: LoggingSettings, *, stream: TextIO | None = None) -> None:
    """Set up structlog and the standard ``logging`` module; may be called again."""
    out = stream if stream is not None else sys.stdout
    level = _LEVELS.get(settings.level.lower(), logging.INFO)
    renderer, console = _renderer(settings, out)
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[Processor] = [
        structlog.processors.add_log_level,
        timestamper,
    ]
    if not console:
        shared.append(structlog.processors.format_exc_info)

    structlog.configure(
        processors=[
            redact_secrets,
            _merge_contextvars_redacted,
            _add_logger_name,
            *shared,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_NamedWriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[redact_secrets, structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = _Handler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.WARNING))


def get_logger(name: str) -> FilteringBoundLogger:
    """A structlog logger whose lines carry ``logger=name``."""
    return cast(FilteringBoundLogger, structlog.get_logger(name))
