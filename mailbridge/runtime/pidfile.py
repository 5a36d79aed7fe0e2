"""The PID file of ``[daemon] pid_file``: written once the signal handlers are in place.

Written atomically (a temporary file renamed over it), so ``kill -HUP "$(cat FILE)"`` never
reads half a number; removed at exit only while it still names this process.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["remove_pid_file", "write_pid_file"]


def write_pid_file(path: str, pid: int | None = None) -> None:
    """Write ``pid`` (this process by default) to ``path``, creating its folder."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{pid if pid is not None else os.getpid()}\n", encoding="ascii")
    os.replace(tmp, target)


def remove_pid_file(path: str, pid: int | None = None) -> None:
    """Remove ``path`` if it names ``pid`` (this process by default); never raises."""
    own = pid if pid is not None else os.getpid()
    with contextlib.suppress(OSError, ValueError):
        if int(Path(path).read_text(encoding="ascii").strip()) == own:
            Path(path).unlink()
