"""A throwaway PostgreSQL cluster for tests and benchmarks: ``initdb`` into a temp dir, loopback.

:class:`PgCluster` runs Debian's (or any) PostgreSQL binaries, found with
``pg_config --bindir`` or under ``/usr/lib/postgresql/*/bin``: ``initdb`` into
a fresh folder, ``pg_ctl start`` listening on 127.0.0.1 only, on a free port,
its Unix socket in the same folder; ``fsync`` left at its default (on) and
``synchronous_commit=on``, so a commit is what it is in production. Trust
authentication (loopback, a throwaway cluster). ``initdb`` refuses to run as
root: then the cluster runs as the ``postgres`` OS user (``runuser``), the
folder owned by it.

``pg_cluster`` is a session-scoped pytest fixture (skips when no PostgreSQL or
no ``psycopg`` is installed): import it into a test module with
``from tests.pg import pg_cluster_fixture  # noqa: F401``. Each test makes its
own schema with :meth:`PgCluster.create_schema` (or database with
:meth:`PgCluster.create_database`).
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

__all__ = ["PgCluster", "find_bindir", "pg_cluster_fixture"]

_USER = "mailbridge"


def find_bindir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``, or None when PostgreSQL is not installed."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    initdb = shutil.which("initdb")
    if initdb is not None:
        candidates.append(Path(os.path.realpath(initdb)).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PgCluster:
    """One throwaway PostgreSQL server; :meth:`start`, :meth:`stop`, databases on demand."""

    def __init__(self, bindir: Path, *, max_connections: int = 300) -> None:
        self.bindir = bindir
        self.max_connections = max_connections
        self.folder = Path(tempfile.mkdtemp(prefix="mailbridge-pg-"))
        self.data = self.folder / "data"
        self.port = 0
        self._os_user: str | None = "postgres" if os.geteuid() == 0 else None
        self._names = itertools.count(1)

    def _run(self, argv: Sequence[str], *, timeout_s: float = 120.0) -> None:
        cmd = list(argv)
        if self._os_user is not None:
            cmd = ["runuser", "-u", self._os_user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stdout[-1000:]} {done.stderr[-1000:]}")

    def url(self, database: str = "postgres") -> str:
        """The ``postgresql://`` URL of one database (TCP on loopback)."""
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """``initdb`` and ``pg_ctl start``; returns when the server takes connections."""
        if self._os_user is not None:
            shutil.chown(self.folder, user=self._os_user)
        self.folder.chmod(0o700)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D", str(self.data),
                "-U", _USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )  # fmt: skip
        self.port = _free_port()
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-k {self.folder}",
                "-c synchronous_commit=on",
                f"-c max_connections={self.max_connections}",
                "-c shared_buffers=128MB",
            ]
        )
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D", str(self.data),
                "-l", str(self.folder / "server.log"),
                "-o", options,
                "-w", "-t", "60",
                "start",
            ]
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the server (immediate: nothing in it is kept) and remove its folder."""
        if self.port:
            with contextlib.suppress(RuntimeError, subprocess.SubprocessError):
                self._run(
                    [
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.data),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ]
                )
            self.port = 0
        shutil.rmtree(self.folder, ignore_errors=True)

    def admin(self, statement: str) -> None:
        """Run one statement on the ``postgres`` database, autocommit (CREATE DATABASE…)."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(statement.encode())

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL."""
        name = f"{prefix}{next(self._names)}_{os.getpid()}"
        self.admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, prefix: str = "s") -> str:
        """A new empty schema in the ``postgres`` database (much faster than a database);
        the URL of a connection whose ``search_path`` is that schema."""
        name = f"{prefix}{next(self._names)}"
        self.admin(f'CREATE SCHEMA "{name}"')
        return f"{self.url()}?options=-csearch_path%3D{name}"


@pytest.fixture(scope="session", name="pg_cluster")
def pg_cluster_fixture() -> Iterator[PgCluster]:
    """A PostgreSQL server for the whole test session (skipped when none is installed)."""
    pytest.importorskip("psycopg")
    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("CI"):  # CI installs PostgreSQL: its absence there is a failure
            pytest.fail("PostgreSQL is not installed (no initdb) although .ci/run installs it")
        pytest.skip("PostgreSQL is not installed (no initdb): .ci/run installs it")
    cluster = PgCluster(bindir)
    try:
        cluster.start()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        cluster.stop()
        pytest.fail(f"cannot start a throwaway PostgreSQL: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
