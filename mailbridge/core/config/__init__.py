"""The TOML configuration read into ``mailbridge.settings`` values (SPEC §5).

``SCHEMA`` is the one list of the keys the loader accepts, per section, with
their type and default; the loader rejects every other key with it, and the
tests check ``docs/configuration.md`` against it.

Every problem is a ``ConfigError(key, message)``: ``key`` is the dotted path
of the value (``accounts[0].password_hash``, ``providers.main.url``), the
message is one line and never repeats a secret. Apart from reading the file in
``load_config`` this module is pure.

The package, one module a job: ``schema`` (the keys), ``checks`` (single
values), ``sections``, ``accounts`` and ``providers`` (one reader per section),
``load`` (the document, the file, the warnings); ``smpp`` holds the keys of
``type = "smpp"`` providers.
"""

from __future__ import annotations

from mailbridge.core.config.load import (
    config_warnings,
    load_config,
    parse_config,
    resolve_config_path,
)
from mailbridge.core.config.schema import DEFAULT_CONFIG_PATH, PROVIDER_FORMATS, SCHEMA, Key

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "PROVIDER_FORMATS",
    "SCHEMA",
    "Key",
    "config_warnings",
    "load_config",
    "parse_config",
    "resolve_config_path",
]
