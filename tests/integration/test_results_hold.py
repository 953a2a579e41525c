"""The results service waits while the publishers have a backlog on publish.request, and no
longer than its bound (decision 0012); read from a real broker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from prometheus_client import REGISTRY

from herald.services.results.hold import HoldRule, ResultHold
from herald.shared.infra.kafka.client import Message, Producer, consumer
from herald.shared.infra.kafka.lag import PublishBacklog
from herald.shared.infra.names import PUBLISHER_GROUP, REQUEST, RESULT, Names
from herald.shared.infra.settings import Settings
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
        group = names.group(PUBLISHER_GROUP)
        taken = await asyncio.to_thread(
            consume_and_commit, bootstrap, group, names.topic(REQUEST), 100
        )
        assert await backlog.read() == REQUESTS - taken
    finally:
        await backlog.close()


async def test_a_stale_reading_is_answered_at_once_and_renewed_behind(settings: Settings) -> None:
    """A results batch never waits on the broker: after the first reading, `current` answers
    the last one and renews it in the background."""
    names = Names.from_settings(settings)
    bootstrap = settings.kafka_bootstrap
    backlog = PublishBacklog(bootstrap, names, refresh=0.0)
    try:
        assert await backlog.current() == 0  # the first reading: inline
        await asyncio.to_thread(_produce, bootstrap, names.topic(REQUEST), REQUESTS)
        assert await backlog.current() == 0  # the last reading, while a new one is taken
        assert await eventually(lambda: _read(backlog, REQUESTS)) == REQUESTS
    finally:
        await backlog.close()


async def _read(backlog: PublishBacklog, expected: int) -> int | None:
    value = await backlog.current()
    return value if value == expected else None


@dataclass
class Behind:
    """Publishers REQUESTS behind, and a freshly produced result as the service consumes it."""

    names: Names
    bootstrap: str
    messages: list[Message]
    backlog: PublishBacklog

    def catch_up(self) -> int:
        topic, group = self.names.topic(REQUEST), self.names.group(PUBLISHER_GROUP)
        return consume_and_commit(self.bootstrap, group, topic, REQUESTS)


@pytest.fixture
async def behind(settings: Settings) -> AsyncIterator[Behind]:
    names = Names.from_settings(settings)
    bootstrap = settings.kafka_bootstrap
    await asyncio.to_thread(_produce, bootstrap, names.topic(REQUEST), REQUESTS)
    messages = await asyncio.to_thread(_one_result, bootstrap, names)
    backlog = PublishBacklog(bootstrap, names, refresh=0.0)
    yield Behind(names, bootstrap, messages, backlog)
    await backlog.close()


async def test_results_wait_for_the_backlog_up_to_the_bound(behind: Behind) -> None:
    stopping = asyncio.Event()
    # a backlog below the threshold: applied at once
    rule = HoldRule(max_seconds=1.0, backlog=REQUESTS + 1)
    assert await ResultHold(rule, behind.backlog, stopping).wait(behind.messages) == 0.0

    # a backlog at the threshold that never clears: held until the bound, then let go
    before = _held_total()
    created = behind.messages[0].timestamp()[1] / 1000
    rule = HoldRule(max_seconds=time.time() - created + 1.0, backlog=REQUESTS)
    held = await ResultHold(rule, behind.backlog, stopping).wait(behind.messages)
    assert held > 0
    assert time.time() - created >= rule.max_seconds  # let go at the bound, not before
    assert _held_total() - before == pytest.approx(held)


async def test_results_go_as_soon_as_the_publishers_catch_up(behind: Behind) -> None:
    rule = HoldRule(max_seconds=120.0, backlog=REQUESTS // 2)
    hold = ResultHold(rule, behind.backlog, asyncio.Event())
    waiting = asyncio.create_task(hold.wait(behind.messages))
    await asyncio.sleep(0.5)
    assert not waiting.done()  # held: the publishers are REQUESTS behind
    await asyncio.to_thread(behind.catch_up)
    held = await asyncio.wait_for(waiting, timeout=60)
    assert held < rule.max_seconds  # let go because the backlog cleared, not the bound


async def test_a_stopping_service_does_not_wait(behind: Behind) -> None:
    stopping = asyncio.Event()
    hold = ResultHold(HoldRule(max_seconds=120.0, backlog=1), behind.backlog, stopping)
    waiting = asyncio.create_task(hold.wait(behind.messages))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    stopping.set()
    await asyncio.wait_for(waiting, timeout=30)
