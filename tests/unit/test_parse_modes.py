"""``mailbridge parse FILE --from ADDR --rcpt ADDR…`` dry-runs every mode, as the gateway would
take the mail from that envelope."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.cli import main

CONFIG = """
[smtp]
domains = ["sms.example.com"]
[[accounts]]
login = "alex"
password = "pw"
senders = ["Alex"]
default_sender = "Alex"
[[forward]]
address = "oncall"
account = "alex"
to = ["+79991112233", "+79991234570"]
[number_addresses]
enabled = true
account = "alex"
[[providers]]
name = "file"
type = "file"
path = "outbox.jsonl"
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(CONFIG)
    mail = tmp_path / "alert.eml"
    mail.write_bytes(b"From: ops@example.com\r\nSubject: DiskFull\r\n\r\n/var at 97%\r\n")
    return cfg, mail


def _parse(cfg: Path, mail: Path, *extra: str) -> list[str]:
    return ["parse", str(mail), "--config", str(cfg), "--from", "ops@example.com", *extra]


def test_number_address(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, mail = files
    assert main(_parse(cfg, mail, "--rcpt", "+79991234567@sms.example.com")) == 0
    out = capsys.readouterr().out
    assert "mode:     number" in out
    assert "to:   +79991234567" in out
    assert "part 1: 'DiskFull: /var at 97%'" in out
    assert out.rstrip().endswith("answer:   OK - 1 SMS, ID - <assigned>")


def test_forward_alias(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, mail = files
    assert main(_parse(cfg, mail, "--rcpt", "oncall@sms.example.com")) == 0
    out = capsys.readouterr().out
    assert "mode:     forward" in out
    assert "to:   +79991112233" in out
    assert out.rstrip().endswith("answer:   OK - 2 SMS, ID - <assigned>")


def test_mix_counts_a_number_once(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, mail = files
    code = main(_parse(cfg, mail, "--rcpt", "oncall@sms.example.com",
                       "--rcpt", "+79991234570@sms.example.com"))  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert out.count("to:   +79991234570") == 1
    assert "mode:     forward" in out
    assert "mode:     number" not in out  # its one number came through the alias already
    assert out.rstrip().endswith("answer:   OK - 2 SMS, ID - <assigned>")


def test_refused_recipient(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A recipient the gateway would refuse at RCPT: that answer, exit 2."""
    cfg, mail = files
    assert main(_parse(cfg, mail, "--rcpt", "12@sms.example.com")) == 2
    out = capsys.readouterr().out
    assert "rcpt:     12@sms.example.com: 550 5.1.1" in out
    assert "invalid" in out
