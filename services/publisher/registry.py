"""The publisher's platforms: `platform` name → the client that speaks to it, one per
platform plugin in the registry (`herald.shared.platforms.registry`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import redis.asyncio as aioredis

from herald.shared.infra.db.pool import Database
from herald.shared.infra.names import Names
from herald.shared.infra.settings import Settings
from herald.shared.platforms.contract import PlatformPublisher
from herald.shared.platforms.plugin import PlatformEnv
from herald.shared.platforms.registry import platforms


class Registry(Mapping[str, PlatformPublisher]):
    def __init__(self, publishers: Mapping[str, PlatformPublisher]) -> None:
        self._publishers = dict(publishers)

    def __getitem__(self, platform: str) -> PlatformPublisher:
        return self._publishers[platform]

    def __iter__(self) -> Iterator[str]:
        return iter(self._publishers)

    def __len__(self) -> int:
        return len(self._publishers)

    async def close(self) -> None:
        for publisher in self._publishers.values():
            await publisher.close()


def build_registry(
    settings: Settings, db: Database, redis: aioredis.Redis, names: Names
) -> Registry:
    """Every registered platform's publisher, built with this process's stores."""
    env = PlatformEnv(settings=settings, db=db, redis=redis, names=names)
    return Registry({name: plugin.publisher(env) for name, plugin in platforms().items()})
