"""Which SMS formats each provider type can carry (SPEC §4), and what a config can carry."""

from __future__ import annotations

from mailbridge.models import Format
from mailbridge.settings import ProviderSettings, Settings

__all__ = ["TYPE_FORMATS", "carried_formats", "provider_formats"]

_ALL = frozenset(Format)

#: Formats each provider type can carry at most; a provider's ``formats`` may narrow it.
TYPE_FORMATS: dict[str, frozenset[Format]] = {
    "miatel": frozenset({Format.SMS}),
    "jsonapi": frozenset({Format.SMS, Format.PING}),
    "smsc": _ALL,
    "smpp": frozenset({Format.SMS, Format.FLASH}),
    "file": _ALL,
}


def provider_formats(provider: ProviderSettings) -> frozenset[Format]:
    """The formats one configured provider carries."""
    carried = TYPE_FORMATS.get(provider.type, frozenset())
    if provider.formats is not None:
        carried &= provider.formats
    return carried


def carried_formats(settings: Settings) -> frozenset[Format]:
    """Formats that at least one provider on some route carries.

    A request in any other format is refused with ``ERROR = 1`` at acceptance.
    """
    routed = set(settings.routing.default)
    for rule in settings.routing.rules:
        routed.update(rule.providers)
    result: frozenset[Format] = frozenset()
    for provider in settings.providers:
        if provider.name in routed:
            result |= provider_formats(provider)
    return result
