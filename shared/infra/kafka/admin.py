"""Topics from the declarative spec in deploy/topics.toml, created idempotently."""

from __future__ import annotations

import asyncio
import logging
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import confluent_kafka
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    NewPartitions,
    NewTopic,
)

from herald.shared.infra.kafka.client import KafkaError, base_config
from herald.shared.infra.paths import TOPICS_FILE

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    retention_ms: int


def load_topic_specs(path: Path = TOPICS_FILE) -> list[TopicSpec]:
    data = tomllib.loads(path.read_text())
    return [
        TopicSpec(name, int(spec["partitions"]), int(spec["retention_ms"]))
        for name, spec in data["topics"].items()
    ]


def admin(bootstrap: str) -> AdminClient:
    return AdminClient(base_config(bootstrap))


_PING_CLIENTS: dict[str, AdminClient] = {}


async def ping(bootstrap: str, timeout: float = 3.0) -> bool:
    """Whether the broker answers a metadata request (one client per process, reused)."""

    def _list() -> bool:
        client = _PING_CLIENTS.get(bootstrap)
        if client is None:
            client = _PING_CLIENTS[bootstrap] = admin(bootstrap)
        client.list_topics(timeout=timeout)
        return True

    try:
        return await asyncio.to_thread(_list)
    except Exception:
        return False


def create_topics(
    bootstrap: str, specs: list[TopicSpec], prefix: str = "", timeout: float = 30.0
) -> list[str]:
    """Create missing topics; returns the names created (none when all exist). Each gets
    min(3, brokers) replicas and min.insync.replicas min(2, replicas): with acks=all a
    record is then on two brokers before it counts as sent, and one broker alone still
    works."""
    client = admin(bootstrap)
    meta = client.list_topics(timeout=timeout)
    existing = set(meta.topics)
    replicas = replication_factor(len(meta.brokers))
    new = [
        NewTopic(
            prefix + spec.name,
            num_partitions=spec.partitions,
            replication_factor=replicas,
            config={
                "retention.ms": str(spec.retention_ms),
                "min.insync.replicas": str(min_insync_replicas(replicas)),
            },
        )
        for spec in specs
        if prefix + spec.name not in existing
    ]
    created = []
    for name, future in client.create_topics(new, request_timeout=timeout).items() if new else []:
        try:
            future.result()
            created.append(name)
        except confluent_kafka.KafkaException as exc:
            if exc.args[0].code() != confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS:
                raise KafkaError(f"creating topic {name}: {exc}") from exc
    return created


def replication_factor(brokers: int) -> int:
    return max(1, min(3, brokers))


def min_insync_replicas(replicas: int) -> int:
    return min(2, replicas)


def partition_counts(bootstrap: str, names: list[str], timeout: float = 30.0) -> dict[str, int]:
    """How many partitions each existing topic of `names` has."""
    topics = admin(bootstrap).list_topics(timeout=timeout).topics
    return {n: len(topics[n].partitions) for n in names if n in topics}


def grow_partitions(
    bootstrap: str, names: list[str], partitions: int, timeout: float = 30.0
) -> dict[str, tuple[int, int]]:
    """Give every topic of `names` with fewer than `partitions` partitions that many (Kafka
    never takes partitions away); answers {topic: (before, after)} for the topics grown.
    Returns once the metadata shows them (a broker's metadata may lag the controller's
    answer for a moment: read at once, it could still show the old count)."""
    before = partition_counts(bootstrap, names, timeout)
    grow = [NewPartitions(n, partitions) for n, count in before.items() if count < partitions]
    if not grow:
        return {}
    client = admin(bootstrap)
    for name, future in client.create_partitions(grow, request_timeout=timeout).items():
        try:
            future.result()
        except confluent_kafka.KafkaException as exc:
            raise KafkaError(f"growing topic {name} to {partitions} partitions: {exc}") from exc
    grown = [g.topic for g in grow]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = partition_counts(bootstrap, grown, timeout)
        if all(counts.get(n, 0) >= partitions for n in grown):
            break
        time.sleep(0.1)
    return {n: (before[n], partitions) for n in grown}


def delete_topics(bootstrap: str, topics: list[str], timeout: float = 30.0) -> None:
    """Delete `topics` and wait until Kafka answered for each: the request is sent in the
    background, and a process that exits first drops it (raises on a failed deletion)."""
    if not topics:
        return
    client = admin(bootstrap)  # kept alive until every deletion is answered
    for future in client.delete_topics(topics, operation_timeout=timeout).values():
        future.result()
