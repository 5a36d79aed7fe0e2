"""Real programs nobody here wrote, run against the gateway: a private Postfix, Alertmanager.

* :class:`PrivatePostfix` is a Postfix instance of its own (``postfix -c DIR start``): its
  own ``config_directory``, queue and data folders in the test's tmp folder, one ``smtpd``
  on a free loopback port, relaying ``sms.example.com`` to the gateway with
  ``transport_maps`` + ``postmap`` exactly as ``docs/integrations.md`` says, and delivering
  mail for ``example.com`` into mbox files under ``mail/`` (the reply mails). ``sendmail`` and
  ``mail`` (bsd-mailx) submit to it through ``MAIL_CONFIG``. Nothing system-wide is touched.
* :class:`Alertmanager` is Debian's ``prometheus-alertmanager`` binary with a config written
  by the test, its API and cluster port on loopback.

Both need root (Postfix's master) or the binaries; missing, the test skips on a developer's
machine and fails under CI (``.ci/run`` installs them).
"""

from __future__ import annotations

import contextlib
import json
import mailbox
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from tests.integration.conftest import free_port
from tests.tools import skip_unless_ci

__all__ = ["Alertmanager", "PrivatePostfix", "program_version", "wait_until"]

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def wait_until(check: Callable[[], bool], timeout_s: float = 20.0, what: str = "") -> None:
    """Poll ``check`` (blocking: run it in a thread when a gateway shares the loop)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.1)


def program_version(argv: Sequence[str]) -> str:
    """The first line a program prints about its version (for the test's report)."""
    out = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).strip().splitlines()[0]


def _need(program: str) -> str:
    path = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin")
    if path is None:
        skip_unless_ci(f"{program} is not installed")
    return path


class PrivatePostfix:
    """A Postfix instance in ``root`` relaying ``relay_domain`` to ``gateway_port``."""

    def __init__(
        self, *, gateway_port: int, port: int | None = None,
        relay_domain: str = "sms.example.com", local_domain: str = "example.com",
        extra: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        if os.geteuid() != 0:
            skip_unless_ci("a private Postfix instance needs root (its master runs as root)")
        self.postfix = _need("postfix")
        self.postmap = _need("postmap")
        self.sendmail_path = _need("sendmail")
        # its own folder, readable by the postfix user (pytest's tmp folders are 0700)
        self.root = Path(tempfile.mkdtemp(prefix="mailbridge-postfix-"))
        self.root.chmod(0o755)
        self.etc = self.root / "etc"
        self.port = port or free_port()
        self.gateway_port = gateway_port
        self.relay_domain = relay_domain
        self.local_domain = local_domain
        self.log = self.root / "postfix.log"
        self.mail_dir = self.root / "mail"
        self.started = False
        self.extra = extra or {}

    @property
    def env(self) -> dict[str, str]:
        """The environment that points sendmail, postqueue and mail at this instance."""
        return dict(os.environ, MAIL_CONFIG=str(self.etc))

    def write_config(self) -> None:
        root = self.root
        for sub in ("etc", "queue", "data", "mail"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        shutil.chown(root / "data", "postfix")
        nobody = 65534
        os.chown(self.mail_dir, nobody, nobody)
        (self.etc / "main.cf").write_text(
            "compatibility_level = 3.6\n"
            f"queue_directory = {root / 'queue'}\n"
            f"data_directory = {root / 'data'}\n"
            "myhostname = relay.example.com\n"
            f"myorigin = {self.local_domain}\n"
            "mydestination =\n"
            "inet_interfaces = 127.0.0.1\n"
            "inet_protocols = ipv4\n"
            "mynetworks = 127.0.0.0/8\n"
            "smtp_dns_support_level = disabled\n"
            "disable_dns_lookups = yes\n"
            "smtputf8_enable = no\n"
            "alias_maps =\n"
            "alias_database =\n"
            f"maillog_file_prefixes = {root}\n"
            f"maillog_file = {self.log}\n"
            # the recipe of docs/integrations.md: relay the SMS domain to the gateway
            f"relay_domains = {self.relay_domain}\n"
            f"transport_maps = hash:{self.etc / 'transport'}\n"
            # reply mails to the test's senders land in mbox files under mail/
            f"virtual_mailbox_domains = {self.local_domain}\n"
            f"virtual_mailbox_base = {self.mail_dir}\n"
            f"virtual_mailbox_maps = hash:{self.etc / 'mailboxes'}\n"
            f"virtual_uid_maps = static:{nobody}\n"
            f"virtual_gid_maps = static:{nobody}\n"
            + "".join(
                f"{k} = {v.format(gateway_port=self.gateway_port)}\n" for k, v in self.extra.items()
            )
        )
        users = ("ops", "root", "nagios", "zabbix")
        (self.etc / "mailboxes").write_text(
            "".join(f"{user}@{self.local_domain} {user}\n" for user in users)
        )
        subprocess.run([self.postmap, str(self.etc / "mailboxes")], check=True)
        (self.etc / "master.cf").write_text(MASTER_CF.format(listen=f"127.0.0.1:{self.port}"))
        (self.etc / "transport").write_text(
            f"{self.relay_domain}    smtp:[127.0.0.1]:{self.gateway_port}\n"
        )
        subprocess.run([self.postmap, str(self.etc / "transport")], check=True)

    def start(self) -> None:
        self.write_config()
        out = subprocess.run(
            [self.postfix, "-c", str(self.etc), "start"], capture_output=True, text=True
        )
        if out.returncode != 0:
            raise AssertionError(f"postfix start failed: {out.stderr}\n{self.log_text()}")
        self.started = True
        wait_until(self._listening, 15, "postfix smtpd")

    def _listening(self) -> bool:
        import socket

        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=1) as s,
        ):
            return s.recv(64).startswith(b"220")
        return False

    def stop(self) -> None:
        if self.started:
            subprocess.run([self.postfix, "-c", str(self.etc), "abort"], capture_output=True)
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def flush(self) -> None:
        """``postqueue -f``: try the deferred mail now."""
        subprocess.run(["postqueue", "-c", str(self.etc), "-f"], check=True, env=self.env)

    def sendmail_many(self, raws: list[bytes], *args: str) -> None:
        """Submit each of ``raws`` with ``sendmail ARGS``, 16 at a time."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda raw: self.sendmail(raw, *args), raws))

    def sendmail(self, raw: bytes, *args: str) -> None:
        """Pipe ``raw`` into ``sendmail ARGS`` (the way cron and scripts submit)."""
        out = subprocess.run(
            [self.sendmail_path, *args], input=raw, capture_output=True, env=self.env
        )
        assert out.returncode == 0, out.stderr

    def mail(self, body: str, *args: str) -> None:
        """bsd-mailx: ``mail ARGS`` with ``body`` on standard input."""
        mailx = _need("mail")
        out = subprocess.run([mailx, *args], input=body.encode(), capture_output=True, env=self.env)
        assert out.returncode == 0, out.stderr

    def shell(self, script: str) -> None:
        """A shell command line as a monitoring system would run it (``MAIL_CONFIG`` set)."""
        out = subprocess.run(["/bin/sh", "-c", script], capture_output=True, env=self.env)
        assert out.returncode == 0, out.stderr

    def mailbox(self, user: str) -> list[EmailMessage]:
        """The mails delivered to ``user@local_domain``."""
        path = self.mail_dir / user
        if not path.exists():
            return []
        box = mailbox.mbox(str(path), create=False)
        found: list[EmailMessage] = []
        try:
            for key in box.iterkeys():
                msg = message_from_bytes(box.get_bytes(key), policy=policy.default)
                assert isinstance(msg, EmailMessage)
                found.append(msg)
        finally:
            box.close()
        return found

    def delivered(self, status: str = "sent") -> list[str]:
        """Log lines of the gateway transport with that status."""
        return [
            line
            for line in self.log_text().splitlines()
            if f"relay=127.0.0.1[127.0.0.1]:{self.gateway_port}" in line
            and f"status={status}" in line
        ]


class Alertmanager:
    """Debian's ``prometheus-alertmanager`` on loopback, with the test's config."""

    def __init__(self, root: Path, config: str) -> None:
        self.binary = _need("prometheus-alertmanager")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config = root / "alertmanager.yml"
        self.config.write_text(config)
        self.log = root / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.config}",
                    f"--storage.path={self.root / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--cluster.listen-address=",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._ready, 20, "alertmanager /-/ready")

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"alertmanager exited: {self.log.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def post_alerts(self, alerts: list[dict[str, object]]) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 200

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
