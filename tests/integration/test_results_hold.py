"""The results service waits while the publishers have a backlog on publish.request, and no
longer than its bound (decision 0012); read from a real broker."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from services.results.hold import HoldRule, PublishBacklog, ResultHold
from shared.kafka.client import Message, Producer, consumer
from shared.names import REQUEST, RESULT, Names
from shared.settings import Settings
from tests.conftest import eventually
from tests.support.kafka_lag import consume_and_commit

REQUESTS = 240


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer(bootstrap)
    producer.send_batch([(topic, f"conn-{i % 17}", b"{}") for i in range(count)])
    producer.close()


def _one_result(bootstrap: str, names: Names) -> list[Message]:
    """A message as the results service gets it: produced, then consumed (with CreateTime)."""
    topic = names.topic(RESULT)
    _produce(bootstrap, topic, 1)
    c = consumer(bootstrap, names.group("hold-test"))
    c.subscribe([topic])
    try:
        while True:
            got = [m for m in c.consume(1, 1.0) if not m.error()]
            if got:
                return got
    finally:
        c.close()


def _held_total() -> float:
    return REGISTRY.get_sample_value("herald_results_held_seconds_total") or 0.0


async def test_the_backlog_is_the_publishers_uncommitted_requests(settings: Settings) -> None:
    names = Names.from_settings(settings)
    bootstrap = settings.kafka_bootstrap
    backlog = PublishBacklog(bootstrap, names, refresh=0.0)
    try:
        assert await backlog.current() == 0
        await asyncio.to_thread(_produce, bootstrap, names.topic(REQUEST), REQUESTS)
        assert await eventually(lambda: _read(backlog, REQUESTS)) == REQUESTS
        group = names.group("herald-publisher")
        taken = await asyncio.to_thread(
            consume_and_commit, bootstrap, group, names.topic(REQUEST), 100
        )
        assert await backlog.current() == REQUESTS - taken
    finally:
        backlog.close()


async def _read(backlog: PublishBacklog, expected: int) -> int | None:
    value = await backlog.current()
    return value if value == expected else None


async def test_results_wait_for_the_backlog_up_to_the_bound(settings: Settings) -> None:
    names = Names.from_settings(settings)
    bootstrap = settings.kafka_bootstrap
    await asyncio.to_thread(_produce, bootstrap, names.topic(REQUEST), REQUESTS)
    messages = await asyncio.to_thread(_one_result, bootstrap, names)
    backlog = PublishBacklog(bootstrap, names, refresh=0.0)
    stopping = asyncio.Event()
    try:
        # a backlog below the threshold: applied at once
        at_once = ResultHold(HoldRule(max_seconds=1.0, backlog=REQUESTS + 1), backlog, stopping)
        assert await at_once.wait(messages) == 0.0

        # a backlog at the threshold that never clears: held until the bound, then let go
        before = _held_total()
        created = messages[0].timestamp()[1] / 1000
        rule = HoldRule(max_seconds=time.time() - created + 1.0, backlog=REQUESTS)
        held = await ResultHold(rule, backlog, stopping).wait(messages)
        assert held > 0
        assert time.time() - created >= rule.max_seconds  # let go at the bound, not before
        assert _held_total() - before == pytest.approx(held)
    finally:
        backlog.close()


async def test_results_go_as_soon_as_the_publishers_catch_up(settings: Settings) -> None:
    names = Names.from_settings(settings)
    bootstrap = settings.kafka_bootstrap
    await asyncio.to_thread(_produce, bootstrap, names.topic(REQUEST), REQUESTS)
    messages = await asyncio.to_thread(_one_result, bootstrap, names)
    backlog = PublishBacklog(bootstrap, names, refresh=0.0)
    rule = HoldRule(max_seconds=120.0, backlog=REQUESTS // 2)
    try:
        waiting = asyncio.create_task(ResultHold(rule, backlog, asyncio.Event()).wait(messages))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # held: the publishers are REQUESTS behind
        group = names.group("herald-publisher")
        await asyncio.to_thread(
            consume_and_commit, bootstrap, group, names.topic(REQUEST), REQUESTS
        )
        held = await asyncio.wait_for(waiting, timeout=60)
        assert held < rule.max_seconds  # let go because the backlog cleared, not the bound
    finally:
        backlog.close()


async def test_a_stopping_service_does_not_wait(settings: Settings) -> None:
    names = Names.from_settings(settings)
    bootstrap = settings.kafka_bootstrap
    await asyncio.to_thread(_produce, bootstrap, names.topic(REQUEST), REQUESTS)
    messages = await asyncio.to_thread(_one_result, bootstrap, names)
    backlog = PublishBacklog(bootstrap, names, refresh=0.0)
    stopping = asyncio.Event()
    rule = HoldRule(max_seconds=120.0, backlog=1)
    try:
        waiting = asyncio.create_task(ResultHold(rule, backlog, stopping).wait(messages))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        stopping.set()
        await asyncio.wait_for(waiting, timeout=30)
    finally:
        backlog.close()
