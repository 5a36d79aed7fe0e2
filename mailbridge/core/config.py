"""The TOML configuration read into ``mailbridge.settings`` values (SPEC §5).

``SCHEMA`` is the one list of the keys the loader accepts, per section, with
their type and default; the loader rejects every other key with it, and the
tests check ``docs/configuration.md`` against it.

Every problem is a ``ConfigError(key, message)``: ``key`` is the dotted path
of the value (``accounts[0].password_hash``, ``providers.main.url``), the
message is one line and never repeats a secret. Apart from reading the file in
``load_config`` this module is pure.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import string
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from mailbridge.core.capabilities import TYPE_FORMATS
from mailbridge.core.mail import charset_label
from mailbridge.core.passwords import PLAIN_PREFIX, is_readable_hash
from mailbridge.core.patterns import PatternError, compile_linear
from mailbridge.core.smpp_config import SMPP_KEYS, smpp_settings
from mailbridge.errors import ConfigError
from mailbridge.models import Format, OnError
from mailbridge.settings import (
    Account,
    DaemonSettings,
    DeliverySettings,
    ForwardAlias,
    HttpSettings,
    InboundSettings,
    LimitsSettings,
    LoggingSettings,
    Network,
    NumberAddressSettings,
    ProviderSettings,
    ReplySettings,
    RouteRule,
    RoutingSettings,
    Settings,
    SmtpSettings,
    StorageSettings,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "PROVIDER_FORMATS",
    "SCHEMA",
    "Key",
    "config_warnings",
    "load_config",
    "parse_config",
    "resolve_config_path",
    "state_directory",
]

#: Where the config is when neither ``--config`` nor ``$MAILBRIDGE_CONFIG`` says.
DEFAULT_CONFIG_PATH: Final = Path("/etc/mailbridge/config.toml")

#: The formats each provider type carries (SPEC §4).
PROVIDER_FORMATS: Final[Mapping[str, frozenset[Format]]] = TYPE_FORMATS

_HTTP_TYPES: Final = frozenset({"miatel", "jsonapi", "smsc"})
#: Provider types whose wire format documents a status query (``status_poll_s``).
_STATUS_TYPES: Final = frozenset({"smsc"})
_FORMAT_NUMBERS: Final = frozenset(int(f) for f in Format)


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

_ARRAY_SECTIONS: Final = frozenset({"accounts", "forward", "providers"})
_TOP_LEVEL: Final = tuple(s for s in SCHEMA if "." not in s)

_TYPE_NAMES: Final = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "list[str]": "an array of strings",
    "list[int]": "an array of integers",
    "table": "a table",
    "list[table]": "an array of tables",
}

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME_RE: Final = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\.?")
_LOCAL_PART_RE: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_ADDRESS_RE: Final = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
_SENDER_RE: Final = re.compile(r"[A-Za-z0-9 \-._&!?'+]{1,11}|[0-9]{1,15}")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_LOGIN_RE: Final = re.compile(r"[^\s:\x00-\x1f\x7f]{1,64}")
_REGION_RE: Final = re.compile(r"[A-Za-z]{2}")
_PREFIX_RE: Final = re.compile(r"\+?[0-9]{1,15}")
_GROUP_REF_RE: Final = re.compile(r"[Gg]([0-9]+)")
_TOML_AT_RE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_AT_END: Final = "(at end of document)"

_TEMPLATE_FIELDS: Final = frozenset({"subject", "body", "from"})
_LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
_LOG_FORMATS: Final = ("auto", "json", "console")
_TZ_MIN, _TZ_MAX = -15, 11  # hours relative to Moscow: UTC-12 .. UTC+14


# --------------------------------------------------------------------------- helpers


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"


def _show(value: str) -> str:
    """A non-secret value quoted for a message, cut short and on one line."""
    text = value if len(value) <= 40 else value[:37] + "..."
    return repr(text)


def _check_type(value: object, kind: str, path: str) -> None:
    ok: bool
    if kind == "str":
        ok = isinstance(value, str)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind == "float":
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and not math.isfinite(value):  # type: ignore[arg-type]
            raise ConfigError(path, "must be a finite number")
    elif kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "table":
        ok = isinstance(value, dict)
    elif kind.startswith("list["):
        if not isinstance(value, list):
            raise ConfigError(path, f"expected {_TYPE_NAMES[kind]}, got {_type_name(value)}")
        inner = kind[5:-1]
        for i, item in enumerate(value):
            if inner == "table" and not isinstance(item, dict):
                raise ConfigError(f"{path}[{i}]", f"expected a table, got {_type_name(item)}")
            if inner != "table":
                _check_type(item, inner, f"{path}[{i}]")
        return
    else:  # pragma: no cover - a SCHEMA mistake
        raise AssertionError(kind)
    if not ok:
        raise ConfigError(path, f"expected {_TYPE_NAMES[kind]}, got {_type_name(value)}")


def _table(raw: object, section: str, path: str) -> dict[str, Any]:
    """Check ``raw`` against ``SCHEMA[section]``: no unknown key, right types, required keys."""
    if not isinstance(raw, dict):
        raise ConfigError(path, f"expected a table, got {_type_name(raw)}")
    schema = SCHEMA[section]
    for key, value in raw.items():
        spec = schema.get(key)
        if spec is None:
            hint = difflib.get_close_matches(key, list(schema), n=1)
            more = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{path}.{key}", f"unknown key{more}")
        _check_type(value, spec.kind, f"{path}.{key}")
    for key, spec in schema.items():
        if spec.required and key not in raw:
            raise ConfigError(f"{path}.{key}", "required key is missing")
    return raw


def _at_least(value: float, minimum: float, path: str) -> None:
    if value < minimum:
        shown = int(minimum) if float(minimum).is_integer() else minimum
        raise ConfigError(path, f"must be at least {shown}")


def _positive(value: float, path: str) -> None:
    if value <= 0:
        raise ConfigError(path, "must be greater than 0")


def _no_duplicates(items: Sequence[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise ConfigError(f"{path}[{i}]", f"duplicate {what} {_show(item)}")
        seen.add(item)


def _hostname(value: str, path: str) -> str:
    if not _HOSTNAME_RE.fullmatch(value):
        raise ConfigError(path, f"not a valid host name: {_show(value)}")
    return value.rstrip(".").lower()


def _host_port(value: str, path: str, *, default_port: int | None, allow_port_zero: bool) -> str:
    """Check ``host:port`` (IPv6 as ``[::1]:2525``) and give it back normalised."""
    v6 = value.startswith("[")
    if v6:
        host, closed, rest = value[1:].partition("]")
        if not closed:
            raise ConfigError(path, f"missing ']' in {_show(value)}")
        try:
            IPv6Address(host)
        except ValueError:
            raise ConfigError(path, f"not an IPv6 address: {_show(host)}") from None
        if rest and not rest.startswith(":"):
            raise ConfigError(path, f"expected [ipv6]:port, got {_show(value)}")
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon:
            host, port_text = value, ""
        if ":" in host:
            raise ConfigError(
                path, f"write an IPv6 address in brackets, like '[::1]:2525': {_show(value)}"
            )
        if not host:
            raise ConfigError(path, f"missing host in {_show(value)}")
        labels = host.rstrip(".").split(".")
        if all(label.isdigit() for label in labels):
            try:
                IPv4Address(host)
            except ValueError:
                raise ConfigError(path, f"not an IPv4 address: {_show(host)}") from None
        else:
            host = _hostname(host, path)
    if not port_text:
        if default_port is None:
            raise ConfigError(path, f"missing port in {_show(value)} (host:port)")
        port = default_port
    else:
        if not port_text.isdigit() or not port_text.isascii():
            raise ConfigError(path, f"bad port in {_show(value)}")
        port = int(port_text)
        if port > 65535 or (port == 0 and not allow_port_zero):
            raise ConfigError(path, f"port out of range in {_show(value)}")
    return f"[{host}]:{port}" if v6 else f"{host}:{port}"


def _networks(values: Sequence[str], path: str) -> tuple[Network, ...]:
    nets: list[Network] = []
    for i, text in enumerate(values):
        try:
            nets.append(ip_network(text.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{path}[{i}]", f"not an IP network: {_show(text)}") from None
    return tuple(nets)


def _one_of(value: str, choices: Sequence[str], path: str) -> str:
    v = value.strip().lower()
    if v not in choices:
        allowed = " | ".join(choices)
        raise ConfigError(path, f"must be one of {allowed}, not {_show(value)}")
    return v


def _no_spaces(values: Sequence[str], path: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, text in enumerate(values):
        cleaned = "".join(text.split())
        if not cleaned:
            raise ConfigError(f"{path}[{i}]", "empty entry")
        out.append(cleaned)
    return tuple(out)


def _sender(value: str, path: str) -> str:
    v = value.strip()
    if not _SENDER_RE.fullmatch(v):
        raise ConfigError(
            path,
            f"not a sender name (at most 11 Latin letters, digits, space, -._&!?'+ "
            f"or at most 15 digits): {_show(value)}",
        )
    return v


def _template(value: str, path: str) -> str:
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ConfigError(path, f"bad template: {exc}") from None
    for _literal, field, spec, _conversion in parsed:
        if field is None:
            continue
        if field not in _TEMPLATE_FIELDS:
            raise ConfigError(
                path, f"unknown field {{{field}}} (use {{subject}}, {{body}}, {{from}})"
            )
        if spec and ("{" in spec or "}" in spec):
            raise ConfigError(path, "nested fields are not allowed in a template")
    return value


def _path(value: str, base_dir: Path | None) -> str:
    p = Path(value)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return os.path.normpath(p)


def _storage_url(url: str, base_dir: Path | None, path: str) -> str:
    url = url.strip()
    for scheme in ("postgresql://", "postgres://"):
        if url.startswith(scheme):
            if len(url) == len(scheme):
                raise ConfigError(path, "missing the database after postgresql://")
            return url
    if not url.startswith("sqlite:///"):
        raise ConfigError(
            path, "expected sqlite:////absolute.db, sqlite:///relative.db or postgresql://…"
        )
    file_part, question, query = url[len("sqlite:///") :].partition("?")
    if not file_part:
        raise ConfigError(path, "missing the database file after sqlite:///")
    if file_part == ":memory:" or file_part.startswith("file:"):
        raise ConfigError(path, "an in-memory database cannot keep mails across restarts")
    return "sqlite:///" + _path(file_part, base_dir) + question + query


def _sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    return Path(url[len("sqlite:///") :].partition("?")[0])


# --------------------------------------------------------------------------- sections


def _smtp(raw: dict[str, Any], base_dir: Path | None) -> SmtpSettings:
    d = SmtpSettings()
    kw: dict[str, Any] = {}
    p = "smtp"
    if "listen" in raw:
        listen = tuple(
            _host_port(v.strip(), f"{p}.listen[{i}]", default_port=None, allow_port_zero=True)
            for i, v in enumerate(raw["listen"])
        )
        if not listen:
            raise ConfigError(f"{p}.listen", "at least one address is needed")
        _no_duplicates(listen, f"{p}.listen", "address")
        kw["listen"] = listen
    for key in ("hostname", "ident"):
        if key in raw:
            _one_line(raw[key], f"{p}.{key}")
    hostname = _hostname(raw["hostname"].strip(), f"{p}.hostname") if "hostname" in raw else None
    if hostname is not None:
        kw["hostname"] = hostname
    if "ident" in raw:
        ident = raw["ident"].strip()
        if not ident or not ident.isprintable():
            raise ConfigError(f"{p}.ident", "must be printable text on one line")
        kw["ident"] = ident
    if "domains" in raw:
        domains = tuple(
            _hostname(v.strip(), f"{p}.domains[{i}]") for i, v in enumerate(raw["domains"])
        )
        if not domains:
            raise ConfigError(f"{p}.domains", "at least one domain is needed")
        _no_duplicates(domains, f"{p}.domains", "domain")
        kw["domains"] = domains
    elif hostname is not None:
        kw["domains"] = (hostname,)
    if "command_address" in raw:
        local = raw["command_address"].strip().lower()
        if not _LOCAL_PART_RE.fullmatch(local):
            raise ConfigError(f"{p}.command_address", "must be the local part of an address")
        kw["command_address"] = local
    if "max_message_size" in raw:
        _at_least(raw["max_message_size"], 1024, f"{p}.max_message_size")
        kw["max_message_size"] = raw["max_message_size"]
    if "trusted_networks" in raw:
        kw["trusted_networks"] = _networks(raw["trusted_networks"], f"{p}.trusted_networks")
    if "default_charset" in raw:
        charset = raw["default_charset"].strip().lower()
        if charset_label(charset) is None:  # unknown, or a codec that is no charset (base64)
            raise ConfigError(f"{p}.default_charset", f"not a known charset: {_show(charset)}")
        kw["default_charset"] = charset
    if "default_region" in raw:
        region = raw["default_region"].strip()
        if not _REGION_RE.fullmatch(region):
            raise ConfigError(f"{p}.default_region", "must be a two-letter region code like RU")
        kw["default_region"] = region.upper()
    if "on_error" in raw:
        kw["on_error"] = OnError(_one_of(raw["on_error"], tuple(OnError), f"{p}.on_error"))
    for key in ("tls_cert", "tls_key"):
        if key in raw:
            if not raw[key].strip():
                raise ConfigError(f"{p}.{key}", "empty path")
            kw[key] = _path(raw[key].strip(), base_dir)
    if ("tls_cert" in kw) != ("tls_key" in kw):
        missing = "tls_key" if "tls_cert" in kw else "tls_cert"
        raise ConfigError(f"{p}.{missing}", "tls_cert and tls_key go together")
    if "require_starttls" in raw:
        if raw["require_starttls"] and "tls_cert" not in kw:
            raise ConfigError(f"{p}.require_starttls", "needs tls_cert and tls_key")
        kw["require_starttls"] = raw["require_starttls"]
    for key in ("timeout_s", "untrusted_timeout_s"):
        if key in raw:
            _positive(raw[key], f"{p}.{key}")
            kw[key] = float(raw[key])
    if "untrusted_command_limit" in raw:
        _at_least(raw["untrusted_command_limit"], 3, f"{p}.untrusted_command_limit")
        kw["untrusted_command_limit"] = raw["untrusted_command_limit"]
    for key in ("command_call_limit", "max_connections", "max_connections_per_ip", "workers"):
        if key in raw:
            _at_least(raw[key], 1, f"{p}.{key}")
            kw[key] = raw[key]
    per_ip = kw.get("max_connections_per_ip", d.max_connections_per_ip)
    total = kw.get("max_connections", d.max_connections)
    if per_ip > total:
        raise ConfigError(f"{p}.max_connections_per_ip", "must not exceed max_connections")
    if "untrusted_max_connections" in raw:
        share = raw["untrusted_max_connections"]
        if not 1 <= share < total:
            raise ConfigError(
                f"{p}.untrusted_max_connections", "must be at least 1 and below max_connections"
            )
        kw["untrusted_max_connections"] = share
    return SmtpSettings(**kw)


def _retention(raw: dict[str, Any]) -> dict[str, float]:
    """``retention_days`` and ``raw_retention_days``: 0 (keep) or positive; raw not longer."""
    d = StorageSettings()
    kw = {
        key: float(raw.get(key, getattr(d, key)))
        for key in ("retention_days", "raw_retention_days")
    }
    for key, value in kw.items():
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"storage.{key}", "must be 0 (keep) or a positive number of days")
    keep, raw_keep = kw["retention_days"], kw["raw_retention_days"]
    if keep and (not raw_keep or raw_keep > keep):
        kw["raw_retention_days"] = keep  # a raw mail never outlives its request
    return kw


def _one_line(value: str, key: str) -> None:
    """A value that goes into a header or the greeting: no CR, LF or other line break."""
    if any(ch in value for ch in "\r\n\x0b\x0c\x85\u2028\u2029"):
        raise ConfigError(key, "must be on one line (no CR or LF): it goes into a header")


def _delivery(raw: dict[str, Any]) -> DeliverySettings:
    kw: dict[str, Any] = {}
    for key in ("validity_s", "retry_first_s", "retry_max_s", "lease_s"):
        if key in raw:
            _positive(raw[key], f"delivery.{key}")
            kw[key] = float(raw[key])
    if "batch_size" in raw:
        _at_least(raw["batch_size"], 1, "delivery.batch_size")
        kw["batch_size"] = raw["batch_size"]
    d = DeliverySettings(**kw)
    if d.retry_first_s > d.retry_max_s:
        raise ConfigError("delivery.retry_first_s", "must not exceed retry_max_s")
    return d


def _reply(raw: dict[str, Any], smtp: SmtpSettings) -> ReplySettings:
    kw: dict[str, Any] = {}
    if "smarthost" in raw:
        kw["smarthost"] = _host_port(
            raw["smarthost"].strip(), "reply.smarthost", default_port=25, allow_port_zero=False
        )
    if "from" in raw:
        _one_line(raw["from"], "reply.from")
    address = raw.get("from", f"mailbridge@{smtp.hostname}").strip()
    if not _ADDRESS_RE.fullmatch(address):
        raise ConfigError("reply.from", f"not an e-mail address: {_show(address)}")
    kw["from_address"] = address
    if "reply_rate_per_hour" in raw:
        _at_least(raw["reply_rate_per_hour"], 0, "reply.reply_rate_per_hour")
        kw["reply_rate_per_hour"] = raw["reply_rate_per_hour"]
    if "starttls" in raw:
        kw["starttls"] = raw["starttls"]
    if ("username" in raw) != ("password" in raw):
        missing = "password" if "username" in raw else "username"
        raise ConfigError(f"reply.{missing}", "username and password go together")
    if "username" in raw:
        if not raw["username"]:
            raise ConfigError("reply.username", "empty")
        if not raw["password"]:
            raise ConfigError("reply.password", "empty")
        kw["username"] = raw["username"]
        kw["password"] = raw["password"]
    if "timeout_s" in raw:
        _positive(raw["timeout_s"], "reply.timeout_s")
        kw["timeout_s"] = float(raw["timeout_s"])
    return ReplySettings(**kw)


def _limits(raw: dict[str, Any]) -> LimitsSettings:
    kw: dict[str, Any] = {}
    for key, spec in SCHEMA["limits"].items():
        if key in raw:
            if spec.kind == "float":
                _positive(raw[key], f"limits.{key}")
                kw[key] = float(raw[key])
            else:
                _at_least(raw[key], 1, f"limits.{key}")
                kw[key] = raw[key]
    return LimitsSettings(**kw)


def _secret(raw: dict[str, Any], path: str, *, hashed: str, plain: str, what: str) -> str | None:
    if hashed in raw and plain in raw:
        raise ConfigError(f"{path}.{plain}", f"give either {hashed} or {plain}, not both")
    if plain in raw:
        if not raw[plain]:
            raise ConfigError(f"{path}.{plain}", f"empty {what}")
        return PLAIN_PREFIX + str(raw[plain])
    if hashed in raw:
        stored = str(raw[hashed]).strip()
        if not is_readable_hash(stored):
            raise ConfigError(
                f"{path}.{hashed}",
                "cannot be read: expected a $scrypt$… hash from `mailbridge hash-password`",
            )
        return stored
    return None


def _account(raw: dict[str, Any], i: int) -> Account:
    p = f"accounts[{i}]"
    login = raw["login"].strip()
    if not _LOGIN_RE.fullmatch(login):
        raise ConfigError(
            f"{p}.login", "must be 1 to 64 characters without spaces, colons or control characters"
        )
    password_hash = _secret(raw, p, hashed="password_hash", plain="password", what="password")
    apikey_hash = _secret(raw, p, hashed="apikey_hash", plain="apikey", what="API key")
    if password_hash is None and apikey_hash is None:
        raise ConfigError(f"{p}.password_hash", "required (or password, apikey_hash, apikey)")
    senders = tuple(_sender(v, f"{p}.senders[{j}]") for j, v in enumerate(raw.get("senders", [])))
    _no_duplicates(senders, f"{p}.senders", "sender")
    default_sender = raw.get("default_sender", "").strip()
    if default_sender:
        default_sender = _sender(default_sender, f"{p}.default_sender")
        if senders and default_sender not in senders:
            raise ConfigError(f"{p}.default_sender", "must be one of senders")
    tz = raw.get("tz", 0)
    if not _TZ_MIN <= tz <= _TZ_MAX:
        raise ConfigError(f"{p}.tz", f"must be hours relative to Moscow, {_TZ_MIN}..{_TZ_MAX}")
    balance = raw.get("balance")
    if balance is not None:
        _at_least(balance, 0, f"{p}.balance")
    groups: dict[int, tuple[str, ...]] = {}
    for name, members in raw.get("groups", {}).items():
        gp = f"{p}.groups.{name}"
        if not (name.isascii() and name.isdigit()):
            raise ConfigError(gp, "a group is named by its number, like 1")
        _check_type(members, "list[str]", gp)
        if not members:
            raise ConfigError(gp, "empty group")
        if int(name) in groups:
            raise ConfigError(gp, "duplicate group number")
        groups[int(name)] = _no_spaces(members, gp)
    deny_text = tuple(raw.get("deny_text", []))
    for j, pattern in enumerate(deny_text):
        try:
            compile_linear(pattern)
        except PatternError as exc:
            raise ConfigError(f"{p}.deny_text[{j}]", f"{pattern!r}: {exc}") from None
    return Account(
        login=login,
        password_hash=password_hash,
        apikey_hash=apikey_hash,
        senders=senders,
        default_sender=default_sender,
        allowed_ips=_networks(raw.get("allowed_ips", []), f"{p}.allowed_ips"),
        tz=tz,
        balance=balance,
        groups=groups,
        deny_text=deny_text,
        blacklist=_no_spaces(raw.get("blacklist", []), f"{p}.blacklist"),
    )


def _mode_sender(raw: dict[str, Any], path: str, account: Account) -> str | None:
    if "sender" not in raw:
        return None
    sender = _sender(raw["sender"], f"{path}.sender")
    allowed = set(account.senders) | ({account.default_sender} - {""})
    if sender not in allowed:
        raise ConfigError(f"{path}.sender", f"not one of the senders of account {account.login!r}")
    return sender


def _allowed_senders(values: Sequence[str] | None, path: str) -> tuple[str, ...] | None:
    """None (the key absent): any sender of a trusted or logged-in client; a list narrows it."""
    if values is None:
        return None
    out: list[str] = []
    for i, v in enumerate(values):
        pattern = v.strip().lower()
        if not pattern or any(c.isspace() for c in pattern):
            raise ConfigError(f"{path}[{i}]", "expected an address or a pattern like *@example.com")
        out.append(pattern)
    return tuple(out)


def _account_ref(raw: dict[str, Any], path: str, accounts: Mapping[str, Account]) -> Account:
    login = raw["account"].strip()
    account = accounts.get(login)
    if account is None:
        raise ConfigError(f"{path}.account", f"no account with login {_show(login)}")
    return account


def _max_parts(raw: dict[str, Any], path: str) -> int:
    value: int = raw.get("max_parts", 2)
    _at_least(value, 1, f"{path}.max_parts")
    return value


def _forward(
    raw: dict[str, Any], i: int, smtp: SmtpSettings, accounts: Mapping[str, Account]
) -> ForwardAlias:
    p = f"forward[{i}]"
    address = raw["address"].strip().lower()
    if "@" not in address:
        address = f"{address}@{smtp.domains[0]}"
    local, _, domain = address.rpartition("@")
    if not _LOCAL_PART_RE.fullmatch(local):
        raise ConfigError(f"{p}.address", f"not an address: {_show(address)}")
    if domain not in smtp.domains:
        raise ConfigError(f"{p}.address", f"domain {_show(domain)} is not one of smtp.domains")
    if local == smtp.command_address:
        raise ConfigError(f"{p}.address", "is the command address (smtp.command_address)")
    account = _account_ref(raw, p, accounts)
    to = _no_spaces(raw["to"], f"{p}.to")
    if not to:
        raise ConfigError(f"{p}.to", "at least one recipient is needed")
    for j, entry in enumerate(to):
        m = _GROUP_REF_RE.fullmatch(entry)
        if m and int(m[1]) not in account.groups:
            raise ConfigError(f"{p}.to[{j}]", f"account {account.login!r} has no group {m[1]}")
    return ForwardAlias(
        address=address,
        account=account.login,
        to=to,
        allowed_senders=_allowed_senders(raw.get("allowed_senders"), f"{p}.allowed_senders"),
        template=_template(raw.get("template", "{subject}: {body}"), f"{p}.template"),
        max_parts=_max_parts(raw, p),
        sender=_mode_sender(raw, p, account),
    )


def _number_addresses(
    raw: dict[str, Any], accounts: Mapping[str, Account]
) -> NumberAddressSettings:
    p = "number_addresses"
    enabled: bool = raw.get("enabled", False)
    account: Account | None = None
    if raw.get("account", "").strip():
        account = _account_ref(raw, p, accounts)
    elif enabled:
        raise ConfigError(f"{p}.account", "required when enabled = true")
    sender = None
    if "sender" in raw:
        if account is None:
            raise ConfigError(f"{p}.sender", "needs account")
        sender = _mode_sender(raw, p, account)
    return NumberAddressSettings(
        enabled=enabled,
        account=account.login if account else "",
        allowed_senders=_allowed_senders(raw.get("allowed_senders"), f"{p}.allowed_senders"),
        template=_template(raw.get("template", "{subject}: {body}"), f"{p}.template"),
        max_parts=_max_parts(raw, p),
        sender=sender,
    )


def _provider(raw: object, i: int, base_dir: Path | None) -> ProviderSettings:
    p = f"providers[{i}]"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        name = raw["name"].strip()
        if not _NAME_RE.fullmatch(name):
            raise ConfigError(f"{p}.name", "must be 1 to 64 of A-Z a-z 0-9 _ . -")
        p = f"providers.{name}"
    checked = _table(raw, "providers", p)
    name = checked["name"].strip()
    ptype = _one_of(checked["type"], tuple(PROVIDER_FORMATS), f"{p}.type")
    kw: dict[str, Any] = {"name": name, "type": ptype}
    if ptype != "smpp":
        for key in SMPP_KEYS:
            if key in checked:
                raise ConfigError(f"{p}.{key}", f"not used by type {ptype}")
    if ptype == "smpp":
        for key in ("url", "username", "path", "max_recipients"):
            if key in checked:
                raise ConfigError(f"{p}.{key}", "not used by type smpp")
        ca = checked.get("tls_ca", "").strip()
        settings = smpp_settings(checked, p, _path(ca, base_dir) if ca else None)
        kw["smpp"] = settings
        kw["password"] = checked.get("password", "")
        if "concurrency" not in checked:
            kw["concurrency"] = 2 * settings.window * settings.connections
    elif ptype in _HTTP_TYPES:
        if "path" in checked:
            raise ConfigError(f"{p}.path", f"not used by type {ptype}")
        url = checked.get("url", "").strip()
        if not url:
            raise ConfigError(f"{p}.url", f"required for type {ptype}")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{p}.url", "expected an http:// or https:// URL")
        kw["url"] = url
        for key in ("username", "password"):
            if key in checked:
                kw[key] = checked[key]
    else:
        for key in ("url", "username", "password"):
            if key in checked:
                raise ConfigError(f"{p}.{key}", f"not used by type {ptype}")
        file_path = checked.get("path", "").strip()
        if not file_path:
            raise ConfigError(f"{p}.path", f"required for type {ptype}")
        kw["path"] = _path(file_path, base_dir)
    if "formats" in checked:
        carried = PROVIDER_FORMATS[ptype]
        formats: set[Format] = set()
        for j, number in enumerate(checked["formats"]):
            if number not in _FORMAT_NUMBERS:
                raise ConfigError(f"{p}.formats[{j}]", f"no format {number} (formats are 0..12)")
            if Format(number) not in carried:
                allowed = ", ".join(str(int(f)) for f in sorted(carried))
                raise ConfigError(
                    f"{p}.formats[{j}]", f"type {ptype} does not carry format {number} ({allowed})"
                )
            formats.add(Format(number))
        if not formats:
            raise ConfigError(f"{p}.formats", "empty: leave it out for all the type carries")
        kw["formats"] = frozenset(formats)
    if "rate_per_s" in checked:
        _at_least(checked["rate_per_s"], 0, f"{p}.rate_per_s")
        kw["rate_per_s"] = float(checked["rate_per_s"])
    for key in ("timeout_s", "connect_timeout_s"):
        if key in checked:
            _positive(checked[key], f"{p}.{key}")
            kw[key] = float(checked[key])
    for key in ("concurrency", "max_recipients"):
        if key in checked:
            _at_least(checked[key], 1, f"{p}.{key}")
            kw[key] = checked[key]
    if "status_poll_s" in checked:
        if ptype not in _STATUS_TYPES:
            raise ConfigError(f"{p}.status_poll_s", f"not used by type {ptype}")
        _at_least(checked["status_poll_s"], 0, f"{p}.status_poll_s")
        kw["status_poll_s"] = float(checked["status_poll_s"])
    return ProviderSettings(**kw)


def _provider_names(values: Sequence[str], path: str, known: Sequence[str]) -> tuple[str, ...]:
    names = tuple(v.strip() for v in values)
    for j, name in enumerate(names):
        if name not in known:
            raise ConfigError(f"{path}[{j}]", f"unknown provider {_show(name)}")
    _no_duplicates(names, path, "provider")
    return names


def _routing(raw: dict[str, Any], providers: Sequence[ProviderSettings]) -> RoutingSettings:
    known = [prov.name for prov in providers]
    kw: dict[str, Any] = {}
    if "default" in raw:
        default = _provider_names(raw["default"], "routing.default", known)
        if not default:
            raise ConfigError("routing.default", "at least one provider is needed")
        kw["default"] = default
    else:
        kw["default"] = tuple(known)
    rules: list[RouteRule] = []
    for j, rule_raw in enumerate(raw.get("rules", [])):
        rp = f"routing.rules[{j}]"
        rule = _table(rule_raw, "routing.rules", rp)
        prefix = "".join(rule["prefix"].split())
        if not _PREFIX_RE.fullmatch(prefix):
            raise ConfigError(f"{rp}.prefix", "expected digits with or without +, like +7")
        prefix = "+" + prefix.removeprefix("+")  # "7" and "+7" are the same rule
        if any(r.prefix == prefix for r in rules):
            raise ConfigError(f"{rp}.prefix", f"duplicate prefix {prefix}")
        names = _provider_names(rule["providers"], f"{rp}.providers", known)
        if not names:
            raise ConfigError(f"{rp}.providers", "at least one provider is needed")
        rules.append(RouteRule(prefix=prefix, providers=names))
    kw["rules"] = tuple(rules)
    if "breaker_failures" in raw:
        _at_least(raw["breaker_failures"], 1, "routing.breaker_failures")
        kw["breaker_failures"] = raw["breaker_failures"]
    if "breaker_reset_s" in raw:
        _positive(raw["breaker_reset_s"], "routing.breaker_reset_s")
        kw["breaker_reset_s"] = float(raw["breaker_reset_s"])
    return RoutingSettings(**kw)


def _inbound(raw: dict[str, Any]) -> InboundSettings:
    kw: dict[str, Any] = {}
    if "reply_window_s" in raw:
        _at_least(raw["reply_window_s"], 0, "inbound.reply_window_s")
        kw["reply_window_s"] = float(raw["reply_window_s"])
    if "mail_to" in raw:
        address = raw["mail_to"].strip()
        if not _ADDRESS_RE.fullmatch(address):
            raise ConfigError("inbound.mail_to", f"not an e-mail address: {_show(address)}")
        kw["mail_to"] = address
    return InboundSettings(**kw)


def _logging(raw: dict[str, Any]) -> LoggingSettings:
    kw: dict[str, Any] = {}
    if "level" in raw:
        kw["level"] = _one_of(raw["level"], _LOG_LEVELS, "logging.level")
    if "format" in raw:
        kw["format"] = _one_of(raw["format"], _LOG_FORMATS, "logging.format")
    return LoggingSettings(**kw)


def _loopback_host(entry: str) -> bool:
    host = entry[1:].partition("]")[0] if entry.startswith("[") else entry.rpartition(":")[0]
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _http_hash(raw: dict[str, Any], key: str) -> str | None:
    if key not in raw:
        return None
    stored = str(raw[key]).strip()
    if not is_readable_hash(stored):
        raise ConfigError(
            f"http.{key}",
            "cannot be read: expected a $scrypt$… hash from `mailbridge hash-password`",
        )
    return stored


def _http(raw: dict[str, Any]) -> HttpSettings:
    listen = tuple(
        _host_port(v, f"http.listen[{i}]", default_port=None, allow_port_zero=True)
        for i, v in enumerate(raw.get("listen", []))
    )
    _no_duplicates(listen, "http.listen", "address")
    token_hash = _http_hash(raw, "token_hash")
    password_hash = _http_hash(raw, "password_hash")
    username = raw.get("username")
    if (username is None) != (password_hash is None):
        missing = "http.password_hash" if password_hash is None else "http.username"
        raise ConfigError(missing, "basic auth needs both http.username and http.password_hash")
    if username is not None and (not username or ":" in username):
        raise ConfigError("http.username", "must be non-empty and without ':'")
    wide = [entry for entry in listen if not _loopback_host(entry)]
    if wide and token_hash is None and password_hash is None:
        raise ConfigError(
            "http.token_hash",
            f"required to listen beyond loopback ({wide[0]}): set http.token_hash, "
            "or http.username and http.password_hash (hashes from `mailbridge hash-password`)",
        )
    return HttpSettings(
        listen=listen, token_hash=token_hash, username=username, password_hash=password_hash
    )


def _daemon(raw: dict[str, Any], base_dir: Path | None) -> DaemonSettings:
    pid_file = raw.get("pid_file")
    if pid_file is None:
        return DaemonSettings()
    if not pid_file.strip():
        raise ConfigError("daemon.pid_file", "empty path (leave the key out for no PID file)")
    return DaemonSettings(pid_file=_path(pid_file, base_dir))


def _default_outbox(storage_url: str, base_dir: Path | None) -> str:
    db = _sqlite_file(storage_url)
    if db is not None:
        return os.path.normpath(db.parent / "outbox.jsonl")
    return _path("outbox.jsonl", base_dir)


# --------------------------------------------------------------------------- public


def parse_config(
    text: str,
    *,
    source: str = "<string>",
    base_dir: Path | None = None,
    state_dir: Path | None = None,
) -> Settings:
    """Read the TOML ``text`` into ``Settings``; raise ``ConfigError`` naming the bad key.

    Relative paths (a ``sqlite:///`` database, ``tls_cert``, a ``file``
    provider's ``path``) are taken from ``base_dir``, the config file's folder;
    with ``base_dir=None`` they stay relative. ``state_dir`` (systemd's
    ``$STATE_DIRECTORY``), when given, is the base of the paths the gateway
    writes instead: the SQLite database, a ``file`` provider's ``path`` and the
    PID file; files it only reads (TLS) stay relative to ``base_dir``.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _TOML_AT_RE.search(message)
        if at:
            where = f" at line {at[1]}, column {at[2]}"
        elif message.endswith(_TOML_AT_END):
            last_line = text.count("\n") + 1
            where = f" at the end of the file (line {last_line})"
        else:
            where = ""
        reason = _TOML_AT_RE.sub("", message).removesuffix(_TOML_AT_END).strip()
        raise ConfigError(source, f"TOML syntax error{where}: {reason}") from None
    for key, value in doc.items():
        if key not in _TOP_LEVEL:
            hint = difflib.get_close_matches(key, _TOP_LEVEL, n=1)
            more = f" (did you mean [{hint[0]}]?)" if hint else ""
            raise ConfigError(key, f"unknown section{more}")
        if key in _ARRAY_SECTIONS and not isinstance(value, list):
            raise ConfigError(key, f"expected an array of tables ([[{key}]])")
        if key not in _ARRAY_SECTIONS and not isinstance(value, dict):
            raise ConfigError(key, f"expected a table ([{key}])")

    def section(name: str) -> dict[str, Any]:
        return _table(doc.get(name, {}), name, name)

    data_dir = state_dir if state_dir is not None else base_dir
    smtp = _smtp(section("smtp"), base_dir)
    storage_raw = section("storage")
    storage = StorageSettings(
        url=_storage_url(storage_raw.get("url", StorageSettings().url), data_dir, "storage.url"),
        **_retention(storage_raw),
    )
    delivery = _delivery(section("delivery"))
    reply = _reply(section("reply"), smtp)
    limits = _limits(section("limits"))

    accounts: list[Account] = []
    by_login: dict[str, Account] = {}
    plain_keys: dict[str, int] = {}
    for i, raw in enumerate(doc.get("accounts", [])):
        account = _account(_table(raw, "accounts", f"accounts[{i}]"), i)
        if account.login in by_login:
            raise ConfigError(f"accounts[{i}].login", f"duplicate login {account.login!r}")
        if account.apikey_hash and account.apikey_hash.startswith(PLAIN_PREFIX):
            if account.apikey_hash in plain_keys:
                first = plain_keys[account.apikey_hash]
                raise ConfigError(f"accounts[{i}].apikey", f"the same API key as accounts[{first}]")
            plain_keys[account.apikey_hash] = i
        by_login[account.login] = account
        accounts.append(account)

    forwards: list[ForwardAlias] = []
    for i, raw in enumerate(doc.get("forward", [])):
        alias = _forward(_table(raw, "forward", f"forward[{i}]"), i, smtp, by_login)
        if any(f.address == alias.address for f in forwards):
            raise ConfigError(f"forward[{i}].address", f"duplicate address {alias.address!r}")
        forwards.append(alias)
    number_addresses = _number_addresses(section("number_addresses"), by_login)

    providers: list[ProviderSettings] = []
    for i, raw in enumerate(doc.get("providers", [])):
        provider = _provider(raw, i, data_dir)
        if any(q.name == provider.name for q in providers):
            raise ConfigError(f"providers[{i}].name", f"duplicate provider name {provider.name!r}")
        providers.append(provider)
    if not providers:
        providers.append(
            ProviderSettings(name="file", type="file", path=_default_outbox(storage.url, data_dir))
        )
    routing = _routing(section("routing"), providers)

    return Settings(
        smtp=smtp,
        storage=storage,
        delivery=delivery,
        reply=reply,
        limits=limits,
        accounts=tuple(accounts),
        forward=tuple(forwards),
        number_addresses=number_addresses,
        providers=tuple(providers),
        routing=routing,
        logging=_logging(section("logging")),
        http=_http(section("http")),
        daemon=_daemon(section("daemon"), data_dir),
        inbound=_inbound(section("inbound")),
        source=source,
    )


def state_directory(env: Mapping[str, str]) -> Path | None:
    """The first folder of systemd's ``$STATE_DIRECTORY`` (set by ``StateDirectory=``)."""
    first = env.get("STATE_DIRECTORY", "").split(":")[0].strip()
    return Path(first) if first else None


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> Settings:
    """Read the config file at ``path``; raise ``ConfigError`` naming the file or the key.

    Relative paths the gateway writes resolve against ``$STATE_DIRECTORY`` of ``env``
    (default: this process's environment) when it is set, else the config file's folder.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(str(p), f"cannot read: {exc.strerror or type(exc).__name__}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(p), f"not UTF-8 text (byte {exc.start})") from None
    state_dir = state_directory(os.environ if env is None else env)
    return parse_config(text, source=str(p), base_dir=p.absolute().parent, state_dir=state_dir)


def resolve_config_path(arg: str | None, env: Mapping[str, str]) -> Path:
    """The config path: ``--config``, else ``$MAILBRIDGE_CONFIG``, else the default."""
    if arg:
        return Path(arg)
    from_env = env.get("MAILBRIDGE_CONFIG", "")
    if from_env:
        return Path(from_env)
    return DEFAULT_CONFIG_PATH


def config_warnings(settings: Settings) -> list[str]:
    """Lines worth logging at start-up about a config that loaded; never a secret."""
    warnings: list[str] = []
    for i, account in enumerate(settings.accounts):
        if account.password_hash and account.password_hash.startswith(PLAIN_PREFIX):
            warnings.append(
                f"accounts[{i}] ({account.login}): the password is in plain text; "
                "put a hash from `mailbridge hash-password` in password_hash"
            )
        if account.apikey_hash and account.apikey_hash.startswith(PLAIN_PREFIX):
            warnings.append(
                f"accounts[{i}] ({account.login}): the API key is in plain text; "
                "put a hash from `mailbridge hash-password` in apikey_hash"
            )
    if settings.reply.smarthost is None and settings.smtp.on_error == "reply":
        warnings.append(
            "reply.smarthost is not set: reply mails are kept in the database until it is"
        )
    for i, alias in enumerate(settings.forward):
        if alias.allowed_senders == ():
            warnings.append(
                f"forward[{i}] ({alias.address}): allowed_senders is an empty list, which "
                "refuses every sender; leave the key out to accept any trusted sender"
            )
    numbers = settings.number_addresses
    if numbers.enabled and numbers.allowed_senders == ():
        warnings.append(
            "number_addresses.allowed_senders is an empty list, which refuses every sender; "
            "leave the key out to accept any trusted sender"
        )
    if settings.providers and all(p.type == "file" for p in settings.providers):
        paths = ", ".join(p.path for p in settings.providers)
        warnings.append(f"only file providers: no SMS leaves this host (written to {paths})")
    return warnings
