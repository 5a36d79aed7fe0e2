"""What each aiosmtpd override relies on, checked against the installed aiosmtpd.

``mailbridge.smtp.session`` overrides aiosmtpd internals; aiosmtpd is pinned
below its next minor version. Each test here names what one override needs
from aiosmtpd and fails when the pinned version stops providing it.
Behaviour through a real session: tests/integration/test_smtp_session.py.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

import aiosmtpd
import pytest
from aiosmtpd.smtp import SMTP, Envelope

from mailbridge.settings import Settings
from mailbridge.smtp.gate import ConnectionGate
from mailbridge.smtp.handler import MailHandler
from mailbridge.smtp.session import HookTable, RouteEnvelope, Session, hook_names, simple_address


def _source(func: Any) -> str:
    return inspect.getsource(func)


def _params(func: Any) -> list[str]:
    return list(inspect.signature(func).parameters)


def test_pinned_version() -> None:
    """The overrides were written against aiosmtpd 1.4.x (pyproject pins < 1.5)."""
    major, minor = (int(x) for x in aiosmtpd.__version__.split(".")[:2])
    assert (major, minor) == (1, 4)


class TestGetaddr:
    def test_aiosmtpd_calls_it_for_mail_and_rcpt(self) -> None:
        """MAIL and RCPT parse their address with ``self._getaddr(arg)``."""
        assert _params(SMTP._getaddr) == ["self", "arg"]
        assert "self._getaddr(arg)" in _source(SMTP.smtp_MAIL)
        assert "self._getaddr(arg)" in _source(SMTP.smtp_RCPT)
        assert "self.local_part_limit" in _source(SMTP._getaddr)

    @pytest.mark.parametrize(
        "arg",
        [
            "<a@b.example>",
            " <a@b.example>",
            "<a.b+c@b-c.example> SIZE=10",
            "<a@b.example>  BODY=8BITMIME SMTPUTF8",
            "<>",
            "<> SIZE=5",
            "<" + "x" * 65 + "@b.example>",
        ],
    )
    def test_fast_path_equals_aiosmtpd(self, arg: str) -> None:
        """For each address the fast path takes, aiosmtpd's own parser gives the same."""

        class Limits:
            local_part_limit = 64

        fast = simple_address(arg, 64)
        assert fast is not None
        assert SMTP._getaddr(Limits(), arg) == fast  # type: ignore[arg-type]

    @pytest.mark.parametrize("arg", ['<"a b"@b.example>', "a@b.example", "<a@[127.0.0.1]>", ""])
    def test_other_addresses_go_to_aiosmtpd(self, arg: str) -> None:
        """Quoted local parts, bare addresses, literals: the fast path declines."""
        assert simple_address(arg, 64) is None


class TestCreateEnvelope:
    def test_aiosmtpd_makes_every_envelope_there(self) -> None:
        """Each transaction's envelope comes from ``self._create_envelope()``."""
        assert _params(SMTP._create_envelope) == ["self"]
        assert "self.envelope = self._create_envelope()" in _source(SMTP._set_post_data_state)
        assert "_set_post_data_state()" in _source(SMTP._set_rset_state)

    def test_route_envelope_is_an_envelope(self) -> None:
        """The override's envelope keeps every field aiosmtpd sets."""
        env = RouteEnvelope()
        assert isinstance(env, Envelope)
        assert env.routes == []
        assert set(vars(Envelope())) | {"routes"} == set(vars(env))


class TestHookTables:
    def test_aiosmtpd_dispatches_commands_through_its_table(self) -> None:
        """The per-transaction count wraps ``_smtp_methods``: aiosmtpd builds it in
        ``__init__`` and looks every verb up there, once, in ``_handle_client``."""
        assert "self._smtp_methods: Dict[str, Any] = {" in _source(SMTP.__init__)
        assert "method = self._smtp_methods.get(command)" in _source(SMTP._handle_client)
        assert "await method(arg)" in _source(SMTP._handle_client)

    def test_aiosmtpd_answers_through_push(self) -> None:
        """The refusal log overrides ``push``: every answer of these commands goes through it."""
        for method in (SMTP.smtp_MAIL, SMTP.smtp_RCPT, SMTP.smtp_DATA):
            assert "await self.push(" in _source(method)
        assert _params(SMTP.push) == ["self", "status"]

    def test_aiosmtpd_builds_its_tables_from_dir(self) -> None:
        """Hooks, commands and AUTH mechanisms are found by name prefix over dir()."""
        init = _source(SMTP.__init__)
        assert "for m in dir(handler)" in init
        assert 'if m.startswith("handle_")' in init
        assert "for m in dir(self)" in init
        assert 'if m.startswith("smtp_")' in init
        assert "inspect.getmembers(obj)" in init
        assert 'if mname.startswith("auth_")' in init

    def test_hook_names_list_every_hook(self) -> None:
        """The short ``dir()`` holds every prefixed name the full one holds."""
        for cls in (Session, MailHandler):
            full = {n for n in type.__dir__(cls) if n.startswith(("smtp_", "auth_", "handle_"))}
            assert set(hook_names(cls)) == full
            assert issubclass(cls, HookTable)

    async def test_tables_of_a_session(self) -> None:
        """A session built with the short dir() has the tables a full dir() gives."""
        handler = MailHandler(settings=Settings(), storage=None)  # type: ignore[arg-type]
        try:
            session = Session(ConnectionGate(), (10, 10), handler=handler)
            expected_smtp = {
                n.removeprefix("smtp_") for n in type.__dir__(Session) if n.startswith("smtp_")
            }
            assert set(session._smtp_methods) == expected_smtp
            assert set(session._handle_hooks) == {"MAIL", "RCPT", "DATA", "exception"}
            assert {"PLAIN", "LOGIN"} <= set(session._auth_methods)
            assert not session._auth_methods["PLAIN"].is_builtin
            # each entry wraps the bound method (commands counted per transaction)
            assert session._smtp_methods["DATA"].__wrapped__ == session.smtp_DATA
        finally:
            handler.close()

    async def test_command_table_wraps_each_verb_once_when_used(self) -> None:
        """The counted table wraps a verb on its first lookup and keeps that wrapper; an
        unknown verb is None; HELP's view (items, syntax attributes) is the full table."""
        handler = MailHandler(settings=Settings(), storage=None)  # type: ignore[arg-type]
        try:
            session = Session(ConnectionGate(), (10, 10), handler=handler)
            table = session._smtp_methods
            first = table.get("MAIL")
            assert first is not None
            assert table.get("MAIL") is first
            assert table["MAIL"] is first
            assert first.__wrapped__ == session.smtp_MAIL
            assert getattr(first, "__smtp_syntax__") == session.smtp_MAIL.__smtp_syntax__  # noqa: B009
            assert table.get("NOSUCH") is None
            assert table.get("NOSUCH", 1) == 1
            assert "NOSUCH" not in table
            assert "RCPT" in table
            assert len(table) == len(list(table))
            items = dict(table.items())
            assert items["MAIL"] is first
            assert items["HELP"].__wrapped__ == session.smtp_HELP
        finally:
            handler.close()

    async def test_wrapper_attributes_are_those_functools_wraps_gives(self) -> None:
        """Each wrapped verb carries what ``functools.wraps`` would copy onto it (name,
        docs, annotations, the syntax attributes HELP reads, ``__wrapped__``)."""
        handler = MailHandler(settings=Settings(), storage=None)  # type: ignore[arg-type]
        try:
            session = Session(ConnectionGate(), (10, 10), handler=handler)
            table = session._smtp_methods
            names = (*functools.WRAPPER_ASSIGNMENTS, "__dict__", "__wrapped__")
            for verb in ("EHLO", "MAIL", "RCPT", "DATA", "HELP", "QUIT"):
                method = getattr(session, f"smtp_{verb}")

                async def reference(arg: str) -> None:
                    """Not the wrapped method's."""

                expected = functools.wraps(method)(reference)
                wrapper = table[verb]
                assert wrapper is not method
                for name in names:
                    assert getattr(wrapper, name) == getattr(expected, name), (verb, name)
        finally:
            handler.close()


class TestConnectionHooks:
    def test_signatures(self) -> None:
        """The gate's overrides keep aiosmtpd's signatures."""
        assert _params(SMTP.connection_made) == ["self", "transport"]
        assert _params(SMTP.connection_lost) == ["self", "error"]
        assert _params(SMTP.eof_received) == ["self"]
        assert _params(SMTP.smtp_DATA) == ["self", "arg"]
        assert asyncio.iscoroutinefunction(SMTP.smtp_DATA)

    def test_transport_marks_the_first_connection_made(self) -> None:
        """``transport`` is None until the first connection_made (STARTTLS calls it again)."""
        made = _source(SMTP.connection_made)
        assert "self.transport is not None and seen_starttls" in made
        assert "self.transport = transport" in made
        assert "self.transport = None" in _source(SMTP.connection_lost)


class TestIdleTimerAndUntrusted:
    def test_timer_reset_per_command_and_at_connect(self) -> None:
        """aiosmtpd resets its idle timer through ``_reset_timeout`` at connect and per command."""
        assert _params(SMTP._reset_timeout) == ["self", "duration"]
        assert "self._reset_timeout()" in _source(SMTP.connection_made)
        handle = _source(SMTP._handle_client)
        assert "self._reset_timeout()\n                await method(arg)" in handle
        assert "self._timeout_handle" in _source(SMTP._reset_timeout)

    def test_data_and_mail_hooks_go_through_call_handler_hook(self) -> None:
        """DATA and MAIL reach the handler through ``_call_handler_hook(name, …)``."""
        assert _params(SMTP._call_handler_hook) == ["self", "command", "args"]
        assert "self._call_handler_hook('DATA')" in _source(SMTP.smtp_DATA)
        assert "self._call_handler_hook('MAIL'" in _source(SMTP.smtp_MAIL)
