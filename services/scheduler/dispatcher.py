"""The dispatcher: claims due jobs from Redis and hands them to `publish.request`.

Per batch: room in the dispatch window (`window.py`: the publishers' backlog stays short) →
claim (Lua, with lease; the jobs due within `DISPATCH_LEAD_SECONDS`, once the first is half
that away; shared fairly between tenants) → mark IN_PROGRESS in
Postgres (attempt + 1, status events in the outbox) and encode each job's request, the
tenants' jobs in turn → produce, batches in the order they were claimed, and wait for
Kafka's acknowledgement → ack the claim. A crash at any point leaves the claim in flight;
when its lease expires the job returns to the queue and is dispatched again with the same
attempt number (the publisher de-duplicates).

A job whose request cannot be encoded (a row an older version stored, say) is dead-lettered
on its own, in the transaction of the mark, as `permanent_error`; the rest of its batch goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time

import psycopg

from herald.services.scheduler.placement import PartitionCount, partition_for
from herald.services.scheduler.window import DispatchWindow
from herald.shared.domain.jobs import DISPATCH_LEAD_SECONDS, JobStatus
from herald.shared.domain.outcomes import DeadLetterReason
from herald.shared.errors import InvalidMessage
from herald.shared.infra import metrics
from herald.shared.infra.db.pool import Row
from herald.shared.infra.delayed_queue import Claimed
from herald.shared.infra.kafka.lag import PublishBacklog
from herald.shared.infra.logging import JobLog
from herald.shared.infra.names import REQUEST, Names
from herald.shared.infra.retry import Backoff, Retry, Stopped
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.request import encode_request
from herald.shared.messages.status import status_event
from herald.shared.stores import dead_letters, jobs, outbox

log = logging.getLogger(__name__)
DISPATCHED = JobLog(log, "jobs dispatched", "job dispatched")


class Dispatcher:
    def __init__(
        self, rt: Runtime, *, batch_size: int = 1000, max_sleep: float = 1.0, concurrency: int = 3
    ) -> None:
        self.rt = rt
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.max_sleep = max_sleep
        self.topic = rt.names.topic(REQUEST)
        self.partitions = PartitionCount(rt.producer, self.topic)
        self.window = DispatchWindow(
            PublishBacklog(rt.settings.kafka_bootstrap, rt.names), rt.settings.dispatch_window
        )
        self._last_requeue = 0.0  # the requeuing loop's last sweep of expired leases
        self._sends = ClaimOrder()
        self._claiming = asyncio.Lock()
        self._woken = asyncio.Event()  # set (and replaced) when a writer signals a wake

    async def run(self, stopping: asyncio.Event) -> None:
        """Several claim-dispatch loops, so one batch's Postgres update overlaps another's
        wait for Kafka's acknowledgement (claims are atomic, so they never overlap), and the
        listener that wakes them when a writer adds a job due sooner."""
        try:
            await asyncio.gather(
                self._listen(stopping),
                *(self._loop(stopping, i == 0) for i in range(self.concurrency)),
            )
        finally:
            await self.window.close()

    async def _listen(self, stopping: asyncio.Event) -> None:
        """Turn the writers' wake signals (a Redis list) into a local event. The claim loops
        sleep on a local timer until the next due instant, which fires within a millisecond;
        a Redis blocking timeout is only as precise as the server's clock tick (100 ms)."""
        retry = Retry(
            Backoff(first=0.1, cap=1.0),
            on=(Exception,),
            stopping=stopping,
            what="dispatcher wake listener error; retrying",
            logger=log,
        )
        while not stopping.is_set():
            try:
                woken = await retry.call(lambda: self.rt.queue.wait_for_wake(1.0))
            except Stopped:
                return
            if woken:
                self._wake()

    def _wake(self) -> None:
        self._woken.set()
        self._woken = asyncio.Event()  # sleepers took the old one before reading next_due

    async def _loop(self, stopping: asyncio.Event, requeues: bool) -> None:
        retry = Retry(
            Backoff(first=0.1, cap=1.0),
            on=(Exception,),
            stopping=stopping,
            what="dispatch loop error; retrying",
            logger=log,
        )
        while not stopping.is_set():
            try:
                await retry.call(lambda: self._once(requeues))
            except Stopped:
                return

    async def _once(self, requeues: bool) -> None:
        """Dispatch one claimed batch, or wait (up to `max_sleep`) for the next due job."""
        queue = self.rt.queue
        now = time.time()
        if requeues and now - self._last_requeue >= 1.0:
            back = await queue.requeue_expired()
            if back:
                log.warning("expired leases returned to the queue", extra={"count": back})
            self._last_requeue = now
        if await self.dispatch_due():
            return
        woken = self._woken  # taken first: a wake from here on ends the sleep below
        next_due = await queue.next_due()
        # A claim takes the jobs due within the lead once the first is half a lead away.
        wake = None if next_due is None else next_due - DISPATCH_LEAD_SECONDS / 2
        wait = self.max_sleep if wake is None else wake - time.time()
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait, self.max_sleep)):
                    await woken.wait()

    async def dispatch_due(self) -> bool:
        """Claim as many due jobs as the window has room for and dispatch them; answers
        False when there were none (with no room it waits a step and answers True)."""
        room = self.window.room(self.batch_size)
        if not room:
            await self.window.wait()  # the publishers' backlog is full: the jobs wait here
            return True
        sent = 0
        ticket = self._sends.ticket()
        try:
            # One claim at a time, in ticket order (the lock queues its waiters in order):
            # sent at once, a claim on a new connection could overtake one still connecting.
            async with self._claiming:
                claimed = await self.rt.queue.claim(
                    room, self.rt.settings.lease_seconds, ahead=DISPATCH_LEAD_SECONDS
                )
            if claimed:
                sent = await self.dispatch(claimed, ticket)
            return bool(claimed)
        finally:
            self._sends.finish(ticket)
            self.window.done(room, sent)

    async def dispatch(self, claimed: list[Claimed], ticket: int | None = None) -> int:
        """Mark and send a claimed batch, in the turn of its claim's `ticket` (`ClaimOrder`;
        by default a new one: after every batch claimed before it)."""
        if ticket is None:
            ticket = self._sends.ticket()
        try:
            return await self._dispatch(claimed, ticket)
        finally:
            self._sends.finish(ticket)

    async def _dispatch(self, claimed: list[Claimed], ticket: int) -> int:
        due = {c.job_id: c.due for c in claimed}
        settings = self.rt.settings
        partitions = await self.partitions.get()
        # Pipelined: BEGIN goes out with the update, the outbox rows with the commit.
        async with self.rt.db.connection() as conn, conn.pipeline(), conn.transaction():
            marked = await jobs.mark_dispatched(
                conn,
                list(due),
                due_by=max(due.values()),
                lease=settings.lease_seconds,
                stuck=settings.stuck_after_seconds,
            )
            rows, records, unsendable = [], [], []
            for r in in_turn(marked, list(due)):
                try:
                    value = encode_request(r, due[str(r["id"])])
                except Exception as exc:  # never let one job hold back its batch
                    unsendable.append((r, exc))
                    continue
                rows.append(r)
                partition = partition_for(r["placement"], partitions)
                records.append((self.topic, str(r["connection_id"]), value, partition))
            await outbox.add(
                conn,
                self.rt.names,
                [
                    status_event(r, JobStatus.IN_PROGRESS)
                    for r in rows
                    if r["old_status"] != JobStatus.IN_PROGRESS
                ],
            )
            if unsendable:
                await _dead_letter(conn, self.rt.names, unsendable)
        if unsendable:
            metrics.DEAD_LETTERED.labels(DeadLetterReason.PERMANENT_ERROR.value).inc(
                len(unsendable)
            )
        await self._sends.turn(ticket)
        # The next batch's turn comes once these records are queued in the client, which
        # sends each partition's records in that order; the acknowledgements overlap.
        await self.rt.producer.send_batch_async(records, queued=lambda: self._sends.finish(ticket))
        await self.rt.queue.ack(list(due))
        sent = time.time()
        for r in rows:
            metrics.DISPATCH_LAG.observe(max(0.0, sent - due[str(r["id"])]))
        DISPATCHED.add(
            rows,
            lambda r: {
                "job_id": str(r["id"]),
                "attempt": r["attempt_count"],
                "trace_id": r["trace_id"],
            },
        )
        metrics.JOBS_DISPATCHED.inc(len(rows))
        return len(rows)


def in_turn(rows: list[Row], claimed: list[str]) -> list[Row]:
    """The rows in the order they are sent: one job of each tenant in turn, each tenant's in
    claim (due) order. A partition is read in order, so a tenant with two jobs in a batch
    of 1,000 gets them at the front of their partitions, not behind the other tenants'
    hundreds."""
    position = {job_id: i for i, job_id in enumerate(claimed)}
    by_tenant: dict[str, list[Row]] = {}
    for r in sorted(rows, key=lambda r: position[str(r["id"])]):
        by_tenant.setdefault(r["tenant_id"], []).append(r)
    turns = itertools.zip_longest(*by_tenant.values())
    return [r for turn in turns for r in turn if r is not None]


async def _dead_letter(
    conn: psycopg.AsyncConnection[Row], names: Names, unsendable: list[tuple[Row, Exception]]
) -> None:
    """Jobs whose request cannot be encoded: DEAD_LETTERED as `permanent_error`, each with a
    dead letter naming the error (retrying cannot help; an operator looks)."""
    closed = []
    for row, exc in unsendable:
        fields = exc.fields if isinstance(exc, InvalidMessage) else {}
        last_error = {
            "outcome": DeadLetterReason.PERMANENT_ERROR.value,
            "attempt": row["attempt_count"],
            "code": None,
            "subcode": None,
            "message": f"the job cannot be sent to the publisher: {exc}",
            "fields": fields,
            "may_be_live": False,
        }
        job = await jobs.dead_letter(conn, row["id"], last_error)
        closed.append(status_event(job, JobStatus.DEAD_LETTERED, reason="unsendable"))
        await dead_letters.insert(
            conn,
            names,
            reason=DeadLetterReason.PERMANENT_ERROR.value,
            job_id=str(row["id"]),
            tenant_id=row["tenant_id"],
            platform=row["platform"],
            connection_id=str(row["connection_id"]),
            attempt=row["attempt_count"],
            last_error=last_error,
            trace_id=row["trace_id"],
        )
        log.error(
            "job cannot be sent; dead-lettered",
            extra={"job_id": str(row["id"]), "error": str(exc)[:300]},
        )
    await outbox.add(conn, names, closed)


class ClaimOrder:
    """The dispatch loops' batches reach Kafka in the order they were claimed. The loops mark
    their batches in concurrent transactions, and the one that commits first would otherwise
    send first: the batch claimed first, holding each tenant's first due job at the front of
    its partitions, could land behind other batches' hundreds of jobs a partition.

    Each claim takes a ticket and is sent to Redis in ticket order, one at a time (Redis runs
    the scripts one at a time anyway), and its batch is queued in the Kafka client in its
    turn; `finish` hands the turn on, also for a claim that found nothing and a batch that
    fails or is cancelled before it is queued."""

    def __init__(self) -> None:
        self._issued = 0
        self._next = 0  # the ticket whose turn it is
        self._finished: set[int] = set()
        self._waiting: dict[int, asyncio.Future[None]] = {}

    def ticket(self) -> int:
        self._issued += 1
        return self._issued - 1

    async def turn(self, ticket: int) -> None:
        if ticket == self._next:
            return
        waiting = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = waiting
        try:
            await waiting
        finally:
            del self._waiting[ticket]

    def finish(self, ticket: int) -> None:
        """Idempotent; tickets may finish in any order."""
        if ticket < self._next:
            return
        self._finished.add(ticket)
        while self._next in self._finished:
            self._finished.remove(self._next)
            self._next += 1
        waiting = self._waiting.get(self._next)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)
