"""Upstream SMS providers: the protocol, the adapters, and the factory that builds them."""

from mailbridge.providers.base import Outbound, Provider, SendResult, Sent
from mailbridge.providers.factory import PROVIDER_TYPES, build_provider, build_providers
from mailbridge.providers.file import FileProvider
from mailbridge.providers.jsonapi import JsonApiProvider
from mailbridge.providers.miatel import MiatelProvider
from mailbridge.providers.smpp import SmppProvider
from mailbridge.providers.smsc import SmscProvider

__all__ = [
    "PROVIDER_TYPES",
    "FileProvider",
    "JsonApiProvider",
    "MiatelProvider",
    "Outbound",
    "Provider",
    "SendResult",
    "Sent",
    "SmppProvider",
    "SmscProvider",
    "build_provider",
    "build_providers",
]
