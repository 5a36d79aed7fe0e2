"""``[smtp] command_call_limit`` per mail transaction, not per session.

aiosmtpd counts each command verb over the whole session and answers ``421 4.7.0 MAIL sent
too many times`` at the 101st ``MAIL`` of a connection, which cuts off a relay that keeps its
connection open (Postfix's connection cache, ``smtp-source -m``) after 100 mails. Here each
verb may be sent ``limit`` times per transaction instead: the counts start again once a mail's
DATA has been answered, so a session carries any number of mails while the commands of one
transaction (RCPTs, NOOPs, RSETs between two mails) stay bounded. Over the limit the answer
and the closed connection are aiosmtpd's own (``421 4.7.0 <VERB> sent too many times``).
Idle (``timeout_s``) and unknown-command limits are aiosmtpd's, unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

__all__ = ["count_per_transaction"]

Method = Callable[[str], Awaitable[None]]


def count_per_transaction(
    session: Any, limit: int | None, on_refused: Callable[[str], None]
) -> None:
    """Wrap the command table of an aiosmtpd ``SMTP`` ``session`` (built in its ``__init__``,
    created with ``command_call_limit=None``) so each verb is counted per transaction
    (``limit`` None: not counted). The wrapper also keeps ``session.command``, the verb and
    argument being handled, and ``session.command_envelope``, the envelope it began with,
    which the refusal log reads.

    ``on_refused(verb)`` is called when a verb goes over the limit (for the log).
    """
    counts: dict[str, int] = {}
    session.command = ("connect", None)
    session.command_envelope = None

    def counted(verb: str, method: Method) -> Method:
        async def call(arg: str) -> None:
            session.command = (verb, arg)
            session.command_envelope = session.envelope  # DATA answers after a fresh one
            used = counts.get(verb, 0)
            if limit is not None and used >= limit:
                on_refused(verb)
                await session.push(f"421 4.7.0 {verb} sent too many times")
                if session.transport is not None:
                    session.transport.close()
                return
            counts[verb] = used + 1
            envelope = session.envelope
            await method(arg)
            if verb == "DATA" and session.envelope is not envelope:
                counts.clear()  # the mail was answered: a new transaction begins

        return _wraps(call, method)

    session._smtp_methods = _Counted(session._smtp_methods, counted)


def _wraps(wrapper: Method, method: Method) -> Method:
    """``functools.wraps(method)(wrapper)`` without its generic loop (once per verb and
    session): the same attributes, among them the ``__smtp_syntax__`` ones HELP reads."""
    w: Any = wrapper
    m: Any = method
    w.__module__ = m.__module__
    w.__name__ = m.__name__
    w.__qualname__ = m.__qualname__
    w.__doc__ = m.__doc__
    w.__annotations__ = m.__annotations__
    w.__dict__.update(m.__dict__)
    w.__wrapped__ = method
    return wrapper


class _Counted(Mapping[str, Method]):
    """aiosmtpd's command table with each verb wrapped on first use.

    A session uses four or five of its thirteen verbs; wrapping all of them with
    ``functools.wraps`` at connect cost ≈ 22 µs a connection (measured), this
    wraps what is looked up, once per session, and gives the same wrappers.
    """

    __slots__ = ("_methods", "_wrap", "_wrapped")

    def __init__(self, methods: Mapping[str, Method], wrap: Callable[[str, Method], Method]):
        self._methods = methods
        self._wrap = wrap
        self._wrapped: dict[str, Method] = {}

    def __getitem__(self, verb: str) -> Method:
        wrapped = self._wrapped.get(verb)
        if wrapped is None:
            wrapped = self._wrapped[verb] = self._wrap(verb, self._methods[verb])
        return wrapped

    def get(self, verb: str, default: Any = None) -> Any:
        wrapped = self._wrapped.get(verb)
        if wrapped is not None:
            return wrapped
        if verb not in self._methods:
            return default
        return self[verb]

    def __iter__(self) -> Iterator[str]:
        return iter(self._methods)

    def __len__(self) -> int:
        return len(self._methods)

    def __contains__(self, verb: object) -> bool:
        return verb in self._methods
