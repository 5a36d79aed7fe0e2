"""``mailbridge balance [list] | add ACCOUNT PARTS``: what each account has left, and top-ups.

An account's ``balance`` in the config is its opening credit in SMS parts (absent:
unlimited). The state lives in the database: the parts charged so far (accepted requests,
less the refunds of SMS that failed or were cancelled, less top-ups). What the account has
left is ``balance - charged``; a request of more parts than that gets ``ERROR = 3``.
``add`` tops an account up in the database: no config change, no reload; the next request
sees it. It works beside a running gateway (one transaction).
"""

from __future__ import annotations

import argparse
from typing import TextIO

from mailbridge.cli.storage_command import StorageOpener, run_with_storage
from mailbridge.cli.table import print_table
from mailbridge.core.limits import available_balance
from mailbridge.settings import Settings
from mailbridge.storage.base import Storage

__all__ = ["run_balance_command"]

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_BAD_ARGS = 2


async def balance_list(settings: Settings, storage: Storage, *, out: TextIO) -> int:
    """One line per account: configured balance, charged (net), left."""
    charges = await storage.balance_charges()
    rows: list[tuple[str, str, str, str]] = []
    for account in settings.accounts:
        charged = charges.get(account.login, 0)
        if account.balance is None:
            rows.append((account.login, "unlimited", str(charged), "unlimited"))
            continue
        left = available_balance(account.balance, charged)
        rows.append((account.login, str(account.balance), str(charged), str(left)))
    print_table(("ACCOUNT", "BALANCE", "CHARGED", "LEFT"), rows, out)
    return EXIT_OK


async def balance_add(
    settings: Settings, storage: Storage, login: str, parts: int, *, out: TextIO, err: TextIO
) -> int:
    """Top ``login`` up by ``parts`` (negative: take back); prints what it has left."""
    account = settings.account(login)
    if account is None:
        print(f"no account {login!r} in {settings.source or 'the config'}", file=err)
        return EXIT_NOT_FOUND
    if account.balance is None:
        print(
            f"account {login!r} has no balance (unlimited): set `balance` for it in the "
            "config to give it one",
            file=err,
        )
        return EXIT_BAD_ARGS
    if parts == 0:
        print("nothing to add", file=err)
        return EXIT_BAD_ARGS
    charged = await storage.top_up(login, parts)
    left = available_balance(account.balance, charged)
    print(f"{login}: {parts:+d} parts, {left} left", file=out)
    return EXIT_OK


def run_balance_command(
    settings: Settings,
    args: argparse.Namespace,
    *,
    out: TextIO,
    err: TextIO,
    open_storage: StorageOpener | None = None,
) -> int:
    """Run ``mailbridge balance …`` as parsed by the CLI; returns the exit status."""

    async def body(storage: Storage) -> int:
        if getattr(args, "balance_command", None) == "add":
            return await balance_add(settings, storage, args.account, args.parts, out=out, err=err)
        return await balance_list(settings, storage, out=out)

    return run_with_storage(
        settings, body, err=err, failed="storage failed", open_storage=open_storage
    )
