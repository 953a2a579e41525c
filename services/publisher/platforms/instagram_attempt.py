"""One publishing attempt against the Instagram Graph API (reference §10).

Crash safety (DESIGN "Guarantees", reference §8): the container id is stored through
``ctx.remember_container`` before ``media_publish``; an attempt that finds a stored container
reads its ``status_code`` first and creates a new container only when that one is conclusively
ERROR or EXPIRED. An unknown ``media_publish`` answer is followed by a few status reads in the
same attempt; what they cannot settle is answered ``ambiguous`` (never ``unconfirmed``: the
results service makes the last read when the budget ends and decides that).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.publisher.platforms.base import AttemptContext
from services.publisher.platforms.instagram_client import (
    APP_WIDE,
    GraphCallError,
    GraphClient,
    Throttle,
)
from services.publisher.platforms.instagram_errors import (
    DEFAULT_QUOTA_WINDOW_SECONDS,
    Call,
    ErrorClass,
    container_error_class,
    subcode_from_status,
)
from services.publisher.platforms.instagram_media import MediaPlan, PlanError, plan_media
from services.publisher.platforms.instagram_reads import (
    ERROR,
    EXPIRED,
    FINISHED,
    IN_PROGRESS,
    PUBLISHED,
    ContainerStatus,
    GraphReader,
    parse_time,
)
from shared.domain.outcomes import Outcome, PublishOutcome
from shared.domain.requests import PublishRequest

logger = logging.getLogger(__name__)

MAX_NOT_READY_REPUBLISH = 5  # 9007/2207027 on media_publish: poll, publish again, at most 5x
RECONCILE_READS = 4  # status reads after an unknown media_publish answer


class Finish(Exception):
    """Ends an attempt with an outcome from deep inside the flow."""

    def __init__(self, outcome: PublishOutcome) -> None:
        super().__init__(outcome.outcome.value)
        self.outcome = outcome


class Attempt:
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
    ) -> None:
        self.throttle = throttle
        self.client = client
        self.request = request
        self.account = account_id
        self.ctx = ctx
        self.reader = GraphReader(
            client,
            account_id,
            initial_delay=poll_initial_seconds,
            max_delay=poll_max_interval_seconds,
        )
        self.poll_deadline: float | None = None
        self.publish_called = False  # media_publish was sent: the post may be live from now on
        self.publishing_container: str | None = None
        self.publish_recreates = 1  # a definite R answer to media_publish: one new container
        self.child_ids: list[str] = []
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
        """An earlier attempt stored ``cid`` and may have published it: its status decides.
        None means "conclusively not published (ERROR/EXPIRED): create a new container"."""
        self._log(logging.INFO, "reading the stored container first", container_id=cid)
        try:
            status = await self.reader.status(cid)
        except GraphCallError as exc:
            if exc.classification.error_class is ErrorClass.AUTH:
                return await self._fail(exc, container_id=cid)  # a redrive re-checks it first
            message = f"status of stored container {cid} unreadable: {exc.message}"
            return await self._fail(exc, cid, Outcome.AMBIGUOUS, message)
        if status.code == IN_PROGRESS:
            status = await self._wait(cid)
        if status.code == PUBLISHED:
            return await self._already_published(cid, status)
        if status.code == FINISHED:
            return await self._publish(cid)
        if status.code in (ERROR, EXPIRED):
            self._log(
                logging.INFO,
                f"stored container is {status.code}; creating a new one",
                container_id=cid,
            )
            return None
        return self._container_outcome(cid, status)

    async def _check_quota(self) -> PublishOutcome | None:
        try:
            limit = await self.reader.publishing_limit()
        except GraphCallError as exc:
            definite = (ErrorClass.AUTH, ErrorClass.RATE_LIMIT, ErrorClass.BLOCKED)
            if exc.classification.error_class in definite:
                return await self._fail(exc)
            self._log(logging.WARNING, f"publishing limit unreadable, going on: {exc.message}")
            return None
        if not limit.exhausted:
            return None
        message = (
            f"publishing quota used up ({limit.used:g}/{limit.total:g} per "
            f"{limit.window_seconds:g}s)"
        )
        self._log(logging.WARNING, message)
        return PublishOutcome(
            Outcome.RATE_LIMITED,
            retry_after_seconds=await self.reader.quota_frees_in(limit.window_seconds),
            error_message=message,
            provider_response={"content_publishing_limit": limit.body},
        )

    async def _create(self, plan: MediaPlan) -> str:
        """Create (the carousel's children, then) the container; wait until it is FINISHED."""
        if not plan.children:
            return await self._create_finished(plan.container)
        tasks = [asyncio.ensure_future(self._create_finished(p)) for p in plan.children]
        self.child_ids = await _all(tasks)
        return await self._create_finished({**plan.container, "children": ",".join(self.child_ids)})

    async def _create_finished(self, params: dict[str, str]) -> str:
        recreates = 1  # 9004/2207052 and other R answers: one more container, then permanent
        while True:
            try:
                body = await self.client.post(
                    Call.CREATE_CONTAINER, f"{self.account}/media", params
                )
            except GraphCallError as exc:
                if exc.classification.error_class is not ErrorClass.RECREATE:
                    raise Finish(await self._fail(exc)) from None
                if not recreates:
                    raise Finish(await self._fail(exc, None, Outcome.PERMANENT_ERROR)) from None
                recreates -= 1
                self._log(logging.INFO, f"one retry with a new container: {exc.message}")
                continue
            cid = str(body.get("id") or "")
            if not cid:
                message = "container created without an id"
                raise Finish(PublishOutcome(Outcome.RETRYABLE_ERROR, error_message=message))
            self._log(logging.INFO, "container created", container_id=cid)
            status = await self._wait(cid)
            if status.code == FINISHED:
                return cid
            if status.code == PUBLISHED:
                raise Finish(await self._already_published(cid, status))
            recreate = container_error_class(status.text) is ErrorClass.RECREATE
            if status.code == ERROR and recreate and recreates:
                recreates -= 1
                self._log(
                    logging.INFO,
                    f"container failed ({status.text}); one new container",
                    container_id=cid,
                )
                continue
            raise Finish(self._container_outcome(cid, status))

    async def _publish(self, cid: str) -> PublishOutcome:
        if cid != self.ctx.stored_container_id:
            await self.ctx.remember_container(cid)  # durably, before the irreversible call
        for not_ready in range(MAX_NOT_READY_REPUBLISH + 1):
            await self.ctx.confirm_claim()  # raises ClaimLost: nothing irreversible happened
            self.publish_called, self.publishing_container = True, cid
            try:
                body = await self.client.post(
                    Call.MEDIA_PUBLISH, f"{self.account}/media_publish", {"creation_id": cid}
                )
            except GraphCallError as exc:
                kind = exc.classification.error_class
                if kind is ErrorClass.NOT_READY and not_ready < MAX_NOT_READY_REPUBLISH:
                    status = await self._wait(cid)
                    if status.code == FINISHED:
                        continue
                    if status.code == PUBLISHED:
                        return await self._already_published(cid, status)
                    return self._container_outcome(cid, status)
                if exc.classification.check_status:
                    return await self._reconcile(cid, exc)
                if kind is ErrorClass.RECREATE and self.publish_recreates:
                    self.publish_recreates -= 1
                    self._log(
                        logging.INFO,
                        f"publish refused the container ({exc.message}); one new container",
                        container_id=cid,
                    )
                    return await self._publish(await self._create(self.plan()))
                definite = Outcome.PERMANENT_ERROR if kind is ErrorClass.RECREATE else None
                return await self._fail(exc, cid, definite)
            media_id = str(body.get("id") or "")
            if media_id:
                return await self._published(cid, media_id, body)
            break  # 2xx without a media id: as unknown as a lost answer
        return await self._reconcile(cid, None)

    async def _reconcile(self, cid: str, exc: GraphCallError | None) -> PublishOutcome:
        """media_publish may have worked: read the container, never publish blindly again."""
        reason = exc.message if exc is not None else "media_publish answered without an id"
        self._log(
            logging.WARNING,
            f"media_publish outcome unknown ({reason}); reading the container",
            container_id=cid,
        )
        status = await self.reader.settle(cid, RECONCILE_READS)
        if status is not None and status.code == PUBLISHED:
            return await self._already_published(cid, status)
        kind = exc.classification.error_class if exc is not None else ErrorClass.AMBIGUOUS
        if exc is not None and kind is ErrorClass.BLOCKED:
            return await self._fail(exc, container_id=cid)  # not live: dead-letter as blocked
        if status is None or status.code not in (FINISHED, ERROR, EXPIRED):
            seen = status.code if status is not None else "unreadable"
            message = f"{reason}; container {cid} status {seen} after {RECONCILE_READS} reads"
            return await self._fail_or(exc, cid, Outcome.AMBIGUOUS, message)
        if status.code != FINISHED:
            return self._container_outcome(cid, status)
        if exc is not None and kind is ErrorClass.RATE_LIMIT:
            return await self._fail(exc, container_id=cid)
        message = (
            "media_publish failed and the container is still FINISHED (not published); "
            "the next attempt publishes the same container"
        )
        return await self._fail_or(exc, cid, Outcome.RETRYABLE_ERROR, message)

    async def _wait(self, cid: str) -> ContainerStatus:
        """Poll within the attempt's budget (ctx.poll_seconds, shared by every container)."""
        if self.poll_deadline is None:
            self.poll_deadline = asyncio.get_running_loop().time() + self.ctx.poll_seconds
        try:
            return await self.reader.wait(cid, self.poll_deadline)
        except GraphCallError as exc:
            raise Finish(await self._fail(exc, container_id=cid)) from None

    # ---- outcomes -------------------------------------------------------------------------

    async def _published(self, cid: str, media_id: str, body: dict[str, Any]) -> PublishOutcome:
        published_at = datetime.now(UTC)
        self._log(logging.INFO, "published", container_id=cid, media_id=media_id)
        ids = self._ids(cid, media_id=media_id)
        try:
            permalink = await self.reader.permalink(media_id)
        except GraphCallError as exc:  # best effort: never fails a live post
            self._log(logging.INFO, f"permalink unreadable: {exc.message}", media_id=media_id)
            permalink = ""
        if permalink:
            ids["permalink"] = permalink
        return PublishOutcome(
            Outcome.PUBLISHED,
            provider_ids=ids,
            published_at=published_at,
            provider_response={"media_publish": body},
        )

    async def _already_published(self, cid: str, status: ContainerStatus) -> PublishOutcome:
        """The container is PUBLISHED; the container does not name its media (reference §8.5),
        so the media id comes from a unique caption match in the account's media, if any."""
        ids = self._ids(cid)
        published_at = datetime.now(UTC)
        media = None
        if (self.request.media_type or "").upper() != "STORIES":
            since = self.request.scheduled_at - timedelta(minutes=5)
            try:
                media = await self.reader.find_media(self.request.caption, since)
            except GraphCallError as exc:
                self._log(logging.INFO, f"media list unreadable: {exc.message}")
        if media is not None:
            ids["media_id"] = str(media["id"])
            if isinstance(media.get("permalink"), str):
                ids["permalink"] = media["permalink"]
            published_at = parse_time(media.get("timestamp")) or published_at
        self._log(
            logging.INFO,
            "container already published",
            container_id=cid,
            media_id=ids.get("media_id"),
        )
        return PublishOutcome(
            Outcome.PUBLISHED,
            provider_ids=ids,
            published_at=published_at,
            provider_response={"container": status.body},
        )

    def _container_outcome(self, cid: str, status: ContainerStatus) -> PublishOutcome:
        """A container neither FINISHED nor PUBLISHED: nothing was published."""
        ids, response = self._ids(cid), {"container": status.body}
        if status.code == ERROR:
            return PublishOutcome(
                Outcome.PERMANENT_ERROR,
                error_subcode=subcode_from_status(status.text),
                error_message=f"container {cid} failed: {status.text or 'ERROR'}",
                provider_ids=ids,
                provider_response=response,
            )
        if status.code == EXPIRED:
            message = f"container {cid} expired; the next attempt creates a new one"
        elif status.code == IN_PROGRESS:
            message = (
                f"container {cid} still IN_PROGRESS after {self.ctx.poll_seconds:g}s; "
                "nothing was published"
            )
        else:
            message = f"container {cid} has an unknown status {status.code!r}"
            return PublishOutcome(
                Outcome.AMBIGUOUS,
                error_message=message,
                provider_ids=ids,
                provider_response=response,
            )
        self._log(logging.INFO, message, container_id=cid)
        return PublishOutcome(
            Outcome.RETRYABLE_ERROR,
            error_message=message,
            provider_ids=ids,
            provider_response=response,
        )

    async def _fail_or(
        self, exc: GraphCallError | None, cid: str, outcome: Outcome, message: str
    ) -> PublishOutcome:
        if exc is not None:
            return await self._fail(exc, cid, outcome, message)
        self._log(logging.WARNING, f"{outcome.value}: {message}", container_id=cid)
        return PublishOutcome(outcome, error_message=message, provider_ids=self._ids(cid))

    async def _fail(
        self,
        exc: GraphCallError,
        container_id: str | None = None,
        outcome: Outcome | None = None,
        message: str | None = None,
    ) -> PublishOutcome:
        c = exc.classification
        code, subcode = (exc.error.code, exc.error.subcode) if exc.error else (None, None)
        retry_after = c.retry_after_seconds
        if c.error_class is ErrorClass.QUOTA:
            retry_after = await self.reader.quota_frees_in(DEFAULT_QUOTA_WINDOW_SECONDS)
        elif c.error_class is ErrorClass.RATE_LIMIT and retry_after:
            self.throttle.pause(APP_WIDE if code == 4 else self.account, retry_after)
        final = outcome or c.outcome
        text = message or f"{exc.call.value}: {exc.message}"
        self._log(
            logging.WARNING,
            f"{final.value} ({c.rule}): {text}",
            container_id=container_id,
            error_code=code,
            error_subcode=subcode,
        )
        return PublishOutcome(
            final,
            error_code=code,
            error_subcode=subcode,
            error_message=text,
            retry_after_seconds=retry_after if final is Outcome.RATE_LIMITED else None,
            provider_ids=self._ids(container_id),
            provider_response=exc.response(),
        )

    def _ids(self, cid: str | None, **more: str) -> dict[str, str]:
        ids = {"container_id": cid} if cid else {}
        if self.child_ids:
            ids["child_container_ids"] = ",".join(self.child_ids)
        return {**ids, **more}

    def _log(self, level: int, message: str, **fields: Any) -> None:
        extra = {
            "job_id": self.request.job_id,
            "attempt": self.request.attempt,
            "platform": "instagram",
        }
        extra.update({k: v for k, v in fields.items() if v is not None})
        logger.log(level, "instagram: %s", self.client.scrub.text(message), extra=extra)


async def _all(tasks: Sequence[asyncio.Future[str]]) -> list[str]:
    """Await every task; on the first failure cancel the rest (orphan containers are harmless:
    invisible until published)."""
    try:
        return list(await asyncio.gather(*tasks))
    finally:
        for task in tasks:
            task.cancel()
