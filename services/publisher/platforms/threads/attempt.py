"""One publishing attempt to Threads: containers, then ``threads_publish``.

Never twice (Threads has no idempotency key; the container is the handle): every container
is stored (``remember_children`` for a carousel's items, ``remember_container`` for the one
to publish) as soon as it exists, and ``confirm_claim`` is called right before each
``threads_publish``. An attempt that finds a stored container reads its status first:
PUBLISHED is done (the post's id comes from the user's threads), FINISHED is published (after
the user's threads show no post of the job, when an earlier publish may have landed), ERROR
or EXPIRED mean a new container. After a lost ``threads_publish`` answer the container is read
again: PUBLISHED is done; still FINISHED stays ``ambiguous``, and the next attempt reads again.

24/4279009 "Media Not Found" on ``threads_publish`` means the container is not ready
everywhere yet: its status is read, and the same container is published again after a wait.
The publishing quota (``threads_publishing_limit``) is read before a container is created.
"""

from __future__ import annotations

import logging

from herald.platforms import AttemptContext, Outcome, PublishOutcome, PublishRequest
from herald.services.publisher.platforms.meta.attempts import Budget
from herald.services.publisher.platforms.meta.calls import AGAIN, Caller, CallFailed, Kind
from herald.services.publisher.platforms.threads import reads
from herald.services.publisher.platforms.threads.media import Plan, PlanError, plan_post
from herald.services.publisher.platforms.threads.reads import (
    ERROR,
    EXPIRED,
    FINISHED,
    IN_PROGRESS,
    PUBLISHED,
    Status,
)

logger = logging.getLogger(__name__)
NOT_FOUND_REPUBLISH = 3  # 4279009 on threads_publish: wait, publish the same container again
READS_AFTER_UNKNOWN = 3


class Finish(Exception):
    """Ends the attempt with an outcome (from deep inside a step)."""

    def __init__(self, outcome: PublishOutcome) -> None:
        super().__init__(outcome.outcome.value)
        self.outcome = outcome


class Attempt:
    def __init__(
        self,
        caller: Caller,
        request: PublishRequest,
        user: str,
        ctx: AttemptContext,
        *,
        poll_initial_seconds: float,
        poll_max_interval_seconds: float,
    ) -> None:
        self.caller, self.request, self.user, self.ctx = caller, request, user, ctx
        self.initial, self.max_interval = poll_initial_seconds, poll_max_interval_seconds
        self.doubt = ctx.may_be_live
        self.budget = Budget(ctx)

    async def run(self) -> PublishOutcome:
        try:
            plan = plan_post(
                self.request.media_asset_ids, self.request.caption, self.request.media_type
            )
        except PlanError as exc:
            return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=str(exc))
        try:
            stored = self.ctx.stored_container_id
            if stored:
                resumed = await self._resume(stored)
                if resumed is not None:
                    return resumed
            waiting = await self._quota()
            if waiting is not None:
                return waiting
            return await self._publish(await self._create(plan))
        except Finish as finish:
            return finish.outcome
        except CallFailed as failed:
            # Tried again later (a new token, the window, a transient error), the doubt stays:
            # the next attempt looks first.
            return failed.outcome(may_be_live=self.doubt and failed.kind in AGAIN)

    async def _resume(self, cid: str) -> PublishOutcome | None:
        found = await self._wait(cid)
        if found.code == PUBLISHED:
            return await self._published(cid, None, already=True)
        if found.code in (ERROR, EXPIRED):
            self.doubt = False  # never published
            return None
        if found.code != FINISHED:
            return self._processing(cid, found)
        if self.doubt:
            media = await reads.find_thread(self.caller, self.user, self.request)
            if media is not None:
                return await self._published(cid, media, already=True)
        return await self._publish(cid)

    async def _quota(self) -> PublishOutcome | None:
        try:
            limit = await reads.quota(self.caller, self.user)
        except CallFailed as failed:
            if failed.kind in (Kind.AUTH, Kind.RATE_LIMIT, Kind.BLOCKED):
                raise
            logger.warning("threads: publishing limit unreadable, going on: %s", failed.message)
            return None
        if limit is None or not limit.exhausted:
            return None
        wait = await reads.quota_frees_in(self.caller, self.user, limit.window_seconds)
        message = f"publishing quota used up ({limit.used}/{limit.total} per rolling window)"
        return PublishOutcome(Outcome.RATE_LIMITED, retry_after_seconds=wait, error_message=message)

    async def _create(self, plan: Plan) -> str:
        params = dict(plan.container)
        if plan.children:
            items = [await self._new(child) for child in plan.children]
            if self.ctx.remember_children is not None:
                await self.ctx.remember_children(items)
            for item in items:
                self._ready(item, await self._wait(item))
            params["children"] = ",".join(items)
        cid = await self._new(params)
        await self.ctx.remember_container(cid)  # durably, before it can be published
        self._ready(cid, await self._wait(cid))
        return cid

    async def _new(self, params: dict[str, str]) -> str:
        body = await self.caller.post("create_container", f"{self.user}/threads", params)
        cid = str(body.get("id") or "")
        if not cid:
            raise Finish(_retry("container created without an id"))
        return cid

    def _ready(self, cid: str, found: Status) -> None:
        """Go on with a FINISHED container; end the attempt on anything else."""
        if found.code == FINISHED:
            return
        if found.code == ERROR:
            message = f"container {cid} failed: {found.error_message or 'no reason given'}"
            raise Finish(
                PublishOutcome(
                    Outcome.PERMANENT_ERROR,
                    error_message=message,
                    provider_ids={"container_id": cid},
                    provider_response={"container": found.body},
                )
            )
        if found.code == EXPIRED:
            raise Finish(_retry(f"container {cid} expired; a new one next time"))
        raise Finish(self._processing(cid, found))

    async def _publish(self, cid: str) -> PublishOutcome:
        for n in range(NOT_FOUND_REPUBLISH + 1):
            await self.ctx.confirm_claim()  # raises ClaimLost: nothing irreversible happened
            try:
                body = await self.caller.post(
                    "threads_publish", f"{self.user}/threads_publish", {"creation_id": cid}
                )
            except CallFailed as failed:
                if failed.kind is Kind.AMBIGUOUS:
                    return await self._reconcile(cid, failed)
                if failed.kind is not Kind.NOT_FOUND:
                    raise
                found = await self._after(self._backoff(n), cid)
                if found.code == PUBLISHED:
                    return await self._published(cid, None, already=True)
                if found.code in (ERROR, EXPIRED):
                    self._ready(cid, found)
                if found.code != FINISHED or n == NOT_FOUND_REPUBLISH:
                    return failed.outcome(provider_ids={"container_id": cid})
                continue
            media = str(body.get("id") or "")
            if not media:
                return await self._reconcile(cid, None)
            return await self._published(cid, media, already=False)
        raise AssertionError("unreachable")

    async def _reconcile(self, cid: str, failed: CallFailed | None) -> PublishOutcome:
        """``threads_publish`` may have worked: the container's status decides."""
        self.doubt = True
        reason = failed.message if failed is not None else "threads_publish answered no id"
        found: Status | None = None
        for n in range(READS_AFTER_UNKNOWN):
            try:
                found = await self._after(self._backoff(n) if n else 0.0, cid)
            except CallFailed:
                continue
            if found.code == PUBLISHED:
                return await self._published(cid, None, already=True)
            if found.code in (ERROR, EXPIRED):
                self._ready(cid, found)
        state = found.code if found is not None else "unreadable"
        message = f"{reason}; container {cid} reads {state}: read again before publishing"
        response = failed.response() if failed is not None else None
        return PublishOutcome(
            Outcome.AMBIGUOUS,
            error_message=message,
            provider_ids={"container_id": cid},
            provider_response=response,
        )

    async def _published(self, cid: str, media: str | None, *, already: bool) -> PublishOutcome:
        if media is None:  # the container does not name its post: the user's threads do
            try:
                media = await reads.find_thread(self.caller, self.user, self.request)
            except CallFailed:
                media = None
        ids = {"container_id": cid} | ({"media_id": media} if media else {})
        outcome = PublishOutcome(
            Outcome.PUBLISHED,
            provider_ids=ids,
            provider_response={"container_id": cid, "media_id": media, "already_posted": already},
        )
        self.ctx.settle(outcome)
        return outcome

    def _processing(self, cid: str, found: Status) -> PublishOutcome:
        return PublishOutcome(
            Outcome.PROCESSING,
            error_message=f"container {cid} reads {found.code}; read again later",
            provider_ids={"container_id": cid},
            may_be_live=self.doubt,
        )

    async def _wait(self, cid: str) -> Status:
        """Poll until the container is not IN_PROGRESS, within the attempt's poll budget."""
        delay = self.initial
        found = await reads.status(self.caller, cid)
        while found.code == IN_PROGRESS and await self.budget.pause(delay):
            delay = min(delay * 2, self.max_interval)
            found = await reads.status(self.caller, cid)
        return found

    async def _after(self, seconds: float, cid: str) -> Status:
        await self.budget.pause(seconds)
        return await self._wait(cid)

    def _backoff(self, n: int) -> float:
        return float(min(self.initial * 2.0**n, self.max_interval))


def _retry(message: str) -> PublishOutcome:
    return PublishOutcome(Outcome.RETRYABLE_ERROR, error_message=message)
