"""OffsetTracker: commit positions never pass a message that is not done."""

from __future__ import annotations

import random

from herald.shared.infra.kafka.offset_tracker import OffsetTracker

P0 = ("t", 0)
P1 = ("t", 1)


def test_position_waits_for_the_lowest_outstanding_offset() -> None:
    t = OffsetTracker()
    for offset in (10, 11, 12):
        t.add(P0, offset)
    assert t.position(P0) == 10 and t.to_commit() == {P0: 10}
    t.done(P0, 12)
    t.done(P0, 11)
    assert t.position(P0) == 10  # 10 is still running: nothing past it
    t.done(P0, 10)
    assert t.position(P0) == 13 and t.pending == 0


def test_gaps_in_offsets_are_fine() -> None:
    t = OffsetTracker()
    t.add(P0, 5)
    t.add(P0, 9)  # 6..8 are transaction markers or compacted away
    t.done(P0, 5)
    assert t.position(P0) == 9
    t.done(P0, 9)
    assert t.position(P0) == 10


def test_to_commit_reports_only_forward_moves() -> None:
    t = OffsetTracker()
    t.add(P0, 0)
    t.add(P1, 0)
    t.done(P0, 0)
    assert t.to_commit() == {P0: 1, P1: 0}
    t.committed({P0: 1, P1: 0})
    assert t.to_commit() == {}
    t.add(P0, 1)
    t.done(P0, 1)
    assert t.to_commit() == {P0: 2}
    assert t.to_commit([P1]) == {}
    t.committed({P0: 0})  # an older answer never moves the mark back
    assert t.to_commit() == {P0: 2}


def test_forget_drops_a_partition_and_ignores_late_completions() -> None:
    t = OffsetTracker()
    t.add(P0, 1)
    t.add(P0, 2)
    t.add(P1, 7)
    assert t.pending == 3
    assert t.forget([P0]) == 2
    assert t.pending == 1 and t.partitions() == [P1]
    assert t.done(P0, 1) is False  # finished after the revoke: the new owner redelivers it
    assert t.position(P0) is None and P0 not in t.to_commit()
    t.add(P0, 1)  # assigned again later: tracked afresh from the redelivered offset
    assert t.position(P0) == 1


def test_done_of_unknown_offsets_changes_nothing() -> None:
    t = OffsetTracker()
    t.add(P0, 3)
    assert t.done(P0, 4) is False
    assert t.done(P1, 3) is False
    assert t.done(P0, 3) is True
    assert t.done(P0, 3) is False
    assert t.pending == 0 and t.position(P0) == 4


def test_a_redelivered_offset_is_counted_twice() -> None:
    t = OffsetTracker()
    t.add(P0, 3)
    t.add(P0, 3)
    t.done(P0, 3)
    assert t.position(P0) == 3
    t.done(P0, 3)
    assert t.position(P0) == 4


def test_random_completion_order_matches_a_reference_model() -> None:
    rng = random.Random(7)
    t = OffsetTracker()
    offsets = sorted(rng.sample(range(10_000), 2_000))
    for offset in offsets:
        t.add(P0, offset)
    order = offsets[:]
    rng.shuffle(order)
    done: set[int] = set()
    for offset in order:
        assert t.done(P0, offset)
        done.add(offset)
        outstanding = [o for o in offsets if o not in done]
        expected = outstanding[0] if outstanding else offsets[-1] + 1
        position = t.position(P0)
        assert position == expected
        # the invariant: every offset below the position is done
        assert all(o in done for o in offsets if o < expected)
    assert t.pending == 0
