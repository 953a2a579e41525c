"""Connections fill the partitions of publish.request in turn (services/scheduler/placement)."""

from __future__ import annotations

from collections import Counter

from services.scheduler.placement import partition_for
from shared.kafka.client import UNASSIGNED


def test_consecutive_placements_fill_every_partition_in_turn() -> None:
    assert [partition_for(p, 12) for p in range(1, 14)] == [*range(1, 12), 0, 1]
    assert Counter(partition_for(p, 12) for p in range(1, 49)) == {k: 4 for k in range(12)}


def test_without_a_placement_or_a_count_the_key_hash_decides() -> None:
    assert partition_for(None, 12) == UNASSIGNED
    assert partition_for(5, 0) == UNASSIGNED
