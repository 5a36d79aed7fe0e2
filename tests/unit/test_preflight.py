"""``check-config`` fails where ``serve`` would: driver, storage folder, TLS files, PID file;
and the paths the gateway writes follow systemd's ``$STATE_DIRECTORY``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.cli import main
from mailbridge.core.config import load_config
from tests.tools import skip_unless_ci

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ROOT / "examples" / "production.toml"


def _check(cfg: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["check-config", "--config", str(cfg)])
    return code, capsys.readouterr().err


def test_postgresql_without_psycopg_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A postgresql:// URL with the driver missing: exit 1 naming the extra (was OK)."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg raises ImportError
    cfg = tmp_path / "c.toml"
    cfg.write_text('[storage]\nurl = "postgresql://mb@db.example.com/mb"\n')
    code, err = _check(cfg, capsys)
    assert code == 1
    assert "pip install 'mailbridge[postgres]'" in err


def test_postgresql_with_psycopg_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("psycopg")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[storage]\nurl = "postgresql://mb@db.example.com/mb"\n')
    assert _check(cfg, capsys)[0] == 0


def test_missing_tls_files_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tls_cert/tls_key that cannot be loaded: exit 1 (serve would not start; was OK)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('[smtp]\ntls_cert = "tls/cert.pem"\ntls_key = "tls/key.pem"\n')
    code, err = _check(cfg, capsys)
    assert code == 1
    assert f"cannot load {tmp_path}/tls/cert.pem" in err


def test_pid_file_in_a_file_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "run").write_text("a file, not a folder")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[daemon]\npid_file = "run/mb.pid"\n')
    code, err = _check(cfg, capsys)
    assert code == 1
    assert "daemon.pid_file" in err


# Loads the package as root, then drops to nobody before check-config runs: the checks
# (what this user may write) run as that user, while the checkout and its virtualenv need
# not be readable by nobody (CI may clone under a 0700 home).
_AS_NOBODY = """
import importlib, os, pkgutil, sys
import mailbridge
for found in pkgutil.walk_packages(mailbridge.__path__, "mailbridge."):
    if not found.name.endswith("__main__"):
        try:
            importlib.import_module(found.name)
        except ImportError:
            pass  # an optional extra (psycopg) missing: check-config reports it itself
from mailbridge.cli import main
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
sys.exit(main(sys.argv[1:]))
"""


def _as_nobody(cfg: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """check-config run as an unprivileged user, as systemd's DynamicUser runs it."""
    if os.geteuid() != 0:
        skip_unless_ci("running as another user needs root")
    return subprocess.run(
        [sys.executable, "-c", _AS_NOBODY, "check-config", "--config", str(cfg)],
        capture_output=True, text=True, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
    )  # fmt: skip


@pytest.fixture
def etc() -> Iterator[Path]:
    """A root-owned 0755 folder holding the config, like /etc/mailbridge (pytest's own tmp
    folders are 0700, which another user cannot enter)."""
    folder = Path(tempfile.mkdtemp(prefix="mailbridge-etc-"))
    folder.chmod(0o755)
    (folder / "config.toml").write_text('[storage]\nurl = "sqlite:///mailbridge.db"\n')
    (folder / "config.toml").chmod(0o644)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_dynamic_user_cannot_write_the_config_folder(etc: Path) -> None:
    """The unit's trap: a relative database under a root-owned config folder. check-config,
    run as that user, now says so (it said OK, and serve looped on restarts)."""
    result = _as_nobody(etc / "config.toml", {})
    assert result.returncode == 1, result.stdout
    assert f"{etc} is not writable by this user" in result.stderr


def test_state_directory_holds_the_database(etc: Path) -> None:
    """With systemd's $STATE_DIRECTORY, a relative database lands there, and passes."""
    state = etc / "state"
    state.mkdir()
    if os.geteuid() == 0:
        os.chown(state, 65534, 65534)  # systemd hands the StateDirectory to the service user
    result = _as_nobody(etc / "config.toml", {"STATE_DIRECTORY": str(state)})
    assert result.returncode == 0, result.stderr
    settings = load_config(etc / "config.toml", env={"STATE_DIRECTORY": f"{state}:/other"})
    assert settings.storage.url == f"sqlite:///{state}/mailbridge.db"


def test_production_example_resolves_to_var_lib() -> None:
    """The production example (what docs/install.md installs) keeps its database in the unit's
    StateDirectory, under systemd and from an operator's shell alike."""
    for env in ({}, {"STATE_DIRECTORY": "/var/lib/mailbridge"}):
        settings = load_config(PRODUCTION, env=env)
        assert settings.storage.url == "sqlite:////var/lib/mailbridge/mailbridge.db"
    unit = (ROOT / "systemd" / "mailbridge.service").read_text()
    assert "StateDirectory=mailbridge\n" in unit
