"""``[[accounts]]``, ``[[forward]]`` and ``[number_addresses]``: who may send, and the
addresses that send without a command.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from mailbridge.core.config.checks import (
    LOCAL_PART_RE,
    at_least,
    check_type,
    networks,
    no_duplicates,
    no_spaces,
    read_sender,
    read_template,
    show,
)
from mailbridge.core.passwords import PLAIN_PREFIX, is_readable_hash
from mailbridge.core.patterns import PatternError, compile_linear
from mailbridge.errors import ConfigError
from mailbridge.settings import Account, ForwardAlias, NumberAddressSettings, SmtpSettings

__all__ = ["read_account", "read_forward", "read_number_addresses"]


_LOGIN_RE: Final = re.compile(r"[^\s:\x00-\x1f\x7f]{1,64}")


_GROUP_REF_RE: Final = re.compile(r"[Gg]([0-9]+)")


_TZ_MIN, _TZ_MAX = -15, 11  # hours relative to Moscow: UTC-12 .. UTC+14


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


def read_account(raw: dict[str, Any], i: int) -> Account:
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
    senders = tuple(
        read_sender(v, f"{p}.senders[{j}]") for j, v in enumerate(raw.get("senders", []))
    )
    no_duplicates(senders, f"{p}.senders", "sender")
    default_sender = raw.get("default_sender", "").strip()
    if default_sender:
        default_sender = read_sender(default_sender, f"{p}.default_sender")
        if senders and default_sender not in senders:
            raise ConfigError(f"{p}.default_sender", "must be one of senders")
    tz = raw.get("tz", 0)
    if not _TZ_MIN <= tz <= _TZ_MAX:
        raise ConfigError(f"{p}.tz", f"must be hours relative to Moscow, {_TZ_MIN}..{_TZ_MAX}")
    balance = raw.get("balance")
    if balance is not None:
        at_least(balance, 0, f"{p}.balance")
    groups: dict[int, tuple[str, ...]] = {}
    for name, members in raw.get("groups", {}).items():
        gp = f"{p}.groups.{name}"
        if not (name.isascii() and name.isdigit()):
            raise ConfigError(gp, "a group is named by its number, like 1")
        check_type(members, "list[str]", gp)
        if not members:
            raise ConfigError(gp, "empty group")
        if int(name) in groups:
            raise ConfigError(gp, "duplicate group number")
        groups[int(name)] = no_spaces(members, gp)
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
        allowed_ips=networks(raw.get("allowed_ips", []), f"{p}.allowed_ips"),
        tz=tz,
        balance=balance,
        groups=groups,
        deny_text=deny_text,
        blacklist=no_spaces(raw.get("blacklist", []), f"{p}.blacklist"),
    )


def _mode_sender(raw: dict[str, Any], path: str, account: Account) -> str | None:
    if "sender" not in raw:
        return None
    sender = read_sender(raw["sender"], f"{path}.sender")
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
        raise ConfigError(f"{path}.account", f"no account with login {show(login)}")
    return account


def _max_parts(raw: dict[str, Any], path: str) -> int:
    value: int = raw.get("max_parts", 2)
    at_least(value, 1, f"{path}.max_parts")
    return value


def read_forward(
    raw: dict[str, Any], i: int, smtp: SmtpSettings, accounts: Mapping[str, Account]
) -> ForwardAlias:
    p = f"forward[{i}]"
    address = raw["address"].strip().lower()
    if "@" not in address:
        address = f"{address}@{smtp.domains[0]}"
    local, _, domain = address.rpartition("@")
    if not LOCAL_PART_RE.fullmatch(local):
        raise ConfigError(f"{p}.address", f"not an address: {show(address)}")
    if domain not in smtp.domains:
        raise ConfigError(f"{p}.address", f"domain {show(domain)} is not one of smtp.domains")
    if local == smtp.command_address:
        raise ConfigError(f"{p}.address", "is the command address (smtp.command_address)")
    account = _account_ref(raw, p, accounts)
    to = no_spaces(raw["to"], f"{p}.to")
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
        template=read_template(raw.get("template", "{subject}: {body}"), f"{p}.template"),
        max_parts=_max_parts(raw, p),
        sender=_mode_sender(raw, p, account),
    )


def read_number_addresses(
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
        template=read_template(raw.get("template", "{subject}: {body}"), f"{p}.template"),
        max_parts=_max_parts(raw, p),
        sender=sender,
    )
