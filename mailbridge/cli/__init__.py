"""The ``mailbridge`` command line."""

from mailbridge.cli.main import main

__all__ = ["main"]
