"""Checks of single config values: TOML types, hosts and ports, networks, senders,
templates, paths and storage URLs. Each raises ``ConfigError`` naming the key.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import string
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_network
from pathlib import Path
from typing import Any, Final

from mailbridge.core.config.schema import SCHEMA
from mailbridge.errors import ConfigError
from mailbridge.settings import Network

__all__ = [
    "LOCAL_PART_RE",
    "at_least",
    "check_type",
    "host_port",
    "networks",
    "no_duplicates",
    "no_spaces",
    "one_of",
    "positive",
    "read_hostname",
    "read_path",
    "read_sender",
    "read_storage_url",
    "read_template",
    "show",
    "sqlite_file",
    "table",
]


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


LOCAL_PART_RE: Final = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")


_SENDER_RE: Final = re.compile(r"[A-Za-z0-9 \-._&!?'+]{1,11}|[0-9]{1,15}")


_TEMPLATE_FIELDS: Final = frozenset({"subject", "body", "from"})


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


def show(value: str) -> str:
    """A non-secret value quoted for a message, cut short and on one line."""
    text = value if len(value) <= 40 else value[:37] + "..."
    return repr(text)


def check_type(value: object, kind: str, path: str) -> None:
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
                check_type(item, inner, f"{path}[{i}]")
        return
    else:  # pragma: no cover - a SCHEMA mistake
        raise AssertionError(kind)
    if not ok:
        raise ConfigError(path, f"expected {_TYPE_NAMES[kind]}, got {_type_name(value)}")


def table(raw: object, section: str, path: str) -> dict[str, Any]:
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
        check_type(value, spec.kind, f"{path}.{key}")
    for key, spec in schema.items():
        if spec.required and key not in raw:
            raise ConfigError(f"{path}.{key}", "required key is missing")
    return raw


def at_least(value: float, minimum: float, path: str) -> None:
    if value < minimum:
        shown = int(minimum) if float(minimum).is_integer() else minimum
        raise ConfigError(path, f"must be at least {shown}")


def positive(value: float, path: str) -> None:
    if value <= 0:
        raise ConfigError(path, "must be greater than 0")


def no_duplicates(items: Sequence[str], path: str, what: str) -> None:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item in seen:
            raise ConfigError(f"{path}[{i}]", f"duplicate {what} {show(item)}")
        seen.add(item)


def read_hostname(value: str, path: str) -> str:
    if not _HOSTNAME_RE.fullmatch(value):
        raise ConfigError(path, f"not a valid host name: {show(value)}")
    return value.rstrip(".").lower()


def host_port(value: str, path: str, *, default_port: int | None, allow_port_zero: bool) -> str:
    """Check ``host:port`` (IPv6 as ``[::1]:2525``) and give it back normalised."""
    v6 = value.startswith("[")
    if v6:
        host, closed, rest = value[1:].partition("]")
        if not closed:
            raise ConfigError(path, f"missing ']' in {show(value)}")
        try:
            IPv6Address(host)
        except ValueError:
            raise ConfigError(path, f"not an IPv6 address: {show(host)}") from None
        if rest and not rest.startswith(":"):
            raise ConfigError(path, f"expected [ipv6]:port, got {show(value)}")
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = value.rpartition(":")
        if not colon:
            host, port_text = value, ""
        if ":" in host:
            raise ConfigError(
                path, f"write an IPv6 address in brackets, like '[::1]:2525': {show(value)}"
            )
        if not host:
            raise ConfigError(path, f"missing host in {show(value)}")
        labels = host.rstrip(".").split(".")
        if all(label.isdigit() for label in labels):
            try:
                IPv4Address(host)
            except ValueError:
                raise ConfigError(path, f"not an IPv4 address: {show(host)}") from None
        else:
            host = read_hostname(host, path)
    if not port_text:
        if default_port is None:
            raise ConfigError(path, f"missing port in {show(value)} (host:port)")
        port = default_port
    else:
        if not port_text.isdigit() or not port_text.isascii():
            raise ConfigError(path, f"bad port in {show(value)}")
        port = int(port_text)
        if port > 65535 or (port == 0 and not allow_port_zero):
            raise ConfigError(path, f"port out of range in {show(value)}")
    return f"[{host}]:{port}" if v6 else f"{host}:{port}"


def networks(values: Sequence[str], path: str) -> tuple[Network, ...]:
    nets: list[Network] = []
    for i, text in enumerate(values):
        try:
            nets.append(ip_network(text.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{path}[{i}]", f"not an IP network: {show(text)}") from None
    return tuple(nets)


def one_of(value: str, choices: Sequence[str], path: str) -> str:
    v = value.strip().lower()
    if v not in choices:
        allowed = " | ".join(choices)
        raise ConfigError(path, f"must be one of {allowed}, not {show(value)}")
    return v


def no_spaces(values: Sequence[str], path: str) -> tuple[str, ...]:
    out: list[str] = []
    for i, text in enumerate(values):
        cleaned = "".join(text.split())
        if not cleaned:
            raise ConfigError(f"{path}[{i}]", "empty entry")
        out.append(cleaned)
    return tuple(out)


def read_sender(value: str, path: str) -> str:
    v = value.strip()
    if not _SENDER_RE.fullmatch(v):
        raise ConfigError(
            path,
            f"not a sender name (at most 11 Latin letters, digits, space, -._&!?'+ "
            f"or at most 15 digits): {show(value)}",
        )
    return v


def read_template(value: str, path: str) -> str:
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


def read_path(value: str, base_dir: Path | None) -> str:
    p = Path(value)
    if not p.is_absolute() and base_dir is not None:
        p = base_dir / p
    return os.path.normpath(p)


def read_storage_url(url: str, base_dir: Path | None, path: str) -> str:
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
    return "sqlite:///" + read_path(file_part, base_dir) + question + query


def sqlite_file(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    return Path(url[len("sqlite:///") :].partition("?")[0])
