"""The README's commands, run as written after ``make run`` in another terminal.

A fresh folder stands for the clone: ``config.example.toml`` and ``examples/`` copied,
``.venv`` a link to the environment running the tests. ``mailbridge serve --config
config.example.toml`` runs there (what ``make run`` does), then every command of the
README's "Try it" section is run in one shell, in order, exactly as the README writes it
(only the port 2525 is swapped for a free one, so that parallel runs do not collide).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tools import skip_unless_ci

from .conftest import ROOT, free_port

README = ROOT / "README.md"


def readme_commands() -> list[str]:
    """The indented command lines of the README's "Try it" section, continuations joined."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("In another terminal") : text.index("## The command line")]
    commands: list[str] = []
    pending = ""
    for line in section.splitlines():
        if not line.startswith("    "):
            continue
        body = line.strip()
        if body.endswith("\\"):
            pending += body[:-1].rstrip() + " "
            continue
        commands.append(pending + body)
        pending = ""
    return commands


def test_readme_lists_the_commands_this_test_runs() -> None:
    """The commands the issue names are in the README, written the way the test runs them."""
    commands = readme_commands()
    assert commands[0].startswith("export PATH=")
    assert "mailbridge queue show 1" in commands
    assert 'kill -HUP "$(cat var/mailbridge.pid)"' in commands
    assert "mailbridge parse examples/hello.eml" in commands
    assert not any("pkill" in c for c in commands)
    assert any("--to 79991234568@localhost" in c for c in commands)
    assert any("--data @examples/hello.eml" in c for c in commands)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    folder = tmp_path / "mailbridge"
    folder.mkdir()
    shutil.copy(ROOT / "config.example.toml", folder / "config.example.toml")
    shutil.copytree(ROOT / "examples", folder / "examples")
    venv = Path(sys.prefix)
    if not (venv / "bin" / "mailbridge").exists():
        skip_unless_ci("tests are not running in the project's virtualenv (make test makes one)")
    (folder / ".venv").symlink_to(venv)
    return folder


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(64).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the gateway did not start")


def test_readme_try_it_commands_work_as_written(clone: Path) -> None:
    if shutil.which("swaks") is None:
        skip_unless_ci("swaks is not installed")
    port = free_port()
    config = clone / "config.example.toml"
    config.write_text(config.read_text().replace("127.0.0.1:2525", f"127.0.0.1:{port}"))
    log = clone / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in {"MAILBRIDGE_CONFIG", "NOTIFY_SOCKET"}}
    with log.open("wb") as out:
        serve = subprocess.Popen(
            [str(clone / ".venv" / "bin" / "mailbridge"), "serve", "--config",
             "config.example.toml"],
            cwd=clone, stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        _wait_listening(port, serve, log)
        pid_file = clone / "var" / "mailbridge.pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_file.read_text().strip() == str(serve.pid)

        script = ""
        for i, command in enumerate(readme_commands()):
            command = command.replace("127.0.0.1:2525", f"127.0.0.1:{port}")
            # at a person's pace: the SMS is delivered a moment after the 250
            script += f"echo '@@@ {i}'\n{command}\necho \"@@@ rc=$?\"\nsleep 0.5\n"
        result = subprocess.run(
            ["bash", "-c", script], cwd=clone, env=env, capture_output=True, text=True,
            errors="replace",
            timeout=120,
        )  # fmt: skip
        blocks = re.split(r"^@@@ \d+\n", result.stdout, flags=re.M)[1:]
        commands = readme_commands()
        assert len(blocks) == len(commands), result.stdout + result.stderr
        outputs = dict(zip(commands, blocks, strict=True))
        for command, output in outputs.items():
            assert output.rstrip().endswith("@@@ rc=0"), (command, output, result.stderr)

        sms = next(o for c, o in outputs.items() if "Hello from mailbridge" in c)
        assert "<-  250 2.0.0 OK - 1 SMS, ID - 1" in sms
        assert '"text": "Hello from mailbridge"' in outputs["tail -n1 var/outbox.jsonl"]
        shown = outputs["mailbridge queue show 1"]
        assert "+79991234567" in shown
        number = next(o for c, o in outputs.items() if "79991234568@localhost" in c)
        assert "<-  250 2.0.0 OK - 1 SMS, ID - 2" in number
        assert "answer:   OK - 1 SMS" in outputs["mailbridge parse examples/hello.eml"]
        deadline = time.monotonic() + 10
        while "reloaded" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "reloaded" in log.read_text()
        assert serve.poll() is None  # SIGHUP reloaded, did not kill
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            serve.wait(20)
    assert serve.returncode == 0
    assert not (clone / "var" / "mailbridge.pid").exists()  # removed at exit
