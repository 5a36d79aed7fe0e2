"""The memory backend's named queries against those of the SQL files."""

from __future__ import annotations

import pytest

from mailbridge.storage.connector import Params, Row, named_queries
from mailbridge.storage.memory import QUERIES
from mailbridge.storage.memory_tables import Queries, Tables

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
