"""What a Meta platform's publisher holds: one ``aiohttp.ClientSession``, created lazily and
closed by ``close()``, and (for Facebook Pages and Threads) the throttle every publisher copy
shares, fed by the usage headers and the throttle answers of every call."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from herald.platforms import AttemptContext, Connection, Outcome, PublishOutcome
from herald.services.publisher.platforms.meta.calls import Caller, Classifier
from herald.services.publisher.platforms.meta.graph import GraphTransport, HeadersHook
from herald.services.publisher.platforms.meta.throttle import Throttle


class Sessions:
    def __init__(self, app_secret: str | None = None, throttle: Throttle | None = None) -> None:
        self._app_secret = app_secret
        self._session: aiohttp.ClientSession | None = None
        self.throttle = throttle

    def transport(
        self,
        base_url: str,
        token: str,
        ctx: AttemptContext,
        on_headers: HeadersHook | None = None,
    ) -> GraphTransport:
        """A Graph caller with one token, each call bounded by the attempt's call timeout."""
        return GraphTransport(
            self._get_session(),
            base_url,
            token=token,
            timeout_seconds=ctx.call_timeout_seconds,
            app_secret=self._app_secret,
            on_headers=on_headers,
        )

    def caller(
        self,
        base_url: str,
        connection: Connection,
        ctx: AttemptContext,
        account: str,
        classify: Classifier,
        irreversible: frozenset[str],
    ) -> Caller:
        """Classified calls for one account; with a throttle, its usage headers and throttle
        answers pause the account for every copy."""
        throttle = self.throttle
        if throttle is None:
            transport = self.transport(base_url, connection.access_token, ctx)
            return Caller(transport, classify, irreversible, account)

        async def note(headers: Mapping[str, str]) -> None:
            await throttle.note_usage(account, headers)

        async def pause(seconds: float) -> None:
            await throttle.pause(account, seconds, account)

        transport = self.transport(base_url, connection.access_token, ctx, note)
        return Caller(transport, classify, irreversible, account, on_throttle=pause)

    async def paused(self, account: str, ctx: AttemptContext) -> PublishOutcome | None:
        """``rate_limited`` while the shared throttle pauses this account (no call made)."""
        if self.throttle is None:
            return None
        wait = await self.throttle.paused_for(account)
        if wait <= 0:
            return None
        return PublishOutcome(
            Outcome.RATE_LIMITED,
            retry_after_seconds=wait,
            error_message="throttled (a rate limit or the usage headers): not calling for now",
            may_be_live=ctx.may_be_live,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session
