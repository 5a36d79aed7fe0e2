"""Preflight of the files the config names: TLS files and the SQLite database (key and path)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from mailbridge.errors import ConfigError
from mailbridge.runtime.preflight import check_database, check_tls
from tests.tools import skip_unless_ci


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate and its key (openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        skip_unless_ci("openssl is not installed: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=mx.test", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def make_db(path: Path, rows: int = 2000) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)")
    conn.execute("CREATE INDEX ib ON t (b)")
    conn.executemany("INSERT INTO t (b) VALUES (?)", [("x" * 100 + str(i),) for i in range(rows)])
    conn.commit()
    conn.close()


def corrupt_pages(path: Path) -> None:
    """Overwrite part of the sixth page with garbage (a disk or copy gone wrong)."""
    with path.open("r+b") as f:
        f.seek(4096 * 5 + 100)
        f.write(os.urandom(2000))


class TestDatabase:
    def test_missing_file_is_fine(self, tmp_path: Path) -> None:
        """A database that does not exist yet is created later: no complaint."""
        check_database(tmp_path / "new.db")

    def test_good_database_passes(self, tmp_path: Path) -> None:
        """A sound database passes quick_check."""
        make_db(tmp_path / "ok.db")
        check_database(tmp_path / "ok.db")

    def test_garbage_file_names_key_and_path(self, tmp_path: Path) -> None:
        """A file that is no database: storage.url and the path, on one line."""
        db = tmp_path / "garbage.db"
        db.write_bytes(os.urandom(8192))
        with pytest.raises(ConfigError) as info:
            check_database(db)
        text = str(info.value)
        assert text.startswith("config error: storage.url: ")
        assert str(db) in text
        assert "not a database" in text
        assert "\n" not in text

    def test_corrupt_pages_refused(self, tmp_path: Path) -> None:
        """A database with corrupt pages is refused with one line naming it."""
        db = tmp_path / "corrupt.db"
        make_db(db)
        corrupt_pages(db)
        with pytest.raises(ConfigError) as info:
            check_database(db)
        text = str(info.value)
        assert "storage.url" in text
        assert str(db) in text
        assert "corrupt" in text or "malformed" in text
        assert "\n" not in text


class TestTls:
    def test_missing_key_named(self, tls_pair: tuple[Path, Path], tmp_path: Path) -> None:
        """A missing tls_key: the key and its path."""
        cert, _ = tls_pair
        missing = tmp_path / "nope.pem"
        with pytest.raises(ConfigError) as info:
            check_tls(str(cert), str(missing))
        assert "smtp.tls_key" in str(info.value)
        assert str(missing) in str(info.value)
        assert "No such file" in str(info.value)

    def test_missing_cert_named(self, tls_pair: tuple[Path, Path], tmp_path: Path) -> None:
        """A missing tls_cert: the key and its path."""
        _, key = tls_pair
        with pytest.raises(ConfigError, match=r"smtp\.tls_cert: .*nope\.pem"):
            check_tls(str(tmp_path / "nope.pem"), str(key))

    def test_swapped_files_named(self, tls_pair: tuple[Path, Path]) -> None:
        """Files that exist but are not a certificate and its key are named too."""
        cert, key = tls_pair
        with pytest.raises(ConfigError, match=r"smtp\.tls_cert: "):
            check_tls(str(key), str(cert))

    def test_good_pair_passes(self, tls_pair: tuple[Path, Path]) -> None:
        """A certificate and its key pass."""
        check_tls(*map(str, tls_pair))
