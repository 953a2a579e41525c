"""The publisher's flow: one publish.request, start to finish, top to bottom (the consumer
runs many at once).

1. take: decode the request (invalid: a dead letter);
2. claim (job, attempt): decide against what Postgres knows (`decision.decide`), in one
   transaction per batch of requests (`claims.ClaimStore`): re-emit a stored result, answer
   without a call (published already, missed, refused), wait for another live worker, or
3. call the platform: take the account's rate-limit token, wait for the job's due instant
   (a request comes up to `DISPATCH_LEAD_SECONDS` early), then the platform's `publish`
   (or `confirm`, a read only), bounded by the attempt timeout, while the lease is renewed
   (`leases`); the platform classifies what it met into one outcome;
4. emit: scrub the token from the outcome's free text, store the result with the claim
   (only while this worker holds it), produce it to publish.result, and only once Kafka
   acknowledged it is the offset free to commit.
The token lives in the `Connection` in memory only; log lines never carry it.

Store outages (Postgres, Redis, Kafka) are retried with backoff, step by step; when the
service stops meanwhile the message is given up uncommitted and Kafka redelivers it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TypeVar

import psycopg

from herald.services.publisher.claims import Claimed, ClaimStore, Emit
from herald.services.publisher.decision import (
    Kind,
    deadline_outcome,
    failed_call_outcome,
)
from herald.services.publisher.leases import Leases, Timing
from herald.services.publisher.rate_limiter import RateLimiter
from herald.shared.domain.jobs import DISPATCH_LEAD_SECONDS
from herald.shared.domain.outcomes import Outcome, PublishOutcome
from herald.shared.domain.requests import Connection, PublishRequest
from herald.shared.errors import InvalidMessage, StoreUnavailable
from herald.shared.infra import metrics
from herald.shared.infra.db.pool import Database
from herald.shared.infra.kafka.client import KafkaError, Message
from herald.shared.infra.names import Names
from herald.shared.infra.retry import Backoff, Retry, sleep_or_stop
from herald.shared.messages import codec
from herald.shared.messages.request import decode_request
from herald.shared.messages.result import result_value
from herald.shared.platforms.contract import AttemptContext, ClaimLost, PlatformPublisher
from herald.shared.platforms.scrub import Scrubber
from herald.shared.stores import connections, dead_letters

log = logging.getLogger(__name__)
T = TypeVar("T")
RETRYABLE = (StoreUnavailable, KafkaError, psycopg.errors.TransactionRollback)


async def until_due(req: PublishRequest) -> None:
    """Wait for the request's due instant: the dispatcher sends a job up to
    `DISPATCH_LEAD_SECONDS` early so that its claim is taken before it is due; the call never
    is. A `due_at` further ahead (another clock, a forged request) waits no longer than that."""
    until = time.time() + DISPATCH_LEAD_SECONDS
    due = min(req.due_at.timestamp(), until)
    # The loop's timers round to the millisecond and may fire that much early: look again.
    while (ahead := due - time.time()) > 0:
        await asyncio.sleep(max(ahead, 0.001))


class Abandoned(Exception):
    """The service is stopping while a store is away: leave the message uncommitted."""


class PublishWorker:
    def __init__(
        self,
        *,
        db: Database,
        names: Names,
        claims: ClaimStore,
        registry: Mapping[str, PlatformPublisher],
        limiter: RateLimiter,
        timing: Timing,
        worker: str,
        stopping: asyncio.Event,
    ) -> None:
        self.db = db
        self.names = names
        self.claims = claims
        self.registry = registry
        self.limiter = limiter
        self.timing = timing
        self.worker = worker
        self.stopping = stopping
        self._jobs: dict[str, tuple[asyncio.Lock, int]] = {}
        self.leases = Leases(claims, timing.lease_seconds)  # `leases.renew` runs beside
        self._retry = Retry(
            Backoff(first=0.2, cap=5.0),
            on=RETRYABLE,
            stopping=stopping,
            what="store step failed; retrying",
            logger=log,
            stopped=Abandoned,
        )

    # ---- the consumer's handler -----------------------------------------------------------

    async def handle(self, msg: Message) -> bool:
        """True once the message's outcome is durable and acknowledged; False when given up."""
        raw = msg.value()
        topic = str(msg.topic())
        try:
            try:
                request = decode_request(raw)
            except InvalidMessage as exc:
                log.warning("invalid request", extra={"source_topic": topic, "error": str(exc)})
                await self._invalid(raw, topic, exc)
                return True
            async with self._job(request.job_id):
                try:
                    await self._process(request, raw, topic)
                except Abandoned:
                    raise
                except Exception as exc:  # one request must never stop the consumer
                    await self._failed(request, raw, topic, exc)
            return True
        except Abandoned:
            return False

    async def _failed(
        self, req: PublishRequest, raw: bytes | None, topic: str, exc: Exception
    ) -> None:
        """A request the flow failed on (a bug, a value nothing expected): answered
        `ambiguous` (the platform may have been called), so the results service retries it
        within the budget and settles it with a status read; when even that answer cannot be
        stored, the request is dead-lettered as it came."""
        ids = {"job_id": req.job_id, "attempt": req.attempt, "trace_id": req.trace_id}
        log.error("request failed", extra=ids, exc_info=exc)
        now = codec.now_utc()
        message = (
            f"the publisher failed on this request ({type(exc).__name__}); the post may be live"
        )
        outcome = PublishOutcome(Outcome.AMBIGUOUS, error_message=message)
        value = result_value(req, outcome, worker=self.worker, started_at=now, finished_at=now)
        try:
            emitted = await self._store(lambda: self.claims.emit(Emit(req, value, store=True)))
        except Abandoned:
            raise
        except Exception:
            log.exception(
                "the failure could not be answered; dead-lettering the request", extra=ids
            )
            error = InvalidMessage(f"the publisher failed on this request: {exc!r}"[:500])
            await self._invalid(raw, topic, error, req)
            return
        if emitted is not None:  # None: another worker holds the claim and answers
            self._done(req, emitted, reemitted=emitted is not value, called=False)

    # ---- the flow ---------------------------------------------------------------------------

    async def _process(self, req: PublishRequest, raw: bytes | None, topic: str) -> None:
        ids = {"job_id": req.job_id, "attempt": req.attempt, "trace_id": req.trace_id}
        started = codec.now_utc()
        claimed = await self._claim(req)
        if claimed is None:
            return
        decision, connection, blob = claimed.decision, claimed.connection, claimed.token_blob
        if decision.kind is Kind.UNKNOWN_JOB:
            log.warning("request for an unknown job", extra=ids)
            await self._invalid(raw, topic, InvalidMessage(f"unknown job {req.job_id}"), req)
            return
        if decision.kind is Kind.CANCELLED:
            log.debug("cancelled job skipped", extra=ids)
            return
        if decision.kind in (Kind.REEMIT, Kind.ANSWER):
            assert decision.result is not None
            value = await self._store(
                lambda: self.claims.emit(Emit(req, decision.result or {}, store=False))
            )
            assert value is not None  # nothing to store: always emitted
            fresh = decision.kind is Kind.ANSWER
            self._done(req, value, reemitted=not fresh, called=False)
            return
        assert connection is not None
        with self.leases.kept((req.job_id, req.attempt)):
            outcome = await self._call(req, connection, claimed)
            if outcome is None:
                return  # the claim was taken over: its new holder answers
            if decision.deadline_read:
                # A claim taken over may hide a post its worker sent before it died, on a
                # platform that posts in one call; a container's post has its "sent" stamp.
                one_call = self.registry[req.platform].posts_without_container
                sent = decision.publish_sent or (decision.claimed_before and one_call)
                outcome = deadline_outcome(outcome, sent)
            if outcome.outcome is Outcome.AUTH_ERROR:
                await self._store(
                    lambda: connections.mark_needs_reauth(self.db, connection.id, blob)
                )
            value = result_value(
                req,
                Scrubber(connection.access_token).outcome(outcome),
                worker=self.worker,
                started_at=started,
                finished_at=codec.now_utc(),
            )
            emitted = await self._store(lambda: self.claims.emit(Emit(req, value, store=True)))
        if emitted is None:
            log.warning(
                "claim lost before the result was stored; its new holder answers", extra=ids
            )
            return
        self._done(req, emitted, reemitted=emitted is not value, called=True)

    async def _claim(self, req: PublishRequest) -> Claimed | None:
        """Claim (job, attempt); waits while another live worker holds it. None: leave it."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.timing.held_wait_seconds
        while True:
            claimed = await self._store(lambda: self.claims.claim(req))
            decision = claimed.decision
            if decision.kind is not Kind.HELD:
                return claimed
            if loop.time() >= give_up:
                log.warning(
                    "another worker still holds the claim; leaving it to that worker and the"
                    " reconciler",
                    extra={"job_id": req.job_id, "attempt": req.attempt, "trace_id": req.trace_id},
                )
                return None
            lease_left = 1.0
            if decision.lease_until is not None:
                lease_left = (decision.lease_until - codec.now_utc()).total_seconds()
            pause = min(max(lease_left, 0.05), 1.0) + random.uniform(0, 0.1)
            if await sleep_or_stop(self.stopping, pause):
                raise Abandoned

    async def _call(
        self, req: PublishRequest, connection: Connection, claimed: Claimed
    ) -> PublishOutcome | None:
        """The platform's outcome; None when this worker lost its claim on the way (it did
        nothing irreversible since, and reports nothing)."""
        decision = claimed.decision
        platform = self.registry[req.platform]
        remembered: list[str] = []
        sent: list[bool] = []  # the irreversible call was (about to be) sent in this attempt

        async def hold(
            container_id: str | None = None,
            *,
            children: str | None = None,
            publishing: bool = False,
        ) -> None:
            """Check (and extend) the claim, storing a container, a carousel's items or the
            "sent" stamp with it; through a store outage this waits for Postgres: only a
            definite answer lets the attempt go on."""
            held = await self._store(
                lambda: self.claims.hold(
                    req.job_id, req.attempt, container_id, children=children, publishing=publishing
                )
            )
            if not held:
                raise ClaimLost(f"{req.job_id} attempt {req.attempt}")

        async def remember(container_id: str) -> None:
            await hold(container_id)
            remembered.append(container_id)

        async def remember_children(ids: Sequence[str]) -> None:
            await hold(children=",".join(ids))

        async def confirm() -> None:
            # A claim taken moments ago is still ours, and a job without a container has no
            # "sent" stamp to record (a platform that posts in one call): then no statement
            # is needed, a round trip less before most posts (docs/lifecycle.md).
            stamp = bool(remembered or decision.stored_container_id)
            if stamp or not claimed.fresh(self.timing.lease_seconds):
                await hold(publishing=True)
            sent.append(True)  # the post may be live from here on

        ctx = AttemptContext(
            worker=self.worker,
            stored_container_id=decision.stored_container_id,
            previous_outcome_ambiguous=decision.previous_ambiguous,
            remember_container=remember,
            confirm_claim=confirm,
            poll_seconds=self.timing.poll_seconds,
            call_timeout_seconds=self.timing.call_timeout_seconds,
            publish_sent=decision.publish_sent,
            stored_children=decision.stored_children,
            remember_children=remember_children,
            claimed_before=decision.claimed_before,
        )
        admission = await self._store(lambda: self.limiter.acquire(connection))
        if admission.retry_after is not None:
            message = f"per-account rate limit: next slot in {admission.retry_after:g}s"
            return PublishOutcome(
                Outcome.RATE_LIMITED,
                retry_after_seconds=admission.retry_after,
                error_message=message,
                may_be_live=ctx.may_be_live,
            )
        await until_due(req)
        read_only = req.check_only or decision.deadline_read
        call = platform.confirm if read_only else platform.publish

        async def attempt() -> PublishOutcome:
            async with asyncio.timeout(self.timing.attempt_seconds):
                return await call(req, connection, ctx)

        def held_attempt() -> Awaitable[PublishOutcome]:
            return self.leases.call((req.job_id, req.attempt), attempt())

        began = time.perf_counter()
        try:
            # A status read is safe to repeat: a store outage retries it instead of answering.
            outcome = await (self._store(held_attempt) if read_only else held_attempt())
        except Abandoned:
            raise
        except ClaimLost:
            log.warning(
                "claim lost to another worker; leaving the attempt to it",
                extra={"job_id": req.job_id, "attempt": req.attempt, "trace_id": req.trace_id},
            )
            return None
        except Exception as exc:
            outcome = ctx.settled or failed_call_outcome(
                req,
                decision,
                exc,
                may_be_live=bool(sent or decision.publish_sent or platform.posts_without_container),
                container_id=remembered[-1] if remembered else decision.stored_container_id,
            )
            log.warning(
                "platform call failed",
                extra={
                    "job_id": req.job_id,
                    "attempt": req.attempt,
                    "trace_id": req.trace_id,
                    "platform": req.platform,
                    "error_type": type(exc).__name__,
                    "outcome": outcome.outcome.value,
                },
            )
        finally:
            metrics.PUBLISH_DURATION.labels(req.platform).observe(time.perf_counter() - began)
        if outcome.outcome is Outcome.RATE_LIMITED:
            metrics.RATE_LIMITED.labels(req.platform).inc()
        return outcome

    def _done(
        self, req: PublishRequest, value: Mapping[str, object], *, reemitted: bool, called: bool
    ) -> None:
        """Count a fresh result; every result is logged in its batch's "results emitted" line
        (claims.py), a re-emitted one here too, with why."""
        outcome = str(value.get("outcome"))
        if not reemitted:
            metrics.PUBLISH_ATTEMPTS.labels(req.platform, outcome).inc()
            return
        log.info(
            "result re-emitted",
            extra={
                "job_id": req.job_id,
                "attempt": req.attempt,
                "trace_id": req.trace_id,
                "platform": req.platform,
                "outcome": outcome,
                "called": called,
                "check_only": req.check_only,
            },
        )

    # ---- helpers ------------------------------------------------------------------------------

    async def _invalid(
        self,
        raw: bytes | None,
        topic: str,
        error: InvalidMessage,
        req: PublishRequest | None = None,
    ) -> None:
        """Keep a request that cannot be worked on as a dead letter (`invalid_message`)."""
        await self._store(
            lambda: dead_letters.record_invalid(
                self.db,
                self.names,
                source_topic=topic,
                raw=raw,
                error=error,
                job_id=req.job_id if req else None,
                tenant_id=req.tenant_id if req else None,
            )
        )

    async def _store(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a store step, retrying outages with backoff until it works or we stop."""
        return await self._retry.call(fn)

    @asynccontextmanager
    async def _job(self, job_id: str) -> AsyncIterator[None]:
        """One flow per job at a time in this process (a redelivery waits for the first)."""
        lock, users = self._jobs.get(job_id, (asyncio.Lock(), 0))
        self._jobs[job_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._jobs[job_id]
            if users <= 1:
                del self._jobs[job_id]
            else:
                self._jobs[job_id] = (lock, users - 1)
