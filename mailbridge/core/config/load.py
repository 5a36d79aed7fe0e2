"""Reading a config: the TOML document checked section by section into ``Settings``,
the file, the path rules and the start-up warnings.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from mailbridge.core.config.accounts import read_account, read_forward, read_number_addresses
from mailbridge.core.config.checks import read_storage_url, table
from mailbridge.core.config.providers import default_outbox, read_provider, read_routing
from mailbridge.core.config.schema import ARRAY_SECTIONS, DEFAULT_CONFIG_PATH, TOP_LEVEL
from mailbridge.core.config.sections import (
    read_daemon,
    read_delivery,
    read_http,
    read_inbound,
    read_limits,
    read_logging,
    read_reply,
    read_smtp,
    retention,
)
from mailbridge.core.passwords import PLAIN_PREFIX
from mailbridge.errors import ConfigError
from mailbridge.settings import Account, ForwardAlias, ProviderSettings, Settings, StorageSettings

__all__ = [
    "config_warnings",
    "load_config",
    "parse_config",
    "resolve_config_path",
    "state_directory",
]


_TOML_AT_RE: Final = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


_TOML_AT_END: Final = "(at end of document)"


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
        if key not in TOP_LEVEL:
            hint = difflib.get_close_matches(key, TOP_LEVEL, n=1)
            more = f" (did you mean [{hint[0]}]?)" if hint else ""
            raise ConfigError(key, f"unknown section{more}")
        if key in ARRAY_SECTIONS and not isinstance(value, list):
            raise ConfigError(key, f"expected an array of tables ([[{key}]])")
        if key not in ARRAY_SECTIONS and not isinstance(value, dict):
            raise ConfigError(key, f"expected a table ([{key}])")

    def section(name: str) -> dict[str, Any]:
        return table(doc.get(name, {}), name, name)

    data_dir = state_dir if state_dir is not None else base_dir
    smtp = read_smtp(section("smtp"), base_dir)
    storage_raw = section("storage")
    storage = StorageSettings(
        url=read_storage_url(
            storage_raw.get("url", StorageSettings().url), data_dir, "storage.url"
        ),
        **retention(storage_raw),
    )
    delivery = read_delivery(section("delivery"))
    reply = read_reply(section("reply"), smtp)
    limits = read_limits(section("limits"))

    accounts: list[Account] = []
    by_login: dict[str, Account] = {}
    plain_keys: dict[str, int] = {}
    for i, raw in enumerate(doc.get("accounts", [])):
        account = read_account(table(raw, "accounts", f"accounts[{i}]"), i)
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
        alias = read_forward(table(raw, "forward", f"forward[{i}]"), i, smtp, by_login)
        if any(f.address == alias.address for f in forwards):
            raise ConfigError(f"forward[{i}].address", f"duplicate address {alias.address!r}")
        forwards.append(alias)
    number_addresses = read_number_addresses(section("number_addresses"), by_login)

    providers: list[ProviderSettings] = []
    for i, raw in enumerate(doc.get("providers", [])):
        provider = read_provider(raw, i, data_dir)
        if any(q.name == provider.name for q in providers):
            raise ConfigError(f"providers[{i}].name", f"duplicate provider name {provider.name!r}")
        providers.append(provider)
    if not providers:
        providers.append(
            ProviderSettings(name="file", type="file", path=default_outbox(storage.url, data_dir))
        )
    routing = read_routing(section("routing"), providers)

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
        logging=read_logging(section("logging")),
        http=read_http(section("http")),
        daemon=read_daemon(section("daemon"), data_dir),
        inbound=read_inbound(section("inbound")),
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
