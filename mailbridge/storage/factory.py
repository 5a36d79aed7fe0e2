"""``open_storage``: the storage backend a ``[storage] url`` names.

* ``sqlite:////abs/path.db`` (four slashes: absolute) or ``sqlite:///rel.db``
  (relative: ``config`` has already resolved it against the config file's
  folder, anything left relative is taken from the working directory);
* ``memory://``: :class:`~mailbridge.storage.memory.MemoryStorage`, nothing
  durable (tests and dry runs);
* ``postgresql://…`` (or ``postgres://…``): :class:`~mailbridge.storage.postgres.PostgresStorage`,
  for several instances on one database; needs the ``postgres`` extra
  (psycopg), imported only when such a URL is used.

The backend is built, not opened: the caller awaits ``storage.open()``.
"""

from __future__ import annotations

from pathlib import Path

from mailbridge.errors import ConfigError, StorageError
from mailbridge.storage.base import Storage
from mailbridge.storage.memory import MemoryStorage
from mailbridge.storage.sqlite import SqliteStorage

__all__ = ["open_storage", "sqlite_path"]

_SQLITE = "sqlite:///"
_MEMORY = "memory://"


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///`` URL (raises ``ConfigError`` for anything else)."""
    if not url.startswith(_SQLITE) or len(url) == len(_SQLITE):
        raise ConfigError("storage.url", "expected sqlite:///<path> (four slashes: absolute)")
    return Path(url[len(_SQLITE) :])


def open_storage(url: str) -> Storage:
    """The backend for ``url``, its folder created; not yet opened.

    Raises ``ConfigError`` for a URL no backend takes and ``StorageError`` when
    the database's folder cannot be created.
    """
    if url.startswith(_MEMORY):
        return MemoryStorage()
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from mailbridge.storage.postgres import PostgresStorage
        except ImportError as exc:
            raise ConfigError(
                "storage.url",
                "PostgreSQL storage needs psycopg: pip install 'mailbridge[postgres]'",
            ) from exc
        return PostgresStorage(url)
    path = sqlite_path(url)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the storage folder {path.parent}: {exc.strerror}"
        ) from exc
    return SqliteStorage(path)
