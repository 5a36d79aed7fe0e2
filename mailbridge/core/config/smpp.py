"""The ``[[providers]]`` keys of type ``smpp``, checked into :class:`SmppSettings`.

Pure: the raw TOML table in, frozen settings out; every problem is a
``ConfigError`` naming the key (the password is never quoted). SMPP 3.4 sets
the limits: ``system_id`` at most 15 characters, ``password`` 8,
``system_type`` 12.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from mailbridge.errors import ConfigError
from mailbridge.settings import SmppSettings

__all__ = ["BINDS", "DATA_CODINGS", "SMPP_KEYS", "smpp_settings"]

#: Keys only an ``smpp`` provider takes (``password``, ``rate_per_s``, ``timeout_s``,
#: ``connect_timeout_s``, ``concurrency`` and ``formats`` are shared with the other types).
SMPP_KEYS: Final = (
    "host",
    "port",
    "tls",
    "tls_ca",
    "system_id",
    "system_type",
    "bind",
    "data_coding",
    "source_ton",
    "source_npi",
    "dest_ton",
    "dest_npi",
    "window",
    "connections",
    "enquire_link_s",
    "reconnect_min_s",
    "reconnect_max_s",
    "registered_delivery",
)

BINDS: Final = ("transceiver", "transmitter+receiver")
DATA_CODINGS: Final = ("smsc", "standard")

_TON_MAX = 6
_NPIS: Final = frozenset({0, 1, 3, 4, 6, 8, 9, 10, 14, 18})


def _text(raw: Mapping[str, Any], key: str, path: str, limit: int, *, required: bool) -> str:
    value = str(raw.get(key, "")).strip()
    if required and not value:
        raise ConfigError(f"{path}.{key}", "required for type smpp")
    if len(value) > limit or not value.isascii() or any(c.isspace() for c in value):
        raise ConfigError(f"{path}.{key}", f"at most {limit} ASCII characters without spaces")
    return value


def _int_in(raw: Mapping[str, Any], key: str, path: str, low: int, high: int) -> int | None:
    if key not in raw:
        return None
    value: int = raw[key]
    if not low <= value <= high:
        raise ConfigError(f"{path}.{key}", f"must be {low} to {high}")
    return value


def _positive(raw: Mapping[str, Any], key: str, path: str, default: float) -> float:
    value = float(raw.get(key, default))
    if value <= 0:
        raise ConfigError(f"{path}.{key}", "must be greater than 0")
    return value


def smpp_settings(raw: Mapping[str, Any], path: str, tls_ca: str | None) -> SmppSettings:
    """Check the SMPP keys of one provider table (types already checked by the schema)."""
    host = str(raw.get("host", "")).strip()
    if not host:
        raise ConfigError(f"{path}.host", "required for type smpp")
    if any(c.isspace() for c in host) or "/" in host or host.count(":") == 1:
        raise ConfigError(f"{path}.host", "a host name or an IP address, without a port")
    password = str(raw.get("password", ""))
    if len(password) > 8:
        raise ConfigError(f"{path}.password", "at most 8 characters (SMPP 3.4)")
    bind = str(raw.get("bind", "transceiver")).strip().lower()
    if bind not in BINDS:
        raise ConfigError(f"{path}.bind", f"must be one of {' | '.join(BINDS)}")
    coding = str(raw.get("data_coding", "smsc")).strip().lower()
    if coding not in DATA_CODINGS:
        raise ConfigError(f"{path}.data_coding", f"must be one of {' | '.join(DATA_CODINGS)}")
    npis = {}
    for key in ("source_npi", "dest_npi"):
        if key in raw and raw[key] not in _NPIS:
            allowed = ", ".join(str(n) for n in sorted(_NPIS))
            raise ConfigError(f"{path}.{key}", f"not an SMPP numbering plan ({allowed})")
        npis[key] = raw.get(key)
    minimum = _positive(raw, "reconnect_min_s", path, 1.0)
    maximum = _positive(raw, "reconnect_max_s", path, 60.0)
    if maximum < minimum:
        raise ConfigError(f"{path}.reconnect_max_s", "must be at least reconnect_min_s")
    dest_ton = _int_in(raw, "dest_ton", path, 0, _TON_MAX)
    return SmppSettings(
        host=host.strip("[]"),
        port=_int_in(raw, "port", path, 1, 65535) or 2775,
        tls=bool(raw.get("tls", False)),
        tls_ca=tls_ca,
        system_id=_text(raw, "system_id", path, 15, required=True),
        system_type=_text(raw, "system_type", path, 12, required=False),
        bind=bind,
        data_coding=coding,
        source_ton=_int_in(raw, "source_ton", path, 0, _TON_MAX),
        source_npi=npis["source_npi"],
        dest_ton=1 if dest_ton is None else dest_ton,
        dest_npi=1 if npis["dest_npi"] is None else npis["dest_npi"],
        window=_int_in(raw, "window", path, 1, 1000) or 10,
        connections=_int_in(raw, "connections", path, 1, 16) or 1,
        enquire_link_s=_positive(raw, "enquire_link_s", path, 30.0),
        reconnect_min_s=minimum,
        reconnect_max_s=maximum,
        registered_delivery=bool(raw.get("registered_delivery", True)),
    )
