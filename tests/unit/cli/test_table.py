"""The CLI's plain-text tables (``mailbridge.cli.table``)."""

from __future__ import annotations

import io

from mailbridge.cli.table import print_table


def test_columns_align_and_lines_end_without_spaces() -> None:
    out = io.StringIO()
    print_table(["A", "LONGER", "LAST"], [["wide cell", "x", ""], ["y", "z", "tail text"]], out)
    assert out.getvalue().splitlines() == [
        "A          LONGER  LAST",
        "wide cell  x",
        "y          z       tail text",
    ]


def test_header_only() -> None:
    out = io.StringIO()
    print_table(["ONE", "TWO"], [], out)
    assert out.getvalue() == "ONE  TWO\n"
