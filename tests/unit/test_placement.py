"""Connections fill the partitions of publish.request in turn (services/scheduler/placement)."""

from __future__ import annotations

from collections import Counter
from typing import cast

from herald.services.scheduler.placement import PartitionCount, partition_for
from herald.shared.infra.kafka.client import UNASSIGNED, KafkaError, Producer


def test_consecutive_placements_fill_every_partition_in_turn() -> None:
    assert [partition_for(p, 12) for p in range(1, 14)] == [*range(1, 12), 0, 1]
    assert Counter(partition_for(p, 12) for p in range(1, 49)) == {k: 4 for k in range(12)}


def test_without_a_placement_or_a_count_the_key_hash_decides() -> None:
    assert partition_for(None, 12) == UNASSIGNED
    assert partition_for(5, 0) == UNASSIGNED


class _Metadata:
    """Answers partition_count as Kafka would: unavailable first, then the topic's count."""

    def __init__(self, answers: list[int | KafkaError]) -> None:
        self.answers = answers
        self.asked = 0

    def partition_count(self, topic: str) -> int:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, KafkaError):
            raise answer
        return answer


async def test_an_unknown_count_is_asked_again_soon_and_a_known_one_rarely() -> None:
    meta = _Metadata([KafkaError("metadata unavailable"), 12, 24])
    count = PartitionCount(cast(Producer, meta), "publish.request", refresh=3600.0, retry=0.0)
    assert await count.get() == 0  # unknown: records fall back to the key's hash
    assert await count.get() == 12  # asked again at once (retry 0 s), not an hour later
    assert await count.get() == 12  # known: kept until the refresh interval passes
    assert meta.asked == 2
