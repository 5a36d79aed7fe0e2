"""The plain-text tables of the CLI (``queue list``, ``queue inbound``, ``balance``).

Columns are left-aligned and two spaces apart, each as wide as its widest
cell; the last column is not padded and no line ends in spaces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

__all__ = ["print_table"]


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Print ``header`` and ``rows`` (each as long as ``header``) to ``out``."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in [header, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(row[:-1], widths[:-1], strict=True)]
        print("  ".join([*cells, row[-1]]).rstrip(), file=out)
