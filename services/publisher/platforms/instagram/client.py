"""A thin Graph API caller for one attempt: token handling, timeouts, error capture and
scrubbing.

The access token travels in the `Authorization: Bearer` header (never in a URL or a form,
where proxies and error messages keep it); with an app secret, every call carries
`appsecret_proof` = HMAC-SHA256(token, app secret) in hex. Every error message and error body
handed back is scrubbed of the token (raw and URL-encoded); successful answers carry ids only
and are handed back as they came.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Mapping
from hashlib import sha256
from typing import Any

import aiohttp

from herald.platforms import Scrubber
from herald.services.publisher.platforms.instagram.errors import (
    Call,
    Classification,
    GraphError,
    classify,
    classify_transport,
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


HeadersHook = Callable[[Mapping[str, str]], Awaitable[None]]


class GraphClient:
    """Calls Graph under ``base_url`` (version included) with one account's token."""

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
        self._session = session
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._proof = (
            {"appsecret_proof": hmac.new(app_secret.encode(), token.encode(), sha256).hexdigest()}
            if app_secret
            else {}
        )
        self._account_id = account_id
        self.timeout_seconds = timeout_seconds
        self._on_headers = on_headers
        self.scrub = Scrubber(token)

    async def get(
        self, call: Call, path: str, params: Mapping[str, str], *, timeout: float | None = None
    ) -> dict[str, Any]:
        query = {**params, **self._proof}
        return await self._request(call, "GET", path, query=query, form=None, timeout=timeout)

    async def post(self, call: Call, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        form = {**params, **self._proof}
        return await self._request(call, "POST", path, query=None, form=form, timeout=None)

    async def _request(
        self,
        call: Call,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
        timeout: float | None,
    ) -> dict[str, Any]:
        url = f"{self._base}/{path.lstrip('/')}"
        limit = aiohttp.ClientTimeout(total=timeout or self.timeout_seconds)
        try:
            async with self._session.request(
                method, url, params=query, data=form, headers=self._headers, timeout=limit
            ) as resp:
                headers: Mapping[str, str] = resp.headers
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            timed_out = classify_transport(call, "timeout")
            raise GraphCallError(call, timed_out, None, "timeout") from None
        except aiohttp.ClientError as exc:
            what = self.scrub.text(f"{type(exc).__name__}: {exc}")
            raise GraphCallError(call, classify_transport(call, what), None, what) from None
        if self._on_headers is not None:
            await self._on_headers(headers)
        body = _decode(raw)
        if 200 <= status < 300 and isinstance(body, dict) and "error" not in body:
            return body  # ids and fields, never scrubbed
        error = GraphError.parse(status, self.scrub.document(body))  # the free text is scrubbed
        classification = classify(call, error, headers, self._account_id)
        raise GraphCallError(call, classification, error)


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:300].decode("utf-8", errors="replace")
