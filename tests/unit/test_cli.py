"""The ``mailbridge`` command line: check-config, hash-password, parse."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from mailbridge.cli import main
from mailbridge.core.passwords import verify_password

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "config.example.toml"
HELLO = ROOT / "examples" / "hello.eml"


def _mail(body: str) -> bytes:
    return (
        "From: ops@example.com\r\nTo: send@localhost\r\nSubject: t\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
    ).encode()


class TestCheckConfig:
    def test_example_config_is_ok(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The shipped example passes, with its warnings on stderr."""
        assert main(["check-config", "--config", str(EXAMPLE_CONFIG)]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("OK: ")
        assert "plain text" in err  # the warning about the demo account's plain password

    def test_bad_key_is_one_line_naming_it(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An unknown key stops with one line that names it, exit 1."""
        cfg = tmp_path / "c.toml"
        cfg.write_text('[smtp]\nlisten = ["127.0.0.1:2525"]\nlistn = 1\n')
        assert main(["check-config", "--config", str(cfg)]) == 1
        _, err = capsys.readouterr()
        assert len(err.strip().splitlines()) == 1
        assert "smtp.listn" in err

    def test_pattern_not_run_is_named(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A deny_text pattern the linear-time engine cannot run is named, with its index."""
        cfg = tmp_path / "c.toml"
        cfg.write_text(
            "[[accounts]]\nlogin = 'a'\npassword = 'x'\n"
            "deny_text = ['(?i)casino', '(a+)+$', '(x)\\1']\n"
        )
        assert main(["check-config", "--config", str(cfg)]) == 1
        _, err = capsys.readouterr()
        assert len(err.strip().splitlines()) == 1
        assert "accounts[0].deny_text[2]" in err
        assert "'(x)\\\\1'" in err
        assert "linear time" in err

    def test_catastrophic_pattern_is_accepted(self, tmp_path: Path) -> None:
        """(a+)+$ is run in linear time, so check-config accepts it."""
        cfg = tmp_path / "c.toml"
        cfg.write_text("[[accounts]]\nlogin = 'a'\npassword = 'x'\ndeny_text = ['(a+)+$']\n")
        assert main(["check-config", "--config", str(cfg)]) == 0

    def test_config_from_environment(self, tmp_path: Path) -> None:
        """Without --config, $MAILBRIDGE_CONFIG names the file."""
        cfg = tmp_path / "c.toml"
        cfg.write_text("[smtp]\nbogus = 1\n")
        result = subprocess.run(
            [sys.executable, "-m", "mailbridge.cli", "check-config"],
            capture_output=True,
            text=True,
            env={"MAILBRIDGE_CONFIG": str(cfg), "PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert result.returncode == 1
        assert "smtp.bogus" in result.stderr


class TestHashPassword:
    def test_stdin_hash_verifies(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The printed hash verifies the password read from stdin, and nothing else."""
        monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret pass\n"))
        assert main(["hash-password", "--stdin"]) == 0
        hashed = capsys.readouterr().out.strip()
        assert "s3cret" not in hashed
        assert verify_password("s3cret pass", hashed)
        assert not verify_password("s3cret", hashed)

    def test_empty_password_refused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """An empty password prints no hash and exits 1."""
        monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
        assert main(["hash-password", "--stdin"]) == 1


class TestParse:
    def test_example_mail(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The README's dry run: KOI8-R, transliterated, one part, OK."""
        assert main(["parse", str(HELLO), "--config", str(EXAMPLE_CONFIG)]) == 0
        out = capsys.readouterr().out
        assert "charset:  koi8-r" in out
        assert "to:   +79991234567" in out
        assert "Privet iz mailbridge!" in out
        assert out.rstrip().endswith("answer:   OK - 1 SMS, ID - <assigned>")

    def test_literal_escapes_in_subject(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An encoded word, 8-bit text and a literal \\ud83d in the Subject: no traceback."""
        mail = tmp_path / "m.eml"
        subject = "=?utf-8?q?caf=C3=A9?= привет \\ud83d\\ude00 \\U0001F600"
        mail.write_bytes(
            f"From: ops@example.com\r\nTo: send@localhost\r\nSubject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "demo:demo::::+79991234567:hi\r\n".encode()
        )
        assert main(["parse", str(mail), "--config", str(EXAMPLE_CONFIG)]) == 0
        out = capsys.readouterr().out
        assert "OK - 1 SMS" in out
        out.encode("utf-8")

    def test_wrong_password(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A bad password is ERROR = 2, exit 2, and the password is not echoed."""
        mail = tmp_path / "m.eml"
        mail.write_bytes(_mail("demo:wrongpw::::+79991234567:hi"))
        assert main(["parse", str(mail), "--config", str(EXAMPLE_CONFIG)]) == 2
        out = capsys.readouterr().out
        assert "answer:   ERROR = 2 (Invalid login or password)" in out
        assert "wrongpw" not in out

    def test_client_id_in_error_with_id(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An error that carries the ID quotes the client's id."""
        mail = tmp_path / "m.eml"
        mail.write_bytes(_mail("demo:demo:77:::12:hi"))
        assert main(["parse", str(mail), "--config", str(EXAMPLE_CONFIG)]) == 2
        assert "ERROR = 7 (Invalid phone number format), ID - 77" in capsys.readouterr().out

    def test_without_config(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With no config file at all, account checks are skipped and it says so."""
        monkeypatch.setenv("MAILBRIDGE_CONFIG", str(tmp_path / "absent.toml"))
        mail = tmp_path / "m.eml"
        mail.write_bytes(_mail("anyone:any:5:::+79991234567,89161234567:hello"))
        assert main(["parse", str(mail)]) == 0
        out = capsys.readouterr().out
        assert "account checks skipped" in out
        assert "answer:   OK - 2 SMS, ID - 5" in out
