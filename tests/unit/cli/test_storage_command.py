"""``queue`` and ``balance`` on storage that cannot be opened or fails (``cli.storage_command``)."""

from __future__ import annotations

import argparse
import io

from mailbridge.cli.balance import run_balance_command
from mailbridge.cli.queue import EXIT_STORAGE, run_queue_command
from mailbridge.errors import StorageError
from mailbridge.settings import Account, Settings
from mailbridge.storage.base import Storage
from mailbridge.storage.memory import MemoryStorage

SETTINGS = Settings(accounts=(Account(login="alex", balance=10),))


def _unopenable(url: str) -> Storage:
    raise StorageError(f"no database at {url}")


def test_storage_that_cannot_be_opened_exits_3() -> None:
    for run, args in (
        (run_queue_command, argparse.Namespace(queue_command="inbound", limit=5)),
        (run_balance_command, argparse.Namespace(balance_command="list")),
    ):
        out, err = io.StringIO(), io.StringIO()
        assert run(SETTINGS, args, out=out, err=err, open_storage=_unopenable) == EXIT_STORAGE
        assert err.getvalue().startswith("cannot open storage: no database at ")
        assert out.getvalue() == ""


def test_a_failing_balance_write_exits_3() -> None:
    storage = MemoryStorage()
    storage.fail_writes = True
    err = io.StringIO()
    args = argparse.Namespace(balance_command="add", account="alex", parts=5)
    code = run_balance_command(
        SETTINGS, args, out=io.StringIO(), err=err, open_storage=lambda _url: storage
    )
    assert code == EXIT_STORAGE
    assert err.getvalue() == "storage failed: storage cannot commit (fail_writes is set)\n"
