"""The ingress's writes in flight when a take fails: they finish, they are not cancelled."""

from __future__ import annotations

import asyncio

import pytest

from herald.services.scheduler import ingress
from herald.services.scheduler.ingress import _Writes
from herald.shared.errors import StoreUnavailable


async def test_a_failed_take_lets_its_writes_in_flight_finish() -> None:
    # A write cancelled after its COMMIT went out left its jobs in Postgres but not in
    # Redis, and the take's retry, finding them written, added nothing (seen in CI).
    done: list[str] = []

    async def committed_then_mirrored() -> None:
        await asyncio.sleep(0.05)  # the COMMIT's answer, then the Redis add
        done.append("mirrored")

    async def outage() -> None:
        raise StoreUnavailable("postgres", "gone")

    writes = _Writes()
    with pytest.raises(StoreUnavailable):
        try:
            await writes.start(committed_then_mirrored)
            await writes.start(outage)
            await writes.start(committed_then_mirrored)  # meets the failure: no third write
        finally:
            await writes.settle()
    assert done == ["mirrored"]


async def test_a_write_that_hangs_is_cancelled_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ingress, "SETTLE_SECONDS", 0.05)
    hung = asyncio.Event()

    async def hangs() -> None:
        await hung.wait()  # a connection that never answers

    writes = _Writes()
    await writes.start(hangs)
    task = writes._tasks[0]
    await asyncio.wait_for(writes.settle(), timeout=5)
    assert task.cancelled()
