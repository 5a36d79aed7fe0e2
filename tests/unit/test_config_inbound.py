"""The ``[inbound]`` section and the ``smsc`` status poll key of the config."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mailbridge.core.config import SCHEMA, parse_config
from mailbridge.errors import ConfigError
from mailbridge.settings import InboundSettings, Settings

BASE = Path("/srv/mb")

SMSC = """
[[providers]]
name = "smsc"
type = "smsc"
url = "https://smsc.example.com/sys/send.php"
username = "u"
password = "p"
"""


def parse(text: str) -> Settings:
    """parse_config with a fixed base folder."""
    return parse_config(text, source="test.toml", base_dir=BASE)


class TestInbound:
    def test_defaults(self) -> None:
        """Without [inbound]: a day's window, no fallback address (SMS kept)."""
        s = parse("")
        assert s.inbound == InboundSettings()
        assert s.inbound.reply_window_s == 86400.0
        assert s.inbound.mail_to is None

    def test_values(self) -> None:
        """Both keys are read; an integer window is taken as seconds."""
        s = parse('[inbound]\nreply_window_s = 3600\nmail_to = " noc@example.com "\n')
        assert s.inbound == InboundSettings(reply_window_s=3600.0, mail_to="noc@example.com")

    def test_zero_window_allowed(self) -> None:
        """0 turns the request match off."""
        assert parse("[inbound]\nreply_window_s = 0\n").inbound.reply_window_s == 0.0

    @pytest.mark.parametrize(
        ("text", "key"),
        [
            ("[inbound]\nreply_window_s = -1\n", "inbound.reply_window_s"),
            ("[inbound]\nreply_window_s = 'day'\n", "inbound.reply_window_s"),
            ("[inbound]\nmail_to = 'noc'\n", "inbound.mail_to"),
            ("[inbound]\nmail_to = 'a b@example.com'\n", "inbound.mail_to"),
            ("[inbound]\nwindow = 10\n", "inbound.window"),
            ("inbound = 1\n", "inbound"),
        ],
    )
    def test_bad_values_name_the_key(self, text: str, key: str) -> None:
        """A bad [inbound] value is a ConfigError naming its key."""
        with pytest.raises(ConfigError) as info:
            parse(text)
        assert info.value.key == key

    def test_schema_defaults_match_settings(self) -> None:
        """The documented defaults are the dataclass defaults."""
        defaults = {f.name: f.default for f in dataclasses.fields(InboundSettings)}
        assert SCHEMA["inbound"]["reply_window_s"].default == defaults["reply_window_s"]
        assert SCHEMA["inbound"]["mail_to"].default is defaults["mail_to"]


class TestStatusPoll:
    def test_smsc_default_and_value(self) -> None:
        """smsc polls every 60 s unless told; 0 turns it off."""
        assert parse(SMSC).providers[0].status_poll_s == 60.0
        assert parse(SMSC + "status_poll_s = 0\n").providers[0].status_poll_s == 0.0
        assert parse(SMSC + "status_poll_s = 5.5\n").providers[0].status_poll_s == 5.5

    def test_negative_refused(self) -> None:
        """A negative interval names the key."""
        with pytest.raises(ConfigError) as info:
            parse(SMSC + "status_poll_s = -1\n")
        assert info.value.key == "providers.smsc.status_poll_s"

    @pytest.mark.parametrize("ptype", ["miatel", "jsonapi"])
    def test_other_http_types_refuse_it(self, ptype: str) -> None:
        """Types whose wire format documents no status query refuse the key."""
        text = (
            f'[[providers]]\nname = "x"\ntype = "{ptype}"\nurl = "https://h.example.com/s"\n'
            "status_poll_s = 30\n"
        )
        with pytest.raises(ConfigError, match="not used by type") as info:
            parse(text)
        assert info.value.key == "providers.x.status_poll_s"
