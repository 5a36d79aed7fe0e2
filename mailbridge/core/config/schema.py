"""Every config section and key the loader accepts, with its type and default (SPEC §5).

``docs/configuration.md`` is checked against :data:`SCHEMA` by the tests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailbridge.core.capabilities import TYPE_FORMATS
from mailbridge.models import Format

__all__ = [
    "ARRAY_SECTIONS",
    "DEFAULT_CONFIG_PATH",
    "PROVIDER_FORMATS",
    "SCHEMA",
    "TOP_LEVEL",
    "Key",
]


#: Where the config is when neither ``--config`` nor ``$MAILBRIDGE_CONFIG`` says.
DEFAULT_CONFIG_PATH: Final = Path("/etc/mailbridge/config.toml")


#: The formats each provider type carries (SPEC §4).
PROVIDER_FORMATS: Final[Mapping[str, frozenset[Format]]] = TYPE_FORMATS


@dataclass(frozen=True, slots=True, kw_only=True)
class Key:
    """One config key: its TOML type, its default (as documented), whether required.

    ``kind`` is one of ``str``, ``int``, ``float`` (an integer is accepted),
    ``bool``, ``list[str]``, ``list[int]``, ``table``, ``list[table]``.
    ``default`` is ``None`` when the key is unset by default.
    """

    kind: str
    default: object = None
    required: bool = False
    secret: bool = False


def _k(kind: str, default: object = None, *, required: bool = False, secret: bool = False) -> Key:
    return Key(kind=kind, default=default, required=required, secret=secret)


#: Every section and key the loader accepts. ``routing.rules`` is the inline
#: table of one routing rule; the sections holding arrays of tables are
#: ``accounts``, ``forward`` and ``providers``.
SCHEMA: Final[Mapping[str, Mapping[str, Key]]] = {
    "smtp": {
        "listen": _k("list[str]", ["127.0.0.1:2525"]),
        "hostname": _k("str", "localhost"),
        "ident": _k("str", "mailbridge ESMTP"),
        "domains": _k("list[str]", "[hostname]"),
        "command_address": _k("str", "send"),
        "max_message_size": _k("int", 102400),
        "trusted_networks": _k("list[str]", ["127.0.0.0/8", "::1/128"]),
        "default_charset": _k("str", "koi8-r"),
        "default_region": _k("str", "RU"),
        "on_error": _k("str", "reply"),
        "tls_cert": _k("str"),
        "tls_key": _k("str"),
        "require_starttls": _k("bool", False),
        "timeout_s": _k("float", 300.0),
        "command_call_limit": _k("int", 100),
        "max_connections": _k("int", 200),
        "max_connections_per_ip": _k("int", 50),
        "workers": _k("int", 1),
        "untrusted_timeout_s": _k("float", 30.0),
        "untrusted_command_limit": _k("int", 10),
        "untrusted_max_connections": _k("int", 0),
    },
    "storage": {
        "url": _k("str", "sqlite:///mailbridge.db"),
        "retention_days": _k("float", 90.0),
        "raw_retention_days": _k("float", 14.0),
    },
    "delivery": {
        "validity_s": _k("float", 86400.0),
        "retry_first_s": _k("float", 2.0),
        "retry_max_s": _k("float", 600.0),
        "batch_size": _k("int", 200),
        "lease_s": _k("float", 120.0),
    },
    "reply": {
        "smarthost": _k("str"),
        "from": _k("str", "mailbridge@[hostname]"),
        "reply_rate_per_hour": _k("int", 30),
        "starttls": _k("bool", False),
        "username": _k("str"),
        "password": _k("str", secret=True),
        "timeout_s": _k("float", 30.0),
    },
    "limits": {
        "duplicate_window_s": _k("float", 60.0),
        "duplicate_max": _k("int", 2),
        "flood_max": _k("int", 50),
        "flood_gap_s": _k("float", 120.0),
        "error_block_after": _k("int", 10),
        "error_block_window_s": _k("float", 600.0),
        "error_block_for_s": _k("float", 600.0),
    },
    "accounts": {
        "login": _k("str", required=True),
        "password_hash": _k("str", secret=True),
        "password": _k("str", secret=True),
        "apikey_hash": _k("str", secret=True),
        "apikey": _k("str", secret=True),
        "senders": _k("list[str]", []),
        "default_sender": _k("str", ""),
        "allowed_ips": _k("list[str]", []),
        "tz": _k("int", 0),
        "balance": _k("int"),
        "groups": _k("table", {}),
        "deny_text": _k("list[str]", []),
        "blacklist": _k("list[str]", []),
    },
    "forward": {
        "address": _k("str", required=True),
        "account": _k("str", required=True),
        "to": _k("list[str]", required=True),
        "allowed_senders": _k("list[str]", "any sender"),
        "template": _k("str", "{subject}: {body}"),
        "max_parts": _k("int", 2),
        "sender": _k("str"),
    },
    "number_addresses": {
        "enabled": _k("bool", False),
        "account": _k("str", ""),
        "allowed_senders": _k("list[str]", "any sender"),
        "template": _k("str", "{subject}: {body}"),
        "max_parts": _k("int", 2),
        "sender": _k("str"),
    },
    "providers": {
        "name": _k("str", required=True),
        "type": _k("str", required=True),
        "url": _k("str", ""),
        "username": _k("str", ""),
        "password": _k("str", "", secret=True),
        "path": _k("str", ""),
        "formats": _k("list[int]"),
        "rate_per_s": _k("float", 0.0),
        "concurrency": _k("int", 8),
        "timeout_s": _k("float", 10.0),
        "connect_timeout_s": _k("float", 5.0),
        "max_recipients": _k("int", 1),
        "status_poll_s": _k("float", 60.0),
        "host": _k("str"),
        "port": _k("int", 2775),
        "tls": _k("bool", False),
        "tls_ca": _k("str"),
        "system_id": _k("str"),
        "system_type": _k("str", ""),
        "bind": _k("str", "transceiver"),
        "data_coding": _k("str", "smsc"),
        "source_ton": _k("int"),
        "source_npi": _k("int"),
        "dest_ton": _k("int", 1),
        "dest_npi": _k("int", 1),
        "window": _k("int", 10),
        "connections": _k("int", 1),
        "enquire_link_s": _k("float", 30.0),
        "reconnect_min_s": _k("float", 1.0),
        "reconnect_max_s": _k("float", 60.0),
        "registered_delivery": _k("bool", True),
    },
    "routing": {
        "default": _k("list[str]", "all providers"),
        "rules": _k("list[table]", []),
        "breaker_failures": _k("int", 5),
        "breaker_reset_s": _k("float", 10.0),
    },
    "routing.rules": {
        "prefix": _k("str", required=True),
        "providers": _k("list[str]", required=True),
    },
    "logging": {
        "level": _k("str", "info"),
        "format": _k("str", "auto"),
    },
    "http": {
        "listen": _k("list[str]", []),
        "token_hash": _k("str", secret=True),
        "username": _k("str"),
        "password_hash": _k("str", secret=True),
    },
    "daemon": {
        "pid_file": _k("str"),
    },
    "inbound": {
        "reply_window_s": _k("float", 86400.0),
        "mail_to": _k("str"),
    },
}


ARRAY_SECTIONS: Final = frozenset({"accounts", "forward", "providers"})


TOP_LEVEL: Final = tuple(s for s in SCHEMA if "." not in s)
