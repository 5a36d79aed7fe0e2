"""``[[providers]]`` and ``[routing]``: the upstream providers and which numbers go where."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from mailbridge.core.config.checks import (
    at_least,
    no_duplicates,
    one_of,
    positive,
    read_path,
    show,
    sqlite_file,
    table,
)
from mailbridge.core.config.schema import PROVIDER_FORMATS
from mailbridge.core.config.smpp import SMPP_KEYS, smpp_settings
from mailbridge.errors import ConfigError
from mailbridge.models import Format
from mailbridge.settings import ProviderSettings, RouteRule, RoutingSettings

__all__ = ["default_outbox", "read_provider", "read_routing"]


_HTTP_TYPES: Final = frozenset({"miatel", "jsonapi", "smsc"})


#: Provider types whose wire format documents a status query (``status_poll_s``).
_STATUS_TYPES: Final = frozenset({"smsc"})


_FORMAT_NUMBERS: Final = frozenset(int(f) for f in Format)


_NAME_RE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")


_PREFIX_RE: Final = re.compile(r"\+?[0-9]{1,15}")


def read_provider(raw: object, i: int, base_dir: Path | None) -> ProviderSettings:
    p = f"providers[{i}]"
    if isinstance(raw, dict) and isinstance(raw.get("name"), str):
        name = raw["name"].strip()
        if not _NAME_RE.fullmatch(name):
            raise ConfigError(f"{p}.name", "must be 1 to 64 of A-Z a-z 0-9 _ . -")
        p = f"providers.{name}"
    checked = table(raw, "providers", p)
    name = checked["name"].strip()
    ptype = one_of(checked["type"], tuple(PROVIDER_FORMATS), f"{p}.type")
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
        settings = smpp_settings(checked, p, read_path(ca, base_dir) if ca else None)
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
        kw["path"] = read_path(file_path, base_dir)
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
        at_least(checked["rate_per_s"], 0, f"{p}.rate_per_s")
        kw["rate_per_s"] = float(checked["rate_per_s"])
    for key in ("timeout_s", "connect_timeout_s"):
        if key in checked:
            positive(checked[key], f"{p}.{key}")
            kw[key] = float(checked[key])
    for key in ("concurrency", "max_recipients"):
        if key in checked:
            at_least(checked[key], 1, f"{p}.{key}")
            kw[key] = checked[key]
    if "status_poll_s" in checked:
        if ptype not in _STATUS_TYPES:
            raise ConfigError(f"{p}.status_poll_s", f"not used by type {ptype}")
        at_least(checked["status_poll_s"], 0, f"{p}.status_poll_s")
        kw["status_poll_s"] = float(checked["status_poll_s"])
    return ProviderSettings(**kw)


def _provider_names(values: Sequence[str], path: str, known: Sequence[str]) -> tuple[str, ...]:
    names = tuple(v.strip() for v in values)
    for j, name in enumerate(names):
        if name not in known:
            raise ConfigError(f"{path}[{j}]", f"unknown provider {show(name)}")
    no_duplicates(names, path, "provider")
    return names


def read_routing(raw: dict[str, Any], providers: Sequence[ProviderSettings]) -> RoutingSettings:
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
        rule = table(rule_raw, "routing.rules", rp)
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
        at_least(raw["breaker_failures"], 1, "routing.breaker_failures")
        kw["breaker_failures"] = raw["breaker_failures"]
    if "breaker_reset_s" in raw:
        positive(raw["breaker_reset_s"], "routing.breaker_reset_s")
        kw["breaker_reset_s"] = float(raw["breaker_reset_s"])
    return RoutingSettings(**kw)


def default_outbox(storage_url: str, base_dir: Path | None) -> str:
    db = sqlite_file(storage_url)
    if db is not None:
        return os.path.normpath(db.parent / "outbox.jsonl")
    return read_path("outbox.jsonl", base_dir)
