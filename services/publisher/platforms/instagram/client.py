"""The Graph API caller for one Instagram attempt: the Meta transport (``meta.graph``: token
handling, timeouts, scrubbing) with every failure classified by ``instagram_errors``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from herald.services.publisher.platforms.instagram.errors import (
    Call,
    Classification,
    classify,
    classify_transport,
)
from herald.services.publisher.platforms.meta.graph import (
    ErrorAnswer,
    GraphError,
    GraphTransport,
    HeadersHook,
    NoAnswer,
)


class GraphCallError(Exception):
    """A Graph call that failed: either an error answer or no answer at all."""

    def __init__(
        self,
        call: Call,
        classification: Classification,
        error: GraphError | None,
        transport: str | None = None,
    ) -> None:
        super().__init__(classification.rule)
        self.call = call
        self.classification = classification
        self.error = error
        self.transport = transport

    @property
    def message(self) -> str:
        if self.error is not None:
            return self.error.describe()
        return f"{self.call.value}: {self.transport or 'no answer'}"

    def response(self) -> dict[str, Any]:
        """The provider's answer for the attempt row (scrubbed by the client already)."""
        if self.error is None:
            return {"call": self.call.value, "transport_error": self.transport}
        return {
            "call": self.call.value,
            "http_status": self.error.http_status,
            "body": self.error.body,
        }


class GraphClient:
    """Calls Graph under ``base_url`` (version included) with one account's token; every
    failure comes back classified as a ``GraphCallError``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        token: str,
        account_id: str,
        timeout_seconds: float,
        app_secret: str | None = None,
        on_headers: HeadersHook | None = None,
    ) -> None:
        self._transport = GraphTransport(
            session,
            base_url,
            token=token,
            timeout_seconds=timeout_seconds,
            app_secret=app_secret,
            on_headers=on_headers,
        )
        self._account_id = account_id
        self.timeout_seconds = timeout_seconds
        self.scrub = self._transport.scrub

    async def get(
        self, call: Call, path: str, params: Mapping[str, str], *, timeout: float | None = None
    ) -> dict[str, Any]:
        try:
            return await self._transport.get(path, params, timeout=timeout)
        except (NoAnswer, ErrorAnswer) as exc:
            raise self._failure(call, exc) from None

    async def post(self, call: Call, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            return await self._transport.post(path, params)
        except (NoAnswer, ErrorAnswer) as exc:
            raise self._failure(call, exc) from None

    def _failure(self, call: Call, exc: NoAnswer | ErrorAnswer) -> GraphCallError:
        if isinstance(exc, NoAnswer):
            return GraphCallError(call, classify_transport(call, exc.what), None, exc.what)
        classification = classify(call, exc.error, exc.headers, self._account_id)
        return GraphCallError(call, classification, exc.error)
