"""A partition taken away while the consumer was paused (full) is read again when it comes
back. librdkafka keeps a partition's pause across a revoke or a loss: before the fix, the
publisher whose group coordinator died mid-burst (a broker SIGKILLed) got its partitions
back paused and read nothing more, while the scheduler re-dispatched to it forever."""

from __future__ import annotations

import asyncio
import contextlib

from herald.shared.infra.kafka.admin import TopicSpec, create_topics
from herald.shared.infra.kafka.client import Message, Producer, consumer
from herald.shared.infra.kafka.concurrent_consumer import ConcurrentConsumer
from tests.conftest import Namespace, eventually

PER_PARTITION = 20


async def test_a_partition_revoked_while_paused_is_read_when_it_returns(ns: Namespace) -> None:
    bootstrap = ns.base.kafka_bootstrap
    topic = ns.topic_prefix + "pause-rebalance"
    create_topics(bootstrap, [TopicSpec("pause-rebalance", 2, 3_600_000)], ns.topic_prefix)
    Producer(bootstrap).send_batch(
        (topic, None, f"{p}-{i}".encode(), p) for p in (0, 1) for i in range(PER_PARTITION)
    )
    group = ns.topic_prefix + "pause-rebalance-group"
    gate = asyncio.Event()
    handled: set[bytes] = set()

    async def handler(msg: Message) -> bool:
        await gate.wait()  # the first message holds the only slot: the consumer pauses
        handled.add(msg.value() or b"")
        return True

    reader = ConcurrentConsumer(
        bootstrap, group, [topic], handler, max_in_flight=1, pause_after=0.1
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(reader.run(stopping))
    try:
        await eventually(lambda: reader._paused and len(reader._assigned) == 2, 60)
        # Another member joins: one partition is revoked from the paused reader.
        other = consumer(bootstrap, group)
        other.subscribe([topic])
        async with asyncio.timeout(60):
            while len(reader._assigned) != 1:
                await asyncio.to_thread(other.poll, 0.2)
        gate.set()  # the reader frees its slot and resumes what it still has
        await eventually(lambda: not reader._paused, 30)
        await asyncio.to_thread(other.close)  # the partition comes back to the reader
        await eventually(lambda: len(handled) == 2 * PER_PARTITION, 60)
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)
    assert handled == {f"{p}-{i}".encode() for p in (0, 1) for i in range(PER_PARTITION)}
