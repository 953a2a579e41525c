"""Consumer lag and topic sizes, read from the broker (shared state: every copy agrees).

Lag of a group on a partition = high watermark - committed offset: the records the group
has not committed yet. A partition the group never committed counts from the low watermark
(what a consumer with `auto.offset.reset=earliest` still has to read), and a committed
offset below the low watermark (records already deleted by retention) counts from the low
watermark too. A topic's size per partition = high - low watermark.

The arithmetic is pure (`partition_lag`, `lag_report`); `OffsetReader` does the broker
calls (`offsets_for_times` at the earliest and the latest offset, `committed`) and is
blocking: call it from a thread.
`PublishBacklog` reads the publishers' lag on `publish.request` from a thread, for the
services that pace themselves by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import confluent_kafka
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from herald.shared.infra.kafka.client import consumer
from herald.shared.infra.names import (
    ALL_TOPICS,
    PUBLISHER_GROUP,
    REQUEST,
    RESULT,
    RESULTS_GROUP,
    SCHEDULE,
    SCHEDULER_GROUP,
    Names,
)

log = logging.getLogger(__name__)

# Herald's consumer groups (before the prefix) and the topics each one reads.
GROUP_TOPICS: dict[str, tuple[str, ...]] = {
    SCHEDULER_GROUP: (SCHEDULE,),
    PUBLISHER_GROUP: (REQUEST,),
    RESULTS_GROUP: (RESULT,),
}

Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class Watermarks:
    low: int
    high: int

    @property
    def size(self) -> int:
        return max(self.high - self.low, 0)


@dataclass(frozen=True)
class Offsets:
    """What the broker said: watermarks per partition, committed offsets per group."""

    watermarks: dict[Partition, Watermarks] = field(default_factory=dict)
    # group → (topic, partition) → committed offset (None: nothing committed)
    committed: dict[str, dict[Partition, int | None]] = field(default_factory=dict)


@dataclass(frozen=True)
class LagReport:
    lag: dict[tuple[str, str, int], int]  # (group, topic, partition) → records behind
    sizes: dict[Partition, int]  # (topic, partition) → records held


def partition_lag(committed: int | None, marks: Watermarks) -> int:
    """Records a group has still to commit on one partition."""
    start = marks.low if committed is None or committed < 0 else max(committed, marks.low)
    return max(marks.high - start, 0)


def lag_report(offsets: Offsets) -> LagReport:
    lag: dict[tuple[str, str, int], int] = {}
    for group, partitions in offsets.committed.items():
        for (topic, partition), committed in partitions.items():
            marks = offsets.watermarks.get((topic, partition))
            if marks is not None:
                lag[(group, topic, partition)] = partition_lag(committed, marks)
    sizes = {tp: marks.size for tp, marks in offsets.watermarks.items()}
    return LagReport(lag, sizes)


def herald_groups(names: Names) -> dict[str, list[str]]:
    """Prefixed group → prefixed topics it reads."""
    return {names.group(g): [names.topic(t) for t in ts] for g, ts in GROUP_TOPICS.items()}


def herald_topics(names: Names) -> list[str]:
    return [names.topic(t) for t in ALL_TOPICS]


class OffsetReader:
    """Reads watermarks and committed offsets with plain consumers that never subscribe
    (so they join no group and commit nothing), one per group, kept for the process's
    life. Blocking: call `read` from a thread, one call at a time.

    Not the AdminClient: its future-based calls for a group that does not exist yet, and
    AdminClients collected while librdkafka's background thread holds their futures, have
    crashed the process (a segfault in `rdk:main`, seen in CI)."""

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        self.timeout = timeout
        self._consumers: dict[str, confluent_kafka.Consumer] = {}

    def _consumer(self, group: str) -> confluent_kafka.Consumer:
        if group not in self._consumers:
            self._consumers[group] = consumer(self.bootstrap, group)
        return self._consumers[group]

    def read(self, topics: Iterable[str], groups: Mapping[str, Iterable[str]]) -> Offsets:
        """Watermarks of every partition of `topics` and each group's committed offsets on
        the partitions of the topics it reads. Topics that do not exist are left out."""
        any_client = self._consumer(next(iter(groups), "herald-lag-reader"))
        partitions: dict[str, list[int]] = {}
        for topic in topics:  # one topic's metadata at a time: a shared cluster may hold many
            meta = any_client.list_topics(topic, timeout=self.timeout).topics.get(topic)
            if meta is not None and meta.error is None and meta.partitions:
                partitions[topic] = sorted(meta.partitions)
        # Both watermarks of every partition in two requests (the earliest and the latest
        # offsets), not two a partition: the dispatcher's window reads this 4 times a second.
        every = [(t, p) for t, parts in partitions.items() for p in parts]
        watermarks: dict[Partition, Watermarks] = {}
        if every:
            lows, highs = (
                any_client.offsets_for_times(
                    [TopicPartition(t, p, spec) for t, p in every], timeout=self.timeout
                )
                for spec in (OFFSET_BEGINNING, OFFSET_END)
            )
            for low, high in zip(lows, highs, strict=True):
                if low.error is not None or high.error is not None:
                    raise confluent_kafka.KafkaException(low.error or high.error)
                watermarks[(low.topic, low.partition)] = Watermarks(low.offset, high.offset)
        committed: dict[str, dict[Partition, int | None]] = {}
        for group, group_topics in groups.items():
            wanted = [TopicPartition(t, p) for t in group_topics for p in partitions.get(t, [])]
            if not wanted:
                continue
            out: dict[Partition, int | None] = {(tp.topic, tp.partition): None for tp in wanted}
            for tp in self._consumer(group).committed(wanted, timeout=self.timeout):
                if tp.error is None and tp.offset >= 0:
                    out[(tp.topic, tp.partition)] = int(tp.offset)
            committed[group] = out
        return Offsets(watermarks, committed)

    def close(self) -> None:
        for c in self._consumers.values():
            c.close()
        self._consumers.clear()


class PublishBacklog:
    """The requests the publishers' group has not committed on `publish.request`: what
    the results service waits on (decision 0012) and the dispatcher's window keeps short
    (decision 0023)."""

    def __init__(self, bootstrap: str, names: Names, *, refresh: float = 0.25) -> None:
        self.topic = names.topic(REQUEST)
        self.group = names.group(PUBLISHER_GROUP)
        self.refresh = refresh
        self._reader = OffsetReader(bootstrap, timeout=2.0)
        self._lock = threading.Lock()  # one broker reading at a time (the reader's rule)
        self._value = 0
        self._read_at = float("-inf")
        self._renewing: asyncio.Task[int] | None = None

    async def current(self) -> int:
        """The last reading at once: one older than `refresh` is renewed in the background,
        so the caller never waits on the broker (a reading took 16 - 117 ms on a busy
        machine, and a results batch waited for it every `refresh` seconds). Only the first
        call, with no reading yet, reads inline."""
        if self._read_at == float("-inf"):
            return await self.read()
        if time.monotonic() - self._read_at >= self.refresh and self._renewing is None:
            self._renewing = asyncio.create_task(self._renew(), name="publish-backlog")
        return self._value

    async def _renew(self) -> int:
        try:
            return await self.read()
        finally:
            self._renewing = None

    async def read(self) -> int:
        """A new reading. A broker that does not answer reads as no backlog: nothing waits
        on a guess."""
        try:
            self._value = await asyncio.to_thread(self._read)
        except Exception as exc:
            log.warning("publisher backlog unknown; taken as none", extra={"error": repr(exc)})
            self._value = 0
        self._read_at = time.monotonic()
        return self._value

    def _read(self) -> int:
        with self._lock:
            offsets = self._reader.read([self.topic], {self.group: [self.topic]})
        return sum(lag_report(offsets).lag.values())

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:  # after a reading still under way in its thread
            self._reader.close()
