"""A Kafka client left knowing no broker is noticed from librdkafka's own statistics, and
both consumer loops and the producer replace such a client and carry on.

librdkafka drops the brokers a metadata answer leaves out; one taken while Kafka shuts down
names none, and a client left with no broker never bootstraps again (the results service
stayed out of its group for good after a Kafka restart)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from herald.shared.infra.kafka.admin import TopicSpec, create_topics
from herald.shared.infra.kafka.batch_consumer import BatchConsumer
from herald.shared.infra.kafka.client import BrokerWatch, Message, Producer, consumer
from herald.shared.infra.kafka.concurrent_consumer import ConcurrentConsumer
from tests.conftest import Namespace, eventually
from tests.support.helpers import read_records


async def test_statistics_tell_a_client_that_knows_its_broker_from_one_that_knows_none(
    ns: Namespace,
) -> None:
    watch = BrokerWatch()
    readings: list[str] = []

    def stats(raw: str) -> None:
        readings.append(raw)
        watch(raw)

    client = consumer(
        ns.base.kafka_bootstrap,
        ns.topic_prefix + "watch",
        **{"statistics.interval.ms": 200, "stats_cb": stats},
    )
    try:
        client.subscribe([ns.topic_prefix + "watch"])
        async with asyncio.timeout(30):
            while len(readings) < 3:
                await asyncio.to_thread(client.poll, 0.2)
    finally:
        await asyncio.to_thread(client.close)
    assert not watch.lost and watch.brokerless == 0
    live: dict[str, Any] = json.loads(readings[-1])
    assert {b["source"] for b in live["brokers"].values()} & {"learned", "configured"}

    # What the same client reports once it knows no broker: only its logical handles.
    gone = live | {
        "brokers": {k: b for k, b in live["brokers"].items() if b["source"] == "logical"}
    }
    watch(json.dumps(gone))
    assert not watch.lost  # one reading may be a moment between two metadata answers
    watch(json.dumps(gone))
    assert watch.lost
    watch(readings[-1])
    assert not watch.lost


@pytest.mark.parametrize("kind", ["batch", "concurrent"])
async def test_a_consumer_whose_client_knows_no_broker_replaces_it_and_reads_on(
    ns: Namespace, kind: str
) -> None:
    bootstrap = ns.base.kafka_bootstrap
    topic = ns.topic_prefix + f"watch-{kind}"
    create_topics(bootstrap, [TopicSpec(f"watch-{kind}", 2, 3_600_000)], ns.topic_prefix)
    seen: list[bytes] = []

    async def handle_batch(messages: list[Message]) -> None:
        seen.extend(bytes(m.value() or b"") for m in messages)

    async def handle_one(message: Message) -> bool:
        seen.append(bytes(message.value() or b""))
        return True

    group = ns.topic_prefix + f"watch-{kind}-group"
    reader: BatchConsumer | ConcurrentConsumer = (
        BatchConsumer(bootstrap, group, [topic], handle_batch)
        if kind == "batch"
        else ConcurrentConsumer(bootstrap, group, [topic], handle_one)
    )
    producer = Producer(bootstrap)
    stopping = asyncio.Event()
    task = asyncio.create_task(reader.run(stopping))
    try:
        await asyncio.to_thread(producer.send_batch, [(topic, "a", b"before")])
        await eventually(lambda: b"before" in seen, 60)
        first = reader._consumer
        reader._watch.brokerless = 2  # as its statistics say when it knows no broker
        await eventually(lambda: reader._consumer not in (None, first), 30)
        await asyncio.to_thread(producer.send_batch, [(topic, "b", b"after")])
        await eventually(lambda: b"after" in seen, 60)
        assert not task.done()
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
        producer.close()


async def test_a_producer_whose_client_knows_no_broker_replaces_it_and_sends_on(
    ns: Namespace,
) -> None:
    bootstrap = ns.base.kafka_bootstrap
    topic = ns.topic_prefix + "watch-producer"
    create_topics(bootstrap, [TopicSpec("watch-producer", 2, 3_600_000)], ns.topic_prefix)
    producer = Producer(bootstrap)
    try:
        await producer.send_batch_async([(topic, "a", b'{"n": 1}')])
        first = producer._producer
        producer._watch.brokerless = 2  # as its statistics say when it knows no broker
        await producer.send_batch_async([(topic, "b", b'{"n": 2}')])
        producer.send_batch([(topic, "c", b'{"n": 3}')])
        assert producer._producer is not first
    finally:
        producer.close()
    sent = await asyncio.to_thread(read_records, bootstrap, topic, expect=3)
    assert sorted(value["n"] for _, _, value in sent) == [1, 2, 3]
