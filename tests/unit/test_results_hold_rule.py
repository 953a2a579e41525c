"""The results hold's rule: wait only while the publishers are behind and the oldest
result is younger than the bound (decision 0012)."""

from __future__ import annotations

import asyncio
import time

from herald.services.results.hold import HoldRule, ResultHold
from herald.shared.infra.settings import Settings


def test_holds_only_while_behind_and_young() -> None:
    rule = HoldRule(max_seconds=5.0, backlog=2000)
    assert rule.holds(oldest_age=0.0, backlog=2000)
    assert rule.holds(oldest_age=4.9, backlog=50_000)
    assert not rule.holds(oldest_age=5.0, backlog=50_000)  # the bound: statuses never starve
    assert not rule.holds(oldest_age=0.0, backlog=1999)  # publishers keeping up
    assert rule.remaining(4.0) == 1.0
    assert rule.remaining(9.0) == 0.0


def test_zero_seconds_never_holds() -> None:
    assert not HoldRule(max_seconds=0.0, backlog=1).holds(oldest_age=0.0, backlog=10**9)


def test_settings_default_and_override() -> None:
    assert HoldRule.from_settings(Settings()) == HoldRule(5.0, 2000)
    tuned = Settings(results_hold_seconds=0, results_hold_backlog=10)
    assert HoldRule.from_settings(tuned) == HoldRule(0.0, 10)


class _Stamped:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def timestamp(self) -> tuple[int, int]:
        return (1, self.ms)


class _Behind:
    def __init__(self) -> None:
        self.reads = 0

    async def current(self) -> int:
        self.reads += 1
        return 10**6


async def test_an_old_result_is_not_held_and_the_broker_is_not_asked_twice() -> None:
    backlog = _Behind()
    hold = ResultHold(HoldRule(5.0, 1), backlog, asyncio.Event())
    old = _Stamped(int((time.time() - 60) * 1000))
    assert await hold.wait([old]) == 0.0  # type: ignore[list-item]
    assert backlog.reads == 1


async def test_disabled_hold_reads_nothing() -> None:
    backlog = _Behind()
    hold = ResultHold(HoldRule(0.0, 1), backlog, asyncio.Event())
    assert await hold.wait([_Stamped(int(time.time() * 1000))]) == 0.0  # type: ignore[list-item]
    assert backlog.reads == 0


async def test_a_result_stamped_ahead_of_this_clock_still_waits_no_longer_than_the_bound() -> None:
    """A publisher host whose clock runs a minute ahead: the wait still ends at the bound."""
    hold = ResultHold(HoldRule(0.3, 1), _Behind(), asyncio.Event(), step=0.05)
    ahead = _Stamped(int((time.time() + 60) * 1000))
    held = await asyncio.wait_for(hold.wait([ahead]), timeout=10)  # type: ignore[list-item]
    assert held >= 0.3
