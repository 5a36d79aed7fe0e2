"""The status page in a real headless Chromium, and `mailbridge status` / `queue` beside it.

Set ``MAILBRIDGE_SCREENSHOT=path.png`` to keep the screenshot the test makes
(docs/status-page.png is made that way).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.browser import Browser
from tests.integration.conftest import ROOT, Daemon, DaemonFactory, command, to_toml
from tests.integration.test_http import HTTP, TEXT, base_url, get, wait_until_sent

pytestmark = pytest.mark.slow


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("MAILBRIDGE_HTTP_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "mailbridge.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def queue_totals(config: Path) -> Counter[str]:
    """SMS by state, summed over the STATES column of `mailbridge queue list`."""
    proc = cli("queue", "list", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    totals: Counter[str] = Counter()
    for state, n in re.findall(r"\b([a-z]+)=(\d+)\b", proc.stdout):
        totals[state] += int(n)
    return totals


async def populate(daemon: Daemon) -> None:
    """Sent SMS, a scheduled one, an error, a refusal."""
    for i, phones in enumerate(("+79991234567", "+79990000001,+79990000002", "+79161234567")):
        code, _ = await daemon.send(command(phones=phones, mes=TEXT, id=f"10{i}"))
        assert code == 250
        await wait_until_sent(daemon, f"10{i}")
    code, _ = await daemon.send(command(phones="+79991234567", mes=TEXT, id="200", time="+600"))
    assert code == 250
    await daemon.send(command(phones="12", mes=TEXT, id="201"))
    await daemon.send(command(mes=TEXT), rcpts=("nobody@elsewhere.test",))


async def test_status_page_in_chromium(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    """The page renders without console errors; its SMS figures are those of `queue`."""
    daemon = await start_daemon(HTTP)
    await populate(daemon)
    config = tmp_path / "config.toml"
    config.write_text(to_toml(daemon.doc))
    expected = await asyncio.to_thread(queue_totals, config)
    assert expected["sent"] == 4
    assert expected["scheduled"] == 1

    browser = Browser(tmp_path / "profile")
    try:
        await browser.start()
        await browser.open(base_url(daemon) + "/")
        assert browser.console_errors() == []
        title = await browser.evaluate("document.title")
        assert title == "mailbridge status"
        shown = await browser.evaluate(
            "Object.fromEntries([...document.querySelectorAll('[id^=state-]')]"
            ".map(e => [e.id.slice(6), Number(e.querySelector('b').textContent)]))"
        )
        for state, n in shown.items():
            assert n == expected.get(state, 0), (state, shown, expected)
        assert sum(shown.values()) == sum(expected.values())
        rows = await browser.evaluate(
            "[...document.querySelectorAll('table.requests tr')].slice(1)"
            ".map(r => r.cells[0].textContent)"
        )
        assert rows[:2] == ["201", "200"]
        body = await browser.evaluate("document.body.innerText")
        assert TEXT not in body
        assert "+79991234567" not in body
        assert "+799******67" in body
        assert "ERROR = 7" in body
        assert "RCPT 550" in body
        assert await browser.evaluate("document.scripts.length") == 0  # nothing needs JS
        refresh = await browser.evaluate(
            "document.querySelector('meta[http-equiv=refresh]').content"
        )
        assert int(refresh) > 0
        # a phone's width: no horizontal scrolling of the page itself
        await browser.send(
            "Emulation.setDeviceMetricsOverride", width=390, height=844, deviceScaleFactor=1,
            mobile=True,
        )  # fmt: skip
        await browser.open(base_url(daemon) + "/")
        assert browser.console_errors() == []
        overflow = await browser.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        shot = Path(os.environ.get("MAILBRIDGE_SCREENSHOT", tmp_path / "status.png"))
        await browser.send("Emulation.clearDeviceMetricsOverride")
        await browser.open(base_url(daemon) + "/")
        await browser.screenshot(shot, width=1100, height=820, mobile=False)
        head = await asyncio.to_thread(shot.read_bytes)
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        await browser.close()


async def test_status_command_matches_queue(start_daemon: DaemonFactory, tmp_path: Path) -> None:
    """`mailbridge status --json` (from the daemon, and from storage alone) agrees with `queue`."""
    daemon = await start_daemon(HTTP)
    await populate(daemon)
    host, port = daemon.gateway.http_addresses[0]
    doc = dict(daemon.doc, http={"listen": [f"{host}:{port}"]})
    config = tmp_path / "config.toml"
    config.write_text(to_toml(doc))
    expected = await asyncio.to_thread(queue_totals, config)

    proc = await asyncio.to_thread(cli, "status", "--json", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["source"] == "daemon"
    assert report["providers"][0]["breaker"] == "closed"
    by_state = report["queue"]["sms_by_state"]
    assert {k: v for k, v in by_state.items() if v} == dict(expected)

    offline = dict(daemon.doc)  # no [http]: from storage alone
    config.write_text(to_toml(offline))
    proc = await asyncio.to_thread(cli, "status", "--config", str(config))
    assert proc.returncode == 0, proc.stderr
    assert f"sent={expected['sent']}" in proc.stdout
    assert "scheduled=1" in proc.stdout
    assert "breaker unknown" in proc.stdout
    assert TEXT not in proc.stdout
    assert "+79991234567" not in proc.stdout
    _, page_json, _ = await get(daemon, "/status.json")
    assert json.loads(page_json)["queue"]["sms_by_state"] == by_state
