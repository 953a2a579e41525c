"""Instagram Graph API publisher: the platform client the publisher's registry maps
``instagram`` to. One attempt's flow is in ``instagram_attempt``, the classification of Graph
errors in ``instagram_errors``, the HTTP caller in ``instagram_client``.

One ``aiohttp.ClientSession`` is created lazily and closed by ``close()``; every call has the
attempt's ``call_timeout_seconds``. The access token never reaches an outcome's free text:
the Graph client scrubs error answers, and the publisher scrubs every outcome once more.
"""

from __future__ import annotations

import logging

import aiohttp

from services.publisher.platforms.base import AttemptContext, ClaimLost
from services.publisher.platforms.instagram_attempt import Attempt, Finish
from services.publisher.platforms.instagram_client import GraphClient, Throttle
from services.publisher.platforms.instagram_confirm import confirm_published
from services.publisher.platforms.instagram_reads import GraphReader
from shared.domain.outcomes import Outcome, PublishOutcome
from shared.domain.requests import Connection, PublishRequest

logger = logging.getLogger(__name__)


class InstagramPublisher:
    name = "instagram"

    def __init__(
        self,
        graph_url: str,
        *,
        poll_initial_seconds: float = 1.0,
        poll_max_interval_seconds: float = 10.0,
    ) -> None:
        self._graph_url = graph_url
        self.poll_initial_seconds = poll_initial_seconds
        self.poll_max_interval_seconds = poll_max_interval_seconds
        self._session: aiohttp.ClientSession | None = None
        self.throttle = Throttle()

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        account_id = str(connection.metadata.get("instagramBusinessAccountId") or "")
        if not account_id:
            message = "connection metadata has no instagramBusinessAccountId"
            return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
        if not connection.access_token:
            return PublishOutcome(Outcome.AUTH_ERROR, error_message="connection has no token")
        paused = self.throttle.paused_for(account_id)
        if paused > 0:
            message = "Graph rate limit or usage headers: not calling this account for now"
            return PublishOutcome(
                Outcome.RATE_LIMITED, retry_after_seconds=paused, error_message=message
            )
        client = self._client(connection, account_id, ctx)
        attempt = Attempt(
            client,
            request,
            account_id,
            ctx,
            throttle=self.throttle,
            poll_initial_seconds=self.poll_initial_seconds,
            poll_max_interval_seconds=self.poll_max_interval_seconds,
        )
        try:
            outcome = await attempt.run()
        except Finish as finish:
            outcome = finish.outcome
        except ClaimLost:
            raise  # checked right before media_publish: this attempt posted nothing since
        except Exception as exc:
            if not attempt.publish_called:
                raise  # nothing irreversible happened; the caller handles it
            # After media_publish the post may be live: never let a bug turn that into a retry.
            what = client.scrub.text(f"{type(exc).__name__}: {exc}")
            message = f"unexpected error after media_publish: {what}"
            extra = {"job_id": request.job_id, "attempt": request.attempt}
            logger.error("instagram: %s", message, extra=extra)  # no traceback: it may hold URLs
            cid = attempt.publishing_container
            ids = {"container_id": cid} if cid else {}
            outcome = PublishOutcome(Outcome.AMBIGUOUS, error_message=message, provider_ids=ids)
        return outcome

    async def confirm(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        """Only read the stored container's status (PUBLISHED → published, anything else →
        unconfirmed); never publishes. See ``instagram_confirm``."""
        account_id = str(connection.metadata.get("instagramBusinessAccountId") or "")
        client = self._client(connection, account_id, ctx)
        reader = GraphReader(
            client,
            account_id,
            initial_delay=self.poll_initial_seconds,
            max_delay=self.poll_max_interval_seconds,
        )
        return await confirm_published(client, reader, request, ctx)

    def _client(self, connection: Connection, account_id: str, ctx: AttemptContext) -> GraphClient:
        """A Graph caller for one account, feeding its usage headers to the throttle."""
        return GraphClient(
            self._get_session(),
            self._graph_url,
            token=connection.access_token,
            account_id=account_id,
            timeout_seconds=ctx.call_timeout_seconds,
            on_headers=lambda headers: self.throttle.note_usage(account_id, headers),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session
