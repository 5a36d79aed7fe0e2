"""The recipes of docs/integrations.md, each run with the real program where Debian packages it.

Postfix (a private instance relaying ``sms.example.com`` to the gateway), ``sendmail -t``,
cron's ``sendmail`` call, bsd-mailx (``mail``), Nagios's ``notify-by-email`` command line,
Zabbix's e-mail media type (its exact mail and SMTP dialogue) and Alertmanager's e-mail
receiver. Each test prints the versions it ran (``pytest -s`` shows them).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import PASSWORD, Daemon, DaemonFactory
from .realprograms import Alertmanager, PrivatePostfix, program_version

NUMBER = "+79991234567"


async def outbox_records(daemon: Daemon, n: int, timeout_s: float = 20.0) -> list[Any]:
    """The file provider's records once there are ``n`` of them (or what there is)."""
    path = daemon.tmp / "outbox.jsonl"

    def read() -> list[Any]:
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]

    deadline = time.monotonic() + timeout_s
    records = await asyncio.to_thread(read)
    while len(records) < n and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        records = await asyncio.to_thread(read)
    return records


async def eventually(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    """Poll ``check`` in a thread until it returns something true."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(check)
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


@pytest.fixture
async def relay(start_daemon: DaemonFactory) -> AsyncIterator[Any]:
    """A gateway whose reply smarthost is a private Postfix that relays the SMS domain to it."""

    async def start(
        overrides: dict[str, Any] | None = None, postfix: dict[str, str] | None = None
    ) -> tuple[Daemon, PrivatePostfix]:
        from .conftest import free_port

        port = free_port()
        daemon = await start_daemon(
            {"reply": {"smarthost": f"127.0.0.1:{port}"}, **(overrides or {})}, reply=False
        )
        instance = PrivatePostfix(gateway_port=daemon.port, port=port, extra=postfix)
        started.append(instance)
        await asyncio.to_thread(instance.start)
        print(program_version(["postconf", "-d", "-h", "mail_version"]), "(postfix)")
        return daemon, instance

    started: list[PrivatePostfix] = []
    yield start
    for instance in started:
        await asyncio.to_thread(instance.stop)


class TestPostfixRelay:
    async def test_sendmail_t_to_a_number_address(self, relay: Any) -> None:
        """``sendmail -t`` → Postfix → transport_maps → the gateway: one SMS, the 250 logged."""
        daemon, pf = await relay()
        raw = (
            f"From: ops@example.com\nTo: {NUMBER}@sms.example.com\n"
            "Subject: disk full\n\n/var on db-01 at 97%\n"
        ).encode()
        await asyncio.to_thread(pf.sendmail, raw, "-t", "-i")
        records = await outbox_records(daemon, 1)
        assert [(r["recipient"], r["text"]) for r in records] == [
            (NUMBER, "disk full: /var on db-01 at 97%")
        ]
        sent = await eventually(pf.delivered)
        assert sent, pf.log_text()
        assert "250 2.0.0 OK - 1 SMS, ID - " in sent[0]

    async def test_connection_cache_burst_over_one_session(self, relay: Any) -> None:
        """An alert storm: 120 mails, one connection at a time, kept open by Postfix's connection
        cache. All are delivered over reused sessions (before: 421 at the 101st MAIL and the
        rest deferred for minutes)."""
        daemon, pf = await relay(
            {"limits": {"flood_max": 1000, "duplicate_max": 1000}},
            postfix={
                "smtp_destination_concurrency_limit": "1",
                "smtp_connection_cache_destinations": "[127.0.0.1]:{gateway_port}",
            },
        )
        count = 120
        raws = [
            (f"From: ops@example.com\nTo: +7999{2000000 + i}@sms.example.com\n"
             f"Subject: storm {i}\n\nnode {i} down\n").encode()
            for i in range(count)
        ]  # fmt: skip
        await asyncio.to_thread(pf.sendmail_many, raws, "-t", "-i")
        records = await outbox_records(daemon, count, timeout_s=60)
        assert len(records) == count, pf.log_text()[-3000:]
        sent = pf.delivered()
        assert len(sent) == count
        assert not pf.delivered("deferred")
        reuse = [int(m) for line in sent for m in re.findall(r"conn_use=(\d+)", line)]
        assert max(reuse) > 100, reuse  # one session carried more than 100 mails

    async def test_mailx_command_mode_reply_back_to_the_local_mailbox(self, relay: Any) -> None:
        """bsd-mailx submits a command with test=1; the reply mail comes back through Postfix
        into the sender's mailbox."""
        daemon, pf = await relay()
        body = f"alex:{PASSWORD}:::,,,1:{NUMBER}:backup done\n"
        await asyncio.to_thread(
            pf.mail, body, "-s", "nightly", "-r", "ops@example.com", "send@sms.example.com"
        )
        records = await outbox_records(daemon, 1)
        assert [(r["recipient"], r["text"]) for r in records] == [(NUMBER, "backup done")]
        box = await eventually(lambda: pf.mailbox("ops"))
        assert box, pf.log_text()
        reply = box[0]
        assert reply["Subject"] == "Re: nightly"
        assert reply["Auto-Submitted"] == "auto-replied"
        assert reply.get_content().strip().startswith("OK - 1 SMS, ID - ")
        assert "<>" in reply["Return-Path"]  # sent from the null sender
        assert PASSWORD not in reply.as_string()

    async def test_cron_mailto(self, relay: Any) -> None:
        """The mail cron writes for ``MAILTO=+7…@sms.example.com``, handed to sendmail with
        cron's own flags."""
        daemon, pf = await relay()
        raw = (
            "From: root (Cron Daemon)\n"
            f"To: {NUMBER}@sms.example.com\n"
            "Subject: Cron <root@backup01> /usr/local/bin/nightly-backup.sh\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=UTF-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            f"X-Cron-Env: <MAILTO={NUMBER}@sms.example.com>\n"
            "X-Cron-Env: <SHELL=/bin/sh>\n"
            "\n"
            "backup failed: no space left on device\n"
        ).encode()
        await asyncio.to_thread(
            pf.sendmail,
            raw,
            "-FCronDaemon",
            "-i",
            "-B8BITMIME",
            "-oem",
            f"{NUMBER}@sms.example.com",
        )
        records = await outbox_records(daemon, 1)
        assert [r["text"] for r in records] == [
            "Cron <root@backup01> /usr/local/bin/nightly-backup.sh: "
            "backup failed: no space left on device"
        ]

    async def test_nagios_notify_by_email_to_a_forward_alias(self, relay: Any) -> None:
        """Nagios's stock ``notify-service-by-email`` command line (printf | mail), to a forward
        alias whose template is the subject alone."""
        alias = {
            "address": "oncall@sms.example.com",
            "account": "alex",
            "to": ["+79991112233", "G1"],
            "allowed_senders": ["nagios@example.com"],
            "template": "{subject}",
        }
        daemon, pf = await relay({"forward": [alias]})
        # commands.cfg of Nagios 4 (Debian's nagios4), the macros filled in as Nagios does;
        # -r stands for running as the nagios user (envelope sender nagios@$myorigin)
        script = (
            '/usr/bin/printf "%b" "***** Nagios *****\\n\\nNotification Type: PROBLEM\\n\\n'
            "Service: HTTP\\nHost: web-01\\nAddress: 192.0.2.10\\nState: CRITICAL\\n\\n"
            "Date/Time: Mon May 6 12:00:05 MSK 2024\\n\\n"
            'Additional Info:\\n\\nconnection refused\\n"'
            " | /usr/bin/mail -r nagios@example.com"
            ' -s "** PROBLEM Service Alert: web-01/HTTP is CRITICAL **" oncall@sms.example.com'
        )
        await asyncio.to_thread(pf.shell, script)
        records = await outbox_records(daemon, 3)
        assert sorted(r["recipient"] for r in records) == [
            "+79990000001", "+79990000002", "+79991112233"
        ]  # fmt: skip
        assert {r["text"] for r in records} == {
            "** PROBLEM Service Alert: web-01/HTTP is CRITICAL **"
        }


ZABBIX_MAIL = Path(__file__).resolve().parents[1] / "data" / "clients" / "zabbix_media_type.eml"


def zabbix_send(host: str, port: int, mail_from: str, rcpt: str, payload: bytes) -> str:
    """Zabbix's own SMTP dialogue (``send_email_plain`` of src/libs/zbxmedia/email.c): HELO,
    one MAIL, the RCPTs, DATA, the payload, ``\\r\\n.\\r\\n``, QUIT; the answer to the dot."""
    with socket.create_connection((host, port), timeout=10) as s:
        f = s.makefile("rb")

        def reply() -> str:
            line = f.readline().decode()
            while line[3:4] == "-":
                line = f.readline().decode()
            return line.strip()

        assert reply().startswith("220")
        for cmd in (b"HELO zabbix.example.com", f"MAIL FROM:<{mail_from}>".encode(),
                    f"RCPT TO:<{rcpt}>".encode(), b"DATA"):  # fmt: skip
            s.sendall(cmd + b"\r\n")
            answer = reply()
            assert answer[:3] in {"250", "354"}, (cmd, answer)
        s.sendall(payload + b"\r\n.\r\n")
        end = reply()
        s.sendall(b"QUIT\r\n")
        return end


async def test_zabbix_email_media_type(start_daemon: DaemonFactory) -> None:
    """A mail shaped exactly as Zabbix 6/7 sends it (base64 UTF-8 body, RFC 2047 subject split
    in words, In-Reply-To, HELO) to a number address: the SMS is the decoded subject and body."""
    daemon = await start_daemon(
        {"number_addresses": {"enabled": True, "account": "alex", "template": "{subject}",
                              "allowed_senders": ["zabbix@example.com"]}}
    )  # fmt: skip
    payload = ZABBIX_MAIL.read_bytes()
    answer = await asyncio.to_thread(
        zabbix_send, daemon.host, daemon.port, "zabbix@example.com", f"{NUMBER}@sms.example.com",
        payload,
    )  # fmt: skip
    assert answer.startswith("250 2.0.0 OK - 1 SMS, ID - "), answer
    records = await outbox_records(daemon, 1)
    assert [r["text"] for r in records] == ["Problem: Высокая загрузка процессора на web-01"]


def test_zabbix_corpus_mail_is_what_zabbix_writes() -> None:
    """The corpus mail has Zabbix's header order and encodings (so the test above means it)."""
    raw = ZABBIX_MAIL.read_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    names = [line.split(b":", 1)[0] for line in head.split(b"\r\n") if not line.startswith(b" ")]
    assert names == [b"From", b"To", b"In-Reply-To", b"Date", b"Subject", b"MIME-Version",
                     b"Content-Type", b"Content-Transfer-Encoding"]  # fmt: skip
    assert b'Content-Type: text/plain; charset="UTF-8"' in head
    assert b"Subject: =?UTF-8?B?" in head
    assert b"\r\n =?UTF-8?B?" in head  # split in encoded words
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert "Problem started at" in base64.b64decode(body).decode()


# --- Alertmanager -------------------------------------------------------------------------

ALERT = {
    "labels": {"alertname": "DiskFull", "instance": "web-01", "severity": "critical"},
    "annotations": {"summary": "Disk /var on web-01 is 97% full"},
}


def alertmanager_config(port: int, to: str, *, text_template: bool) -> str:
    email = (
        f"      - to: '{to}'\n"
        "        from: 'alertmanager@example.com'\n"
        f"        smarthost: '127.0.0.1:{port}'\n"
        "        require_tls: false\n"
    )
    if text_template:
        email += (
            "        headers:\n"
            "          Subject: '[{{ .Status | toUpper }}] {{ .CommonLabels.alertname }}'\n"
            "        html: ''\n"
            "        text: '{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}'\n"
        )
    return (
        "route:\n  receiver: sms\n  group_wait: 1s\n  group_interval: 1m\n  repeat_interval: 1h\n"
        f"receivers:\n  - name: sms\n    email_configs:\n{email}"
    )


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Callable[[str], Alertmanager]]:
    made: list[Alertmanager] = []

    def make(config: str) -> Alertmanager:
        am = Alertmanager(tmp_path / f"am{len(made)}", config)
        made.append(am)
        am.start()
        print(program_version([am.binary, "--version"]))
        return am

    yield make
    for am in made:
        am.stop()


class TestAlertmanager:
    async def test_text_template_one_part_with_the_summary(
        self, start_daemon: DaemonFactory, alertmanager: Callable[[str], Alertmanager]
    ) -> None:
        """The recipe: ``html: ''`` and a ``text:`` template; the SMS is the subject and the
        summary, one part."""
        daemon = await start_daemon()
        config = alertmanager_config(daemon.port, f"{NUMBER}@sms.example.com", text_template=True)
        am = await asyncio.to_thread(alertmanager, config)
        await asyncio.to_thread(am.post_alerts, [ALERT])
        records = await outbox_records(daemon, 1)
        assert records, am.log_text()
        assert [(r["recipient"], r["text"]) for r in records] == [
            (NUMBER, "[FIRING] DiskFull: Disk /var on web-01 is 97% full")
        ]
        detail = await daemon.detail(records[0]["request_id"])
        assert [s.parts for s in detail.sms] == [1]

    async def test_alias_and_number_in_one_to(
        self, start_daemon: DaemonFactory, alertmanager: Callable[[str], Alertmanager]
    ) -> None:
        """The issue's case: to: 'oncall@…, +7…@…' is one SMTP transaction with two RCPTs.
        Both are taken at once (before: 452 at the second RCPT, retried, given up)."""
        alias = {"address": "oncall@sms.example.com", "account": "alex",
                 "to": ["+79991112233"], "template": "{subject}: {body}"}  # fmt: skip
        daemon = await start_daemon({"forward": [alias]})
        to = "oncall@sms.example.com, +79991234570@sms.example.com"
        config = alertmanager_config(daemon.port, to, text_template=True)
        am = await asyncio.to_thread(alertmanager, config)
        await asyncio.to_thread(am.post_alerts, [ALERT])
        records = await outbox_records(daemon, 2)
        assert sorted(r["recipient"] for r in records) == ["+79991112233", "+79991234570"]
        assert {r["text"] for r in records} == {
            "[FIRING] DiskFull: Disk /var on web-01 is 97% full"
        }
        log = am.log_text()
        # a 452 reply, not a timestamp's milliseconds (…19.452Z); nor any failed notify attempt
        assert not re.search(r"(?<![.\d])452[ -]", log), log
        assert "Notify attempt failed" not in log, log

    async def test_default_html_mail(
        self, start_daemon: DaemonFactory, alertmanager: Callable[[str], Alertmanager]
    ) -> None:
        """Without a text template Alertmanager sends HTML only: the SMS is its subject and that
        page rendered to text, cut to max_parts with "...": the labels fill the part and the
        summary never gets in."""
        daemon = await start_daemon()
        config = alertmanager_config(daemon.port, f"{NUMBER}@sms.example.com", text_template=False)
        am = await asyncio.to_thread(alertmanager, config)
        await asyncio.to_thread(am.post_alerts, [ALERT])
        records = await outbox_records(daemon, 1)
        assert records, am.log_text()
        text = records[0]["text"]
        assert text.startswith("[FIRING:1]  (DiskFull web-01 critical): 1 alert for\n")
        assert "alertname = DiskFull" in text
        assert "<" not in text  # rendered, not raw HTML
        assert text.endswith("...")  # max_parts = 1 in the test config: cut
        assert "97% full" not in text


async def test_script_mail_without_subject(start_daemon: DaemonFactory) -> None:
    """A script's mail with no Subject to a number address: the SMS is the body, with no
    dangling ": " from the default template "{subject}: {body}"."""
    daemon = await start_daemon()
    raw = b"From: ops@example.com\r\nTo: +79991234567@sms.example.com\r\n\r\nbackup failed\r\n"
    code, message = await daemon.send(raw, rcpts=(f"{NUMBER}@sms.example.com",))
    assert code == 250, message
    records = await outbox_records(daemon, 1)
    assert [r["text"] for r in records] == ["backup failed"]
