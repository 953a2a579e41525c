"""Graph's error envelope and the HTTP caller every Meta platform uses (Instagram, Facebook
Pages and Threads speak the same Graph dialect).

The access token travels in the `Authorization: Bearer` header (never in a URL or a form,
where proxies and error messages keep it); with an app secret, every call also carries
`appsecret_proof` = HMAC-SHA256(token, app secret) in hex. Error messages and error bodies
are scrubbed of the token (raw and URL-encoded) before anyone sees them; successful answers
carry ids and fields and are handed back as they came.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import aiohttp

from herald.platforms import Scrubber

HeadersHook = Callable[[Mapping[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class GraphError:
    """A parsed Graph error envelope (every field optional: bodies are not always envelopes)."""

    http_status: int | None
    code: int | None = None
    subcode: int | None = None
    message: str = ""
    type: str | None = None
    is_transient: bool | None = None
    fbtrace_id: str | None = None
    user_title: str | None = None
    user_msg: str | None = None
    body: Any = None
    # A code Graph sends as a string (Threads: ``THREADS_API__LINK_LIMIT_EXCEEDED``).
    code_name: str | None = None

    @classmethod
    def parse(cls, http_status: int | None, body: Any) -> GraphError:
        err = body.get("error") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            return cls(http_status=http_status, message=short(body), body=body)
        transient = err.get("is_transient")
        raw_code = err.get("code")
        return cls(
            http_status=http_status,
            code=as_int(raw_code),
            subcode=as_int(err.get("error_subcode")),
            message=str(err.get("message") or ""),
            type=_as_str(err.get("type")),
            is_transient=transient if isinstance(transient, bool) else None,
            fbtrace_id=_as_str(err.get("fbtrace_id")),
            user_title=_as_str(err.get("error_user_title")),
            user_msg=_as_str(err.get("error_user_msg")),
            body=body,
            code_name=raw_code if isinstance(raw_code, str) and as_int(raw_code) is None else None,
        )

    def describe(self) -> str:
        parts = [self.message or "Graph API error"]
        if self.user_msg and self.user_msg not in parts[0]:
            parts.append(self.user_msg)
        return ": ".join(parts)


class NoAnswer(Exception):
    """A call that got no answer: timeout, refused or dropped connection (scrubbed text)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class ErrorAnswer(Exception):
    """A call answered with an error (its envelope parsed and scrubbed, its headers)."""

    def __init__(self, error: GraphError, headers: Mapping[str, str]) -> None:
        super().__init__(error.describe())
        self.error = error
        self.headers = headers


class GraphTransport:
    """Calls Graph under ``base_url`` (version included) with one token."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        *,
        token: str,
        timeout_seconds: float,
        app_secret: str | None = None,
        on_headers: HeadersHook | None = None,
    ) -> None:
        self._session = session
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._oauth = {"Authorization": f"OAuth {token}"}
        self._proof = (
            {"appsecret_proof": hmac.new(app_secret.encode(), token.encode(), sha256).hexdigest()}
            if app_secret
            else {}
        )
        self.timeout_seconds = timeout_seconds
        self._on_headers = on_headers
        self.scrub = Scrubber(token)

    def oauth_header(self) -> dict[str, str]:
        """The token as Meta's upload hosts want it (``Authorization: OAuth``)."""
        return dict(self._oauth)

    async def get(
        self, path: str, params: Mapping[str, str], *, timeout: float | None = None
    ) -> dict[str, Any]:
        query = {**params, **self._proof}
        return await self.request("GET", path, query=query, form=None, timeout=timeout)

    async def post(self, path: str, params: Mapping[str, str]) -> dict[str, Any]:
        form = {**params, **self._proof}
        return await self.request("POST", path, query=None, form=form, timeout=None)

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None,
        form: Mapping[str, str] | None,
        timeout: float | None,
        url: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The answer's body; raises ``NoAnswer`` or ``ErrorAnswer``. ``url`` replaces the
        base (a platform's upload host); ``headers`` replace the Bearer header."""
        target = url or f"{self.base_url}/{path.lstrip('/')}"
        limit = aiohttp.ClientTimeout(total=timeout or self.timeout_seconds)
        try:
            async with self._session.request(
                method,
                target,
                params=query,
                data=form,
                headers=self._headers if headers is None else headers,
                timeout=limit,
            ) as resp:
                answered: Mapping[str, str] = resp.headers
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise NoAnswer("timeout") from None
        except aiohttp.ClientError as exc:
            raise NoAnswer(self.scrub.text(f"{type(exc).__name__}: {exc}")) from None
        if self._on_headers is not None:
            await self._on_headers(answered)
        body = _decode(raw)
        if 200 <= status < 300 and isinstance(body, dict) and "error" not in body:
            return body  # ids and fields, never scrubbed
        raise ErrorAnswer(GraphError.parse(status, self.scrub.document(body)), answered)


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def _as_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def short(body: Any, limit: int = 300) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text[:limit]


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:300].decode("utf-8", errors="replace")
