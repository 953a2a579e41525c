"""The publisher's consumer reads ahead and starts waiting requests in their keys' turns: a
request of one account, behind another account's hundreds in its partition, starts within a
round of the accounts (the fairness `herald bench fairness` measures), and what was read
ahead but never started is not committed, so it is not lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from herald.shared.infra.kafka.admin import TopicSpec, create_topics
from herald.shared.infra.kafka.client import Message, Producer, consumer
from herald.shared.infra.kafka.concurrent_consumer import ConcurrentConsumer
from tests.conftest import Namespace, eventually

BUSY = 300


async def _run(reader: ConcurrentConsumer, done: asyncio.Future[None]) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(reader.run(stopping))
    try:
        await asyncio.wait_for(done, 60)
    finally:
        stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


async def test_a_key_behind_another_keys_backlog_starts_within_a_round(ns: Namespace) -> None:
    bootstrap = ns.base.kafka_bootstrap
    topic = ns.topic_prefix + "key-turns"
    create_topics(bootstrap, [TopicSpec("key-turns", 1, 3_600_000)], ns.topic_prefix)
    records = [(topic, b"busy", f"busy-{i}".encode(), 0) for i in range(BUSY)]
    records.append((topic, b"other", b"other", 0))  # last in the partition
    Producer(bootstrap).send_batch(records)
    handled: list[bytes] = []
    done = asyncio.get_running_loop().create_future()

    async def handler(msg: Message) -> bool:
        await asyncio.sleep(0.002)
        handled.append(msg.value() or b"")
        if len(handled) == BUSY + 1:
            done.set_result(None)
        return True

    reader = ConcurrentConsumer(
        bootstrap, ns.topic_prefix + "turns", [topic], handler, max_in_flight=4, read_ahead=BUSY
    )
    await _run(reader, done)
    assert sorted(handled) == sorted(value for _, _, value, _ in records)
    # In partition order it would be the last; read ahead, it waits a round of two keys
    # (once it has been fetched: a fetch may bring the partition in a few pieces).
    assert handled.index(b"other") < BUSY // 2, handled.index(b"other")
    busy = [v for v in handled if v != b"other"]
    assert busy == sorted(busy, key=lambda v: int(v.split(b"-")[1]))  # a key's order holds


async def test_what_was_read_ahead_and_not_started_is_read_again(
    ns: Namespace, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = ns.base.kafka_bootstrap
    topic = ns.topic_prefix + "read-ahead"
    create_topics(bootstrap, [TopicSpec("read-ahead", 1, 3_600_000)], ns.topic_prefix)
    values = [f"m-{i}".encode() for i in range(20)]
    keyed = [(topic, f"k{i % 3}".encode(), v, 0) for i, v in enumerate(values)]
    Producer(bootstrap).send_batch(keyed)
    group = ns.topic_prefix + "read-ahead-group"
    first: list[bytes] = []
    started = asyncio.get_running_loop().create_future()

    async def finishes_three(msg: Message) -> bool:
        if len(first) < 3:
            first.append(msg.value() or b"")
            return True
        if not started.done():
            started.set_result(None)
        await asyncio.Event().wait()  # never finishes: cancelled at stop, uncommitted
        return True

    reader = ConcurrentConsumer(
        bootstrap, group, [topic], finishes_three, max_in_flight=1, read_ahead=50, drain_grace=0.2
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(reader.run(stopping))
    await asyncio.wait_for(started, 60)
    await eventually(lambda: len(reader._waiting) == 16, 30)  # the rest, read ahead
    with caplog.at_level(logging.INFO, logger="herald.shared.infra.kafka.concurrent_consumer"):
        stopping.set()
        await asyncio.wait_for(task, 30)
    left = [r for r in caplog.records if r.getMessage().startswith("messages read ahead left")]
    assert [r.count for r in left] == [16]  # type: ignore[attr-defined]

    again = consumer(bootstrap, group)
    again.subscribe([topic])
    later: list[bytes] = []
    async with asyncio.timeout(60):
        while len(first) + len(later) < len(values):
            for msg in await asyncio.to_thread(again.consume, 50, 0.5):
                if msg.error() is None:
                    later.append(msg.value() or b"")
    await asyncio.to_thread(again.close)
    assert sorted(first + later) == sorted(values)
    assert not set(first) & set(later)
