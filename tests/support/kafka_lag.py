"""The reference for Herald's lag gauges: the Kafka AdminClient's view of a group
(`list_consumer_group_offsets` and `list_offsets`), independent of shared/infra/kafka/lag.py,
which reads the same numbers through plain consumers."""

from __future__ import annotations

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from herald.shared.infra.kafka.admin import admin
from herald.shared.infra.kafka.batch_consumer import next_offsets
from herald.shared.infra.kafka.client import Message, consumer
from herald.shared.infra.kafka.lag import herald_groups
from herald.shared.infra.names import Names

LagKey = tuple[str, str, str]  # (group, topic, partition) as the gauge labels them


def client_lag(bootstrap: str, groups: dict[str, list[str]]) -> dict[LagKey, int]:
    """high watermark - committed offset (low watermark when nothing is committed)."""
    client = admin(bootstrap)
    topics = client.list_topics(timeout=10).topics
    lag: dict[LagKey, int] = {}
    for group, group_topics in groups.items():
        tps = [
            TopicPartition(t, p)
            for t in group_topics
            if t in topics
            for p in sorted(topics[t].partitions)
        ]
        if not tps:
            continue
        low = {
            (tp.topic, tp.partition): f.result(10).offset
            for tp, f in client.list_offsets(
                {tp: OffsetSpec.earliest() for tp in tps}, request_timeout=10
            ).items()
        }
        high = {
            (tp.topic, tp.partition): f.result(10).offset
            for tp, f in client.list_offsets(
                {tp: OffsetSpec.latest() for tp in tps}, request_timeout=10
            ).items()
        }
        request = [ConsumerGroupTopicPartitions(group, tps)]
        result = client.list_consumer_group_offsets(request, request_timeout=10)[group].result(10)
        committed = {
            (tp.topic, tp.partition): tp.offset
            for tp in result.topic_partitions or []
            if tp.error is None and tp.offset >= 0
        }
        for key in low:
            start = committed.get(key, low[key])
            lag[(group, key[0], str(key[1]))] = high[key] - start
    return lag


def herald_client_lag(bootstrap: str, names: Names) -> dict[LagKey, int]:
    return client_lag(bootstrap, herald_groups(names))


def consume_and_commit(bootstrap: str, group: str, topic: str, count: int) -> int:
    """Consume about `count` records (whole batches) and commit them; returns how many."""
    c = consumer(bootstrap, group)
    c.subscribe([topic])
    taken: list[Message] = []
    try:
        while len(taken) < count:
            taken += [m for m in c.consume(min(50, count - len(taken)), 1.0) if not m.error()]
        offsets: list[TopicPartition] = next_offsets(taken)
        c.commit(offsets=offsets, asynchronous=False)
    finally:
        c.close()
    return len(taken)
