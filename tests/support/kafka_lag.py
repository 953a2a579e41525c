"""The reference for Herald's lag gauges: a plain Kafka consumer's view of a group
(`committed()` and `get_watermark_offsets()`), independent of shared/kafka/lag.py."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from shared.kafka.admin import admin
from shared.kafka.client import consumer
from shared.kafka.lag import herald_groups
from shared.names import Names

LagKey = tuple[str, str, str]  # (group, topic, partition) as the gauge labels them


def client_lag(bootstrap: str, groups: dict[str, list[str]]) -> dict[LagKey, int]:
    """high watermark - committed offset (low watermark when nothing is committed)."""
    topics = admin(bootstrap).list_topics(timeout=10).topics
    lag: dict[LagKey, int] = {}
    for group, group_topics in groups.items():
        c = consumer(bootstrap, group)  # never subscribes: it reads, joins and commits nothing
        try:
            tps = [
                TopicPartition(t, p)
                for t in group_topics
                if t in topics
                for p in sorted(topics[t].partitions)
            ]
            for tp in c.committed(tps, timeout=10):
                low, high = c.get_watermark_offsets(tp, timeout=10, cached=False)
                start = tp.offset if tp.offset >= 0 else low
                lag[(group, tp.topic, str(tp.partition))] = high - start
        finally:
            c.close()
    return lag


def herald_client_lag(bootstrap: str, names: Names) -> dict[LagKey, int]:
    return client_lag(bootstrap, herald_groups(names))
