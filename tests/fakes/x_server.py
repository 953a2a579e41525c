"""A strict fake of the X API v2 on loopback, from X's public documentation (``POST
/2/tweets``, the v2 media endpoints, OAuth 2 with PKCE, rate limits, problem JSON errors).

    async with FakeX() as x:
        x.base_url, x.token, x.user_id     # a user with a 2-hour token (offline.access)
        x.fail_next("tweet", 429, RATE_LIMITED, headers=x.limit_headers(0), marker="[rl]")
        x.drop_next("tweet", commit=True, marker="[drop]")   # posted, then the answer lost
        x.posts_with("[job-3]")

Calls (``CALLS``): ``authorize`` (``GET /i/oauth2/authorize``, the consent page with PKCE:
``oauth2_consent.py``), ``token`` (``POST /2/oauth2/token``, the client in Basic auth:
``authorization_code`` with the PKCE ``code_verifier`` whose S256 matches the challenge
``issue_code`` took; ``refresh_token``: single-use, rotating — a used one is 400
``invalid_request`` and revokes its whole family; access tokens live ``token_life`` s),
``me`` (``GET /2/users/me``), ``upload``
(``POST /2/media/upload``, multipart ``media`` + ``media_category``), ``initialize``,
``append``, ``finalize`` (``/2/media/upload/initialize``, ``/{id}/append``,
``/{id}/finalize``: a video is ``pending`` then ``in_progress`` for
``processing_reads`` STATUS reads, then ``succeeded``), ``status``
(``GET /2/media/upload?command=STATUS&media_id=``), ``tweet`` (``POST /2/tweets``: text or
media; 280 weighted characters; 1 to 4 images or one video, all processed; the same text
twice is 403 duplicate content; 201 ``{data: {id, text, edit_history_post_ids}}``),
``timeline`` (``GET /2/users/:id/tweets``, newest first, ``start_time``) and ``unknown``.
Every API call needs a live Bearer token (else 401 problem JSON). Every answer carries
``x-rate-limit-limit/remaining/reset`` (reset in epoch seconds).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from herald.services.publisher.platforms.x.text import LIMIT, weighted_length
from tests.fakes.http_fake import HttpFake, Refusal
from tests.fakes.oauth2_consent import x as consent

TOKEN_LIFE = 7200
CALLS = (
    "authorize",
    "token",
    "me",
    "upload",
    "initialize",
    "append",
    "finalize",
    "status",
    "tweet",
    "timeline",
    "unknown",
)
PROBLEMS = "https://api.twitter.com/2/problems/"
RATE_LIMITED = {
    "title": "Too Many Requests",
    "detail": "Too Many Requests",
    "status": 429,
    "type": PROBLEMS + "rate-limit-exceeded",
}
UNAUTHORIZED = {
    "title": "Unauthorized",
    "type": "about:blank",
    "status": 401,
    "detail": "Unauthorized",
}
DUPLICATE = {
    "title": "Forbidden",
    "type": "about:blank",
    "status": 403,
    "detail": "You are not allowed to create a Tweet with duplicate content.",
}


def problem(status: int, detail: str, kind: str = "invalid-request") -> Refusal:
    return Refusal(
        status, {"title": detail, "detail": detail, "status": status, "type": PROBLEMS + kind}
    )


@dataclass
class Grant:
    user: str
    expires: float
    family: int
    revoked: bool = False


@dataclass
class Media:
    id: str
    kind: str  # image | video
    reads_left: int = 0
    appended: int = 0
    finalized: bool = False

    @property
    def ready(self) -> bool:
        return self.kind == "image" or (self.finalized and self.reads_left <= 0)


@dataclass
class Tweet:
    id: str
    text: str
    created_at: float
    media: list[str] = field(default_factory=list)


class FakeX(HttpFake):
    CALLS = CALLS

    def __init__(
        self,
        *,
        client_id: str = "x-client",
        client_secret: str = "x-secret",
        processing_reads: int = 1,
        window_limit: int = 100,
        max_image_bytes: int = 5 * 1024 * 1024,
    ) -> None:
        super().__init__()
        self.max_image_bytes = max_image_bytes
        self.client_id, self.client_secret = client_id, client_secret
        self.processing_reads = processing_reads
        self.window_limit = window_limit
        self.user_id, self.username = "1460000000000000000", "herald_test"
        self.grants: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, tuple[int, bool]] = {}  # token -> (family, used)
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (redirect_uri, challenge)
        self.redirect_uris: set[str] = set()  # the app's callback URLs
        self.deny_next = False  # the user says no at the next consent
        self.token_life: float = TOKEN_LIFE  # of the tokens the token endpoint issues
        self.media: dict[str, Media] = {}
        self.tweets: list[Tweet] = []
        self.calls_in_window = 0
        self._ids = itertools.count(1860000000000000000)
        self._families = itertools.count(1)
        self.token, self.refresh = self.grant()

    # ---- test controls ---------------------------------------------------------------

    def grant(self, *, life: float = TOKEN_LIFE) -> tuple[str, str]:
        family = next(self._families)
        return self._issue(family, life)

    def _issue(self, family: int, life: float = TOKEN_LIFE) -> tuple[str, str]:
        token = secrets.token_urlsafe(48) + ":1:0:at:1"
        refresh = secrets.token_urlsafe(48) + ":1:0:rt:1"
        self.grants[token] = Grant(self.user_id, self.now() + life, family)
        self.refresh_tokens[refresh] = (family, False)
        return token, refresh

    def issue_code(self, redirect_uri: str, code_challenge: str) -> str:
        code = secrets.token_urlsafe(24)
        self.codes[code] = (redirect_uri, code_challenge)
        return code

    def expire(self, token: str) -> None:
        self.grants[token].expires = self.now() - 1

    def posts_with(self, marker: str) -> list[Tweet]:
        return [t for t in self.tweets if marker in t.text]

    def limit_headers(self, remaining: int, reset_in: float = 900.0) -> dict[str, str]:
        return {
            "x-rate-limit-limit": str(self.window_limit),
            "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(int(self.now() + reset_in)),
        }

    # ---- routing -----------------------------------------------------------------------

    def route(self, method: str, path: str) -> str:
        parts = path.strip("/").split("/")
        if (method, path) == ("GET", "/i/oauth2/authorize"):
            return "authorize"
        if (method, path) == ("POST", "/2/oauth2/token"):
            return "token"
        if (method, path) == ("GET", "/2/users/me"):
            return "me"
        if (method, path) == ("POST", "/2/tweets"):
            return "tweet"
        if path == "/2/media/upload":
            return "upload" if method == "POST" else "status"
        if method == "POST" and path == "/2/media/upload/initialize":
            return "initialize"
        if method == "POST" and len(parts) == 5 and parts[:3] == ["2", "media", "upload"]:
            return {"append": "append", "finalize": "finalize"}.get(parts[4], "unknown")
        if method == "GET" and len(parts) == 4 and parts[:2] == ["2", "users"]:
            return "timeline" if parts[3] == "tweets" else "unknown"
        return "unknown"

    async def read_body(self, call: str, request: web.Request) -> Any:
        if call in ("upload", "append"):
            form = await request.post()
            return {k: (v.file.read() if hasattr(v, "file") else v) for k, v in form.items()}
        if call == "token":
            return dict(await request.post())
        if call == "finalize":
            return {}
        return await super().read_body(call, request)

    def text_of(self, call: str, body: Any) -> str:
        return str(body.get("text", "")) if isinstance(body, dict) else ""

    def headers_for(self, call: str, request: web.Request) -> dict[str, str]:
        if call in ("authorize", "token", "unknown"):
            return {}
        self.calls_in_window += 1
        return self.limit_headers(max(self.window_limit - self.calls_in_window, 0))

    def act(self, call: str, request: web.Request, body: Any) -> Any:
        if call == "unknown":
            raise problem(404, f"no route {request.method} {request.path}", "resource-not-found")
        if call == "authorize":
            return consent(self, body)
        if call == "token":
            return self._token(request, body)
        user = self._user(request)
        if call == "me":
            return {"data": {"id": user, "name": "Herald", "username": self.username}}
        if call == "tweet":
            return self._tweet(body)
        if call == "timeline":
            return self._timeline(request)
        return self._media_call(call, request, body)

    # ---- calls -------------------------------------------------------------------------

    def _token(self, request: web.Request, form: dict[str, str]) -> dict[str, Any]:
        pair = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {pair}":
            raise Refusal(
                401,
                {
                    "error": "unauthorized_client",
                    "error_description": "Missing valid authorization header",
                },
            )
        grant = form.get("grant_type")
        if grant == "authorization_code":
            redirect, challenge = self.codes.pop(form.get("code", ""), ("", ""))
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if (
                not redirect
                or redirect != form.get("redirect_uri")
                or (digest.rstrip(b"=").decode() != challenge)
            ):
                raise Refusal(
                    400,
                    {
                        "error": "invalid_request",
                        "error_description": "Value passed for the authorization code was invalid.",
                    },
                )
            token, refresh = self.grant(life=self.token_life)
        elif grant == "refresh_token":
            family, used = self.refresh_tokens.get(form.get("refresh_token", ""), (0, True))
            if used or not family:
                for g in self.grants.values():  # reuse of a rotated token: the family is gone
                    if g.family == family:
                        g.revoked = True
                raise Refusal(
                    400,
                    {
                        "error": "invalid_request",
                        "error_description": "Value passed for the token was invalid.",
                    },
                )
            self.refresh_tokens[form["refresh_token"]] = (family, True)
            token, refresh = self._issue(family, self.token_life)
        else:
            raise Refusal(400, {"error": "unsupported_grant_type"})
        return {
            "token_type": "bearer",
            "expires_in": int(self.token_life),
            "access_token": token,
            "scope": "tweet.read tweet.write users.read media.write offline.access",
            "refresh_token": refresh,
        }

    def _user(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        grant = (
            self.grants.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        )
        if grant is None or grant.revoked or grant.expires <= self.now():
            raise Refusal(401, UNAUTHORIZED)
        return grant.user

    def _media_call(self, call: str, request: web.Request, body: Any) -> Any:
        if call == "upload":
            if body.get("media_category") != "tweet_image" or not body.get("media"):
                raise problem(400, "media and media_category tweet_image are required")
            if len(body["media"]) > self.max_image_bytes:
                raise problem(400, f"image over {self.max_image_bytes} bytes")
            return self._new_media("image")
        if call == "initialize":
            if body.get("media_category") != "tweet_video" or not body.get("total_bytes"):
                raise problem(400, "media_type, total_bytes and media_category are required")
            return self._new_media("video")
        mid = (
            request.path.strip("/").split("/")[3]
            if call != "status"
            else (request.query.get("media_id", ""))
        )
        item = self.media.get(mid)
        if item is None:
            raise problem(400, f"unknown media id {mid}")
        if call == "append":
            if str(body.get("segment_index")) != str(item.appended) or not body.get("media"):
                raise problem(400, "segments must be appended in order")
            item.appended += 1
            return web.Response(status=204)
        if call == "finalize":
            if not item.appended:
                raise problem(400, "no segment appended")
            item.finalized, item.reads_left = True, self.processing_reads
        elif request.query.get("command") != "STATUS":
            raise problem(400, "command=STATUS is required")
        else:
            item.reads_left -= 1
        state = "succeeded" if item.ready else "in_progress"
        info = {
            "state": state,
            "check_after_secs": 1,
            "progress_percent": 100 if item.ready else 50,
        }
        return {"data": {"id": mid, "media_key": f"7_{mid}", "processing_info": info}}

    def _new_media(self, kind: str) -> dict[str, Any]:
        mid = str(next(self._ids))
        self.media[mid] = Media(mid, kind)
        return {"data": {"id": mid, "media_key": f"3_{mid}", "expires_after_secs": 86400}}

    def _tweet(self, body: Any) -> web.Response:
        if not isinstance(body, dict):
            raise problem(400, "body must be a JSON object")
        text = str(body.get("text") or "")
        ids = [str(i) for i in (body.get("media") or {}).get("media_ids", [])]
        if not text and not ids:
            raise problem(400, "text or media is required")
        if weighted_length(text) > LIMIT:
            raise problem(400, "Your Tweet text is too long.")
        if not 0 <= len(ids) <= 4:
            raise problem(400, "media_ids takes 1 to 4 ids")
        items = [self.media.get(i) for i in ids]
        if any(m is None or not m.ready for m in items):
            raise problem(400, "Your media IDs are invalid.")
        if len(ids) > 1 and any(m is not None and m.kind == "video" for m in items):
            raise problem(400, "a video is posted alone")
        if any(t.text == text for t in self.tweets):
            raise Refusal(403, DUPLICATE)
        tid = str(next(self._ids))
        self.tweets.append(Tweet(tid, text, self.now(), ids))
        data = {"id": tid, "text": text, "edit_history_post_ids": [tid]}
        return web.json_response({"data": data}, status=201)

    def _timeline(self, request: web.Request) -> dict[str, Any]:
        if request.path.split("/")[3] != self.user_id:
            raise problem(404, "user not found", "resource-not-found")
        since = request.query.get("start_time")
        floor = datetime.fromisoformat(since.replace("Z", "+00:00")).timestamp() if since else 0
        count = int(request.query.get("max_results", "10"))
        if not 5 <= count <= 100:
            raise problem(400, "max_results must be 5 to 100")
        found = [t for t in reversed(self.tweets) if t.created_at >= floor][:count]
        data = [
            {
                "id": t.id,
                "text": t.text,
                "edit_history_post_ids": [t.id],
                "created_at": datetime.fromtimestamp(t.created_at, UTC).isoformat(),
            }
            for t in found
        ]
        return (
            {"data": data, "meta": {"result_count": len(data)}}
            if data
            else {"meta": {"result_count": 0}}
        )
