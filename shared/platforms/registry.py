"""The platform registry: every `Platform` registered under the entry point group
`herald.platforms`, the built-in ones (instagram, sandbox) included, found once per process.

Nothing else in Herald lists platforms: validation, the OpenAPI document, the ops page,
`GET /publishing/platforms`, the metrics' label values and the publisher ask here. A name
the registry does not hold is refused wherever a platform is named.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator, Mapping
from importlib.metadata import EntryPoint, entry_points

from herald.shared.errors import ValidationFailed
from herald.shared.platforms.plugin import NAME, Platform

GROUP = "herald.platforms"
logger = logging.getLogger(__name__)


class PluginError(Exception):
    """A registered plugin that cannot be used: Herald refuses to start with it."""


class Registry(Mapping[str, Platform]):
    def __init__(self, platforms: Mapping[str, Platform]) -> None:
        self._platforms = dict(sorted(platforms.items()))

    def __getitem__(self, name: str) -> Platform:
        return self._platforms[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._platforms)

    def __len__(self) -> int:
        return len(self._platforms)

    def names(self) -> tuple[str, ...]:
        return tuple(self._platforms)

    def require(self, name: object, field: str = "platform") -> Platform:
        """The platform called `name`, or a ValidationFailed naming the known ones."""
        if isinstance(name, str) and name in self._platforms:
            return self._platforms[name]
        message = f"must be one of {', '.join(self._platforms)}"
        raise ValidationFailed(f"unknown platform; {message}", fields={field: message})


def _load(entry: EntryPoint) -> Platform:
    try:
        cls = entry.load()
    except Exception as exc:
        raise PluginError(f"platform plugin {entry.name!r} ({entry.value}): {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Platform)):
        raise PluginError(f"platform plugin {entry.name!r} ({entry.value}) is not a Platform")
    name = getattr(cls, "name", None)
    if name != entry.name or not NAME.fullmatch(entry.name):
        raise PluginError(
            f"platform plugin {entry.value}: its name {name!r} must equal the entry point's"
            f" name {entry.name!r} and match [a-z][a-z0-9_]{{0,31}}"
        )
    if not getattr(cls, "media", None):
        raise PluginError(f"platform plugin {entry.name!r} declares no media")
    return cls()


def discover() -> Registry:
    """Every registered platform, loaded now. Two distributions registering one name are
    refused: which one publishes must never depend on the order of sys.path."""
    entries: dict[str, EntryPoint] = {}
    for entry in entry_points(group=GROUP):
        seen = entries.setdefault(entry.name, entry)
        if seen.value != entry.value:
            raise PluginError(
                f"platform {entry.name!r} is registered twice: {seen.value} and {entry.value}"
            )
    return Registry({name: _load(entry) for name, entry in entries.items()})


@functools.cache
def platforms() -> Registry:
    """The process's registry (found on first use)."""
    registry = discover()
    logger.debug("platforms: %s", ", ".join(registry))
    return registry


def reload() -> Registry:
    """Find the plugins again (tests that install one at run time)."""
    platforms.cache_clear()
    return platforms()
