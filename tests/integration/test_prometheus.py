"""A real Prometheus scrapes a real gateway; promtool checks the alert rules of the docs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.integration.conftest import ROOT, DaemonFactory, command, free_port
from tests.integration.test_http import HTTP, TEXT, wait_until_sent
from tests.tools import skip_unless_ci

RULES = ROOT / "docs" / "mailbridge-alerts.yml"
RULE_TESTS = ROOT / "tests" / "data" / "mailbridge-alerts.test.yml"


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        skip_unless_ci(f"{name} is not installed (Debian package prometheus)")
    return found


def test_promtool_checks_the_alert_rules() -> None:
    """`promtool check rules` accepts the rules file docs/monitoring.md ships."""
    proc = subprocess.run(
        [tool("promtool"), "check", "rules", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    found = int(proc.stdout.split("SUCCESS: ")[1].split()[0])
    assert found >= 6  # queue age, failures, provider down, no mail, not scraped, not ready


def test_promtool_unit_tests_of_the_rules() -> None:
    """`promtool test rules`: each alert fires on the series that should fire it, and only then."""
    proc = subprocess.run(
        [tool("promtool"), "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=RULE_TESTS.parent,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


@pytest.mark.slow
async def test_a_real_prometheus_scrapes_the_gateway(
    start_daemon: DaemonFactory, tmp_path: Path
) -> None:
    """Prometheus scrapes /metrics every second; its API returns mailbridge_ series after."""
    prometheus = tool("prometheus")
    daemon = await start_daemon(HTTP)
    code, _ = await daemon.send(command(phones="+79991234567", mes=TEXT, id="77"))
    assert code == 250
    await wait_until_sent(daemon, "77")
    host, port = daemon.gateway.http_addresses[0]
    prom_port = free_port()
    rules = tmp_path / "rules.yml"
    rules.write_text(RULES.read_text())
    config = tmp_path / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "scrape_configs": [
                    {
                        "job_name": "mailbridge",
                        "static_configs": [{"targets": [f"{host}:{port}"]}],
                    }
                ],
            }
        )
    )
    log_path = tmp_path / "prometheus.log"
    proc = await asyncio.create_subprocess_exec(
        prometheus,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    output = bytearray()

    async def drain() -> None:
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65536):
            output.extend(chunk)

    reader = asyncio.create_task(drain())

    def tail() -> str:
        return output.decode(errors="replace")[-2000:]

    api = f"http://127.0.0.1:{prom_port}/api/v1"
    try:
        result: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline and not result:
                assert proc.returncode is None, tail()
                with contextlib.suppress(aiohttp.ClientError):
                    query = 'mailbridge_mails_total{mode="command",result="ok"}'
                    async with session.get(f"{api}/query", params={"query": query}) as resp:
                        if resp.status == 200:
                            result = (await resp.json())["data"]["result"]
                if not result:
                    await asyncio.sleep(0.5)
            assert result, tail()
            assert result[0]["value"][1] == "1"  # type: ignore[index]
            async with session.get(f"{api}/query", params={"query": "up"}) as resp:
                up = (await resp.json())["data"]["result"]
            assert up[0]["value"][1] == "1"
            async with session.get(f"{api}/rules") as resp:
                groups = (await resp.json())["data"]["groups"]
            loaded = [r for g in groups for r in g["rules"]]
            assert len(loaded) >= 6
            assert all(r["health"] in ("ok", "unknown") for r in loaded), loaded
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await reader
        await asyncio.to_thread(log_path.write_bytes, bytes(output))
