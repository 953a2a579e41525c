"""A local fake of the Instagram Graph API (content publishing), for tests.

Behaves like the documented API (reference §11): paths with or without a ``vNN.N`` prefix,
parameters from the query string, a form body or a JSON body, the token from
``access_token`` or ``Authorization: Bearer``; containers that go IN_PROGRESS → FINISHED
(or ERROR / EXPIRED) → PUBLISHED; the publishing quota over a rolling 24 h; the error envelope
with ``code``/``error_subcode``/``type``/``is_transient``/``fbtrace_id``; usage headers.

    async with FakeGraph() as fake:
        fake.base_url                      # http://127.0.0.1:PORT/v25.0
        fake.fail_next("media_publish", code=4, subcode=2207051, commit=True)
        fake.commit_then_drop("media_publish")
        fake.posts[fake.account]           # published media, oldest first

Call names for the scenario API: ``create_container`` (POST /{ig}/media), ``container_status``
(GET /{container}), ``media_publish``, ``content_publishing_limit``, ``media_read``
(GET /{media}), ``media_list`` (GET /{ig}/media), ``stories_list`` (GET /{ig}/stories).
A second ``media_publish`` of a PUBLISHED container answers 100 "already published" (the real
behaviour is undocumented; tests must not depend on it). Resumable uploads are not modelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlparse

from aiohttp import web

DEFAULT_ACCOUNT = "17841400000000001"
DEFAULT_TOKEN = "EAAGfakeSECRETtoken0001xyz" + "0" * 16  # a plausible length
CALLS = (
    "create_container",
    "container_status",
    "media_publish",
    "content_publishing_limit",
    "media_read",
    "media_list",
    "stories_list",
)
DAY = 86_400.0
_VERSION = re.compile(r"^v\d+\.\d+$")
_THROTTLE = {4, 17, 32, 341, 613, 80001, 80002}
_MESSAGES = {
    1: "An unknown error has occurred.",
    2: "An unexpected error has occurred. Please retry your request later.",
    4: "Application request limit reached",
    9: "You reached maximum number of posts that is allowed to be published by Content "
    "Publishing API.",
    17: "User request limit reached",
    32: "Page request limit reached",
    190: "Error validating access token: Session has expired.",
    368: "The action attempted has been deemed abusive or is otherwise disallowed",
    613: "Calls to this api have exceeded the rate limit.",
    9004: "Only photo or video can be accepted as media type.",
    9007: "The media is not ready for publishing, please wait for a moment",
    80002: "There have been too many calls to this Instagram account.",
}


class GraphFault(Exception):
    """Raised inside the fake to answer a Graph error envelope."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        subcode: int | None = None,
        status: int = 400,
        is_transient: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.subcode = code, message, subcode
        self.status, self.is_transient = status, is_transient


@dataclass
class Fault:
    action: str  # "error" | "drop" | "hang"
    commit: bool = False
    code: int = 1
    subcode: int | None = None
    status: int = 400
    message: str = ""
    is_transient: bool | None = None
    error_type: str = "OAuthException"
    headers: dict[str, str] = field(default_factory=dict)
    hang_seconds: float = 0.0


@dataclass
class Container:
    id: str
    account: str
    kind: str  # IMAGE | VIDEO | REELS | CAROUSEL | STORIES
    params: dict[str, str]
    created_at: float
    ready_at: float
    polls_needed: int = 0
    polls: int = 0
    status_code: str = "IN_PROGRESS"
    error_text: str | None = None
    expired: bool = False
    is_carousel_item: bool = False
    children: list[str] = field(default_factory=list)
    media_id: str | None = None


@dataclass
class Media:
    id: str
    account: str
    container_id: str | None
    caption: str
    media_type: str
    product_type: str  # FEED | REELS | STORY
    timestamp: float
    permalink: str


@dataclass
class LoggedRequest:
    method: str
    path: str
    call: str
    params: dict[str, str]  # without the token
    status: int = 0


class FakeGraph:
    def __init__(self, *, version: str = "v25.0", quota_total: int = 50) -> None:
        self.version = version
        self.quota_total = quota_total
        self.account = DEFAULT_ACCOUNT
        self.token = DEFAULT_TOKEN
        self.tokens: dict[str, str] = {DEFAULT_TOKEN: DEFAULT_ACCOUNT}
        self.containers: dict[str, Container] = {}
        self.media: dict[str, Media] = {}
        self.posts: dict[str, list[Media]] = defaultdict(list)
        self.requests: list[LoggedRequest] = []
        self.app_usage = 1
        self.buc_usage = 1
        self.regain_minutes = 0
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._processing: dict[str | None, tuple[float, int]] = {None: (0.0, 0)}
        self._container_errors: deque[str] = deque()
        self._container_expiries = 0
        self._quota_used: dict[str, int] = {}
        self._offset = 0.0
        self._ids = itertools.count(17_900_000_000_000_000)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.base_url = ""

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
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}/{self.version}"

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # ---- scenario API -------------------------------------------------------------------

    def add_account(self, account_id: str, token: str) -> None:
        self.tokens[token] = account_id

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
            is_transient = code in (1, 2) or (code in _THROTTLE and subcode != 2207051)
        hdrs = dict(headers or {})
        if regain_minutes is not None:
            hdrs["X-Business-Use-Case-Usage"] = self._buc_header(100, regain_minutes)
        for _ in range(times):
            self._push(
                call,
                Fault(
                    "error",
                    commit,
                    code,
                    subcode,
                    status,
                    message or _MESSAGES.get(code, "Invalid parameter"),
                    is_transient,
                    error_type,
                    hdrs,
                ),
            )

    def drop_next(self, call: str, *, commit: bool = False) -> None:
        """Close the connection without answering (after the effect, with ``commit``)."""
        self._push(call, Fault("drop", commit))

    def commit_then_drop(self, call: str) -> None:
        self.drop_next(call, commit=True)

    def hang_next(self, call: str, seconds: float, *, commit: bool = False) -> None:
        """Answer nothing for ``seconds`` (the client times out), then drop the connection."""
        self._push(call, Fault("hang", commit, hang_seconds=seconds))

    def container_processing(
        self, seconds: float = 0.0, *, polls: int = 0, media_type: str | None = None
    ) -> None:
        """New containers (of ``media_type``, or all) stay IN_PROGRESS this long / this many
        status reads."""
        self._processing[media_type] = (seconds, polls)

    def container_fails_next(self, subcode: int = 2207026, message: str | None = None) -> None:
        """The next container created ends in ERROR when processing completes."""
        self._container_errors.append(
            message or f"Error: Media upload has failed with error code {subcode}"
        )

    def container_expires_next(self) -> None:
        """The next container created reads EXPIRED (as if 24 h had passed)."""
        self._container_expiries += 1

    def expire(self, container_id: str) -> None:
        self.containers[container_id].expired = True

    def set_quota_used(self, used: int, account: str | None = None) -> None:
        self._quota_used[account or self.account] = used

    def seed_posts(
        self,
        ages_seconds: list[float],
        *,
        caption: str = "earlier post",
        account: str | None = None,
    ) -> list[Media]:
        """Posts published ``ages_seconds`` ago (they count against the quota)."""
        return [
            self._add_media(
                account or self.account, None, caption, "IMAGE", "FEED", self.now() - age
            )
            for age in ages_seconds
        ]

    def set_usage(
        self, *, app: int | None = None, buc: int | None = None, regain_minutes: int | None = None
    ) -> None:
        """Percentages reported by X-App-Usage / X-Business-Use-Case-Usage on every answer."""
        self.app_usage = self.app_usage if app is None else app
        self.buc_usage = self.buc_usage if buc is None else buc
        self.regain_minutes = self.regain_minutes if regain_minutes is None else regain_minutes

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (containers expire after 24 h, the quota window rolls)."""
        self._offset += seconds

    def now(self) -> float:
        return datetime.now(UTC).timestamp() + self._offset

    def calls(self, call: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.call == call]

    def quota_usage(self, account: str) -> int:
        if account in self._quota_used:
            return self._quota_used[account]
        since = self.now() - DAY
        return sum(1 for m in self.posts[account] if m.timestamp > since)

    def _push(self, call: str, fault: Fault) -> None:
        if call not in CALLS:
            raise ValueError(f"unknown call {call!r}; one of {CALLS}")
        self._faults[call].append(fault)

    # ---- HTTP ---------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        params = await _params(request)
        token = params.pop("access_token", "") or _bearer(request)
        parts = [p for p in request.path.split("/") if p]
        if parts and _VERSION.match(parts[0]):
            parts = parts[1:]
        call, action = self._route(request.method, parts)
        entry = LoggedRequest(request.method, "/" + "/".join(parts), call, dict(params))
        self.requests.append(entry)
        account = self.tokens.get(token)
        try:
            if account is None:
                raise GraphFault(190, f"Malformed access token {token}")
            fault = self._faults[call].popleft() if self._faults.get(call) else None
            result: dict[str, Any] | None = None
            if fault is None or fault.commit:
                result = await action(account, parts, params)
            if fault is not None:
                return await self._apply(request, fault, account, entry)
            response = web.json_response(result, headers=self._usage_headers(account))
        except GraphFault as err:
            response = self._error(err, account)
        entry.status = response.status
        return response

    def _route(self, method: str, parts: list[str]) -> tuple[str, _Action]:
        if method == "POST" and len(parts) == 2 and parts[1] == "media":
            return "create_container", self._create
        if method == "POST" and len(parts) == 2 and parts[1] == "media_publish":
            return "media_publish", self._publish
        if method == "GET" and len(parts) == 2 and parts[1] == "content_publishing_limit":
            return "content_publishing_limit", self._limit
        if method == "GET" and len(parts) == 2 and parts[1] in ("media", "stories"):
            return ("media_list" if parts[1] == "media" else "stories_list"), self._list
        if method == "GET" and len(parts) == 1 and parts[0] in self.containers:
            return "container_status", self._container_status
        if method == "GET" and len(parts) == 1:
            return "media_read", self._media_read
        return "unknown", self._unsupported

    async def _apply(
        self, request: web.Request, fault: Fault, account: str | None, entry: LoggedRequest
    ) -> web.StreamResponse:
        if fault.action == "error":
            err = GraphFault(
                fault.code,
                fault.message,
                subcode=fault.subcode,
                status=fault.status,
                is_transient=fault.is_transient,
            )
            response = self._error(err, account, fault.error_type, fault.headers)
            entry.status = response.status
            return response
        if fault.action == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.hang_seconds)
        entry.status = -1  # no answer
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)  # never reaches the client

    def _error(
        self,
        err: GraphFault,
        account: str | None,
        error_type: str = "OAuthException",
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        body: dict[str, Any] = {"message": err.message, "type": error_type, "code": err.code}
        if err.subcode is not None:
            body["error_subcode"] = err.subcode
        if err.is_transient is not None:
            body["is_transient"] = err.is_transient
        if err.subcode and err.subcode >= 2207000:
            body["error_user_title"] = err.message[:60]
            body["error_user_msg"] = err.message
        body["fbtrace_id"] = secrets.token_urlsafe(12)
        hdrs = self._usage_headers(account)
        if err.code == 1 and err.status >= 500:
            hdrs["WWW-Authenticate"] = (
                'OAuth "Facebook Platform" "unknown_error" "An unknown error has occurred."'
            )
        hdrs.update(headers or {})
        return web.json_response({"error": body}, status=err.status, headers=hdrs)

    def _usage_headers(self, account: str | None) -> dict[str, str]:
        app = {"call_count": self.app_usage, "total_cputime": 1, "total_time": 1}
        headers = {"X-App-Usage": json.dumps(app)}
        if account is not None:
            headers["X-Business-Use-Case-Usage"] = self._buc_header(
                self.buc_usage, self.regain_minutes, account
            )
        return headers

    def _buc_header(self, usage: int, regain: int, account: str | None = None) -> str:
        entry = {
            "type": "instagram",
            "call_count": usage,
            "total_cputime": 1,
            "total_time": 1,
            "estimated_time_to_regain_access": regain,
        }
        return json.dumps({account or self.account: [entry]})

    # ---- endpoints ----------------------------------------------------------------------

    async def _create(
        self, account: str, parts: list[str], params: dict[str, str]
    ) -> dict[str, Any]:
        self._own(account, parts[0])
        since = self.now() - DAY
        if (
            sum(
                1 for c in self.containers.values() if c.account == account and c.created_at > since
            )
            >= 400
        ):
            raise GraphFault(9, "An Instagram account can only create 400 containers in 24 h")
        kind, child = self._validate(account, params)
        seconds, polls = self._processing.get(kind, self._processing[None])
        now = self.now()
        container = Container(
            id=str(next(self._ids)),
            account=account,
            kind=kind,
            params=dict(params),
            created_at=now,
            ready_at=now + seconds,
            polls_needed=polls,
            is_carousel_item=child,
            children=[c for c in params.get("children", "").split(",") if c],
        )
        if self._container_errors:
            container.error_text = self._container_errors.popleft()
        if self._container_expiries:
            self._container_expiries -= 1
            container.expired = True
        self.containers[container.id] = container
        return {"id": container.id}

    def _validate(self, account: str, p: dict[str, str]) -> tuple[str, bool]:
        child = p.get("is_carousel_item", "").lower() == "true"
        kind = (p.get("media_type") or ("IMAGE" if "image_url" in p else "")).upper()
        if kind not in ("IMAGE", "VIDEO", "REELS", "CAROUSEL", "STORIES") or (
            kind == "VIDEO" and not child
        ):
            raise GraphFault(
                100, f"The media type {kind or '(none)'} is not supported", subcode=2207023
            )
        if child and ("caption" in p or "collaborators" in p or "location_id" in p):
            raise GraphFault(100, "Param caption is not allowed for carousel items")
        if len(p.get("caption", "")) > 2200:
            raise GraphFault(36004, "The caption is too long", subcode=2207010)
        if int(p.get("thumb_offset", "0") or 0) < 0:
            raise GraphFault(1, "The thumb_offset is out of range", subcode=2207057)
        if kind == "CAROUSEL":
            children = [c for c in p.get("children", "").split(",") if c]
            if not 2 <= len(children) <= 10:
                raise GraphFault(
                    100,
                    "Carousels need at least 2 photos/videos and no more than 10",
                    subcode=2207028,
                )
            for cid in children:
                c = self.containers.get(cid)
                if c is None or c.account != account or not c.is_carousel_item:
                    raise GraphFault(100, f"Invalid carousel child {cid}")
            return kind, child
        url = p.get("image_url") or p.get("video_url") or ""
        wants_video = kind in ("VIDEO", "REELS") or (kind == "STORIES" and "video_url" in p)
        if not url or (wants_video and "video_url" not in p):
            raise GraphFault(100, "The parameter image_url or video_url is required")
        path = urlparse(url).path.lower()
        if wants_video and not path.endswith((".mp4", ".mov")):
            raise GraphFault(352, "The video format is not supported", subcode=2207026)
        if not wants_video and not path.endswith((".jpg", ".jpeg")):
            raise GraphFault(36001, "The image format is not supported", subcode=2207005)
        return kind, child

    async def _container_status(
        self, account: str, parts: list[str], params: dict[str, str]
    ) -> dict[str, Any]:
        c = self.containers[parts[0]]
        if c.account != account:
            raise _missing(parts[0])
        c.polls += 1
        code = self._status_of(c)
        texts = {
            "IN_PROGRESS": "In Progress: Media is still being processed.",
            "FINISHED": "Finished: Media has been uploaded and it is ready to be published.",
            "PUBLISHED": "Published: Media has been successfully published.",
            "EXPIRED": "Expired: Media was not published within 24 hours.",
            "ERROR": c.error_text or "Error",
        }
        full = {"id": c.id, "status_code": code, "status": texts[code]}
        return _select(full, params.get("fields", "id"))

    def _status_of(self, c: Container) -> str:
        if (
            c.status_code == "IN_PROGRESS"
            and self.now() >= c.ready_at
            and (c.polls >= c.polls_needed)
        ):
            c.status_code = "ERROR" if c.error_text else "FINISHED"
        if c.status_code != "PUBLISHED" and (c.expired or self.now() - c.created_at >= DAY):
            return "EXPIRED"
        return c.status_code

    async def _publish(
        self, account: str, parts: list[str], params: dict[str, str]
    ) -> dict[str, Any]:
        self._own(account, parts[0])
        cid = params.get("creation_id", "")
        c = self.containers.get(cid)
        if not cid:
            raise GraphFault(100, "The parameter creation_id is required")
        if c is None or c.account != account:
            raise GraphFault(
                24, f"The media builder with creation id {cid} does not exist", subcode=2207008
            )
        if c.is_carousel_item:
            raise GraphFault(100, "Carousel items cannot be published on their own")
        status = self._status_of(c)
        if status == "EXPIRED":
            raise GraphFault(-2, "The media has expired", subcode=2207020)
        if status == "PUBLISHED":
            raise GraphFault(100, "The media has already been published")
        if status != "FINISHED":
            raise GraphFault(9007, _MESSAGES[9007], subcode=2207027)
        if self.quota_usage(account) >= self.quota_total:
            raise GraphFault(9, _MESSAGES[9], subcode=2207042)
        product = {"STORIES": "STORY", "REELS": "REELS"}.get(c.kind, "FEED")
        media_type = {"CAROUSEL": "CAROUSEL_ALBUM", "REELS": "VIDEO"}.get(c.kind, c.kind)
        if c.kind == "STORIES":
            media_type = "VIDEO" if "video_url" in c.params else "IMAGE"
        media = self._add_media(
            account, cid, c.params.get("caption", ""), media_type, product, self.now()
        )
        c.status_code, c.media_id = "PUBLISHED", media.id
        return {"id": media.id}

    async def _limit(
        self, account: str, parts: list[str], params: dict[str, str]
    ) -> dict[str, Any]:
        self._own(account, parts[0])
        entry: dict[str, Any] = {"quota_usage": self.quota_usage(account)}
        if "config" in params.get("fields", ""):
            entry["config"] = {"quota_total": self.quota_total, "quota_duration": int(DAY)}
        return {"data": [entry]}

    async def _media_read(
        self, account: str, parts: list[str], params: dict[str, str]
    ) -> dict[str, Any]:
        m = self.media.get(parts[0])
        if m is None or m.account != account:
            raise _missing(parts[0])
        return _select(_media_fields(m), params.get("fields", "id"))

    async def _list(self, account: str, parts: list[str], params: dict[str, str]) -> dict[str, Any]:
        self._own(account, parts[0])
        stories = parts[1] == "stories"
        since = float(params.get("since") or 0)
        if stories:
            since = max(since, self.now() - DAY)
        items = [
            m
            for m in reversed(self.posts[account])
            if (m.product_type == "STORY") == stories and m.timestamp >= since
        ]
        limit = int(params.get("limit") or 25)
        fields = params.get("fields", "id")
        data = [_select(_media_fields(m), fields) for m in items[:limit]]
        return {"data": data, "paging": {"cursors": {"before": "b", "after": "a"}}}

    async def _unsupported(
        self, account: str, parts: list[str], params: dict[str, str]
    ) -> dict[str, Any]:
        raise _missing("/".join(parts))

    def _own(self, account: str, node: str) -> None:
        if node != account:
            raise _missing(node)

    def _add_media(
        self, account: str, cid: str | None, caption: str, media_type: str, product: str, at: float
    ) -> Media:
        media_id = str(next(self._ids))
        code = secrets.token_urlsafe(8)
        link = f"https://www.instagram.com/{'stories/fake' if product == 'STORY' else 'p'}/{code}/"
        media = Media(media_id, account, cid, caption, media_type, product, at, link)
        self.media[media_id] = media
        self.posts[account].append(media)
        self.posts[account].sort(key=lambda m: m.timestamp)
        return media


_Action = Callable[[str, list[str], dict[str, str]], Awaitable[dict[str, Any]]]


def _missing(node: str) -> GraphFault:
    return GraphFault(
        100,
        f"Unsupported get request. Object with ID '{node}' does not exist, "
        "cannot be loaded due to missing permissions, or does not support this "
        "operation",
        subcode=33,
    )


def _media_fields(m: Media) -> dict[str, Any]:
    stamp = datetime.fromtimestamp(m.timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    return {
        "id": m.id,
        "caption": m.caption,
        "media_type": m.media_type,
        "media_product_type": m.product_type,
        "timestamp": stamp,
        "permalink": m.permalink,
        "shortcode": m.permalink.rstrip("/").rsplit("/", 1)[-1],
    }


def _select(full: dict[str, Any], fields: str) -> dict[str, Any]:
    wanted = {f.strip() for f in fields.split(",") if f.strip()} | {"id"}
    return {k: v for k, v in full.items() if k in wanted}


async def _params(request: web.Request) -> dict[str, str]:
    params = {k: v for k, v in request.query.items()}
    if request.can_read_body:
        if request.content_type == "application/json":
            body = await request.json()
            for key, value in (body or {}).items():
                params[key] = _flat(value)
        else:
            form = await request.post()
            params.update({k: str(v) for k, v in form.items()})
    return params


def _flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return value if isinstance(value, str) else json.dumps(value)


def _bearer(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    return auth[7:].strip() if auth.lower().startswith("bearer ") else ""
