"""Fakes that tests, benchmarks and end-to-end runs share."""

from tests.fakes.provider_server import PATHS, FakeProviderServer, Faults, RecordedRequest

__all__ = ["PATHS", "FakeProviderServer", "Faults", "RecordedRequest"]
