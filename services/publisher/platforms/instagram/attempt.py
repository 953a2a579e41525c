"""One publishing attempt against the Instagram Graph API (reference §10).

Crash safety (DESIGN "Guarantees", reference §8): a container is stored through
`ctx.remember_container` as soon as it exists, and `ctx.confirm_claim` records right before
every `media_publish` that it is being sent. An attempt that finds a stored container reads
its `status_code` first and creates a new container only when that one is conclusively
ERROR or EXPIRED; one still processing when the polls end answers `processing` (read again
later, no attempt spent, no new container).

After a `media_publish` whose answer is unknown (or whose container an earlier attempt
sent), the post may be live: the container and the account's media are read
(`instagram_recovery`) before anything else. Until they show it live, or never published,
the answer stays `ambiguous` (a throttled read: `rate_limited`, saying the post may be live);
the last status read when the budget ends is the results service's call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TypeVar

from herald.platforms import AttemptContext, Outcome, PublishOutcome, PublishRequest
from herald.services.publisher.platforms.instagram.client import GraphCallError, GraphClient
from herald.services.publisher.platforms.instagram.errors import (
    Call,
    ErrorClass,
    container_error_class,
)
from herald.services.publisher.platforms.instagram.media import MediaPlan, PlanError, plan_media
from herald.services.publisher.platforms.instagram.outcomes import Finish, Reporter
from herald.services.publisher.platforms.instagram.reads import (
    ERROR,
    EXPIRED,
    FINISHED,
    IN_PROGRESS,
    PUBLISHED,
    ContainerStatus,
    GraphReader,
)
from herald.services.publisher.platforms.instagram.recovery import STOP_READING, findable, look
from herald.services.publisher.platforms.meta.throttle import Throttle

T = TypeVar("T")
MAX_NOT_READY_REPUBLISH = 5  # 9007/2207027 on media_publish: wait, publish again, at most 5x
RECONCILE_READS = 4  # status reads after an unknown media_publish answer
BUILDER_GONE_SUBCODE = 2207008  # 24/2207008: Meta advises retrying within 30 s to 2 min
BUILDER_WAITS = (30.0, 60.0)  # ...so the same container is published again after these


class Attempt(Reporter):
    """One attempt of one request: the poll deadline, the recreate budget, the child ids."""

    def __init__(
        self,
        client: GraphClient,
        request: PublishRequest,
        account_id: str,
        ctx: AttemptContext,
        *,
        throttle: Throttle,
        poll_initial_seconds: float,
        poll_max_interval_seconds: float,
        builder_waits: Sequence[float] = BUILDER_WAITS,
    ) -> None:
        reader = GraphReader(
            client,
            account_id,
            initial_delay=poll_initial_seconds,
            max_delay=poll_max_interval_seconds,
        )
        super().__init__(client, reader, request, account_id, ctx, throttle)
        self.builder_waits = tuple(builder_waits)
        self.poll_deadline: float | None = None
        self.publish_called = False  # media_publish was sent: the post may be live from now on
        self.publishing_container: str | None = None
        self.publish_recreates = 1  # a definite R answer to media_publish: one new container
        self._plan: MediaPlan | None = None

    async def run(self) -> PublishOutcome:
        stored = self.ctx.stored_container_id
        if stored:
            resumed = await self._resume(stored)
            if resumed is not None:
                return resumed
        plan = self.plan()
        quota = await self._check_quota()
        if quota is not None:
            return quota
        return await self._publish(await self._create(plan))

    def plan(self) -> MediaPlan:
        if self._plan is None:
            req = self.request
            try:
                self._plan = plan_media(req.media_asset_ids, req.caption, req.media_type)
            except PlanError as exc:
                outcome = PublishOutcome(Outcome.PERMANENT_ERROR, error_message=str(exc))
                raise Finish(outcome) from None
        return self._plan

    async def _resume(self, cid: str) -> PublishOutcome | None:
        """An earlier attempt stored ``cid`` (and may have published it): its status decides.
        None means "conclusively not published (ERROR/EXPIRED): create a new container"."""
        self.log(logging.INFO, "reading the stored container first", container_id=cid)
        try:
            status = await self.reader.status(cid)
        except GraphCallError as exc:
            if exc.classification.error_class in STOP_READING:
                return await self.fail(exc, container_id=cid)
            message = f"status of stored container {cid} unreadable: {exc.message}"
            if self.doubt:
                return await self.fail(exc, cid, Outcome.AMBIGUOUS, message)
            return await self.fail(exc, cid, Outcome.RETRYABLE_ERROR, message)
        if status.code == IN_PROGRESS:
            status = await self._wait(cid)
        if status.code == PUBLISHED:
            return await self.already_published(cid, status)
        if status.code in (ERROR, EXPIRED):
            self.doubt = False  # never published
            message = f"stored container is {status.code}; creating a new one"
            self.log(logging.INFO, message, container_id=cid)
            return None
        if status.code != FINISHED:
            return self.container_outcome(cid, status)
        if self.doubt:  # FINISHED, but an earlier media_publish may land yet: the media decide
            seen = await self._look(cid, status)
            if seen is not None:
                return seen
        return await self._publish(cid)

    async def _check_quota(self) -> PublishOutcome | None:
        try:
            limit = await self.reader.publishing_limit()
        except GraphCallError as exc:
            definite = (ErrorClass.AUTH, ErrorClass.RATE_LIMIT, ErrorClass.BLOCKED)
            if exc.classification.error_class in definite:
                return await self.fail(exc)
            self.log(logging.WARNING, f"publishing limit unreadable, going on: {exc.message}")
            return None
        if not limit.exhausted:
            return None
        message = (
            f"publishing quota used up ({limit.used:g}/{limit.total:g} per "
            f"{limit.window_seconds:g}s)"
        )
        self.log(logging.WARNING, message)
        return self.outcome(
            Outcome.RATE_LIMITED,
            retry_after_seconds=await self.reader.quota_frees_in(limit.window_seconds),
            error_message=message,
            provider_response={"content_publishing_limit": limit.body},
        )

    async def _create(self, plan: MediaPlan) -> str:
        """Create (the carousel's items, then) the container; wait until it is FINISHED."""
        params = plan.container
        if plan.children:
            self.child_ids = await self._items(plan)
            params = {**params, "children": ",".join(self.child_ids)}
        recreates = 1  # an ERROR container whose subcode asks for it: one new container
        while True:
            cid = await self._new(params)
            await self.ctx.remember_container(cid)  # durably, as soon as it exists
            status = await self._wait(cid)
            if status.code == FINISHED:
                return cid
            if status.code == PUBLISHED:
                raise Finish(await self.already_published(cid, status))
            if status.code == ERROR and _recreate(status) and recreates:
                recreates -= 1
                message = f"container failed ({status.text}); one new container"
                self.log(logging.INFO, message, container_id=cid)
                continue
            raise Finish(self.container_outcome(cid, status))

    async def _items(self, plan: MediaPlan) -> list[str]:
        """The carousel's items, FINISHED: those an earlier attempt stored while every one is
        still usable, else new ones, stored as soon as they all exist."""
        ids = list(self.ctx.stored_children)
        if len(ids) == len(plan.children):
            statuses = await _all([asyncio.ensure_future(self._wait(c)) for c in ids])
            if all(s.code in (FINISHED, IN_PROGRESS) for s in statuses):
                return self._finished_items(ids, statuses)
            self.log(logging.INFO, "stored carousel items unusable; new ones")
        ids = await _all([asyncio.ensure_future(self._new(p)) for p in plan.children])
        if self.ctx.remember_children is not None:
            await self.ctx.remember_children(ids)
        statuses = await _all([asyncio.ensure_future(self._wait(c)) for c in ids])
        return self._finished_items(ids, statuses)

    def _finished_items(self, ids: list[str], statuses: list[ContainerStatus]) -> list[str]:
        for cid, status in zip(ids, statuses, strict=True):
            if status.code == ERROR and _recreate(status):
                message = f"carousel item {cid} failed ({status.text}); new items next time"
                response = {"container": status.body}
                outcome = self.outcome(
                    Outcome.RETRYABLE_ERROR, cid, error_message=message, provider_response=response
                )
                raise Finish(outcome)
            if status.code != FINISHED:
                raise Finish(self.container_outcome(cid, status))  # still processing: later
        return ids

    async def _new(self, params: dict[str, str]) -> str:
        """POST a container; an answer that asks for it gets one more try, then permanent."""
        recreates = 1
        while True:
            try:
                body = await self.client.post(
                    Call.CREATE_CONTAINER, f"{self.account}/media", params
                )
            except GraphCallError as exc:
                if exc.classification.error_class is not ErrorClass.RECREATE:
                    raise Finish(await self.fail(exc)) from None
                if not recreates:
                    raise Finish(await self.fail(exc, None, Outcome.PERMANENT_ERROR)) from None
                recreates -= 1
                self.log(logging.INFO, f"one retry with a new container: {exc.message}")
                continue
            cid = str(body.get("id") or "")
            if not cid:
                message = "container created without an id"
                raise Finish(PublishOutcome(Outcome.RETRYABLE_ERROR, error_message=message))
            self.log(logging.DEBUG, "container created", container_id=cid)
            return cid

    async def _publish(self, cid: str) -> PublishOutcome:
        # 24/2207008: the same container again after each wait. A container an earlier attempt
        # stored is tried once only: that attempt may have ended deferring its wait to this one.
        waits = list(self.builder_waits) if cid != self.ctx.stored_container_id else []
        not_ready = 0
        while True:
            await self.ctx.confirm_claim()  # raises ClaimLost: nothing irreversible happened
            self.publish_called, self.publishing_container = True, cid
            try:
                body = await self.client.post(
                    Call.MEDIA_PUBLISH, f"{self.account}/media_publish", {"creation_id": cid}
                )
            except GraphCallError as exc:
                kind = exc.classification.error_class
                again: ContainerStatus | None = None
                if kind is ErrorClass.NOT_READY and not_ready < MAX_NOT_READY_REPUBLISH:
                    not_ready += 1
                    if self._backoff(not_ready) > self._left():  # wait, but not in this attempt
                        message = f"{exc.message}; published again after the next read"
                        return self.outcome(
                            Outcome.PROCESSING,
                            cid,
                            error_message=message,
                            provider_response=exc.response(),
                        )
                    again = await self._status_after(self._backoff(not_ready), cid)
                elif exc.classification.check_status or self.doubt:
                    return await self._reconcile(cid, exc)
                elif _builder_gone(exc) and waits:
                    wait = waits.pop(0)
                    if wait > self._left():  # no time left in this attempt: the next one
                        return self.outcome(
                            Outcome.RETRYABLE_ERROR,
                            cid,
                            error_message=f"{exc.message}; the same container again in {wait:g}s",
                            retry_after_seconds=wait,
                            provider_response=exc.response(),
                        )
                    again = await self._status_after(wait, cid)
                if again is not None:
                    if again.code == FINISHED:
                        continue
                    if again.code == PUBLISHED:
                        return await self.already_published(cid, again)
                    if again.code not in (ERROR, EXPIRED) or not self.publish_recreates:
                        return self.container_outcome(cid, again)
                    kind = ErrorClass.RECREATE
                if kind is ErrorClass.RECREATE and self.publish_recreates:
                    self.publish_recreates -= 1
                    message = f"publish refused the container ({exc.message}); one new container"
                    self.log(logging.INFO, message, container_id=cid)
                    return await self._publish(await self._create(self.plan()))
                definite = Outcome.PERMANENT_ERROR if kind is ErrorClass.RECREATE else None
                return await self.fail(exc, cid, definite)
            media_id = str(body.get("id") or "")
            if media_id:
                return await self.published(cid, media_id, body)
            return await self._reconcile(cid, None)  # 2xx without an id: as unknown as a loss

    async def _reconcile(self, cid: str, exc: GraphCallError | None) -> PublishOutcome:
        """media_publish may have worked (or an earlier one may land yet): read the container
        and the account's media; never publish blindly again."""
        self.doubt = True
        reason = exc.message if exc is not None else "media_publish answered without an id"
        self.log(logging.WARNING, f"outcome unknown ({reason}); reading", container_id=cid)
        try:
            seen = await look(self.reader, self.request, cid, reads=RECONCILE_READS)
        except GraphCallError as read_exc:
            if read_exc.classification.error_class in STOP_READING:
                return await self.fail(read_exc, cid)  # throttled: rate_limited, may be live
            return self.ambiguous(cid, f"{reason}; container unreadable: {read_exc.message}")
        if seen.live:
            return await self.already_published(cid, seen.status, seen.media)
        kind = exc.classification.error_class if exc is not None else ErrorClass.AMBIGUOUS
        if exc is not None and kind is ErrorClass.BLOCKED:
            return await self.fail(exc, container_id=cid)  # not live: dead-letter as blocked
        if seen.status.code in (ERROR, EXPIRED):
            self.doubt = False  # a container that never published
            return self.container_outcome(cid, seen.status)
        if exc is not None and exc.classification.outcome is Outcome.RATE_LIMITED:
            return await self.fail(exc, container_id=cid)  # a throttle or the quota: wait
        problem = f"; {seen.problem}" if seen.problem else ""
        message = (
            f"{reason}; container {cid} reads {seen.status.code}{problem}; the post may still"
            " land, so it is read again before any new media_publish"
        )
        return self.ambiguous(cid, message)

    async def _look(self, cid: str, status: ContainerStatus) -> PublishOutcome | None:
        """Before publishing a container an earlier media_publish may have published: the
        account's media must show it is not live. None: go on."""
        try:
            seen = await look(self.reader, self.request, cid, reads=0, status=status)
        except GraphCallError as exc:  # only a throttled or unauthorised media read
            return await self.fail(exc, cid)
        if seen.live:
            return await self.already_published(cid, seen.status, seen.media)
        if seen.not_live or not findable(self.request):
            return None
        return self.ambiguous(cid, f"cannot rule out an earlier publish: {seen.problem}")

    async def _wait(self, cid: str) -> ContainerStatus:
        """Poll within the attempt's budget (ctx.poll_seconds, shared by every container)."""
        try:
            return await self.reader.wait(cid, self._deadline())
        except GraphCallError as exc:
            raise Finish(await self.fail(exc, container_id=cid)) from None

    async def _status_after(self, seconds: float, cid: str) -> ContainerStatus:
        """Wait (within the poll budget), then poll the container again."""
        await asyncio.sleep(max(min(seconds, self._left()), 0.0))
        return await self._wait(cid)

    def _left(self) -> float:
        return self._deadline() - asyncio.get_running_loop().time()

    def _deadline(self) -> float:
        if self.poll_deadline is None:
            self.poll_deadline = asyncio.get_running_loop().time() + self.ctx.poll_seconds
        return self.poll_deadline

    def _backoff(self, n: int) -> float:
        return float(min(self.reader.initial_delay * 2.0 ** (n - 1), self.reader.max_delay))


def _recreate(status: ContainerStatus) -> bool:
    return container_error_class(status.text) is ErrorClass.RECREATE


def _builder_gone(exc: GraphCallError) -> bool:
    return exc.error is not None and exc.error.subcode == BUILDER_GONE_SUBCODE


async def _all(tasks: Sequence[asyncio.Future[T]]) -> list[T]:
    """Await every task; on the first failure cancel the rest (orphan containers are harmless:
    invisible until published)."""
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
