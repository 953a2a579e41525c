"""Which offsets may be committed when messages finish out of order (pure, no I/O).

Messages of one partition are handed out in offset order but finish in any order. The
commit position of a partition is the lowest offset still outstanding (nothing below it is
pending), or one past the highest offset seen when nothing is outstanding, so a commit
never skips a message that is not done. Positions only move forward.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

Partition = tuple[str, int]  # (topic, partition)


@dataclass
class _PartitionState:
    heap: list[int] = field(default_factory=list)  # outstanding offsets (lazy deletion)
    outstanding: dict[int, int] = field(default_factory=dict)  # offset → deliveries pending
    next_after_seen: int = -1  # highest offset added, plus one
    committed: int = -1  # the position last reported as committed

    def position(self) -> int:
        heap = self.heap
        while heap and heap[0] not in self.outstanding:
            heapq.heappop(heap)
        return heap[0] if heap else self.next_after_seen


class OffsetTracker:
    """Per-partition bookkeeping of outstanding offsets and commit positions."""

    def __init__(self) -> None:
        self._parts: dict[Partition, _PartitionState] = {}
        self._pending = 0

    @property
    def pending(self) -> int:
        """Messages added and not yet done (across all tracked partitions)."""
        return self._pending

    def partitions(self) -> list[Partition]:
        return list(self._parts)

    def add(self, part: Partition, offset: int) -> None:
        """A message was handed out; it must be `done` before the position passes it."""
        state = self._parts.get(part)
        if state is None:
            state = self._parts[part] = _PartitionState()
        count = state.outstanding.get(offset, 0)
        if count == 0:
            heapq.heappush(state.heap, offset)
        state.outstanding[offset] = count + 1
        state.next_after_seen = max(state.next_after_seen, offset + 1)
        self._pending += 1

    def done(self, part: Partition, offset: int) -> bool:
        """The message finished. False when it is no longer tracked (its partition was
        forgotten after a revoke, or it was never added): nothing changes then."""
        state = self._parts.get(part)
        if state is None:
            return False
        count = state.outstanding.get(offset, 0)
        if count == 0:
            return False
        if count == 1:
            del state.outstanding[offset]
        else:
            state.outstanding[offset] = count - 1
        self._pending -= 1
        return True

    def position(self, part: Partition) -> int | None:
        """The offset to commit for `part` now (None when the partition is not tracked)."""
        state = self._parts.get(part)
        return None if state is None else state.position()

    def to_commit(self, parts: Iterable[Partition] | None = None) -> dict[Partition, int]:
        """Positions that moved past the last committed one (all partitions by default)."""
        out: dict[Partition, int] = {}
        for part in self._parts if parts is None else parts:
            state = self._parts.get(part)
            if state is None:
                continue
            pos = state.position()
            if pos > state.committed and pos >= 0:
                out[part] = pos
        return out

    def committed(self, positions: dict[Partition, int]) -> None:
        """Record positions that Kafka accepted (only forward moves are kept)."""
        for part, pos in positions.items():
            state = self._parts.get(part)
            if state is not None and pos > state.committed:
                state.committed = pos

    def forget(self, parts: Iterable[Partition]) -> int:
        """Stop tracking revoked partitions; their in-flight messages may still finish (their
        `done` is ignored: the new owner redelivers them). Returns how many were pending."""
        dropped = 0
        for part in parts:
            state = self._parts.pop(part, None)
            if state is not None:
                dropped += sum(state.outstanding.values())
        self._pending -= dropped
        return dropped
