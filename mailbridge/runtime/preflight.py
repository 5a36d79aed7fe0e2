"""Checks of the files a config names, before anything starts: one line naming key and path.

``mailbridge check-config`` and ``mailbridge serve`` run :func:`preflight`
after the config has been read. It raises :class:`~mailbridge.errors.ConfigError`
(the one-line ``config error: <key>: <what>`` that config errors use) when

* ``[smtp] tls_cert`` / ``tls_key`` cannot be read or do not make a TLS
  context (the key that is wrong, and its path);
* the SQLite database of ``[storage] url`` exists but cannot be opened, is not
  a database, or fails SQLite's ``PRAGMA quick_check`` (corrupt pages): the
  daemon would otherwise report ready and answer ``451`` to every mail.

A missing database file is fine (it is created); PostgreSQL is checked when
the storage connects. ``quick_check`` reads every page once: a 600 MB database took 0.67 s
from the page cache on this machine (``docs/operations.md``).
"""

from __future__ import annotations

import os
import sqlite3
import ssl
from pathlib import Path

from mailbridge.errors import ConfigError
from mailbridge.settings import Settings
from mailbridge.storage.factory import sqlite_path

__all__ = ["check_database", "check_tls", "preflight", "unreadable_tls_file"]


def preflight(settings: Settings) -> None:
    """Raise ``ConfigError`` naming the key and path of the first file that is not usable."""
    check_tls(settings.smtp.tls_cert, settings.smtp.tls_key)
    if settings.storage.url.startswith("sqlite:///"):
        check_database(sqlite_path(settings.storage.url))


def unreadable_tls_file(cert: str, key: str) -> tuple[str, str, str] | None:
    """(key name, path, reason) of the first TLS file that cannot be read, else None."""
    for name, path in (("tls_cert", cert), ("tls_key", key)):
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            return name, path, exc.strerror or str(exc)
    return None


def check_tls(cert: str | None, key: str | None) -> None:
    """The TLS certificate and key exist, are readable and belong together."""
    if not cert or not key:
        return
    unreadable = unreadable_tls_file(cert, key)
    if unreadable is not None:
        name, path, reason = unreadable
        raise ConfigError(f"smtp.{name}", f"{path}: {reason}")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        raise ConfigError(
            "smtp.tls_cert", f"{cert} with {key}: not a usable PEM certificate and key ({reason})"
        ) from None


def check_database(path: Path) -> None:
    """An existing SQLite file opens, is a database, and passes ``PRAGMA quick_check``."""
    if not path.exists():
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError("storage.url", f"{path}: not readable and writable by this user")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=5)
    except sqlite3.Error as exc:
        raise ConfigError("storage.url", f"{path}: cannot be opened: {exc}") from None
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ConfigError("storage.url", f"{path}: {exc}") from None
    finally:
        conn.close()
    problems = [
        line.strip()
        for row in rows
        for line in str(row[0]).splitlines()
        if line.strip() and not line.startswith("***")
    ]
    if problems != ["ok"]:
        first = problems[0][:200] if problems else "no answer"
        raise ConfigError(
            "storage.url",
            f"{path}: database is corrupt (quick_check: {first}); restore it from a backup",
        )
