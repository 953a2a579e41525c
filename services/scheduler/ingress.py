"""The consumer of `publish.schedule`: commands from other services, applied through the
job service. A command that fails its schema or is refused goes to publish.dlq as
`invalid_message` (with its job id and the error the HTTP API would answer).

Nothing one command holds can stop the others: a store that is away raises (the consumer
retries the batch, and every command is idempotent), anything else a command raises sends
that command alone to publish.dlq with the error, and the batch goes on."""

from __future__ import annotations

import logging

from herald.shared.domain.tenancy import Principal
from herald.shared.errors import DomainError, InvalidMessage, StoreUnavailable
from herald.shared.infra.kafka.batch_consumer import BatchConsumer
from herald.shared.infra.kafka.client import KafkaError, Message
from herald.shared.infra.logging import JobLog
from herald.shared.infra.names import SCHEDULE, SCHEDULER_GROUP
from herald.shared.infra.runtime import Runtime
from herald.shared.jobs.batch import ScheduleItem, schedule_batch
from herald.shared.jobs.service import JobService
from herald.shared.messages import codec
from herald.shared.messages.schedule import Command, decode_command
from herald.shared.stores import dead_letters

log = logging.getLogger(__name__)
APPLIED = JobLog(log, "commands applied", "command applied", by="command")
OUTAGES = (StoreUnavailable, KafkaError)  # retried with the whole batch, never dead-lettered
# Commands are taken up to 1,000 at a time (what is there, never waiting for more; one
# offset commit for the take), and each run of `schedule` commands in a take is one
# transaction: about 40 % faster than transactions of 100 for a backlog, and no later for
# the dispatcher sharing the event loop, since at a steady rate takes are small
# (docs/performance.md, "One transaction per take").


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
            batch_size=1000,
        )

    async def handle_batch(self, messages: list[Message]) -> None:
        """Apply a take's commands in order; runs of `schedule` commands are written
        together."""
        pending: list[tuple[bytes | None, Command]] = []
        for msg in messages:
            raw = msg.value()
            try:
                command = decode_command(raw)
            except InvalidMessage as exc:
                await self._refused(raw, exc, codec.identity(raw)[0], None)
                continue
            if command.kind == "schedule":
                pending.append((raw, command))
                continue
            await self._schedule(pending)
            pending = []
            try:
                await self.apply(command)
            except OUTAGES:
                raise
            except Exception as exc:
                await self._refused(raw, _refusal(exc), command.job_id, command.tenant_id)
        await self._schedule(pending)

    async def _schedule(self, pending: list[tuple[bytes | None, Command]]) -> None:
        if not pending:
            return
        items = [
            ScheduleItem(
                principal=Principal(tenant_id=c.tenant_id, is_admin=False),
                body=c.body,
                job_id=c.job_id,
                post_id=c.post_id,
                trace_id=c.trace_id,
            )
            for _, c in pending
        ]
        outcomes: list[InvalidMessage | DomainError | None]
        try:
            outcomes = [o.error for o in await schedule_batch(self.jobs, items)]
        except OUTAGES:
            raise
        except Exception as exc:
            if len(pending) > 1:  # find the command that raised: halves (idempotent)
                log.warning(
                    "schedule run failed; applying it in halves", extra={"commands": len(pending)}
                )
                half = len(pending) // 2
                await self._schedule(pending[:half])
                await self._schedule(pending[half:])
                return
            (raw, command), outcomes = pending[0], [_refusal(exc)]
        for (raw, command), error in zip(pending, outcomes, strict=True):
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


def _refusal(exc: Exception) -> InvalidMessage | DomainError:
    """What a dead letter says of a command that raised."""
    if isinstance(exc, InvalidMessage | DomainError):
        return exc
    log.error("command failed", exc_info=exc)
    return InvalidMessage(f"the command could not be applied ({type(exc).__name__}: {exc})")
