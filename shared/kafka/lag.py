"""Consumer lag and topic sizes, read from the broker (shared state: every copy agrees).

Lag of a group on a partition = high watermark - committed offset: the records the group
has not committed yet. A partition the group never committed counts from the low watermark
(what a consumer with `auto.offset.reset=earliest` still has to read), and a committed
offset below the low watermark (records already deleted by retention) counts from the low
watermark too. A topic's size per partition = high - low watermark.

The arithmetic is pure (`partition_lag`, `lag_report`); `read_offsets` does the broker
calls with an AdminClient (`list_offsets`, `list_consumer_group_offsets`) and is
blocking: call it from a thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from shared.names import ALL_TOPICS, REQUEST, RESULT, SCHEDULE, Names

# Herald's consumer groups (before the prefix) and the topics each one reads.
GROUP_TOPICS: dict[str, tuple[str, ...]] = {
    "herald-scheduler": (SCHEDULE,),
    "herald-publisher": (REQUEST,),
    "herald-results": (RESULT,),
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


def read_offsets(
    admin: AdminClient,
    topics: Iterable[str],
    groups: Mapping[str, Iterable[str]],
    timeout: float = 10.0,
) -> Offsets:
    """Watermarks of every partition of `topics` and each group's committed offsets on
    the partitions of the topics it reads. Topics that do not exist are left out."""
    metadata = admin.list_topics(timeout=timeout).topics
    partitions: dict[str, list[int]] = {
        t: sorted(metadata[t].partitions) for t in topics if t in metadata
    }
    tps = [(t, p) for t, ps in partitions.items() for p in ps]
    if not tps:
        return Offsets()
    low = _list_offsets(admin, tps, OffsetSpec.earliest(), timeout)  # type: ignore[no-untyped-call]
    high = _list_offsets(admin, tps, OffsetSpec.latest(), timeout)  # type: ignore[no-untyped-call]
    watermarks = {tp: Watermarks(low[tp], high[tp]) for tp in tps}
    committed: dict[str, dict[Partition, int | None]] = {}
    for group, group_topics in groups.items():
        wanted = [(t, p) for t in group_topics for p in partitions.get(t, [])]
        if wanted:
            committed[group] = _committed(admin, group, wanted, timeout)
    return Offsets(watermarks, committed)


def _list_offsets(
    admin: AdminClient, tps: list[Partition], spec: OffsetSpec, timeout: float
) -> dict[Partition, int]:
    request = {TopicPartition(t, p): spec for t, p in tps}
    futures: dict[TopicPartition, Future[object]] = admin.list_offsets(
        request, request_timeout=timeout
    )
    return {
        (tp.topic, tp.partition): int(f.result(timeout).offset)  # type: ignore[attr-defined]
        for tp, f in futures.items()
    }


def _committed(
    admin: AdminClient, group: str, tps: list[Partition], timeout: float
) -> dict[Partition, int | None]:
    request = [ConsumerGroupTopicPartitions(group, [TopicPartition(t, p) for t, p in tps])]
    futures: dict[str, Future[ConsumerGroupTopicPartitions]] = admin.list_consumer_group_offsets(
        request, request_timeout=timeout
    )
    result = futures[group].result(timeout)
    out: dict[Partition, int | None] = dict.fromkeys(tps)
    for tp in result.topic_partitions or []:
        if tp.error is None and tp.offset >= 0:
            out[(tp.topic, tp.partition)] = int(tp.offset)
    return out
