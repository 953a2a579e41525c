"""The platform registry: `platform` name → the publisher that speaks to it."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from services.publisher.platforms.base import PlatformPublisher
from services.publisher.platforms.instagram import InstagramPublisher
from services.publisher.platforms.sandbox import SandboxPublisher
from shared.db.pool import Database
from shared.settings import Settings


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


def build_registry(settings: Settings, db: Database) -> Registry:
    return Registry(
        {
            "instagram": InstagramPublisher(settings.instagram_graph_url),
            "sandbox": SandboxPublisher(db),
        }
    )
