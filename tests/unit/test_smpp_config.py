"""The [[providers]] keys of type smpp: defaults, checks naming the key, the factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.cli import main
from mailbridge.core.config import parse_config
from mailbridge.errors import ConfigError
from mailbridge.models import Format
from mailbridge.providers.factory import build_provider
from mailbridge.providers.smpp import SmppProvider

SECRET = "pw-12345"
BASE = {
    "name": '"s"',
    "type": '"smpp"',
    "host": '"smpp.example.com"',
    "system_id": '"client"',
    "password": f'"{SECRET[:8]}"',
}


def config(**keys: str | None) -> str:
    fields = {**BASE, **keys}
    lines = [f"{k} = {v}" for k, v in fields.items() if v is not None]
    return "[[providers]]\n" + "\n".join(lines) + "\n"


def test_defaults() -> None:
    """A minimal smpp provider: port 2775, transceiver, SMSC coding, window 10, receipts on."""
    [p] = parse_config(config()).providers
    assert p.smpp is not None
    s = p.smpp
    assert (s.host, s.port, s.tls, s.bind, s.data_coding) == (
        "smpp.example.com",
        2775,
        False,
        "transceiver",
        "smsc",
    )
    assert (s.window, s.connections, s.registered_delivery) == (10, 1, True)
    assert (s.source_ton, s.source_npi, s.dest_ton, s.dest_npi) == (None, None, 1, 1)
    assert (s.enquire_link_s, s.reconnect_min_s, s.reconnect_max_s) == (30.0, 1.0, 60.0)
    assert p.concurrency == 20  # 2 x window x connections
    assert p.password == SECRET[:8]


def test_every_key() -> None:
    """Each key reaches the settings."""
    [p] = parse_config(
        config(
            port="2776",
            tls="true",
            system_type='"ISO"',
            bind='"transmitter+receiver"',
            data_coding='"standard"',
            source_ton="1",
            source_npi="1",
            dest_ton="0",
            dest_npi="0",
            window="50",
            connections="2",
            enquire_link_s="15",
            reconnect_min_s="0.5",
            reconnect_max_s="30",
            registered_delivery="false",
            concurrency="7",
        )
    ).providers
    s = p.smpp
    assert s is not None
    assert (s.port, s.tls, s.system_type, s.bind, s.data_coding) == (
        2776,
        True,
        "ISO",
        "transmitter+receiver",
        "standard",
    )
    assert (s.source_ton, s.source_npi, s.dest_ton, s.dest_npi) == (1, 1, 0, 0)
    assert (s.window, s.connections, s.enquire_link_s) == (50, 2, 15.0)
    assert (s.reconnect_min_s, s.reconnect_max_s, s.registered_delivery) == (0.5, 30.0, False)
    assert p.concurrency == 7


@pytest.mark.parametrize(
    ("keys", "key"),
    [
        ({"host": None}, "providers.s.host"),
        ({"host": '"smsc.example.com:2775"'}, "providers.s.host"),
        ({"system_id": None}, "providers.s.system_id"),
        ({"system_id": '"a-very-long-system-id"'}, "providers.s.system_id"),
        ({"password": f'"{SECRET}-too-long"'}, "providers.s.password"),
        ({"system_type": '"way too long type"'}, "providers.s.system_type"),
        ({"bind": '"receiver"'}, "providers.s.bind"),
        ({"data_coding": '"ucs2"'}, "providers.s.data_coding"),
        ({"port": "0"}, "providers.s.port"),
        ({"window": "0"}, "providers.s.window"),
        ({"connections": "17"}, "providers.s.connections"),
        ({"source_ton": "9"}, "providers.s.source_ton"),
        ({"source_npi": "2"}, "providers.s.source_npi"),
        ({"enquire_link_s": "0"}, "providers.s.enquire_link_s"),
        ({"reconnect_min_s": "5", "reconnect_max_s": "1"}, "providers.s.reconnect_max_s"),
        ({"tls": '"yes"'}, "providers.s.tls"),
        ({"url": '"https://x.example.com/"'}, "providers.s.url"),
        ({"username": '"u"'}, "providers.s.username"),
        ({"formats": "[0, 2]"}, "providers.s.formats[1]"),
    ],
)
def test_errors_name_the_key(keys: dict[str, str | None], key: str) -> None:
    """A bad smpp key stops with a ConfigError naming it; the password is never quoted."""
    with pytest.raises(ConfigError) as info:
        parse_config(config(**keys))
    assert info.value.key == key
    assert SECRET not in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("key", ['host = "h"', "window = 5", 'system_id = "x"'])
def test_other_types_refuse_smpp_keys(key: str) -> None:
    """An smpp-only key on another type is an error naming it."""
    text = f'[[providers]]\nname = "m"\ntype = "miatel"\nurl = "https://m.example.com/"\n{key}\n'
    with pytest.raises(ConfigError, match=r"providers\.m\..*not used by type miatel"):
        parse_config(text)


def test_check_config_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config prints one line naming the bad smpp key, exit 1."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(config(bind='"both"'))
    assert main(["check-config", "--config", str(cfg)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "providers.s.bind" in lines[0]


async def test_factory_builds_smpp() -> None:
    """The factory builds an SmppProvider carrying formats 0 and 1 (narrowed by formats)."""
    [p] = parse_config(config(port="1")).providers
    provider = build_provider(p)
    try:
        assert isinstance(provider, SmppProvider)
        assert provider.formats == {Format.SMS, Format.FLASH}
        assert provider.max_batch == 1
    finally:
        await provider.aclose()
    [q] = parse_config(config(port="1", formats="[1]")).providers
    narrowed = build_provider(q)
    try:
        assert narrowed.formats == {Format.FLASH}
    finally:
        await narrowed.aclose()
