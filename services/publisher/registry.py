"""The platform registry: `platform` name → the publisher that speaks to it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import redis.asyncio as aioredis

from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.services.publisher.platforms.instagram.throttle import Throttle
from herald.services.publisher.platforms.sandbox import SandboxPublisher
from herald.shared.infra.db.pool import Database
from herald.shared.infra.names import Names
from herald.shared.infra.settings import Settings
from herald.shared.platforms.contract import PlatformPublisher


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
    """Every platform's publisher; Redis holds the Instagram throttle every copy shares."""
    secret = settings.instagram_app_secret
    instagram = InstagramPublisher(
        settings.instagram_graph_url,
        instagram_graph_url=settings.instagram_login_graph_url,
        app_secret=secret.get_secret_value() if secret is not None else None,
        throttle=Throttle(redis, names),
    )
    return Registry({"instagram": instagram, "sandbox": SandboxPublisher(db)})
