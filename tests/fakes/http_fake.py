"""What the fake Bluesky PDS and Mastodon instance share: one aiohttp app on loopback, a
clock that tests can move, a request log, and scripted faults per call (an error answer, a
dropped connection, a hang), optionally aimed at the requests whose post text holds a marker
so one end-to-end run can give each job its own fault. With ``commit`` the call's effect
happens before the fault (the post is made, then the answer is lost).

A subclass routes a request to a call name (``route``), performs it (``act``, raising
``Refusal`` for an error answer) and says which post text a request carries (``text_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self

from aiohttp import web


class Refusal(Exception):
    """An error answer: HTTP status, JSON body and headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(str(body))
        self.status, self.body, self.headers = status, body, headers or {}


@dataclass
class Fault:
    action: str  # "error" | "drop" | "hang"
    commit: bool = False
    refusal: Refusal | None = None
    seconds: float = 0.0


@dataclass
class Logged:
    method: str
    path: str
    call: str
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0  # 0 while unanswered, -1 when the connection was dropped


class HttpFake:
    CALLS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.tls = tls  # serve https with this context
        self.base_url = ""
        self.requests: list[Logged] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._aimed: dict[str, list[tuple[str, Fault]]] = defaultdict(list)
        self._offset = 0.0
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self, port: int = 0) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port, ssl_context=self.tls).start()
        host, bound = self._runner.addresses[0][:2]
        self.base_url = f"{'https' if self.tls else 'http'}://{host}:{bound}"

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    # ---- faults -------------------------------------------------------------------------

    def fail_next(
        self,
        call: str,
        status: int,
        body: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
        commit: bool = False,
        marker: str | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` answers to ``call`` (aimed by ``marker``) are this error."""
        for _ in range(times):
            self._push(call, Fault("error", commit, Refusal(status, body, headers)), marker)

    def drop_next(self, call: str, *, commit: bool = False, marker: str | None = None) -> None:
        """Close the connection without answering (after the effect, with ``commit``)."""
        self._push(call, Fault("drop", commit), marker)

    def hang_next(
        self, call: str, seconds: float, *, commit: bool = False, marker: str | None = None
    ) -> None:
        """Answer nothing for ``seconds`` (the client times out), then drop the connection."""
        self._push(call, Fault("hang", commit, seconds=seconds), marker)

    def calls(self, call: str) -> list[Logged]:
        return [r for r in self.requests if r.call == call]

    def _push(self, call: str, fault: Fault, marker: str | None) -> None:
        if call not in self.CALLS:
            raise ValueError(f"unknown call {call!r}; one of {self.CALLS}")
        if marker is None:
            self._faults[call].append(fault)
        else:
            self._aimed[call].append((marker, fault))

    def _next_fault(self, call: str, body: Any) -> Fault | None:
        aimed = self._aimed.get(call)
        if aimed:
            text = self.text_of(call, body)
            for i, (marker, _fault) in enumerate(aimed):
                if marker in text:
                    return aimed.pop(i)[1]
        if self._faults.get(call):
            return self._faults[call].popleft()
        return None

    # ---- for subclasses ---------------------------------------------------------------

    def route(self, method: str, path: str) -> str:
        raise NotImplementedError

    async def read_body(self, call: str, request: web.Request) -> Any:
        """The request's body as the call takes it (JSON by default)."""
        if request.method != "POST" or not request.can_read_body:
            return dict(request.query)
        try:
            return await request.json()
        except ValueError:
            raise self.bad_request("request body is not JSON") from None

    def bad_request(self, message: str) -> Refusal:
        return Refusal(400, {"error": message})

    def act(self, call: str, request: web.Request, body: Any) -> web.StreamResponse | Any:
        raise NotImplementedError

    def text_of(self, call: str, body: Any) -> str:
        return ""

    def headers_for(self, call: str, request: web.Request) -> dict[str, str]:
        """Headers on every answer to ``call`` (rate-limit headers)."""
        return {}

    # ---- HTTP -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        call = self.route(request.method, request.path)
        entry = Logged(request.method, request.path, call, None, dict(request.headers))
        self.requests.append(entry)
        fault: Fault | None = None
        try:
            body = await self.read_body(call, request)
            entry.body = body
            fault = self._next_fault(call, body)
            result: Any = None
            if fault is None or fault.commit:
                result = self.act(call, request, body)
                if asyncio.iscoroutine(result):
                    result = await result
            if fault is not None:
                response = await self._apply(request, fault)
            elif isinstance(result, web.StreamResponse):
                response = result
            else:
                response = web.json_response(result)
        except Refusal as refused:
            response = web.json_response(refused.body, status=refused.status)
            response.headers.update(refused.headers)
        for k, v in self.headers_for(call, request).items():
            response.headers.setdefault(k, v)
        lost = fault is not None and fault.action in ("drop", "hang")
        entry.status = -1 if lost else response.status
        return response

    async def _apply(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.action == "error" and fault.refusal is not None:
            refused = fault.refusal
            return web.json_response(refused.body, status=refused.status, headers=refused.headers)
        if fault.action == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.seconds)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)  # never reaches the client
