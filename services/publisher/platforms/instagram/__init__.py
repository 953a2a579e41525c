"""Instagram Graph API publisher: the platform client the publisher's registry maps
``instagram`` to. One attempt's flow is in ``instagram_attempt``, the classification of Graph
errors in ``instagram_errors``, the HTTP caller in ``instagram_client``, the throttle every
publisher copy shares in ``meta.throttle``.

A connection's metadata ``login`` (``facebook``, the default, or ``instagram``) picks the
configured host: Instagram API with Facebook Login (``graph_url``) or with Instagram Login
(``instagram_graph_url``). No connection names a URL of its own: a tenant cannot point the
publisher at another address.

One ``aiohttp.ClientSession`` (``meta.session``) is created lazily and closed by
``close()``; every call has the attempt's ``call_timeout_seconds``. The access token never
reaches an outcome's free text: the Graph client scrubs error answers, and the publisher
scrubs every outcome once more.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from herald.platforms import (
    AttemptContext,
    ClaimLost,
    Connection,
    Outcome,
    PublishOutcome,
    PublishRequest,
)
from herald.services.publisher.platforms.instagram.attempt import BUILDER_WAITS, Attempt
from herald.services.publisher.platforms.instagram.client import GraphClient
from herald.services.publisher.platforms.instagram.confirm import confirm_published
from herald.services.publisher.platforms.instagram.outcomes import Finish
from herald.services.publisher.platforms.instagram.reads import GraphReader
from herald.services.publisher.platforms.meta.session import Sessions
from herald.services.publisher.platforms.meta.throttle import Throttle

logger = logging.getLogger(__name__)


class InstagramPublisher(Sessions):
    name = "instagram"
    posts_without_container = False  # the post is a container: stored before it is published
    throttle: Throttle  # always one: the pauses every copy shares

    def __init__(
        self,
        graph_url: str,
        *,
        throttle: Throttle,
        instagram_graph_url: str | None = None,
        app_secret: str | None = None,
        poll_initial_seconds: float = 1.0,
        poll_max_interval_seconds: float = 10.0,
        builder_waits: Sequence[float] = BUILDER_WAITS,
    ) -> None:
        super().__init__(app_secret, throttle)
        self._urls = {"facebook": graph_url, "instagram": instagram_graph_url or graph_url}
        self.poll_initial_seconds = poll_initial_seconds
        self.poll_max_interval_seconds = poll_max_interval_seconds
        self.builder_waits = tuple(builder_waits)

    async def publish(
        self, request: PublishRequest, connection: Connection, ctx: AttemptContext
    ) -> PublishOutcome:
        account_id = str(connection.metadata.get("instagramBusinessAccountId") or "")
        if not account_id:
            message = "connection metadata has no instagramBusinessAccountId"
            return PublishOutcome(Outcome.PERMANENT_ERROR, error_message=message)
        if not connection.access_token:
            return PublishOutcome(Outcome.AUTH_ERROR, error_message="connection has no token")
        paused = await self.throttle.paused_for(account_id)
        if paused > 0:
            message = "Graph rate limit or usage headers: not calling this account for now"
            return PublishOutcome(
                Outcome.RATE_LIMITED,
                retry_after_seconds=paused,
                error_message=message,
                may_be_live=bool(ctx.stored_container_id and ctx.publish_sent),
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
            builder_waits=self.builder_waits,
        )
        try:
            outcome = await attempt.run()
        except Finish as finish:
            outcome = finish.outcome
        except ClaimLost:
            raise  # checked right before media_publish: this attempt posted nothing since
        except Exception as exc:
            if ctx.settled is not None:
                return ctx.settled  # media_publish answered with an id: that is final
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
        """Only read whether the post is live (the stored container and the account's media);
        never publishes. See ``instagram_confirm``."""
        account_id = str(connection.metadata.get("instagramBusinessAccountId") or "")
        client = self._client(connection, account_id, ctx)
        reader = GraphReader(
            client,
            account_id,
            initial_delay=self.poll_initial_seconds,
            max_delay=self.poll_max_interval_seconds,
        )
        return await confirm_published(client, reader, request, ctx, self.throttle)

    def _client(self, connection: Connection, account_id: str, ctx: AttemptContext) -> GraphClient:
        """A Graph caller for one account on its login's host, feeding the usage headers to
        the shared throttle."""

        async def note(headers: Mapping[str, str]) -> None:
            await self.throttle.note_usage(account_id, headers)

        login = str(connection.metadata.get("login") or "facebook")
        return GraphClient(
            self._get_session(),
            self._urls.get(login, self._urls["facebook"]),
            token=connection.access_token,
            account_id=account_id,
            timeout_seconds=ctx.call_timeout_seconds,
            app_secret=self._app_secret,
            on_headers=note,
        )
