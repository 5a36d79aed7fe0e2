"""The ``mailbridge`` command line (SPEC §6)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from mailbridge import __version__

__all__ = ["main"]


def _add_config(p: argparse.ArgumentParser, *, nested: bool = False) -> None:
    # ``nested``: also accepted after a queue action; SUPPRESS keeps the outer value
    p.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS if nested else None,
        help="config file (default: $MAILBRIDGE_CONFIG, else /etc/mailbridge/config.toml)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailbridge", description="E-mail-to-SMS gateway speaking the SMSC e-mail grammar."
    )
    parser.add_argument("--version", action="version", version=f"mailbridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the gateway (SIGTERM drains, SIGHUP reloads)")
    _add_config(p)
    # internal: how a [smtp] workers > 1 parent starts its SMTP workers
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)

    p = sub.add_parser("check-config", help="check the config file and exit")
    _add_config(p)

    p = sub.add_parser("hash-password", help="read a password, print a hash for the config")
    p.add_argument(
        "--stdin", action="store_true", help="read the password from standard input (no prompt)"
    )

    p = sub.add_parser("parse", help="dry run: what a mail would send and answer")
    p.add_argument("file", metavar="FILE.eml", help="the mail, as bytes ('-' for stdin)")
    _add_config(p)
    p.add_argument("--client-ip", default="127.0.0.1", help="client IP for allowed_ips checks")
    p.add_argument(
        "--from", dest="mail_from", default="", metavar="ADDR", help="the envelope sender"
    )
    p.add_argument(
        "--rcpt",
        action="append",
        default=[],
        metavar="ADDR",
        help="an envelope recipient (again for several): command, alias or number address",
    )

    p = sub.add_parser("balance", help="what each account has left; top one up")
    _add_config(p)
    bsub = p.add_subparsers(dest="balance_command", metavar="ACTION")
    b = bsub.add_parser("list", help="each account's balance, charge and what is left")
    _add_config(b, nested=True)
    b = bsub.add_parser("add", help="top an account up (negative: take parts back)")
    _add_config(b, nested=True)
    b.add_argument("account", metavar="ACCOUNT")
    b.add_argument("parts", metavar="PARTS", type=int)

    p = sub.add_parser("queue", help="inspect and act on the delivery queue")
    _add_config(p)
    qsub = p.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    q = qsub.add_parser("list", help="list requests")
    _add_config(q, nested=True)
    q.add_argument("--state", help="only requests with SMS in this state")
    q.add_argument("--account", help="only this account's requests")
    q.add_argument("--limit", type=int, default=100)
    q = qsub.add_parser("inbound", help="list SMS from phones: mailed, queued or kept")
    _add_config(q, nested=True)
    q.add_argument("--limit", type=int, default=100)
    for name, text in (
        ("show", "a request, each SMS with its receipt and every attempt"),
        ("retry", "send the failed, expired or cancelled SMS of a request again"),
        ("cancel", "cancel the scheduled SMS of a request"),
    ):
        q = qsub.add_parser(name, help=text)
        _add_config(q, nested=True)
        q.add_argument("id", metavar="ID")

    p = sub.add_parser("status", help="queue, providers, the figures of the status page")
    _add_config(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser


def _config_path(arg: str | None) -> Path:
    from mailbridge.core.config import resolve_config_path

    return resolve_config_path(arg, os.environ)


def _check_config(arg: str | None, out: TextIO, err: TextIO) -> int:
    from mailbridge.cli.preflight import preflight
    from mailbridge.core.config import config_warnings
    from mailbridge.errors import ConfigError
    from mailbridge.runtime.config_file import read_settings
    from mailbridge.runtime.preflight import check_database
    from mailbridge.storage.factory import sqlite_path

    path = _config_path(arg)
    settings = read_settings(path, err)
    if settings is None:
        return 1
    if settings.storage.url.startswith("sqlite:///"):  # a garbage or corrupt database
        try:
            check_database(sqlite_path(settings.storage.url))
        except ConfigError as exc:
            print(str(exc), file=err)
            return 1
    problems = preflight(settings)
    for problem in problems:
        print(problem, file=err)
    if problems:
        return 1
    for warning in config_warnings(settings):
        print(f"warning: {warning}", file=err)
    print(f"OK: {path}", file=out)
    return 0


def _hash_password(from_stdin: bool, out: TextIO, err: TextIO) -> int:
    from mailbridge.core.passwords import hash_password

    if from_stdin or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            print("the two passwords differ", file=err)
            return 1
    if not password:
        print("empty password", file=err)
        return 1
    print(hash_password(password), file=out)
    return 0


def _serve(arg: str | None, err: TextIO, worker: int | None = None) -> int:
    from mailbridge.runtime.config_file import read_settings
    from mailbridge.runtime.process import run

    path = _config_path(arg)
    if read_settings(path, err) is None:
        return 1
    return run(path, worker=worker)


def _parse(
    file: str,
    arg: str | None,
    client_ip: str,
    out: TextIO,
    err: TextIO,
    mail_from: str = "",
    rcpts: Sequence[str] = (),
) -> int:
    from mailbridge.core.dryrun import dry_run
    from mailbridge.runtime.config_file import read_settings
    from mailbridge.settings import Settings

    raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    settings: Settings | None
    path = _config_path(arg)
    if arg is None and not path.exists():
        settings = None
    else:
        settings = read_settings(path, err)
        if settings is None:
            return 1
    report = dry_run(
        raw,
        settings=settings,
        client_ip=client_ip,
        now=datetime.now(UTC),
        mail_from=mail_from,
        rcpts=rcpts,
    )
    out.write(report.text)
    return 0 if report.ok else 2


def _queue(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from mailbridge.cli.queue import run_queue_command
    from mailbridge.runtime.config_file import read_settings

    settings = read_settings(_config_path(args.config), err)
    if settings is None:
        return 1
    return run_queue_command(settings, args, out=out, err=err)


def _status(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from mailbridge.cli.status import run_status
    from mailbridge.runtime.config_file import read_settings

    settings = read_settings(_config_path(args.config), err)
    if settings is None:
        return 1
    return run_status(settings, as_json=args.json, out=out, err=err, env=os.environ)


def _balance(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from mailbridge.cli.balance import run_balance_command
    from mailbridge.runtime.config_file import read_settings

    settings = read_settings(_config_path(args.config), err)
    if settings is None:
        return 1
    return run_balance_command(settings, args, out=out, err=err)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out, err = sys.stdout, sys.stderr
    if args.command == "serve":
        return _serve(args.config, err, args.worker)
    if args.command == "check-config":
        return _check_config(args.config, out, err)
    if args.command == "hash-password":
        return _hash_password(args.stdin, out, err)
    if args.command == "parse":
        return _parse(args.file, args.config, args.client_ip, out, err, args.mail_from, args.rcpt)
    if args.command == "queue":
        return _queue(args, out, err)
    if args.command == "status":
        return _status(args, out, err)
    if args.command == "balance":
        return _balance(args, out, err)
    raise AssertionError(args.command)  # argparse refuses other commands
