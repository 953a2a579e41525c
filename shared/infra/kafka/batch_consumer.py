"""Consume in batches and commit (asynchronously) only after the batch's effects are durable.

All calls on the confluent consumer run on one dedicated thread (it is not thread-safe);
the handler runs on the event loop. A consumer that knows no broker any more is replaced
(`BrokerWatch`). A handler failure commits nothing: the batch is
retried (store outages) or the service stops, and Kafka redelivers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import confluent_kafka
from confluent_kafka import TopicPartition

from herald.shared.errors import StoreUnavailable
from herald.shared.infra.kafka.client import (
    BrokerWatch,
    KafkaError,
    Message,
    abandon,
    consumer,
    partition_of,
)
from herald.shared.infra.kafka.serial import SerialCalls, take, without_errors
from herald.shared.infra.retry import Backoff, Retry, Stopped

log = logging.getLogger(__name__)
Handler = Callable[[list[Message]], Awaitable[None]]


def next_offsets(messages: list[Message]) -> list[TopicPartition]:
    """The offsets to commit after `messages`: the highest per partition, plus one."""
    top: dict[tuple[str, int], int] = {}
    for msg in messages:
        key = partition_of(msg)
        top[key] = max(top.get(key, -1), int(msg.offset() or 0))
    return [TopicPartition(t, p, o + 1) for (t, p), o in top.items()]


class BatchConsumer:
    def __init__(
        self,
        bootstrap: str,
        group: str,
        topics: list[str],
        handler: Handler,
        *,
        batch_size: int = 500,
        poll_timeout: float = 0.2,
        retry_backoff: float = 0.5,
        **overrides: Any,
    ) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topics = topics
        self.handler = handler
        self.batch_size = batch_size
        self.poll_timeout = poll_timeout
        self.retry_backoff = retry_backoff
        self.overrides = overrides
        self._call = SerialCalls(group)
        self._consumer: confluent_kafka.Consumer | None = None
        self._watch = BrokerWatch()

    async def run(self, stopping: asyncio.Event) -> None:
        c = await self._connect()
        try:
            while not stopping.is_set():
                if self._watch.lost:
                    log.warning(
                        "kafka consumer knows no broker; replaced", extra={"group": self.group}
                    )
                    abandon(c)
                    c = await self._connect()
                raw = await self._call(take, c, self.batch_size, self.poll_timeout)
                messages = without_errors(raw)
                if not messages:
                    continue
                if not await self._handle(messages, stopping):
                    return  # stopping mid-retry: commit nothing, Kafka redelivers
                await self._commit(messages)
        finally:
            await self._call(c.close)
            self._call.shutdown()

    async def _connect(self) -> confluent_kafka.Consumer:
        self._watch = BrokerWatch()
        config = self._watch.config() | self.overrides
        c: confluent_kafka.Consumer = await self._call(
            consumer, self.bootstrap, self.group, **config
        )
        await self._call(c.subscribe, self.topics)
        self._consumer = c
        return c

    async def _handle(self, messages: list[Message], stopping: asyncio.Event) -> bool:
        """Handle the batch, retrying store outages; False when the service stops first."""
        retry = Retry(
            Backoff(first=self.retry_backoff, cap=10.0),
            on=(StoreUnavailable, KafkaError),
            stopping=stopping,
            what="batch failed, retrying",
            logger=log,
            fields={"group": self.group},
        )
        try:
            await retry.call(lambda: self.handler(messages))
        except Stopped:
            return False
        return True

    async def _commit(self, messages: list[Message]) -> None:
        """Asynchronous (`consumer` says why); a commit that fails leaves the batch to be
        redelivered to whoever owns its partitions next: effects are idempotent."""
        assert self._consumer is not None
        try:
            await self._call(
                self._consumer.commit, offsets=next_offsets(messages), asynchronous=True
            )
        except confluent_kafka.KafkaException as exc:
            log.warning("commit failed", extra={"group": self.group, "error": str(exc)})
