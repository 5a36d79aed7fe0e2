"""The single-table sections read into settings: ``[smtp]``, ``[delivery]``, ``[reply]``,
``[limits]``, ``[logging]`` and the others without arrays of tables.
"""

from __future__ import annotations

import math
import re
from ipaddress import ip_address
from pathlib import Path
from typing import Any, Final

from mailbridge.core.config.checks import (
    LOCAL_PART_RE,
    at_least,
    host_port,
    networks,
    no_duplicates,
    one_of,
    positive,
    read_hostname,
    read_path,
    show,
)
from mailbridge.core.config.schema import SCHEMA
from mailbridge.core.mail import charset_label
from mailbridge.core.passwords import is_readable_hash
from mailbridge.errors import ConfigError
from mailbridge.models import OnError
from mailbridge.settings import (
    DaemonSettings,
    DeliverySettings,
    HttpSettings,
    InboundSettings,
    LimitsSettings,
    LoggingSettings,
    ReplySettings,
    SmtpSettings,
    StorageSettings,
)

__all__ = [
    "read_daemon",
    "read_delivery",
    "read_http",
    "read_inbound",
    "read_limits",
    "read_logging",
    "read_reply",
    "read_smtp",
    "retention",
]


_ADDRESS_RE: Final = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")


_REGION_RE: Final = re.compile(r"[A-Za-z]{2}")


_LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


_LOG_FORMATS: Final = ("auto", "json", "console")


def read_smtp(raw: dict[str, Any], base_dir: Path | None) -> SmtpSettings:
    d = SmtpSettings()
    kw: dict[str, Any] = {}
    p = "smtp"
    if "listen" in raw:
        listen = tuple(
            host_port(v.strip(), f"{p}.listen[{i}]", default_port=None, allow_port_zero=True)
            for i, v in enumerate(raw["listen"])
        )
        if not listen:
            raise ConfigError(f"{p}.listen", "at least one address is needed")
        no_duplicates(listen, f"{p}.listen", "address")
        kw["listen"] = listen
    for key in ("hostname", "ident"):
        if key in raw:
            _one_line(raw[key], f"{p}.{key}")
    hostname = (
        read_hostname(raw["hostname"].strip(), f"{p}.hostname") if "hostname" in raw else None
    )
    if hostname is not None:
        kw["hostname"] = hostname
    if "ident" in raw:
        ident = raw["ident"].strip()
        if not ident or not ident.isprintable():
            raise ConfigError(f"{p}.ident", "must be printable text on one line")
        kw["ident"] = ident
    if "domains" in raw:
        domains = tuple(
            read_hostname(v.strip(), f"{p}.domains[{i}]") for i, v in enumerate(raw["domains"])
        )
        if not domains:
            raise ConfigError(f"{p}.domains", "at least one domain is needed")
        no_duplicates(domains, f"{p}.domains", "domain")
        kw["domains"] = domains
    elif hostname is not None:
        kw["domains"] = (hostname,)
    if "command_address" in raw:
        local = raw["command_address"].strip().lower()
        if not LOCAL_PART_RE.fullmatch(local):
            raise ConfigError(f"{p}.command_address", "must be the local part of an address")
        kw["command_address"] = local
    if "max_message_size" in raw:
        at_least(raw["max_message_size"], 1024, f"{p}.max_message_size")
        kw["max_message_size"] = raw["max_message_size"]
    if "trusted_networks" in raw:
        kw["trusted_networks"] = networks(raw["trusted_networks"], f"{p}.trusted_networks")
    if "default_charset" in raw:
        charset = raw["default_charset"].strip().lower()
        if charset_label(charset) is None:  # unknown, or a codec that is no charset (base64)
            raise ConfigError(f"{p}.default_charset", f"not a known charset: {show(charset)}")
        kw["default_charset"] = charset
    if "default_region" in raw:
        region = raw["default_region"].strip()
        if not _REGION_RE.fullmatch(region):
            raise ConfigError(f"{p}.default_region", "must be a two-letter region code like RU")
        kw["default_region"] = region.upper()
    if "on_error" in raw:
        kw["on_error"] = OnError(one_of(raw["on_error"], tuple(OnError), f"{p}.on_error"))
    for key in ("tls_cert", "tls_key"):
        if key in raw:
            if not raw[key].strip():
                raise ConfigError(f"{p}.{key}", "empty path")
            kw[key] = read_path(raw[key].strip(), base_dir)
    if ("tls_cert" in kw) != ("tls_key" in kw):
        missing = "tls_key" if "tls_cert" in kw else "tls_cert"
        raise ConfigError(f"{p}.{missing}", "tls_cert and tls_key go together")
    if "require_starttls" in raw:
        if raw["require_starttls"] and "tls_cert" not in kw:
            raise ConfigError(f"{p}.require_starttls", "needs tls_cert and tls_key")
        kw["require_starttls"] = raw["require_starttls"]
    for key in ("timeout_s", "untrusted_timeout_s"):
        if key in raw:
            positive(raw[key], f"{p}.{key}")
            kw[key] = float(raw[key])
    if "untrusted_command_limit" in raw:
        at_least(raw["untrusted_command_limit"], 3, f"{p}.untrusted_command_limit")
        kw["untrusted_command_limit"] = raw["untrusted_command_limit"]
    for key in ("command_call_limit", "max_connections", "max_connections_per_ip", "workers"):
        if key in raw:
            at_least(raw[key], 1, f"{p}.{key}")
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


def retention(raw: dict[str, Any]) -> dict[str, float]:
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


def read_delivery(raw: dict[str, Any]) -> DeliverySettings:
    kw: dict[str, Any] = {}
    for key in ("validity_s", "retry_first_s", "retry_max_s", "lease_s"):
        if key in raw:
            positive(raw[key], f"delivery.{key}")
            kw[key] = float(raw[key])
    if "batch_size" in raw:
        at_least(raw["batch_size"], 1, "delivery.batch_size")
        kw["batch_size"] = raw["batch_size"]
    d = DeliverySettings(**kw)
    if d.retry_first_s > d.retry_max_s:
        raise ConfigError("delivery.retry_first_s", "must not exceed retry_max_s")
    return d


def read_reply(raw: dict[str, Any], smtp: SmtpSettings) -> ReplySettings:
    kw: dict[str, Any] = {}
    if "smarthost" in raw:
        kw["smarthost"] = host_port(
            raw["smarthost"].strip(), "reply.smarthost", default_port=25, allow_port_zero=False
        )
    if "from" in raw:
        _one_line(raw["from"], "reply.from")
    address = raw.get("from", f"mailbridge@{smtp.hostname}").strip()
    if not _ADDRESS_RE.fullmatch(address):
        raise ConfigError("reply.from", f"not an e-mail address: {show(address)}")
    kw["from_address"] = address
    if "reply_rate_per_hour" in raw:
        at_least(raw["reply_rate_per_hour"], 0, "reply.reply_rate_per_hour")
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
        positive(raw["timeout_s"], "reply.timeout_s")
        kw["timeout_s"] = float(raw["timeout_s"])
    return ReplySettings(**kw)


def read_limits(raw: dict[str, Any]) -> LimitsSettings:
    kw: dict[str, Any] = {}
    for key, spec in SCHEMA["limits"].items():
        if key in raw:
            if spec.kind == "float":
                positive(raw[key], f"limits.{key}")
                kw[key] = float(raw[key])
            else:
                at_least(raw[key], 1, f"limits.{key}")
                kw[key] = raw[key]
    return LimitsSettings(**kw)


def read_inbound(raw: dict[str, Any]) -> InboundSettings:
    kw: dict[str, Any] = {}
    if "reply_window_s" in raw:
        at_least(raw["reply_window_s"], 0, "inbound.reply_window_s")
        kw["reply_window_s"] = float(raw["reply_window_s"])
    if "mail_to" in raw:
        address = raw["mail_to"].strip()
        if not _ADDRESS_RE.fullmatch(address):
            raise ConfigError("inbound.mail_to", f"not an e-mail address: {show(address)}")
        kw["mail_to"] = address
    return InboundSettings(**kw)


def read_logging(raw: dict[str, Any]) -> LoggingSettings:
    kw: dict[str, Any] = {}
    if "level" in raw:
        kw["level"] = one_of(raw["level"], _LOG_LEVELS, "logging.level")
    if "format" in raw:
        kw["format"] = one_of(raw["format"], _LOG_FORMATS, "logging.format")
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


def read_http(raw: dict[str, Any]) -> HttpSettings:
    listen = tuple(
        host_port(v, f"http.listen[{i}]", default_port=None, allow_port_zero=True)
        for i, v in enumerate(raw.get("listen", []))
    )
    no_duplicates(listen, "http.listen", "address")
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


def read_daemon(raw: dict[str, Any], base_dir: Path | None) -> DaemonSettings:
    pid_file = raw.get("pid_file")
    if pid_file is None:
        return DaemonSettings()
    if not pid_file.strip():
        raise ConfigError("daemon.pid_file", "empty path (leave the key out for no PID file)")
    return DaemonSettings(pid_file=read_path(pid_file, base_dir))
