"""``check-config`` beyond parsing: build what ``serve`` would build, without serving.

``ExecStartPre=mailbridge check-config`` is only worth having if it fails where ``serve``
would: so this loads the storage driver the URL names (psycopg for ``postgresql://``),
checks that this user can create or write the SQLite database and the PID file, builds
every provider with its factory (closing them again) and loads the TLS certificate and key.
Nothing is opened on the network and no database is created.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from pathlib import Path

from mailbridge.errors import ConfigError
from mailbridge.settings import Settings

__all__ = ["preflight"]

_SQLITE = "sqlite:///"


def _writable_folder(target: Path) -> str | None:
    """Why this user cannot create or write ``target`` (a file), or None when it can."""
    if target.exists():
        return None if os.access(target, os.R_OK | os.W_OK) else f"{target} is not writable"
    folder = target.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable by this user (uid {os.geteuid()})"
    return None


def _storage(settings: Settings) -> list[str]:
    url = settings.storage.url
    if url.startswith(("postgresql://", "postgres://")):
        try:
            importlib.import_module("psycopg")
            importlib.import_module("psycopg_pool")
        except ImportError:
            return [
                "storage.url: PostgreSQL storage needs psycopg: pip install 'mailbridge[postgres]'"
            ]
        return []
    if url.startswith(_SQLITE):
        db = Path(url[len(_SQLITE) :].partition("?")[0])
        problem = _writable_folder(db)
        if problem is None and db.exists():
            # SQLite writes -wal and -shm files beside the database
            problem = _writable_folder(db.parent / f".{db.name}.check")
        if problem is not None:
            return [f"storage.url: {problem} (the database {db} is written there)"]
    return []


async def _build_providers(settings: Settings) -> list[str]:
    from mailbridge.providers.factory import build_provider

    errors: list[str] = []
    for item in settings.providers:
        try:
            provider = build_provider(item)
        except ConfigError as exc:
            errors.append(str(exc))
            continue
        await provider.aclose()
    return errors


def _tls(settings: Settings) -> list[str]:
    smtp = settings.smtp
    if not (smtp.tls_cert and smtp.tls_key):
        return []
    import ssl

    from mailbridge.smtp.server import make_tls_context

    try:
        make_tls_context(smtp.tls_cert, smtp.tls_key)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return [f"smtp.tls_cert: cannot load {smtp.tls_cert} / {smtp.tls_key}: {reason}"]
    return []


def preflight(settings: Settings) -> list[str]:
    """What ``serve`` would fail on with these settings, one line each (empty: nothing)."""
    errors = _storage(settings)
    errors += asyncio.run(_build_providers(settings))
    errors += _tls(settings)
    for item in settings.providers:
        if item.type == "file" and item.path:
            problem = _writable_folder(Path(item.path))
            if problem is not None:
                errors.append(f"providers.{item.name}.path: {problem}")
    pid_file = settings.daemon.pid_file
    if pid_file is not None:
        problem = _writable_folder(Path(pid_file))
        if problem is not None:
            errors.append(f"daemon.pid_file: {problem}")
    return errors
