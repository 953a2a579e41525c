"""One ``aiohttp.ClientSession`` per publisher, created lazily and closed by ``close()``."""

from __future__ import annotations

import aiohttp

from herald.platforms import AttemptContext
from herald.services.publisher.platforms.meta.graph import GraphTransport


class Sessions:
    def __init__(self, app_secret: str | None = None) -> None:
        self._app_secret = app_secret
        self._session: aiohttp.ClientSession | None = None

    def transport(self, base_url: str, token: str, ctx: AttemptContext) -> GraphTransport:
        """A Graph caller with one token, each call bounded by the attempt's call timeout."""
        return GraphTransport(
            self._get_session(),
            base_url,
            token=token,
            timeout_seconds=ctx.call_timeout_seconds,
            app_secret=self._app_secret,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        return self._session
