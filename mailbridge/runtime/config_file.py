"""Read the configuration file once at the start of a command or a process."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from mailbridge.core.config import load_config
from mailbridge.errors import ConfigError
from mailbridge.settings import Settings

__all__ = ["read_settings"]


def read_settings(path: Path, said: TextIO | None = None) -> Settings | None:
    """The settings in ``path``; when the file is refused, its error printed to ``said``
    (standard output when ``None``) and ``None``: the caller exits with status 1."""
    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=said, flush=True)
        return None
