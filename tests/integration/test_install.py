"""docs/install.md, run: a wheel built from the tree, a fresh virtualenv laid out as
``/opt/mailbridge``, ``mailbridge check-config`` on the shipped configs, storage opened from
the installed package (its SQL files are in the wheel), and the unit's paths matching."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT

UNIT = ROOT / "systemd" / "mailbridge.service"
INSTALL = ROOT / "docs" / "install.md"


def _run(*argv: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, cwd=cwd, timeout=600
    )


def test_wheel_into_a_fresh_virtualenv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, ROOT)
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("mailbridge-*.whl")

    venv = tmp_path / "opt" / "mailbridge"  # the layout of /opt/mailbridge
    assert _run(sys.executable, "-m", "venv", venv).returncode == 0
    installed = _run(venv / "bin" / "pip", "install", "-q", wheel)
    assert installed.returncode == 0, installed.stderr
    exe = venv / "bin" / "mailbridge"

    version = _run(exe, "--version")
    assert version.stdout.strip() == "mailbridge 0.1.0"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(r"^## \[0\.1\.0\] - \d{4}-\d{2}-\d{2}$", changelog, re.M)

    for config in (ROOT / "config.example.toml", ROOT / "examples" / "production.toml"):
        checked = _run(exe, "check-config", "--config", config, cwd=tmp_path)
        assert checked.returncode == 0, (config, checked.stderr)
        assert checked.stdout.startswith("OK: ")

    # the installed package opens storage (schema from the SQL files shipped in the wheel)
    config = tmp_path / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text(f'[storage]\nurl = "sqlite:///{tmp_path}/state/mailbridge.db"\n')
    listed = _run(exe, "queue", "list", "--config", config, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert (tmp_path / "state" / "mailbridge.db").exists()


def test_unit_and_install_doc_agree() -> None:
    """The unit runs the virtualenv install.md makes, on the config it installs, with the
    database in its StateDirectory and the config's group joined."""
    unit = UNIT.read_text()
    doc = INSTALL.read_text()
    assert "python3 -m venv /opt/mailbridge" in doc
    for line in ("ExecStartPre=/opt/mailbridge/bin/mailbridge check-config --config "
                 "/etc/mailbridge/config.toml",
                 "ExecStart=/opt/mailbridge/bin/mailbridge serve --config "
                 "/etc/mailbridge/config.toml",
                 "ExecReload=/bin/kill -HUP $MAINPID",
                 "StateDirectory=mailbridge",
                 "SupplementaryGroups=mailbridge"):  # fmt: skip
        assert line in unit, line
    assert "-o root -g mailbridge examples/production.toml /etc/mailbridge/config.toml" in doc
    assert "groupadd --system mailbridge" in doc
