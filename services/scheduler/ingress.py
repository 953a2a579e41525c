"""The consumer of `publish.schedule`: commands from other services, applied through the
job service. A command that fails its schema or is refused goes to publish.dlq as
`invalid_message` (with its job id and the error the HTTP API would answer).

Nothing one command holds can stop the others: a store that is away raises (the consumer
retries the batch, and every command is idempotent), anything else a command raises sends
that command alone to publish.dlq with the error, and the batch goes on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from herald.shared.domain.tenancy import Principal
from herald.shared.errors import DomainError, InvalidMessage, StoreUnavailable
from herald.shared.infra.kafka.batch_consumer import BatchConsumer
from herald.shared.infra.kafka.client import KafkaError, Message
from herald.shared.infra.logging import JobLog
from herald.shared.infra.names import SCHEDULE, SCHEDULER_GROUP
from herald.shared.infra.runtime import Runtime
from herald.shared.jobs import batch
from herald.shared.jobs.batch import MAX_BATCH, ScheduleItem
from herald.shared.jobs.service import JobService
from herald.shared.messages import codec
from herald.shared.messages.schedule import Command, decode_command
from herald.shared.stores import dead_letters

log = logging.getLogger(__name__)
APPLIED = JobLog(log, "commands applied", "command applied", by="command")
OUTAGES = (StoreUnavailable, KafkaError)  # retried with the whole batch, never dead-lettered
# Commands are taken up to TAKE at a time (what is there, never waiting for more; one offset
# commit for the take). Each run of `schedule` commands is written in transactions of up to
# MAX_BATCH, two at a time: while one commits, the next is sent and the one after is read
# and checked, filling the waits for Postgres and Redis (docs/performance.md, "Reading
# while writing"). Runs hold distinct jobs but for a repeated command, which the later
# run's transaction meets as a duplicate key once the earlier commits: `batch.write` then
# writes that run again, and finds it written, a no-op. Any other command waits for every
# write before it. At a steady rate takes are small, and so is every transaction.
TAKE = 4 * MAX_BATCH
SLICE = 100  # commands read between turns given to the writes in flight
IN_FLIGHT = 2
SETTLE_SECONDS = 10.0  # a failed take waits this long for its writes in flight


class CommandIngress:
    def __init__(self, rt: Runtime, jobs: JobService) -> None:
        self.rt = rt
        self.jobs = jobs
        self.topic = rt.names.topic(SCHEDULE)

    def consumer(self) -> BatchConsumer:
        return BatchConsumer(
            self.rt.settings.kafka_bootstrap,
            self.rt.names.group(SCHEDULER_GROUP),
            [self.topic],
            self.handle_batch,
            batch_size=TAKE,
        )

    async def handle_batch(self, messages: list[Message]) -> None:
        """Apply a take's commands: schedule commands in runs (`_schedule`), each other
        command once the writes before it are done."""
        writes = _Writes()
        run: list[tuple[bytes | None, Command]] = []

        async def write_run() -> None:
            nonlocal run
            if run:
                await writes.start(self._schedule, run, self._check(run))
                run = []

        try:
            for n, msg in enumerate(messages, 1):
                if n % SLICE == 0:
                    await asyncio.sleep(0)
                raw = msg.value()
                try:
                    command = decode_command(raw)
                except InvalidMessage as exc:
                    await self._refused(raw, exc, codec.identity(raw)[0], None)
                    continue
                if command.kind == "schedule":
                    run.append((raw, command))
                    if len(run) == MAX_BATCH:
                        await write_run()
                    continue
                await write_run()
                await writes.wait()
                try:
                    await self.apply(command)
                except OUTAGES:
                    raise
                except Exception as exc:
                    await self._refused(raw, _refusal(exc), command.job_id, command.tenant_id)
            await write_run()
            await writes.wait()
        finally:
            await writes.settle()

    def _check(self, run: list[tuple[bytes | None, Command]]) -> batch.Checked | None:
        """The run validated now, while the write before it waits; None when that raised
        (a bug), which `_schedule` then meets again and searches by halves."""
        try:
            return batch.check(self.jobs, _items(run))
        except Exception:
            return None

    async def _schedule(
        self, run: list[tuple[bytes | None, Command]], checked: batch.Checked | None = None
    ) -> None:
        """Write a run of schedule commands in one transaction; dead-letter those refused."""
        outcomes: list[InvalidMessage | DomainError | None]
        try:
            checked = checked or batch.check(self.jobs, _items(run))
            outcomes = [o.error for o in await batch.write(self.jobs, checked)]
        except OUTAGES:
            raise
        except Exception as exc:
            if len(run) > 1:  # find the command that raised: halves (idempotent)
                log.warning(
                    "schedule run failed; applying it in halves", extra={"commands": len(run)}
                )
                half = len(run) // 2
                await self._schedule(run[:half])
                await self._schedule(run[half:])
                return
            outcomes = [_refusal(exc)]
        for (raw, command), error in zip(run, outcomes, strict=True):
            if error is not None:
                await self._refused(raw, error, command.job_id, command.tenant_id)

    async def _refused(
        self,
        raw: bytes | None,
        error: InvalidMessage | DomainError,
        job_id: str | None,
        tenant_id: str | None,
    ) -> None:
        await dead_letters.record_invalid(
            self.rt.db,
            self.rt.names,
            source_topic=self.topic,
            raw=raw,
            error=error,
            job_id=job_id,
            tenant_id=tenant_id,
        )

    async def apply(self, command: Command) -> None:
        principal = Principal(tenant_id=command.tenant_id, is_admin=False)
        ids = {"job_id": command.job_id, "command": command.kind, "trace_id": command.trace_id}
        if command.kind == "cancel":
            await self.jobs.cancel(principal, command.job_id)
        elif command.kind == "reschedule":
            await self.jobs.reschedule(principal, command.job_id, command.body)
        elif command.kind == "retry":
            await self.apply_retry(principal, command.job_id, command.force)
        APPLIED.add([ids])

    async def apply_retry(self, principal: Principal, job_id: str, force: bool) -> None:
        # A redelivered retry command finds the job already requeued or beyond: no-op.
        job = await self.jobs.get_row(principal, job_id)
        if (
            job["status"] in ("RETRY_SCHEDULED", "IN_PROGRESS", "PUBLISHED")
            and job["failed_attempts"] == 0
        ):
            return
        await self.jobs.retry(principal, job_id, force=force)


def _items(run: list[tuple[bytes | None, Command]]) -> list[ScheduleItem]:
    return [
        ScheduleItem(
            principal=Principal(tenant_id=c.tenant_id, is_admin=False),
            body=c.body,
            job_id=c.job_id,
            post_id=c.post_id,
            trace_id=c.trace_id,
        )
        for _, c in run
    ]


class _Writes:
    """Writes as tasks, at most IN_FLIGHT at a time: the caller reads on while they run.
    `start` and `wait` raise what a write raised."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, write: Callable[..., Coroutine[Any, Any, None]], *args: Any) -> None:
        for task in [t for t in self._tasks if t.done()]:
            self._tasks.remove(task)
            task.result()  # a write that failed fails the take before another starts
        if len(self._tasks) >= IN_FLIGHT:
            await self._tasks.pop(0)
        self._tasks.append(asyncio.create_task(write(*args)))
        await asyncio.sleep(0)  # under way

    async def wait(self) -> None:
        while self._tasks:
            await self._tasks.pop(0)

    async def settle(self) -> None:
        """Let the writes in flight finish (a failed take is retried whole: writes are
        idempotent). Not cancelled at once: one cancelled after its COMMIT went out left its
        jobs out of Redis, and the retry, finding them written, added nothing (they waited
        for the reconciler). One still running after `SETTLE_SECONDS` (a connection that
        hangs) is cancelled, and the reconciler restores what it wrote."""
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, hung = await asyncio.wait(tasks, timeout=SETTLE_SECONDS)
            for task in hung:
                task.cancel()
            if hung:
                await asyncio.wait(hung)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: the take's own error is the one raised


def _refusal(exc: Exception) -> InvalidMessage | DomainError:
    """What a dead letter says of a command that raised."""
    if isinstance(exc, InvalidMessage | DomainError):
        return exc
    log.error("command failed", exc_info=exc)
    return InvalidMessage(f"the command could not be applied ({type(exc).__name__}: {exc})")
