"""The leases of the claims a publisher copy is working on.

While an attempt calls the platform and stores its result, its claim's lease is renewed
every third of a lease (one statement for all of them). A claim the renewal no longer
finds held — another worker took it over after the lease lapsed, or answered it — stops
its platform call at once: the call's task is cancelled and the attempt surfaces
`ClaimLost`, so it reports nothing (the claim's new holder answers). `Timing` holds the
attempt's budget the lease and the wait for another worker's claim are measured against.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from herald.services.publisher.claims import ClaimStore
from herald.shared.domain.outcomes import PublishOutcome
from herald.shared.errors import StoreUnavailable
from herald.shared.infra.retry import sleep_or_stop
from herald.shared.platforms.contract import ClaimLost

log = logging.getLogger(__name__)
Key = tuple[str, int]  # (job id, attempt)


@dataclass(frozen=True)
class Timing:
    poll_seconds: float
    call_timeout_seconds: float
    lease_seconds: float

    @property
    def attempt_seconds(self) -> float:
        """The whole platform call: the container polls plus a few call timeouts."""
        return self.poll_seconds + 4 * self.call_timeout_seconds

    @property
    def held_wait_seconds(self) -> float:
        """How long to wait for another worker's live claim before leaving it to the
        reconciler (its holder renews the lease only while it works on the attempt)."""
        return self.attempt_seconds + 2 * self.lease_seconds


class Leases:
    def __init__(self, claims: ClaimStore, lease_seconds: float) -> None:
        self.claims = claims
        self.lease_seconds = lease_seconds
        self._calls: dict[Key, asyncio.Task[PublishOutcome] | None] = {}
        self._lost: set[Key] = set()

    @contextmanager
    def kept(self, key: Key) -> Iterator[None]:
        """Keep this claim's lease alive while the block runs."""
        self._calls[key] = None
        try:
            yield
        finally:
            self._calls.pop(key, None)
            self._lost.discard(key)

    async def call(self, key: Key, call: Coroutine[Any, Any, PublishOutcome]) -> PublishOutcome:
        """Run a platform call (inside `kept(key)`) as a task the renewal cancels when the
        claim is gone; that cancellation raises `ClaimLost` (a cancellation of the caller
        stays a cancellation)."""
        if key in self._lost:
            call.close()
            raise ClaimLost(f"{key[0]} attempt {key[1]}")
        task = asyncio.create_task(call)
        self._calls[key] = task
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if key in self._lost and current is not None and not current.cancelling():
                raise ClaimLost(f"{key[0]} attempt {key[1]}") from None
            raise

    async def renew(self, stopping: asyncio.Event) -> None:
        """Renew until `stopping` is set; a failed renewal is tried again next time."""
        interval = max(self.lease_seconds / 3, 0.05)
        while not await sleep_or_stop(stopping, interval):
            keys = sorted(self._calls)
            try:
                held = await self.claims.renew(keys)
            except (StoreUnavailable, psycopg.Error) as exc:
                log.warning("lease renewal failed", extra={"error": repr(exc)})
                continue
            for key in keys:
                if key not in held and key in self._calls:
                    self._stop(key)

    def _stop(self, key: Key) -> None:
        self._lost.add(key)
        call = self._calls.get(key)
        if call is not None and not call.done():  # done: our own result is stored
            log.warning(
                "claim renewal found the claim gone; stopping the attempt",
                extra={"job_id": key[0], "attempt": key[1]},
            )
            call.cancel()
