"""Adapters built from settings by a process's entry point and passed to services."""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from herald.shared.accounts.connections import ConnectionService
from herald.shared.infra import redis_client as redis_store
from herald.shared.infra.crypto import TokenCipher
from herald.shared.infra.db.pool import Database
from herald.shared.infra.delayed_queue import DelayedQueue
from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.names import Names
from herald.shared.infra.settings import Settings
from herald.shared.jobs.service import JobService
from herald.shared.platforms.plugin import PlatformEnv


@dataclass
class Runtime:
    settings: Settings
    names: Names
    db: Database
    redis: aioredis.Redis
    queue: DelayedQueue
    cipher: TokenCipher
    _producer: Producer | None = field(default=None, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, *, db_pool_size: int = 8, db_acquire_timeout: float = 10.0
    ) -> Runtime:
        names = Names.from_settings(settings)
        client = redis_store.connect(settings.redis_url)
        return cls(
            settings=settings,
            names=names,
            db=Database(
                settings.database_url,
                settings.db_schema,
                max_size=db_pool_size,
                acquire_timeout=db_acquire_timeout,
            ),
            redis=client,
            queue=DelayedQueue(client, names),
            cipher=TokenCipher(settings.secret_key_ring()),
        )

    @property
    def producer(self) -> Producer:
        if self._producer is None:
            self._producer = Producer(self.settings.kafka_bootstrap)
        return self._producer

    def jobs(self) -> JobService:
        return JobService(self.db, self.queue, self.names, self.settings)

    def platform_env(self) -> PlatformEnv:
        """What a platform plugin gets to build its publisher or refresh a token."""
        return PlatformEnv(settings=self.settings, db=self.db, redis=self.redis, names=self.names)

    def connections(self) -> ConnectionService:
        return ConnectionService(self.db, self.cipher, self.jobs())

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()
        await self.redis.aclose()
        if self._producer is not None:
            self._producer.close()
