"""The fake Graph API over HTTP: two hosts (Facebook Login and Instagram Login), tokens,
``appsecret_proof``, usage headers, and faults scripted per call or drawn at random.

    async with FakeGraph() as fake:
        fake.base_url                      # http://127.0.0.1:PORT/v25.0 (graph.facebook.com)
        fake.instagram_base_url            # the graph.instagram.com stand-in, same state
        fake.fail_next("media_publish", code=4, subcode=2207051, commit=True)
        fake.commit_then_drop("media_publish")
        fake.posts[fake.account]           # published media, oldest first

Paths work with or without a ``vNN.N`` prefix; parameters come from the query string, a
form or a JSON body; the token from ``access_token`` or ``Authorization: Bearer`` and only
on its login's host (elsewhere: 190). With ``app_secret`` set, every call needs
``appsecret_proof`` = HMAC-SHA256(token, app secret), hex. Tokens may expire; the
Instagram Login host refreshes them (``tokens.py``) and signs people in (``oauth.py``). A
second ``media_publish`` of a PUBLISHED container answers 100 "already published"
(undocumented; tests must not depend on it). Resumable uploads are not modelled. Call names
for the scenario API are ``CALLS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import random
import re
import secrets
from collections import defaultdict, deque
from types import TracebackType
from typing import Any

from aiohttp import web

from bench.graph_fake.mix import FaultMix
from bench.graph_fake.model import (
    CALLS,
    FACEBOOK,
    INSTAGRAM,
    MESSAGES,
    THROTTLE_CODES,
    Fault,
    GraphFault,
    LoggedRequest,
    buc_header,
    flat,
    missing,
)
from bench.graph_fake.oauth import OAuthApp
from bench.graph_fake.state import GraphState
from bench.graph_fake.tokens import TokenBook

_VERSION = re.compile(r"^v\d+\.\d+$")


class FakeGraph(GraphState, TokenBook, OAuthApp):
    def __init__(
        self,
        *,
        version: str = "v25.0",
        quota_total: int = 50,
        time_scale: float = 1.0,
        app_secret: str | None = None,
        mix: FaultMix | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(quota_total=quota_total, time_scale=time_scale)
        self._init_tokens()
        self._init_oauth()
        self.version = version
        self.app_secret = app_secret
        self.mix = mix
        self.requests: list[LoggedRequest] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._rng = random.Random(seed)
        self._runners: list[web.AppRunner] = []
        self._stopping = asyncio.Event()
        self.base_url = ""
        self.instagram_base_url = ""

    # ---- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> FakeGraph:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self.base_url = await self._serve(FACEBOOK)
        self.instagram_base_url = await self._serve(INSTAGRAM)

    async def _serve(self, login: str) -> str:
        app = web.Application()

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, login)

        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}/{self.version}"

    async def stop(self) -> None:
        self._stopping.set()
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    # ---- scripted faults -----------------------------------------------------------------

    def fail_next(
        self,
        call: str,
        *,
        code: int,
        subcode: int | None = None,
        status: int | None = None,
        message: str | None = None,
        is_transient: bool | None = None,
        error_type: str = "OAuthException",
        commit: bool = False,
        times: int = 1,
        headers: dict[str, str] | None = None,
        regain_minutes: int | None = None,
    ) -> None:
        """The next ``times`` answers to ``call`` are this error; with ``commit`` the call's
        effect happens first (e.g. the post goes live, then 4/2207051 is answered)."""
        if status is None:
            status = 500 if code == 1 else 403 if code == 10 or 200 <= code < 300 else 400
        if is_transient is None:
            is_transient = code in (1, 2) or (code in THROTTLE_CODES and subcode != 2207051)
        hdrs = dict(headers or {})
        if regain_minutes is not None:
            hdrs["X-Business-Use-Case-Usage"] = buc_header(self.account, 100, regain_minutes)
        for _ in range(times):
            error = GraphFault(
                code,
                message or MESSAGES.get(code, "Invalid parameter"),
                subcode=subcode,
                status=status,
                is_transient=is_transient,
                error_type=error_type,
                headers=hdrs,
            )
            self._push(call, Fault("error", commit, error))

    def throttle_bare_next(
        self, call: str, *, retry_after: float | None = None, times: int = 1
    ) -> None:
        """HTTP 429 with no Graph error body (a gateway's answer), optionally with Retry-After
        in seconds; nothing happens."""
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        for _ in range(times):
            self._push(call, Fault("bare", status=429, headers=headers))

    def drop_next(self, call: str, *, commit: bool = False) -> None:
        """Close the connection without answering (after the effect, with ``commit``)."""
        self._push(call, Fault("drop", commit))

    def commit_then_drop(self, call: str) -> None:
        self.drop_next(call, commit=True)

    def hang_next(self, call: str, seconds: float, *, commit: bool = False) -> None:
        """Answer nothing for ``seconds`` (the client times out), then drop the connection."""
        self._push(call, Fault("hang", commit, seconds=seconds))

    def delay_next(self, call: str, seconds: float, *, times: int = 1) -> None:
        """Answer normally, ``seconds`` late (wall time)."""
        for _ in range(times):
            self._push(call, Fault("slow", True, seconds=seconds))

    def set_usage(
        self, *, app: int | None = None, buc: int | None = None, regain_minutes: int | None = None
    ) -> None:
        """Percentages reported by X-App-Usage / X-Business-Use-Case-Usage on every answer."""
        self.app_usage = self.app_usage if app is None else app
        self.buc_usage = self.buc_usage if buc is None else buc
        self.regain_minutes = self.regain_minutes if regain_minutes is None else regain_minutes

    def clear_faults(self) -> None:
        """Forget the scripted faults not used yet."""
        self._faults.clear()

    def calls(self, call: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.call == call]

    def _push(self, call: str, fault: Fault) -> None:
        if call not in CALLS:
            raise ValueError(f"unknown call {call!r}; one of {CALLS}")
        self._faults[call].append(fault)

    # ---- HTTP ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request, login: str) -> web.StreamResponse:
        params, token, via = await request_params(request)
        parts = [p for p in request.path.split("/") if p]
        if parts and _VERSION.match(parts[0]):
            parts = parts[1:]
        call = self._route(request.method, parts)
        entry = LoggedRequest(request.method, "/" + "/".join(parts), call, dict(params))
        entry.token_via, entry.login, entry.at = via, login, self.now()
        self.requests.append(entry)
        if call in ("oauth_authorize", "oauth_access_token") and login == INSTAGRAM:
            answer = self.authorize(params) if call == "oauth_authorize" else None
            answer = answer or self.code_exchange(params)
            entry.status = answer.status
            return answer
        owner = self.tokens.get(token)
        account = owner[0] if owner is not None and owner[1] == login else None
        fault: Fault | None = None
        try:
            if account is None:
                raise GraphFault(
                    190, f"Invalid OAuth access token - Cannot parse access token {token}"
                )
            self.check_expiry(token)
            self._check_proof(token, params.pop("appsecret_proof", None))
            self.check_throttle(account)
            fault = self._next_fault(call, account)
            result: dict[str, Any] | None = None
            if fault is None or fault.commit:
                result = self._token_call(call, token, login, params)
                if result is None:
                    result = self._act(call, account, parts, params)
            if fault is not None and fault.action != "slow":
                response = await self._apply(request, fault, account)
            else:
                if fault is not None:
                    await self._sleep(fault.seconds)
                response = web.json_response(result, headers=self._usage_headers(account))
        except GraphFault as err:
            response = self._error(err, account)
        lost = fault is not None and fault.action in ("drop", "hang")
        entry.status = -1 if lost else response.status  # -1: no answer reached the client
        return response

    def _route(self, method: str, parts: list[str]) -> str:
        if len(parts) == 2 and method == "POST" and parts[1] in ("media", "media_publish"):
            return "create_container" if parts[1] == "media" else "media_publish"
        if len(parts) == 2 and method == "GET" and parts[1] == "content_publishing_limit":
            return "content_publishing_limit"
        if len(parts) == 2 and method == "GET" and parts[1] in ("media", "stories"):
            return "media_list" if parts[1] == "media" else "stories_list"
        if parts == ["oauth", "authorize"] and method == "GET":
            return "oauth_authorize"
        if parts == ["oauth", "access_token"] and method == "POST":
            return "oauth_access_token"
        if parts in (["refresh_access_token"], ["access_token"], ["me"]) and method == "GET":
            return {"access_token": "ig_exchange_token"}.get(parts[0], parts[0])
        if len(parts) == 1 and method == "GET":
            return "container_status" if parts[0] in self.containers else "media_read"
        return "unknown"

    def _act(self, call: str, account: str, parts: list[str], params: dict[str, str]) -> Any:
        node = parts[0] if parts else ""
        if call == "create_container":
            created = self.create(account, node, params)
            if self.mix is not None:
                self.mix.on_create(self, self.containers[created["id"]], self._rng)
            return created
        if call == "media_publish":
            return self.publish(account, node, params)
        if call == "content_publishing_limit":
            return self.limit(account, node, params)
        if call in ("media_list", "stories_list"):
            return self.media_list(account, node, params, stories=call == "stories_list")
        if call == "container_status":
            return self.container_status(account, node, params)
        if call == "media_read":
            return self.media_read(account, node, params)
        raise missing("/".join(parts))

    def _token_call(
        self, call: str, token: str, login: str, params: dict[str, str]
    ) -> dict[str, Any] | None:
        """The token and sign-in calls that need the token itself (None: another call)."""
        if call == "refresh_access_token":
            return self.refresh(token, login, params)
        if call == "ig_exchange_token" and login == INSTAGRAM:
            return self.long_lived(token, params)
        if call == "me":
            return self.me(self.tokens[token][0], params)
        return None

    def _next_fault(self, call: str, account: str) -> Fault | None:
        if self._faults.get(call):
            return self._faults[call].popleft()
        if self.mix is not None:
            return self.mix.draw(call, account, self._rng)
        return None

    def _check_proof(self, token: str, proof: str | None) -> None:
        if self.app_secret is None:
            return
        if proof is None:
            message = "API calls from the server require an appsecret_proof argument"
            raise GraphFault(100, message, error_type="GraphMethodException")
        wanted = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(proof, wanted):
            message = "Invalid appsecret_proof provided in the API argument"
            raise GraphFault(100, message, error_type="GraphMethodException")

    async def _apply(
        self, request: web.Request, fault: Fault, account: str | None
    ) -> web.StreamResponse:
        if fault.action == "error" and fault.error is not None:
            return self._error(fault.error, account)
        if fault.action == "bare":
            return web.Response(
                status=fault.status, text="Too Many Requests", headers=fault.headers
            )
        if fault.action == "hang":
            await self._sleep(fault.seconds)
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)  # never reaches the client

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _error(self, err: GraphFault, account: str | None) -> web.Response:
        body = {**err.body(), "fbtrace_id": secrets.token_urlsafe(12)}
        headers = self._usage_headers(account)
        if err.code == 1 and err.status >= 500:
            headers["WWW-Authenticate"] = (
                'OAuth "Facebook Platform" "unknown_error" "An unknown error has occurred."'
            )
        headers.update(err.headers)
        return web.json_response({"error": body}, status=err.status, headers=headers)

    def _usage_headers(self, account: str | None) -> dict[str, str]:
        app = {"call_count": self.app_usage, "total_cputime": 1, "total_time": 1}
        headers = {"X-App-Usage": flat(app)}
        if account is not None:
            headers["X-Business-Use-Case-Usage"] = buc_header(
                account, self.buc_usage, self.regain_minutes
            )
        return headers


async def request_params(request: web.Request) -> tuple[dict[str, str], str, str]:
    """The parameters (without the token), the token and how it came."""
    params = dict(request.query.items())
    via = "query" if "access_token" in params else ""
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            for key, value in (body or {}).items():
                params[key] = flat(value)
            via = via or ("json" if "access_token" in (body or {}) else "")
        else:
            form = await request.post()
            via = via or ("form" if "access_token" in form else "")
            params.update({k: str(v) for k, v in form.items()})
    token = params.pop("access_token", "")
    auth = request.headers.get("Authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token, via = auth[7:].strip(), "header"
    return params, token, via
