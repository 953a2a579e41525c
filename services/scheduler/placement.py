"""Where the dispatcher puts a connection's requests: partition = the connection's
placement (its creation order, `connections.placement`) modulo the partitions of
`publish.request`.

The record key stays the connection id (DESIGN), but hashing a few dozen connection ids
spreads them unevenly: in `herald bench scale` the busiest of four publisher copies got
31-46 % of the jobs and the drain ended when it finished. Consecutive placements fill the
partitions in turn, so accounts divide evenly over the copies that own the partitions, and
a connection stays on one partition (one copy at a time) for as long as the count holds.
"""

from __future__ import annotations

import asyncio
import logging
import time

from herald.shared.infra.kafka.client import UNASSIGNED, KafkaError, Producer

log = logging.getLogger(__name__)


def partition_for(placement: int | None, partitions: int) -> int:
    """The partition for a connection's placement; without one, the key's hash decides."""
    if placement is None or partitions <= 0:
        return UNASSIGNED
    return placement % partitions


class PartitionCount:
    """The topic's partition count, read from Kafka's metadata and re-read every
    `refresh` seconds (partitions are only ever added, by an operator). While no count is
    known (Kafka's metadata unreadable so far), it asks again after `retry` seconds, so a
    connection's requests leave the key-hash fallback soon after Kafka answers."""

    def __init__(
        self, producer: Producer, topic: str, refresh: float = 60.0, retry: float = 1.0
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.refresh = refresh
        self.retry = retry
        self._count = 0  # 0: not known yet (records then fall back to the key's hash)
        self._read_at = -float("inf")

    async def get(self) -> int:
        every = self.refresh if self._count else self.retry
        if time.monotonic() - self._read_at >= every:
            try:
                self._count = await asyncio.to_thread(self.producer.partition_count, self.topic)
            except KafkaError as exc:
                log.warning(
                    "partition count unavailable; keeping the last one",
                    extra={"topic": self.topic, "count": self._count, "error": str(exc)},
                )
            self._read_at = time.monotonic()
        return self._count
