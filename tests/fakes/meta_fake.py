"""What the fake Facebook Pages and Threads servers share: one aiohttp app on loopback, the
fake's clock, tokens, scripted faults per call (the same ``Fault`` and ``GraphFault`` records
as the Instagram fake in ``bench/graph_fake``), faults aimed at the requests whose text holds
a marker (so one end-to-end run can give each job its own fault), the request log and Graph's
error answers.

A subclass names its calls (``CALLS``), routes a request to a call (``route``) and performs it
(``act``); ``text_of`` says which post text a request carries, for marker faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, ClassVar, NoReturn, Self
from urllib.parse import urlencode

from aiohttp import web

from bench.graph_fake.model import MESSAGES, Fault, GraphFault, LoggedRequest
from bench.graph_fake.server import request_params

DAY = 86_400.0


@dataclass
class Token:
    """A token the fake issued: whose it is (a user or a Page id), its kind, when it was
    issued and when it expires (None: no expiry date)."""

    owner: str
    kind: str
    issued_at: float
    expires_at: float | None = None


@dataclass
class _Aimed:
    marker: str
    fault: Fault


class MetaFake:
    CALLS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, version: str = "v1.0") -> None:
        self.version = version
        self.tokens: dict[str, Token] = {}
        self.requests: list[LoggedRequest] = []
        self.base_url = ""
        self.root_url = ""  # unversioned (OAuth endpoints)
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._aimed: dict[str, list[_Aimed]] = defaultdict(list)
        self._offset = 0.0
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    # ---- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        host, bound = self._runner.addresses[0][:2]
        self.root_url = f"http://{host}:{bound}"
        self.base_url = f"{self.root_url}/{self.version}"

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- clock and tokens -----------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (token ages, expiries, quota windows)."""
        self._offset += seconds

    def issue(self, owner: str, kind: str, *, lifetime: float | None) -> str:
        token = f"{kind[:2].upper()}AA{secrets.token_urlsafe(30)}"
        expires = None if lifetime is None else self.now() + lifetime
        self.tokens[token] = Token(owner, kind, self.now(), expires)
        return token

    def revoke(self, token: str) -> None:
        """The token stops working (a password change, a removed role): every call is 190."""
        self.tokens.pop(token, None)

    def token_of(self, token: str, *kinds: str) -> Token:
        found = self.tokens.get(token)
        if found is None:
            raise GraphFault(190, "Invalid OAuth access token - Cannot parse access token")
        if found.expires_at is not None and found.expires_at <= self.now():
            raise GraphFault(
                190, "Error validating access token: Session has expired.", subcode=463
            )
        if kinds and found.kind not in kinds:
            raise GraphFault(190, f"This endpoint does not accept a {found.kind} access token")
        return found

    def consent(self, params: dict[str, str], app_id: str, code: str) -> NoReturn:
        """The consent page, the user saying yes: the browser sent back to ``redirect_uri``
        with a code and the caller's ``state`` (a 302, raised)."""
        back = params.get("redirect_uri", "")
        if params.get("client_id") != app_id or not back.startswith(("http://", "https://")):
            raise GraphFault(100, "Invalid client_id or redirect_uri")
        query = urlencode({"code": code, "state": params.get("state", "")})
        raise web.HTTPFound(f"{back}{'&' if '?' in back else '?'}{query}")

    # ---- scripted faults ------------------------------------------------------------------

    def fail_next(
        self,
        call: str,
        *,
        code: int | str,
        subcode: int | None = None,
        status: int | None = None,
        message: str | None = None,
        is_transient: bool | None = None,
        commit: bool = False,
        times: int = 1,
        headers: dict[str, str] | None = None,
        marker: str | None = None,
    ) -> None:
        """The next ``times`` answers to ``call`` (or, with ``marker``, to those of its requests
        whose text holds it) are this error; with ``commit`` the effect happens first."""
        for _ in range(times):
            error = fault_error(code, subcode, status, message, is_transient, headers)
            self._push(call, Fault("error", commit, error), marker)

    def drop_next(self, call: str, *, commit: bool = False, marker: str | None = None) -> None:
        """Close the connection without answering (after the effect, with ``commit``)."""
        self._push(call, Fault("drop", commit), marker)

    def commit_then_drop(self, call: str, *, marker: str | None = None) -> None:
        self.drop_next(call, commit=True, marker=marker)

    def hang_next(
        self, call: str, seconds: float, *, commit: bool = False, marker: str | None = None
    ) -> None:
        """Answer nothing for ``seconds`` (the client times out), then drop the connection."""
        self._push(call, Fault("hang", commit, seconds=seconds), marker)

    def calls(self, call: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.call == call]

    def _push(self, call: str, fault: Fault, marker: str | None) -> None:
        if call not in self.CALLS:
            raise ValueError(f"unknown call {call!r}; one of {self.CALLS}")
        if marker is None:
            self._faults[call].append(fault)
        else:
            self._aimed[call].append(_Aimed(marker, fault))

    def _next_fault(self, call: str, params: dict[str, str]) -> Fault | None:
        aimed = self._aimed.get(call)
        if aimed:
            text = self.text_of(call, params)
            for i, entry in enumerate(aimed):
                if entry.marker in text:
                    return aimed.pop(i).fault
        if self._faults.get(call):
            return self._faults[call].popleft()
        return None

    # ---- for subclasses -------------------------------------------------------------------

    def route(self, method: str, parts: list[str], params: dict[str, str]) -> str:
        raise NotImplementedError

    def act(
        self, call: str, parts: list[str], params: dict[str, str], token: str, request: web.Request
    ) -> Any:
        raise NotImplementedError

    def text_of(self, call: str, params: dict[str, str]) -> str:
        """The post text a request carries (for faults aimed by marker)."""
        return " ".join(params.get(k, "") for k in ("text", "message", "caption", "description"))

    def usage_headers(self, call: str, token: str) -> dict[str, str]:
        return {}

    # ---- HTTP -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params, token, via = await request_params(request)
        auth = request.headers.get("Authorization", "")
        if not token and auth.startswith("OAuth "):
            token, via = auth[6:].strip(), "oauth-header"
        parts = [p for p in request.path.split("/") if p]
        versioned = bool(parts) and parts[0] == self.version
        if versioned:
            parts = parts[1:]
        call = self.route(request.method, parts, params) if versioned else self.route_root(parts)
        entry = LoggedRequest(request.method, "/" + "/".join(parts), call, dict(params))
        entry.token_via, entry.at = via, self.now()
        self.requests.append(entry)
        fault: Fault | None = None
        try:
            fault = self._next_fault(call, params)
            result: Any = None
            if fault is None or fault.commit:
                result = self.act(call, parts, params, token, request)
            if fault is None:
                response = web.json_response(result, headers=self.usage_headers(call, token))
            else:
                response = await self._apply(request, fault, call, token)
        except GraphFault as err:
            response = self._error(err, call, token)
        lost = fault is not None and fault.action in ("drop", "hang")
        entry.status = -1 if lost else response.status  # -1: no answer reached the client
        return response

    def route_root(self, parts: list[str]) -> str:
        """Unversioned paths (OAuth); none by default."""
        return "unknown"

    async def _apply(
        self, request: web.Request, fault: Fault, call: str, token: str
    ) -> web.StreamResponse:
        if fault.action == "error" and fault.error is not None:
            return self._error(fault.error, call, token)
        if fault.action == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.seconds)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)  # never reaches the client

    def _error(self, err: GraphFault, call: str, token: str) -> web.Response:
        body = {**err.body(), "fbtrace_id": secrets.token_urlsafe(12)}
        headers = {**self.usage_headers(call, token), **err.headers}
        return web.json_response({"error": body}, status=err.status, headers=headers)


def stamp(at: float) -> str:
    """Graph's time format (``2026-01-31T12:00:00+0000``)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def fault_error(
    code: int | str,
    subcode: int | None,
    status: int | None,
    message: str | None,
    is_transient: bool | None,
    headers: dict[str, str] | None,
) -> GraphFault:
    """Graph's error answer for a scripted fault; HTTP status and ``is_transient`` as Meta
    sends them when not given (throttles and 190 come with HTTP 400, code 1 with 500)."""
    number = code if isinstance(code, int) else 100
    if status is None:
        status = 500 if number in (1, 2) else 403 if number == 10 or 200 <= number < 300 else 400
    if is_transient is None:
        is_transient = number in (1, 2, 4, 17, 32, 613, 80001)
    return GraphFault(
        code,  # Threads sends some codes as strings
        message or MESSAGES.get(number, "Invalid parameter"),
        subcode=subcode,
        status=status,
        is_transient=is_transient,
        headers=headers,
    )
