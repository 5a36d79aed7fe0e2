"""Tests of mailbridge.log: JSON or console lines, level filtering, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from mailbridge.log import REDACTED, configure_logging, get_logger, redact_secrets
from mailbridge.settings import LoggingSettings

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


class TtyStream(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Put structlog and the logging module back as they were."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in ("mail.log", "httpx", "httpcore")}
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lvl in quiet.items():
        logging.getLogger(name).setLevel(lvl)


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line of the stream, parsed as JSON."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def run(event: dict[str, Any]) -> dict[str, Any]:
    """redact_secrets applied to a copy of event."""
    return dict(redact_secrets(None, "info", dict(event)))


class TestRedactSecrets:
    @pytest.mark.parametrize(
        "key",
        [
            "password",
            "psw",
            "apikey",
            "api_key",
            "password_hash",
            "apikey_hash",
            "secret",
            "token",
            "body",
            "text",
            "mes",
            "raw",
            "Password",
            "API-KEY",
            "smtp_password",
            "access_token",
        ],
    )
    def test_secret_keys(self, key: str) -> None:
        """Values of secret and message-text keys are replaced, whatever their type."""
        for value in ("hunter2", 1234, b"bytes", ["a"], {"x": 1}, None):
            assert run({"event": "e", key: value})[key] == REDACTED

    @pytest.mark.parametrize(
        ("key", "value"),
        [
            ("login", "alex"),
            ("id", 42),
            ("phones", ["+79990000001"]),
            ("parts", 2),
            ("subject", "disk full"),
            ("password_ok", True),
        ],
    )
    def test_other_keys_kept(self, key: str, value: object) -> None:
        """Other values pass unchanged."""
        assert run({"event": "e", key: value})[key] == value

    def test_nested(self) -> None:
        """Secrets inside nested dicts and lists are replaced, without touching the original."""
        original = {"login": "a", "psw": "x", "more": [{"token": "t", "n": 1}]}
        out = run({"event": "e", "request": original})
        assert out["request"] == {
            "login": "a",
            "psw": REDACTED,
            "more": [{"token": REDACTED, "n": 1}],
        }
        assert original["psw"] == "x"

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            (
                "GET https://h/send?username=u&password=p4ss&to=1",
                "GET https://h/send?username=u&password=[redacted]&to=1",
            ),
            (
                "POST /m?_login=u&_password=p4ss&body=x",
                "POST /m?_login=u&_password=[redacted]&body=x",
            ),
            ("login=alex psw=p4ss", "login=alex psw=[redacted]"),
            ("apikey=K3Y; x=1", "apikey=[redacted]; x=1"),
            ("nothing here", "nothing here"),
            ("mypassword=kept-not-a-key", "mypassword=kept-not-a-key"),
        ],
    )
    def test_pairs_in_strings(self, text: str, expected: str) -> None:
        """name=value pairs naming a secret are cut inside any string, the event too."""
        assert run({"event": text, "url": text}) == {"event": expected, "url": expected}

    def test_capture_logs(self) -> None:
        """With capture_logs and the redactor, the captured event has no secret."""
        log = structlog.get_logger()
        with capture_logs(processors=[redact_secrets]) as logs:
            log.info("auth", login="alex", psw="hunter2")
        assert logs == [{"event": "auth", "login": "alex", "psw": REDACTED, "log_level": "info"}]


class TestConfigureLogging:
    def test_redactor_is_first(self) -> None:
        """The first processor is redact_secrets."""
        configure_logging(LoggingSettings(), stream=io.StringIO())
        assert structlog.get_config()["processors"][0] is redact_secrets

    def test_json_lines_when_not_a_tty(self) -> None:
        """Not a terminal: one JSON object per line, with timestamp, level, logger, event."""
        out = io.StringIO()
        configure_logging(LoggingSettings(), stream=out)
        get_logger("mailbridge.test").info("mail accepted", id=42, password="hunter2")
        [line] = json_lines(out)
        assert line["event"] == "mail accepted"
        assert line["level"] == "info"
        assert line["logger"] == "mailbridge.test"
        assert line["id"] == 42
        assert line["password"] == REDACTED
        assert ISO_UTC.fullmatch(line["timestamp"])
        assert "hunter2" not in out.getvalue()

    def test_console_on_a_tty(self) -> None:
        """On a terminal (format auto) the lines are for people, not JSON."""
        out = TtyStream()
        configure_logging(LoggingSettings(), stream=out)
        get_logger("t").info("hello", psw="hunter2")
        text = out.getvalue()
        assert "hello" in text
        assert "hunter2" not in text
        with pytest.raises(json.JSONDecodeError):
            json.loads(text.splitlines()[0])

    @pytest.mark.parametrize(
        ("fmt", "stream_cls", "is_json"),
        [
            ("json", TtyStream, True),
            ("console", io.StringIO, False),
            ("auto", io.StringIO, True),
            ("auto", TtyStream, False),
        ],
    )
    def test_format_setting(self, fmt: str, stream_cls: type[io.StringIO], is_json: bool) -> None:
        """json and console force the format; auto follows the terminal."""
        out = stream_cls()
        configure_logging(LoggingSettings(format=fmt), stream=out)
        get_logger("t").info("hello")
        first = out.getvalue().splitlines()[0]
        assert first.startswith("{") is is_json

    @pytest.mark.parametrize(
        ("level", "expected"),
        [
            ("debug", ["debug", "info", "warning", "error"]),
            ("info", ["info", "warning", "error"]),
            ("warning", ["warning", "error"]),
            ("error", ["error"]),
        ],
    )
    def test_level_filter(self, level: str, expected: list[str]) -> None:
        """Lines below the configured level are dropped."""
        out = io.StringIO()
        configure_logging(LoggingSettings(level=level), stream=out)
        log = get_logger("t")
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        assert [line["level"] for line in json_lines(out)] == expected

    def test_contextvars_redacted(self) -> None:
        """A secret bound with bind_contextvars is redacted too."""
        out = io.StringIO()
        configure_logging(LoggingSettings(), stream=out)
        structlog.contextvars.bind_contextvars(mail_id="m1", apikey="K3Y")
        get_logger("t").info("x")
        [line] = json_lines(out)
        assert line["mail_id"] == "m1"
        assert line["apikey"] == REDACTED

    def test_bound_values_redacted(self) -> None:
        """A secret bound on the logger is redacted."""
        out = io.StringIO()
        configure_logging(LoggingSettings(), stream=out)
        get_logger("t").bind(token="T0K").info("x")
        assert "T0K" not in out.getvalue()

    def test_exception_in_one_json_line(self) -> None:
        """An exception is rendered inside the one JSON line."""
        out = io.StringIO()
        configure_logging(LoggingSettings(), stream=out)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            get_logger("t").exception("failed")
        [line] = json_lines(out)
        assert "RuntimeError: boom" in line["exception"]

    def test_stdlib_records_same_stream(self) -> None:
        """Records of the logging module come out as JSON lines, scrubbed."""
        out = io.StringIO()
        configure_logging(LoggingSettings(), stream=out)
        logging.getLogger("asyncio").warning("url %s", "https://h/?password=p4ss")
        [line] = json_lines(out)
        assert line["logger"] == "asyncio"
        assert line["level"] == "warning"
        assert line["event"] == "url https://h/?password=[redacted]"

    @pytest.mark.parametrize("name", ["mail.log", "httpx"])
    def test_chatty_libraries_quiet(self, name: str) -> None:
        """aiosmtpd and httpx log below warning are dropped, even at debug."""
        out = io.StringIO()
        configure_logging(LoggingSettings(level="debug"), stream=out)
        logging.getLogger(name).info("AUTH line or request URL")
        logging.getLogger(name).debug("AUTH line or request URL")
        assert out.getvalue() == ""
        logging.getLogger(name).warning("problem")
        assert json_lines(out)[0]["event"] == "problem"

    def test_reconfigure_replaces_handler(self) -> None:
        """Calling configure_logging again does not duplicate stdlib lines."""
        first, second = io.StringIO(), io.StringIO()
        configure_logging(LoggingSettings(), stream=first)
        configure_logging(LoggingSettings(), stream=second)
        logging.getLogger("x").warning("once")
        get_logger("y").info("once")
        assert first.getvalue() == ""
        assert len(json_lines(second)) == 2

    def test_logger_made_before_configure(self) -> None:
        """A module-level logger made before configure_logging follows the later config."""
        log = get_logger("early")
        out = io.StringIO()
        configure_logging(LoggingSettings(level="warning"), stream=out)
        log.info("dropped")
        log.warning("kept")
        assert [line["event"] for line in json_lines(out)] == ["kept"]
