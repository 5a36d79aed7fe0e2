"""Tests of mailbridge.core.config: TOML into Settings, and the errors that name the key."""

from __future__ import annotations

import dataclasses
import re
from ipaddress import ip_network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailbridge.core.config import (
    DEFAULT_CONFIG_PATH,
    SCHEMA,
    config_warnings,
    load_config,
    parse_config,
    resolve_config_path,
)
from mailbridge.core.passwords import DUMMY_HASH
from mailbridge.errors import ConfigError
from mailbridge.models import Format
from mailbridge.settings import (
    DeliverySettings,
    LimitsSettings,
    LoggingSettings,
    ProviderSettings,
    ReplySettings,
    RoutingSettings,
    Settings,
    SmppSettings,
    SmtpSettings,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = Path("/srv/mb")

ACCOUNT = """
[[accounts]]
login = "alex"
password_hash = "plain:pw"
senders = ["Alex", "Ops"]
default_sender = "Alex"
groups = { 1 = ["+7 999 000 00 01"] }
"""

PROVIDER = """
[[providers]]
name = "main"
type = "miatel"
url = "https://sms.example.com/send"
username = "client"
password = "provider-secret"
"""


def parse(text: str) -> Settings:
    """parse_config with a fixed base folder."""
    return parse_config(text, source="test.toml", base_dir=BASE)


class TestExample:
    def test_example_loads(self) -> None:
        """config.example.toml loads without error."""
        s = load_config(ROOT / "config.example.toml")
        assert s.smtp.listen == ("127.0.0.1:2525",)
        assert s.storage.url == f"sqlite:///{ROOT}/var/mailbridge.db"
        assert [p.type for p in s.providers] == ["file"]
        assert s.providers[0].path == str(ROOT / "var" / "outbox.jsonl")
        assert s.routing.default == ("file",)
        assert s.reply.smarthost is None
        assert s.number_addresses.enabled  # the README sends to 79991234568@localhost
        assert s.number_addresses.account == "demo"
        assert s.daemon.pid_file == str(ROOT / "var" / "mailbridge.pid")
        demo = s.account("demo")
        assert demo is not None
        assert demo.password_hash == "plain:demo"
        assert demo.senders == ("mailbridge",)
        assert demo.default_sender == "mailbridge"

    def test_example_names_every_key(self) -> None:
        """Every key the loader accepts is shown (maybe commented) in config.example.toml."""
        text = (ROOT / "config.example.toml").read_text()
        for section, keys in SCHEMA.items():
            for key in keys:
                pattern = rf"(?m)^[#\s]*{re.escape(key)} =|[{{,]\s*{re.escape(key)} ="
                assert re.search(pattern, text), f"{section}.{key} not in config.example.toml"

    def test_docs_name_every_key(self) -> None:
        """Every key the loader accepts has a row in its section of docs/configuration.md."""
        doc = (ROOT / "docs" / "configuration.md").read_text()
        headings = {
            "smtp": "## `[smtp]`",
            "storage": "## `[storage]`",
            "delivery": "## `[delivery]`",
            "reply": "## `[reply]`",
            "limits": "## `[limits]`",
            "accounts": "## `[[accounts]]`",
            "forward": "## `[[forward]]`",
            "number_addresses": "## `[number_addresses]`",
            "providers": "## `[[providers]]`",
            "routing": "## `[routing]`",
            "routing.rules": "## `[routing]`",
            "logging": "## `[logging]`",
            "http": "## `[http]`",
            "daemon": "## `[daemon]`",
            "inbound": "## `[inbound]`",
        }
        assert set(headings) == set(SCHEMA)
        for section, keys in SCHEMA.items():
            start = doc.index(headings[section])
            end = doc.find("\n## ", start + 1)
            body = doc[start : end if end != -1 else len(doc)]
            for key in keys:
                assert f"| `{key}` |" in body, f"{section}.{key} not documented"


class TestDefaults:
    def test_empty_config(self) -> None:
        """An empty file gives the embedded defaults and the built-in file provider."""
        s = parse_config("", base_dir=BASE)
        assert s.smtp == SmtpSettings()
        assert s.storage.url == "sqlite:////srv/mb/mailbridge.db"
        assert s.providers == (
            ProviderSettings(name="file", type="file", path="/srv/mb/outbox.jsonl"),
        )
        assert s.routing.default == ("file",)
        assert s.accounts == ()
        assert s.source == "<string>"

    @pytest.mark.parametrize(
        ("section", "cls", "renames"),
        [
            ("smtp", SmtpSettings, {}),
            ("delivery", DeliverySettings, {}),
            ("reply", ReplySettings, {"from": "from_address"}),
            ("limits", LimitsSettings, {}),
            ("routing", RoutingSettings, {}),
            ("logging", LoggingSettings, {}),
        ],
    )
    def test_schema_defaults_match_settings(
        self, section: str, cls: type, renames: dict[str, str]
    ) -> None:
        """Scalar defaults in SCHEMA are the defaults of the settings dataclasses."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for key, spec in SCHEMA[section].items():
            if spec.kind in ("str", "int", "float", "bool") and spec.default is not None:
                name = renames.get(key, key)
                if key == "from":
                    continue  # documented as mailbridge@<hostname>
                assert defaults[name] == spec.default, f"{section}.{key}"

    def test_provider_defaults_match(self) -> None:
        """Scalar provider defaults in SCHEMA are those of ProviderSettings."""
        defaults = {f.name: f.default for f in dataclasses.fields(ProviderSettings)}
        missing = dataclasses.MISSING
        for f in dataclasses.fields(SmppSettings):  # the keys of type smpp
            defaults[f.name] = None if f.default is missing else f.default
        for key, spec in SCHEMA["providers"].items():
            if spec.kind in ("str", "int", "float", "bool") and not spec.required:
                assert defaults[key] == spec.default, key

    def test_providers_without_default_route(self) -> None:
        """With providers and no routing.default, every provider in order is the default."""
        text = PROVIDER + '[[providers]]\nname = "out"\ntype = "file"\npath = "o.jsonl"\n'
        s = parse_config(text, base_dir=BASE)
        assert s.routing.default == ("main", "out")
        assert s.providers[1].path == "/srv/mb/o.jsonl"

    def test_domains_follow_hostname(self) -> None:
        """Without domains, the hostname is the one domain; reply.from uses it too."""
        s = parse_config('[smtp]\nhostname = "SMS.Example.com"\n')
        assert s.smtp.domains == ("sms.example.com",)
        assert s.reply.from_address == "mailbridge@sms.example.com"


class TestValues:
    def test_full_account(self) -> None:
        """An account is read into Account, groups keyed by int, spaces dropped."""
        text = ACCOUNT.replace(
            'default_sender = "Alex"',
            'default_sender = "Alex"\nallowed_ips = ["10.0.0.1/24", "::1"]\ntz = -2\n'
            'balance = 0\ndeny_text = ["(?i)casino"]\nblacklist = [" +7 999 000 00 99 "]',
        )
        s = parse(text)
        acc = s.accounts[0]
        assert acc.login == "alex"
        assert acc.password_hash == "plain:pw"
        assert acc.groups == {1: ("+79990000001",)}
        assert acc.allowed_ips == (ip_network("10.0.0.0/24"), ip_network("::1/128"))
        assert acc.tz == -2
        assert acc.balance == 0
        assert acc.blacklist == ("+79990000099",)

    def test_plain_password_and_apikey(self) -> None:
        """password and apikey become plain: hashes."""
        s = parse('[[accounts]]\nlogin = "a"\npassword = "p w"\napikey = "k"\n')
        assert s.accounts[0].password_hash == "plain:p w"
        assert s.accounts[0].apikey_hash == "plain:k"

    def test_scrypt_hash_accepted(self) -> None:
        """A $scrypt$ hash is kept as written."""
        s = parse(f'[[accounts]]\nlogin = "a"\napikey_hash = "{DUMMY_HASH}"\n')
        assert s.accounts[0].apikey_hash == DUMMY_HASH
        assert s.accounts[0].password_hash is None

    def test_reply_from(self) -> None:
        """[reply] from goes to from_address; smarthost gets port 25 when it has none."""
        s = parse('[reply]\nfrom = "gw@example.com"\nsmarthost = "relay.example.com"\n')
        assert s.reply.from_address == "gw@example.com"
        assert s.reply.smarthost == "relay.example.com:25"

    def test_forward(self) -> None:
        """A forward address without @ gets the first domain; addresses are lower-cased."""
        text = (
            '[smtp]\ndomains = ["sms.example.com", "localhost"]\n'
            + ACCOUNT
            + '[[forward]]\naddress = "OnCall"\naccount = "alex"\nto = ["G1", "+7 999 111"]\n'
            'allowed_senders = ["Zabbix@Example.com"]\nsender = "Ops"\n'
            '[[forward]]\naddress = "x@LOCALHOST"\naccount = "alex"\nto = ["+79990000001"]\n'
        )
        s = parse(text)
        assert s.forward[0].address == "oncall@sms.example.com"
        assert s.forward[0].to == ("G1", "+7999111")
        assert s.forward[0].allowed_senders == ("zabbix@example.com",)
        assert s.forward[0].sender == "Ops"
        assert s.forward[1].address == "x@localhost"
        assert s.forward[1].sender is None

    def test_number_addresses(self) -> None:
        """[number_addresses] is read with its account."""
        text = ACCOUNT + '[number_addresses]\nenabled = true\naccount = "alex"\nmax_parts = 3\n'
        s = parse(text)
        assert s.number_addresses.enabled
        assert s.number_addresses.account == "alex"
        assert s.number_addresses.max_parts == 3

    def test_provider_formats_and_routing(self) -> None:
        """formats become a frozenset of Format; rules keep their order."""
        text = (
            PROVIDER
            + '[[providers]]\nname = "j"\ntype = "jsonapi"\nurl = "http://j/"\nformats = [6, 0]\n'
            + '[routing]\ndefault = ["main"]\n'
            'rules = [{ prefix = "+7", providers = ["j", "main"] }, { prefix = "+44", '
            'providers = ["j"] }]\n'
        )
        s = parse(text)
        assert s.providers[1].formats == frozenset({Format.SMS, Format.PING})
        assert s.providers[0].formats is None
        assert [(r.prefix, r.providers) for r in s.routing.rules] == [
            ("+7", ("j", "main")),
            ("+44", ("j",)),
        ]

    def test_float_keys_take_integers(self) -> None:
        """A number key takes an integer and stores a float."""
        s = parse("[delivery]\nvalidity_s = 3600\nretry_first_s = 1.5\n")
        assert s.delivery.validity_s == 3600.0
        assert isinstance(s.delivery.validity_s, float)

    @pytest.mark.parametrize(
        ("listen", "expected"),
        [
            ("127.0.0.1:2525", "127.0.0.1:2525"),
            ("[::1]:2525", "[::1]:2525"),
            ("0.0.0.0:25", "0.0.0.0:25"),
            ("localhost:0", "localhost:0"),
            ("Mail.Example.com:587", "mail.example.com:587"),
        ],
    )
    def test_listen_forms(self, listen: str, expected: str) -> None:
        """listen takes IPv4, bracketed IPv6 and host names, with a port."""
        s = parse(f'[smtp]\nlisten = ["{listen}"]\n')
        assert s.smtp.listen == (expected,)

    def test_logging(self) -> None:
        """[logging] level and format are read, lower-cased."""
        s = parse('[logging]\nlevel = "DEBUG"\nformat = "json"\n')
        assert s.logging == LoggingSettings(level="debug", format="json")

    def test_tls_paths_relative(self) -> None:
        """tls_cert and tls_key are taken from the config folder."""
        s = parse(
            '[smtp]\ntls_cert = "tls/c.pem"\ntls_key = "/etc/k.pem"\nrequire_starttls = true\n'
        )
        assert s.smtp.tls_cert == "/srv/mb/tls/c.pem"
        assert s.smtp.tls_key == "/etc/k.pem"
        assert s.smtp.require_starttls


class TestStorageUrl:
    @pytest.mark.parametrize(
        ("url", "expected"),
        [
            ("sqlite:////var/lib/mb.db", "sqlite:////var/lib/mb.db"),
            ("sqlite:///mb.db", "sqlite:////srv/mb/mb.db"),
            ("sqlite:///var/mb.db", "sqlite:////srv/mb/var/mb.db"),
            ("sqlite:///../data/mb.db", "sqlite:////srv/data/mb.db"),
            ("sqlite:///mb.db?timeout=5", "sqlite:////srv/mb/mb.db?timeout=5"),
            ("postgresql://mb@db/mb", "postgresql://mb@db/mb"),
            ("postgres://db/mb", "postgres://db/mb"),
        ],
    )
    def test_urls(self, url: str, expected: str) -> None:
        """Relative SQLite paths are made absolute against the config folder."""
        assert parse(f'[storage]\nurl = "{url}"\n').storage.url == expected

    def test_no_base_dir_keeps_relative(self) -> None:
        """Without base_dir a relative path stays relative."""
        s = parse_config('[storage]\nurl = "sqlite:///mb.db"\n')
        assert s.storage.url == "sqlite:///mb.db"
        assert s.providers[0].path == "outbox.jsonl"

    def test_outbox_beside_database(self) -> None:
        """The built-in file provider writes beside the database."""
        s = parse('[storage]\nurl = "sqlite:////var/lib/mb/x.db"\n')
        assert s.providers[0].path == "/var/lib/mb/outbox.jsonl"

    def test_outbox_for_postgres(self) -> None:
        """With PostgreSQL the built-in file provider writes beside the config."""
        s = parse('[storage]\nurl = "postgresql://db/mb"\n')
        assert s.providers[0].path == "/srv/mb/outbox.jsonl"


# (config text, the key the error must name)
A = "[[accounts]]\nlogin = 'a'\npassword = 'x'\n"
FW = ACCOUNT + "[[forward]]\n"
FWD = FW + "address = 'a'\naccount = 'alex'\nto = ['+7']\n"
FILE = "[[providers]]\nname = 'f'\ntype = 'file'\npath = 'x'\n"
M = "[[providers]]\nname = 'm'\ntype = 'miatel'\nurl = 'https://x/'\n"
ROUTE = PROVIDER + "[routing]\n"

BAD: list[tuple[str, str]] = [
    ("[smtp]\nlisten = [\n", "test.toml"),
    ("[smtpp]\n", "smtpp"),
    ("smtp = 1\n", "smtp"),
    ("[accounts]\nlogin = 'a'\n", "accounts"),
    ("[[smtp]]\n", "smtp"),
    ("[smtp]\nlistn = ['127.0.0.1:25']\n", "smtp.listn"),
    ("[smtp]\nlisten = '127.0.0.1:25'\n", "smtp.listen"),
    ("[smtp]\nlisten = [25]\n", "smtp.listen[0]"),
    ("[smtp]\nlisten = []\n", "smtp.listen"),
    ("[smtp]\nlisten = ['127.0.0.1']\n", "smtp.listen[0]"),
    ("[smtp]\nlisten = ['::1:2525']\n", "smtp.listen[0]"),
    ("[smtp]\nlisten = ['[::1:2525']\n", "smtp.listen[0]"),
    ("[smtp]\nlisten = ['[fe80::zz]:25']\n", "smtp.listen[0]"),
    ("[smtp]\nlisten = ['[::1]2525']\n", "smtp.listen[0]"),
    ("[smtp]\nlisten = ['127.0.0.1:70000']\n", "smtp.listen[0]"),
    ("[smtp]\nlisten = ['300.0.0.1:25']\n", "smtp.listen[0]"),
    ("[smtp]\nlisten = [':25']\n", "smtp.listen[0]"),
    ("[smtp]\nlisten = ['127.0.0.1:25', '127.0.0.1:25']\n", "smtp.listen[1]"),
    ("[smtp]\nhostname = 'bad host'\n", "smtp.hostname"),
    ('[smtp]\nhostname = "mx.test\\r\\nX-Injected: 1"\n', "smtp.hostname"),
    ('[smtp]\nident = "ESMTP\\r\\n250 fake"\n', "smtp.ident"),
    ('[smtp]\nident = "ESMTP\\n"\n', "smtp.ident"),
    ('[reply]\nfrom = "gw@example.com\\nBcc: x@y"\n', "reply.from"),
    ("[smtp]\ndomains = []\n", "smtp.domains"),
    ("[smtp]\ndomains = ['a.b', 'A.B']\n", "smtp.domains[1]"),
    ("[smtp]\ncommand_address = 'send@x'\n", "smtp.command_address"),
    ("[smtp]\nmax_message_size = 10\n", "smtp.max_message_size"),
    ("[smtp]\nmax_message_size = 1e6\n", "smtp.max_message_size"),
    ("[smtp]\nmax_message_size = true\n", "smtp.max_message_size"),
    ("[smtp]\ntrusted_networks = ['10.0.0.0/33']\n", "smtp.trusted_networks[0]"),
    ("[smtp]\ntrusted_networks = ['10.0.0.0/8', 'localhost']\n", "smtp.trusted_networks[1]"),
    ("[smtp]\ndefault_charset = 'klingon'\n", "smtp.default_charset"),
    ("[smtp]\ndefault_region = 'RUS'\n", "smtp.default_region"),
    ("[smtp]\non_error = 'bounce'\n", "smtp.on_error"),
    ("[smtp]\ntls_cert = 'c.pem'\n", "smtp.tls_key"),
    ("[smtp]\nrequire_starttls = true\n", "smtp.require_starttls"),
    ("[smtp]\ntimeout_s = 0\n", "smtp.timeout_s"),
    ("[smtp]\ntimeout_s = inf\n", "smtp.timeout_s"),
    ("[smtp]\ntimeout_s = nan\n", "smtp.timeout_s"),
    ("[smtp]\nmax_connections = 5\nmax_connections_per_ip = 10\n", "smtp.max_connections_per_ip"),
    ("[smtp]\nworkers = 0\n", "smtp.workers"),
    ("[storage]\nurl = 'mysql://x'\n", "storage.url"),
    ("[storage]\nurl = 'sqlite:///:memory:'\n", "storage.url"),
    ("[storage]\nurl = 'sqlite:///'\n", "storage.url"),
    ("[storage]\nurl = 'postgresql://'\n", "storage.url"),
    ("[storage]\npath = 'x'\n", "storage.path"),
    ("[delivery]\nretry_first_s = 900\n", "delivery.retry_first_s"),
    ("[delivery]\nvalidity_s = -1\n", "delivery.validity_s"),
    ("[delivery]\nbatch_size = 0\n", "delivery.batch_size"),
    ("[reply]\nsmarthost = '::1'\n", "reply.smarthost"),
    ("[reply]\nsmarthost = 'relay:0'\n", "reply.smarthost"),
    ("[reply]\nfrom = 'nobody'\n", "reply.from"),
    ('[reply]\nfrom = "a@b\\r\\nBcc: x@y"\n', "reply.from"),
    ("[reply]\nfrom_address = 'a@b'\n", "reply.from_address"),
    ("[reply]\nusername = 'u'\n", "reply.password"),
    ("[reply]\nreply_rate_per_hour = -1\n", "reply.reply_rate_per_hour"),
    ("[limits]\nflood_max = 0\n", "limits.flood_max"),
    ("[limits]\nduplicate_window_s = 0\n", "limits.duplicate_window_s"),
    ("[limits]\nflood = 1\n", "limits.flood"),
    ("[[accounts]]\npassword = 'x'\n", "accounts[0].login"),
    ("[[accounts]]\nlogin = 'a:b'\npassword = 'x'\n", "accounts[0].login"),
    ("[[accounts]]\nlogin = ''\npassword = 'x'\n", "accounts[0].login"),
    ("[[accounts]]\nlogin = 'a'\n", "accounts[0].password_hash"),
    ("[[accounts]]\nlogin = 'a'\npassword = ''\n", "accounts[0].password"),
    ("[[accounts]]\nlogin = 'a'\npassword_hash = 'hunter2'\n", "accounts[0].password_hash"),
    ("[[accounts]]\nlogin = 'a'\napikey_hash = '$2b$xx'\n", "accounts[0].apikey_hash"),
    (
        A + "password_hash = 'plain:x'\n",
        "accounts[0].password",
    ),
    (A + "pasword = 'y'\n", "accounts[0].pasword"),
    ("[[accounts]]\nlogin = 'a'\npassword = 1234\n", "accounts[0].password"),
    (
        A + "senders = ['TooLongSenderName']\n",
        "accounts[0].senders[0]",
    ),
    (
        A + "senders = ['Отправитель']\n",
        "accounts[0].senders[0]",
    ),
    (A + "senders = ['A', 'A']\n", "accounts[0].senders[1]"),
    (
        A + "senders = ['A']\ndefault_sender = 'B'\n",
        "accounts[0].default_sender",
    ),
    (
        A + "allowed_ips = ['1.2.3.4/40']\n",
        "accounts[0].allowed_ips[0]",
    ),
    (A + "tz = 30\n", "accounts[0].tz"),
    (A + "tz = '+1'\n", "accounts[0].tz"),
    (A + "balance = -5\n", "accounts[0].balance"),
    (
        A + "groups = { x = ['+7'] }\n",
        "accounts[0].groups.x",
    ),
    (A + "groups = { 1 = '+7' }\n", "accounts[0].groups.1"),
    (A + "groups = { 1 = [] }\n", "accounts[0].groups.1"),
    (
        A + "groups = { 1 = ['+7', ' '] }\n",
        "accounts[0].groups.1[1]",
    ),
    (
        A + "groups = { 1 = ['+7'], 01 = ['+7'] }\n",
        "accounts[0].groups.01",
    ),
    (
        A + "deny_text = ['ok', '(unclosed']\n",
        "accounts[0].deny_text[1]",
    ),
    (A + "deny_text = ['ok', '(\\w)\\1']\n", "accounts[0].deny_text[1]"),
    (A + "deny_text = ['(?<=a)b']\n", "accounts[0].deny_text[0]"),
    (A + "blacklist = ['']\n", "accounts[0].blacklist[0]"),
    (
        A + "[[accounts]]\nlogin = 'a'\npassword = 'y'\n",
        "accounts[1].login",
    ),
    (
        "[[accounts]]\nlogin = 'a'\napikey = 'k'\n[[accounts]]\nlogin = 'b'\napikey = 'k'\n",
        "accounts[1].apikey",
    ),
    (FW + "account = 'alex'\nto = ['+7']\n", "forward[0].address"),
    (FW + "address = 'a'\naccount = 'bob'\nto = ['+7']\n", "forward[0].account"),
    (FW + "address = 'a'\naccount = 'alex'\nto = []\n", "forward[0].to"),
    (FW + "address = 'a'\naccount = 'alex'\nto = ['G2']\n", "forward[0].to[0]"),
    (
        FW + "address = 'a@other.org'\naccount = 'alex'\nto = ['+7']\n",
        "forward[0].address",
    ),
    (
        FW + "address = 'send'\naccount = 'alex'\nto = ['+7']\n",
        "forward[0].address",
    ),
    (
        FW + "address = 'a b'\naccount = 'alex'\nto = ['+7']\n",
        "forward[0].address",
    ),
    (
        FWD + "[[forward]]\naddress = 'A@localhost'\naccount = 'alex'\nto = ['+7']\n",
        "forward[1].address",
    ),
    (
        FWD + "template = '{subject} {date}'\n",
        "forward[0].template",
    ),
    (
        FWD + "template = '{body'\n",
        "forward[0].template",
    ),
    (
        FWD + "template = '{body.__class__}'\n",
        "forward[0].template",
    ),
    (
        FWD + "max_parts = 0\n",
        "forward[0].max_parts",
    ),
    (
        FWD + "sender = 'Other'\n",
        "forward[0].sender",
    ),
    (
        ACCOUNT
        + "[[forward]]\naddress = 'a'\naccount = 'alex'\nto = ['+7']\nallowed_senders = ['a b']\n",
        "forward[0].allowed_senders[0]",
    ),
    ("[number_addresses]\nenabled = true\n", "number_addresses.account"),
    ("[number_addresses]\naccount = 'nobody'\n", "number_addresses.account"),
    ("[number_addresses]\nenabled = 'yes'\n", "number_addresses.enabled"),
    ("[number_addresses]\nsender = 'A'\n", "number_addresses.sender"),
    ("[[providers]]\ntype = 'file'\npath = 'x'\n", "providers[0].name"),
    ("[[providers]]\nname = 'a b'\ntype = 'file'\npath = 'x'\n", "providers[0].name"),
    ("[[providers]]\nname = 'm'\n", "providers.m.type"),
    ("[[providers]]\nname = 'm'\ntype = 'twilio'\n", "providers.m.type"),
    ("[[providers]]\nname = 'm'\ntype = 'miatel'\n", "providers.m.url"),
    ("[[providers]]\nname = 'm'\ntype = 'smsc'\nurl = 'ftp://x/'\n", "providers.m.url"),
    (
        "[[providers]]\nname = 'm'\ntype = 'jsonapi'\nurl = 'https://x/'\npath = 'y'\n",
        "providers.m.path",
    ),
    ("[[providers]]\nname = 'f'\ntype = 'file'\n", "providers.f.path"),
    (
        FILE + "url = 'http://x/'\n",
        "providers.f.url",
    ),
    (
        FILE + "password = 'x'\n",
        "providers.f.password",
    ),
    (
        FILE + "formats = [13]\n",
        "providers.f.formats[0]",
    ),
    (FILE + "formats = []\n", "providers.f.formats"),
    (
        M + "formats = [0, 1]\n",
        "providers.m.formats[1]",
    ),
    (
        "[[providers]]\nname = 'j'\ntype = 'jsonapi'\nurl = 'https://x/'\nformats = [3]\n",
        "providers.j.formats[0]",
    ),
    (
        FILE + "rate_per_s = -1\n",
        "providers.f.rate_per_s",
    ),
    (
        FILE + "concurrency = 0\n",
        "providers.f.concurrency",
    ),
    (FILE + "timeout = 3\n", "providers.f.timeout"),
    (
        FILE + FILE,
        "providers[1].name",
    ),
    ("[routing]\ndefault = ['main']\n", "routing.default[0]"),
    (ROUTE + "default = []\n", "routing.default"),
    (ROUTE + "default = ['main', 'main']\n", "routing.default[1]"),
    (
        ROUTE + "rules = [{ prefix = '+7', providers = ['backup'] }]\n",
        "routing.rules[0].providers[0]",
    ),
    (
        ROUTE + "rules = [{ prefix = '7x', providers = ['main'] }]\n",
        "routing.rules[0].prefix",
    ),
    (
        ROUTE + "rules = [{ prefix = '+', providers = ['main'] }]\n",
        "routing.rules[0].prefix",
    ),
    (
        ROUTE + "rules = [{ prefix = '+7', providers = ['main'] }, "
        "{ prefix = '7', providers = ['main'] }]\n",
        "routing.rules[1].prefix",
    ),
    (ROUTE + "rules = [{ providers = ['main'] }]\n", "routing.rules[0].prefix"),
    (
        ROUTE + "rules = [{ prefix = '+7', providers = ['main'], weight = 1 }]\n",
        "routing.rules[0].weight",
    ),
    (
        ROUTE + "rules = [{ prefix = '+7', providers = ['main'] }, "
        "{ prefix = '+7', providers = ['main'] }]\n",
        "routing.rules[1].prefix",
    ),
    (ROUTE + "rules = ['+7']\n", "routing.rules[0]"),
    ("[logging]\nlevel = 'verbose'\n", "logging.level"),
    ("[logging]\nformat = 'xml'\n", "logging.format"),
]


class TestAllowedSenders:
    FWD = "[[forward]]\naddress = 'oncall'\naccount = 'alex'\nto = ['+79991112233']\n"

    def test_absent_means_any_sender(self) -> None:
        """SPEC §3: no allowed_senders = any sender (it used to refuse everyone)."""
        s = parse(ACCOUNT + self.FWD + "[number_addresses]\nenabled = true\naccount = 'alex'\n")
        assert s.forward[0].allowed_senders is None
        assert s.number_addresses.allowed_senders is None
        assert not [w for w in config_warnings(s) if "allowed_senders" in w]

    def test_explicit_empty_list_refuses_all_and_warns(self) -> None:
        s = parse(
            ACCOUNT + self.FWD + "allowed_senders = []\n"
            "[number_addresses]\nenabled = true\naccount = 'alex'\nallowed_senders = []\n"
        )
        assert s.forward[0].allowed_senders == ()
        assert s.number_addresses.allowed_senders == ()
        found = [w for w in config_warnings(s) if "allowed_senders" in w]
        assert len(found) == 2
        assert all("refuses every sender" in w for w in found)


def test_prefix_without_plus_is_the_same_rule() -> None:
    """docs/delivery.md: "+7" and "7" are the same prefix (the loader used to refuse "7")."""
    s = parse(ROUTE + "rules = [{ prefix = '7', providers = ['main'] }]\n")
    assert [r.prefix for r in s.routing.rules] == ["+7"]


class TestErrors:
    @pytest.mark.parametrize(("text", "key"), BAD)
    def test_bad_config_names_key(self, text: str, key: str) -> None:
        """Each bad config raises ConfigError naming the key, on one line."""
        with pytest.raises(ConfigError) as info:
            parse(text)
        assert info.value.key == key
        assert str(info.value) == f"config error: {key}: {info.value.message}"
        assert "\n" not in str(info.value)
        assert info.value.message

    def test_toml_error_names_file_and_line(self) -> None:
        """A TOML syntax error names the file and the line."""
        with pytest.raises(ConfigError) as info:
            parse_config('[smtp]\nhostname = "a"\nlisten = [1,,]\n', source="/etc/mb.toml")
        assert info.value.key == "/etc/mb.toml"
        assert "TOML syntax error at line 3, column" in info.value.message

    def test_toml_error_at_end(self) -> None:
        """A TOML error at the end of the text names the last line."""
        with pytest.raises(ConfigError) as info:
            parse_config("[smtp]\nlisten = [\n", source="/etc/mb.toml")
        assert "at the end of the file (line 3)" in info.value.message
        assert "document" not in info.value.message

    def test_unknown_key_suggests(self) -> None:
        """A misspelt key gets a suggestion."""
        with pytest.raises(ConfigError, match="did you mean 'listen'"):
            parse("[smtp]\nlistn = []\n")

    @pytest.mark.parametrize(
        "text",
        [
            "[[accounts]]\nlogin = 'a'\npassword_hash = 'S3CRET-VALUE'\n",
            "[[accounts]]\nlogin = 'a'\napikey_hash = 'S3CRET-VALUE'\n",
            "[[accounts]]\nlogin = 'a'\npassword = 'S3CRET-VALUE'\npassword_hash = 'plain:x'\n",
            "[[accounts]]\nlogin = 'a'\napikey = 'S3CRET-VALUE'\n[[accounts]]\nlogin = 'b'\n"
            "apikey = 'S3CRET-VALUE'\n",
            "[reply]\nusername = 'u'\npassword = 'S3CRET-VALUE'\nfrom = 'x'\n",
            "[[providers]]\nname = 'm'\ntype = 'miatel'\nurl = 'https://u:S3CRET-VALUE@/'\n",
            "[[providers]]\nname = 'f'\ntype = 'file'\npath = 'x'\npassword = 'S3CRET-VALUE'\n",
        ],
    )
    def test_no_secret_in_error(self, text: str) -> None:
        """Errors about secret keys never repeat the value."""
        with pytest.raises(ConfigError) as info:
            parse(text)
        assert "S3CRET" not in str(info.value)

    @settings(max_examples=50, deadline=None)
    @given(value=st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=30))
    def test_any_hash_value_is_accepted_or_config_error(self, value: str) -> None:
        """Any password_hash string loads or gives one fixed message that does not echo it."""
        text = f"[[accounts]]\nlogin = 'a'\npassword_hash = {_toml_str(value)}\n"
        try:
            parse(text)
        except ConfigError as exc:
            error: ConfigError | None = exc
        else:
            error = None
        if error is not None:
            assert error.key == "accounts[0].password_hash"
            assert error.message == (
                "cannot be read: expected a $scrypt$… hash from `mailbridge hash-password`"
            )


def _toml_str(value: str) -> str:
    """A TOML basic string holding value."""
    escaped = "".join(
        c if c.isprintable() and c not in '"\\' else f"\\U{ord(c):08X}" for c in value
    )
    return f'"{escaped}"'


class TestLoad:
    def test_load_uses_file_folder(self, tmp_path: Path) -> None:
        """load_config resolves relative paths against the file's folder and records it."""
        path = tmp_path / "conf" / "mb.toml"
        path.parent.mkdir()
        path.write_text('[storage]\nurl = "sqlite:///data/mb.db"\n')
        s = load_config(path)
        assert s.storage.url == f"sqlite:///{tmp_path}/conf/data/mb.db"
        assert s.providers[0].path == str(tmp_path / "conf" / "data" / "outbox.jsonl")
        assert s.source == str(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming it."""
        path = tmp_path / "none.toml"
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert info.value.key == str(path)
        assert "cannot read" in info.value.message

    def test_not_utf8(self, tmp_path: Path) -> None:
        """A file that is not UTF-8 is a ConfigError."""
        path = tmp_path / "x.toml"
        path.write_bytes(b'[smtp]\nhostname = "\xff"\n')
        with pytest.raises(ConfigError, match="UTF-8"):
            load_config(path)

    def test_toml_error_in_file(self, tmp_path: Path) -> None:
        """A syntax error names the file path."""
        path = tmp_path / "x.toml"
        path.write_text("[smtp\n")
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert info.value.key == str(path)
        assert "line 1" in info.value.message


class TestResolvePath:
    @pytest.mark.parametrize(
        ("arg", "env", "expected"),
        [
            ("/a.toml", {"MAILBRIDGE_CONFIG": "/b.toml"}, Path("/a.toml")),
            (None, {"MAILBRIDGE_CONFIG": "/b.toml"}, Path("/b.toml")),
            (None, {"MAILBRIDGE_CONFIG": ""}, DEFAULT_CONFIG_PATH),
            (None, {}, Path("/etc/mailbridge/config.toml")),
            ("", {}, DEFAULT_CONFIG_PATH),
        ],
    )
    def test_order(self, arg: str | None, env: dict[str, str], expected: Path) -> None:
        """--config, else $MAILBRIDGE_CONFIG, else /etc/mailbridge/config.toml."""
        assert resolve_config_path(arg, env) == expected


class TestWarnings:
    def test_plain_secrets_warned_without_value(self) -> None:
        """Plain passwords and API keys are warned about, without the values."""
        s = parse("[[accounts]]\nlogin = 'alex'\npassword = 'S3CRET'\napikey = 'K3Y-VALUE'\n")
        warnings = config_warnings(s)
        assert any("alex" in w and "password" in w for w in warnings)
        assert any("API key" in w for w in warnings)
        assert not any("S3CRET" in w or "K3Y-VALUE" in w for w in warnings)

    def test_smarthost_and_file_warnings(self) -> None:
        """No smarthost and only file providers are warned about."""
        warnings = config_warnings(parse(""))
        assert any("smarthost" in w for w in warnings)
        assert any("file" in w for w in warnings)

    def test_quiet_config(self) -> None:
        """A config with hashes, a smarthost and an HTTP provider has no warnings."""
        text = (
            f"[reply]\nsmarthost = '127.0.0.1:25'\n[[accounts]]\nlogin = 'a'\n"
            f"password_hash = '{DUMMY_HASH}'\n" + PROVIDER
        )
        assert config_warnings(parse(text)) == []


def test_default_charset_must_be_a_text_charset() -> None:
    """A codec that is not a charset (base64) is refused, naming the key."""
    with pytest.raises(ConfigError, match=r"smtp\.default_charset"):
        parse_config('[smtp]\ndefault_charset = "base64"\n')


@pytest.mark.parametrize("name", ["idna", "undefined", "unicode-escape", "x-no-such"])
def test_default_charset_refuses_non_charsets(name: str) -> None:
    """Codecs that decode no mail text are refused at start-up, naming the key."""
    with pytest.raises(ConfigError, match=r"smtp\.default_charset"):
        parse_config(f'[smtp]\ndefault_charset = "{name}"\n')


def test_default_charset_accepts_real_ones() -> None:
    """The charsets people really send are accepted."""
    for name in ("koi8-r", "windows-1251", "cp866", "utf-8", "iso-8859-5"):
        assert parse_config(f'[smtp]\ndefault_charset = "{name}"\n').smtp.default_charset
