"""The concurrent consumer takes messages in groups: with fewer than `min_batch` slots free
it waits (up to `gather_seconds`) for more to free before it polls Kafka again."""

from __future__ import annotations

import asyncio

from herald.shared.infra.kafka.concurrent_consumer import ConcurrentConsumer


def _consumer(min_batch: int, gather_seconds: float = 0.02) -> ConcurrentConsumer:
    async def handler(_msg: object) -> bool:
        return True

    return ConcurrentConsumer(
        "127.0.0.1:1",
        "group",
        ["topic"],
        handler,
        max_in_flight=8,
        batch_size=8,
        min_batch=min_batch,
        gather_seconds=gather_seconds,
    )


def _occupy(c: ConcurrentConsumer, finish_after: list[float]) -> None:
    """In-flight work that finishes after the given delays, as `_start` tracks it."""
    for delay in finish_after:
        task = asyncio.create_task(asyncio.sleep(delay))
        c._tasks.add(task)  # the slot bookkeeping under test
        task.add_done_callback(c._finished)


async def test_waits_until_enough_slots_are_free() -> None:
    c = _consumer(min_batch=4, gather_seconds=5.0)
    _occupy(c, [0.01 * i for i in range(1, 8)])  # 7 of 8 taken; one frees every 10 ms
    loop = asyncio.get_running_loop()
    began = loop.time()
    free = await c._gather_slots()
    waited = loop.time() - began
    assert free >= 4
    assert c.in_flight <= 4
    assert waited < 1.0  # woken by the finishing tasks, not by the 5 s limit


async def test_gives_up_after_gather_seconds() -> None:
    c = _consumer(min_batch=4, gather_seconds=0.05)
    _occupy(c, [10.0] * 7)  # nothing frees in time
    free = await c._gather_slots()
    assert free == 1
    for task in list(c._tasks):
        task.cancel()


async def test_min_batch_is_capped_by_the_batch_and_the_slots() -> None:
    assert _consumer(min_batch=100).min_batch == 8
    assert _consumer(min_batch=0).min_batch == 1
