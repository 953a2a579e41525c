"""Results wait while the publishers have a backlog, for a bounded time (decision 0012).

A result arrives after its post is live. Recording it (the attempt row, the job's status,
the status event) takes Postgres and Kafka time that the dispatcher and the publishers need
while requests queue for them: in a burst that work decides when the remaining posts go
live. So a batch of results waits while the publishers' group is at least `backlog`
requests behind on `publish.request`, but never once its oldest result is `max_seconds`
old: statuses follow posts by at most that much more, even under sustained overload. (A
result's age is the larger of its Kafka timestamp's age and the time already waited, so a
clock that runs behind the publishers' cannot stretch the wait.)

The rule (`HoldRule`) is pure; `PublishBacklog` (`shared/infra/kafka/lag.py`) answers the last
reading of the publishers' lag at once and renews it from the broker in the background, at
most every `refresh` seconds; `ResultHold` waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from herald.shared.infra import metrics
from herald.shared.infra.kafka.client import Message
from herald.shared.infra.retry import sleep_or_stop
from herald.shared.infra.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HoldRule:
    max_seconds: float  # 0: never hold
    backlog: int  # hold while the publishers are at least this many requests behind

    @classmethod
    def from_settings(cls, settings: Settings) -> HoldRule:
        return cls(settings.results_hold_seconds, settings.results_hold_backlog)

    def holds(self, oldest_age: float, backlog: int) -> bool:
        return self.max_seconds > 0 and oldest_age < self.max_seconds and backlog >= self.backlog

    def remaining(self, oldest_age: float) -> float:
        return max(self.max_seconds - oldest_age, 0.0)


class Backlog(Protocol):
    async def current(self) -> int: ...


class ResultHold:
    def __init__(
        self,
        rule: HoldRule,
        backlog: Backlog,
        stopping: asyncio.Event,
        *,
        step: float = 0.25,
    ) -> None:
        self.rule = rule
        self.backlog = backlog
        self.stopping = stopping
        self.step = step

    async def wait(self, messages: Sequence[Message]) -> float:
        """Wait while the rule holds these results; answers the seconds waited (0: none)."""
        if self.rule.max_seconds <= 0 or not messages:
            return 0.0
        oldest = _oldest_seconds(messages)
        began = time.time()
        slept = False
        while not self.stopping.is_set():
            now = time.time()
            age = max(now - oldest, now - began)
            behind = await self.backlog.current()
            if not self.rule.holds(age, behind):
                break
            slept = True
            if await sleep_or_stop(self.stopping, min(self.step, self.rule.remaining(age))):
                break
        if not slept:
            return 0.0
        held = time.time() - began
        metrics.RESULTS_HELD.inc(held)
        log.info(
            "results held while the publishers had a backlog",
            extra={"count": len(messages), "seconds": round(held, 3), "backlog": behind},
        )
        return held


def _oldest_seconds(messages: Sequence[Message]) -> float:
    """The oldest message's timestamp (Kafka's CreateTime, set by the publisher that
    produced it), in seconds; a message without one counts as new."""
    now = time.time()
    stamps = [m.timestamp()[1] for m in messages]
    return min((s / 1000 for s in stamps if s and s > 0), default=now)
