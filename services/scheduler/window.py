"""The dispatch window: the dispatcher keeps the publishers' backlog on `publish.request`
short, so a burst waits in Redis, where the claim shares it fairly between tenants, rather
than in Kafka, where each partition is read in order (decision 0023).

Before a claim the dispatcher asks for room: `HERALD_DISPATCH_WINDOW` minus the publishers'
backlog (`PublishBacklog`: requests their group has not committed, read from the broker),
minus what this process has sent since that reading began and what it has claimed and not
sent yet. The answer comes from the last reading at once (no wait on the broker); a stale
reading is renewed in the background.

- Crashes and replicas: the reading is the broker's, so nothing drifts; a replica counts
  only its own requests since its last reading, so several may overshoot the window by at
  most a batch each until their next reading (every `refresh` seconds).
- Publishers that read nothing (stopped, or none yet) leave no room once the window is
  full: the dispatcher claims nothing and looks again as each reading lands (at most every
  `step` seconds), leaving the jobs in Redis (no lease taken); it resumes as the
  publishers commit.
- A broker that does not answer reads as no backlog: dispatching never stops on a guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from herald.shared.infra.kafka.lag import PublishBacklog


class DispatchWindow:
    def __init__(
        self, backlog: PublishBacklog, size: int, *, refresh: float = 0.1, step: float = 0.05
    ) -> None:
        self.backlog = backlog
        self.size = size
        self.refresh = refresh
        self.step = step
        self._behind = 0  # the last reading
        self._read_at = float("-inf")
        self._sent = 0  # sent by this process since the last reading began
        self._claimed = 0  # room handed out and not yet sent or given back
        self._reading: asyncio.Task[None] | None = None
        self._read_done = asyncio.Event()  # set as each reading lands, then replaced

    def room(self, want: int) -> int:
        """Up to `want` requests this process may claim now; holds them until `done`."""
        self._renew()
        free = self.size - self._behind - self._sent - self._claimed
        granted = max(0, min(want, free))
        self._claimed += granted
        return granted

    def done(self, granted: int, sent: int) -> None:
        """`granted` room from `room` is settled: `sent` requests of it went to Kafka."""
        self._claimed -= granted
        self._sent += sent

    async def wait(self) -> None:
        """No room: wait for the next reading, at most a step, before asking again."""
        landed = self._read_done
        self._renew()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(landed.wait(), self.step)

    def _renew(self) -> None:
        if self._reading is None and time.monotonic() - self._read_at >= self.refresh:
            self._reading = asyncio.create_task(self._read(), name="dispatch-window")

    async def _read(self) -> None:
        sent_before = self._sent
        try:
            self._behind = await self.backlog.read()
            self._sent -= sent_before  # those are in the reading now
        finally:
            self._read_at = time.monotonic()
            self._reading = None
            self._read_done.set()
            self._read_done = asyncio.Event()

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        await self.backlog.close()
