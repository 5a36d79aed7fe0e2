"""The memory backend: its named queries against those of the SQL files, its transactions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.errors import StorageError
from mailbridge.storage.connector import Params, Row, Tx, named_queries
from mailbridge.storage.memory import QUERIES, MemoryStorage
from mailbridge.storage.memory_tables import Queries, Tables

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(seconds=1)

#: Queries a SQL connector runs by itself, outside the domain: the lease half of a
#: claim (SQLite), the limit tables' pruning and sweeps, PostgreSQL's locks and NOTIFY.
CONNECTOR_ONLY = {
    "sqlite": {
        "claim_due_lease",
        "claim_replies_lease",
        "claim_inbound_lease",
        "prune_flood",
        "prune_duplicates",
    },
    "postgres": {
        "lock_keys",
        "notify",
        "prune_flood",
        "prune_duplicates",
        "sweep_flood",
        "sweep_duplicates",
        "sweep_ip_errors",
        "sweep_ip_blocks",
    },
}


@pytest.mark.parametrize("dialect", ["sqlite", "postgres"])
def test_memory_has_each_domain_query_of_the_sql(dialect: str) -> None:
    """Every query the domain runs has a memory function of its name, and none is extra."""
    sql = set(named_queries(f"{dialect}_queries.sql"))
    assert set(QUERIES) <= sql
    assert sql - set(QUERIES) == CONNECTOR_ONLY[dialect]


def test_a_query_name_is_defined_once() -> None:
    """Two memory modules defining one name is refused, not silently overwritten."""
    queries = Queries()

    def _charge(db: Tables, p: Params) -> list[Row]:
        return []

    queries.add(_charge)
    assert set(queries) == {"charge"}
    with pytest.raises(ValueError, match="charge"):
        queries.add(_charge)


async def test_a_write_that_raises_leaves_nothing() -> None:
    """A write transaction is all or nothing, as in SQL: what it changed before it raised
    (a row, a counter's list, an IP block) is put back."""
    storage = MemoryStorage()
    connector = storage.connector

    async def block(tx: Tx) -> None:
        await tx.run("insert_ip_error", {"ip": "192.0.2.1", "at": T0})
        await tx.run("save_ip_block", {"ip": "192.0.2.1", "until": T0})
        await tx.run("charge", {"account": "alex", "parts": 2})

    await connector.transaction(block)

    async def half(tx: Tx) -> None:
        await tx.run("insert_ip_error", {"ip": "192.0.2.1", "at": T1})
        await tx.run("record_blocked", {"ip": "192.0.2.1"})
        await tx.run("charge", {"account": "alex", "parts": 5})
        raise RuntimeError("refused half way")

    with pytest.raises(RuntimeError):
        await connector.transaction(half)
    db = connector.db
    assert db.ip_errors == {"192.0.2.1": [T0]}
    assert db.ip_blocks == {"192.0.2.1": [T0, 0]}
    assert db.balances == {"alex": 2}


async def test_fail_writes_is_the_connectors() -> None:
    """``fail_writes`` set on the storage refuses the connector's writes, not its reads."""
    storage = MemoryStorage()
    storage.fail_writes = True
    assert storage.connector.fail_writes
    with pytest.raises(StorageError):
        await storage.top_up("alex", 5)
    assert await storage.balance_charges() == {}
    storage.fail_writes = False
    assert await storage.top_up("alex", 5) == -5
