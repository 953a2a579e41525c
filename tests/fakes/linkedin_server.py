"""A strict fake of LinkedIn's REST API and OAuth host on loopback, from LinkedIn's public
documentation (Posts API, Images API, little text format, error handling, programmatic
refresh tokens).

    async with FakeLinkedIn() as li:
        li.base_url, li.token, li.author          # a member with a valid 60-day token
        li.fail_next("post", 429, {...}, marker="[rl]")
        li.drop_next("post", commit=True, marker="[drop]")   # posted, then the answer lost
        li.posts_with("[job-3]")

Calls (``CALLS``): ``authorize`` (``GET /oauth/v2/authorization``, the consent page:
``oauth2_consent.py``; ``redirect_uris`` holds the app's registered ones), ``token``
(``POST /oauth/v2/accessToken``: ``authorization_code`` for a code ``issue_code`` made,
``refresh_token`` for a refresh token it issued; the refresh token keeps its first expiry
and is not rotated; a revoked or unknown one is 400 ``invalid_grant``; the access tokens
it issues live ``token_life`` seconds), ``userinfo`` (``GET /v2/userinfo``), ``init_image``
(``POST /rest/images?action=initializeUpload``, ``{initializeUploadRequest: {owner}}``),
``upload`` (``PUT`` to the upload URL: one body, the whole file), ``post``
(``POST /rest/posts``: 201, the urn only in ``x-restli-id``), ``posts``
(``GET /rest/posts?q=author&author=...``), the Videos API's ``videos``, ``video_part`` and
``video`` (``linkedin_video.py``) and ``unknown``.

Every ``/rest`` call needs ``LinkedIn-Version`` of an active version (else 426
``NONEXISTENT_VERSION``) and ``X-Restli-Protocol-Version: 2.0.0`` (else 400); every API call
a live Bearer token (else 401, ``serviceErrorCode`` 65600, or 65601 once revoked). A post's
commentary is at most 3,000 characters; an unescaped reserved character cuts it there, as
LinkedIn does (silently, with a 201); the same commentary twice by one author is 422
``DUPLICATE_POST`` naming the first post; an image must be uploaded before a post names it;
a multi-image post has 2 to 20. LinkedIn documents no rate-limit headers: a 429 has none
(the test may add ``Retry-After``).
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.http_fake import HttpFake, Refusal
from tests.fakes.linkedin_video import VIDEO_CALLS, VideoApi
from tests.fakes.oauth2_consent import linkedin as consent

ACTIVE_VERSIONS = ("202510", "202511", "202512", "202601", "202602")
MAX_COMMENTARY = 3000
TOKEN_LIFE, REFRESH_LIFE = 60 * 86400, 365 * 86400
RESERVED = set("|{}@[]()<>#*_~")
CALLS = (
    "authorize",
    "token",
    "userinfo",
    "init_image",
    "upload",
    "post",
    "posts",
    *VIDEO_CALLS,
    "unknown",
)


def error(status: int, message: str, service: int | None = None, **extra: Any) -> Refusal:
    body: dict[str, Any] = {"status": status, "message": message, **extra}
    if service is not None:
        body["serviceErrorCode"] = service
    return Refusal(status, body)


def unescape(text: str) -> str:
    """What LinkedIn shows of a little-format commentary: escapes undone, and the text cut at
    the first unescaped reserved character."""
    out, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if ch in RESERVED:
            break
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass
class Grant:
    member: str
    expires: float
    refresh: str | None = None
    refresh_expires: float = 0.0
    revoked: bool = False


@dataclass
class Post:
    urn: str
    author: str
    commentary: str  # as sent (escaped)
    shown: str  # as LinkedIn shows it
    images: list[str] = field(default_factory=list)


class FakeLinkedIn(VideoApi, HttpFake):
    CALLS = CALLS

    def __init__(
        self,
        *,
        client_id: str = "li-client",
        client_secret: str = "li-secret",
        max_upload_bytes: int | None = None,
    ) -> None:
        super().__init__()
        # LinkedIn documents a pixel cap (36,152,320), not a byte cap: a test sets one to
        # make an image LinkedIn refuses.
        self.max_upload_bytes = max_upload_bytes
        self.client_id, self.client_secret = client_id, client_secret
        self.member = "abc123"
        self.page = "urn:li:organization:2414183"  # a Page the member administers
        self.grants: dict[str, Grant] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> member
        self.codes: dict[str, str] = {}  # code -> redirect_uri
        self.redirect_uris: set[str] = set()  # the app's authorized redirect URLs
        self.deny_next = False  # the member cancels the next consent
        self.token_life: float = TOKEN_LIFE  # of the tokens the token endpoint issues
        self.images: dict[str, bool] = {}  # urn -> uploaded
        self.posts: list[Post] = []
        self._ids = itertools.count(7141138937766391808)
        self.token = self.grant()[0]
        self.init_videos()

    @property
    def author(self) -> str:
        return f"urn:li:person:{self.member}"

    def may_act_as(self, who: object) -> bool:
        """The member, or a Page the member administers."""
        return who == self.author or who == self.page

    # ---- test controls ---------------------------------------------------------------

    def grant(self, *, life: float = TOKEN_LIFE, refreshable: bool = True) -> tuple[str, str]:
        """A new access token (and refresh token) for the member."""
        token = "AQV" + secrets.token_urlsafe(40)
        refresh = "AQX" + secrets.token_urlsafe(40) if refreshable else None
        self.grants[token] = Grant(
            self.member, self.now() + life, refresh, self.now() + REFRESH_LIFE
        )
        if refresh:
            self.refresh_tokens[refresh] = token
        return token, refresh or ""

    def issue_code(self, redirect_uri: str) -> str:
        code = "code-" + secrets.token_urlsafe(12)
        self.codes[code] = redirect_uri
        return code

    def revoke(self, token: str) -> None:
        self.grants[token].revoked = True

    def posts_with(self, marker: str) -> list[Post]:
        return [p for p in self.posts if marker in p.shown]

    # ---- routing -----------------------------------------------------------------------

    def route(self, method: str, path: str) -> str:
        table = {
            ("GET", "/oauth/v2/authorization"): "authorize",
            ("POST", "/oauth/v2/accessToken"): "token",
            ("GET", "/v2/userinfo"): "userinfo",
            ("POST", "/rest/images"): "init_image",
            ("POST", "/rest/posts"): "post",
            ("GET", "/rest/posts"): "posts",
            ("POST", "/rest/videos"): "videos",
        }
        if method == "GET" and path.startswith("/rest/videos/"):
            return "video"
        if method == "PUT" and path.startswith("/upload/video/"):
            return "video_part"
        if method == "PUT" and path.startswith("/upload/"):
            return "upload"
        return table.get((method, path), "unknown")

    async def read_body(self, call: str, request: web.Request) -> Any:
        if call in ("upload", "video_part"):
            return await request.read()
        if call == "token":
            return dict(await request.post())
        return await super().read_body(call, request)

    def text_of(self, call: str, body: Any) -> str:
        if call == "video_part" and isinstance(body, bytes):
            return body.decode("latin-1")
        return unescape(str(body.get("commentary", ""))) if isinstance(body, dict) else ""

    def act(self, call: str, request: web.Request, body: Any) -> Any:
        if call == "unknown":
            raise error(404, f"no route {request.method} {request.path}")
        if call == "authorize":
            return consent(self, body)
        if call == "token":
            return self._token(body)
        member = self._member(request)
        if call == "userinfo":
            return {"sub": member, "name": "Ada Lovelace"}
        if call == "upload":
            return self._upload(request, body)
        if call == "video_part":  # a presigned URL: no LinkedIn-Version
            return self.video_call(call, request, body)
        self._versioned(request)
        if call in ("videos", "video"):
            return self.video_call(call, request, body)
        if call == "init_image":
            return self._init_image(request, body)
        if call == "post":
            return self._post(body)
        return self._list(request)

    # ---- calls -------------------------------------------------------------------------

    def _token(self, form: dict[str, str]) -> dict[str, Any]:
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            raise Refusal(401, {"error": "invalid_client", "error_description": "bad client"})
        grant = form.get("grant_type")
        if grant == "authorization_code":
            code = form.get("code", "")
            if self.codes.pop(code, None) != form.get("redirect_uri"):
                raise Refusal(400, {"error": "invalid_grant", "error_description": "bad code"})
            token, refresh = self.grant(life=self.token_life)
        elif grant == "refresh_token":
            old = self.refresh_tokens.get(form.get("refresh_token", ""))
            if old is None or self.grants[old].revoked:
                raise Refusal(400, {"error": "invalid_grant", "error_description": "revoked"})
            refresh = form["refresh_token"]
            token = "AQV" + secrets.token_urlsafe(40)
            kept = self.grants[old].refresh_expires
            self.grants[token] = Grant(self.member, self.now() + self.token_life, refresh, kept)
            self.refresh_tokens[refresh] = token
        else:
            raise Refusal(400, {"error": "unsupported_grant_type"})
        return {
            "access_token": token,
            "expires_in": int(self.token_life),
            "refresh_token": refresh,
            "refresh_token_expires_in": int(self.grants[token].refresh_expires - self.now()),
            "scope": "openid,profile,w_member_social,r_organization_social",
        }

    def _member(self, request: web.Request) -> str:
        auth = request.headers.get("Authorization", "")
        grant = (
            self.grants.get(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        )
        if grant is not None and grant.revoked:
            raise error(
                401,
                "The token used in the request has been revoked",
                65601,
                code="REVOKED_ACCESS_TOKEN",
            )
        if grant is None or grant.expires <= self.now():
            raise error(401, "Invalid access token", 65600, code="INVALID_ACCESS_TOKEN")
        return grant.member

    def _versioned(self, request: web.Request) -> None:
        version = request.headers.get("LinkedIn-Version", "")
        if version not in ACTIVE_VERSIONS:
            raise error(
                426, f"Requested version {version} is not active", code="NONEXISTENT_VERSION"
            )
        if request.headers.get("X-Restli-Protocol-Version") != "2.0.0":
            raise error(400, "X-Restli-Protocol-Version 2.0.0 is required")

    def _init_image(self, request: web.Request, body: Any) -> dict[str, Any]:
        if request.query.get("action") != "initializeUpload":
            raise error(400, "action=initializeUpload is required")
        owner = (body.get("initializeUploadRequest") or {}).get("owner")
        if not self.may_act_as(owner):
            raise error(403, f"Not enough permissions to act as {owner}", 100, code="ACCESS_DENIED")
        urn = f"urn:li:image:D4E{secrets.token_hex(8)}"
        self.images[urn] = False
        return {
            "value": {
                "uploadUrl": f"{self.base_url}/upload/{urn}",
                "image": urn,
                "uploadUrlExpiresAt": int((self.now() + 3600) * 1000),
            }
        }

    def _upload(self, request: web.Request, data: bytes) -> web.Response:
        urn = request.path.removeprefix("/upload/")
        if urn not in self.images:
            raise error(404, "no such upload")
        if not data:
            raise error(400, "empty upload")
        if self.max_upload_bytes is not None and len(data) > self.max_upload_bytes:
            raise error(400, "The image exceeds the maximum allowed size", code="INVALID_IMAGE")
        self.images[urn] = True
        return web.Response(status=201)

    def _post(self, body: Any) -> web.Response:
        if not isinstance(body, dict):
            raise error(400, "body must be a JSON object")
        author = body.get("author")
        if not self.may_act_as(author):
            raise error(
                403, "Not enough permissions to access: POST /posts", 100, code="ACCESS_DENIED"
            )
        for key, wanted in (("visibility", "PUBLIC"), ("lifecycleState", "PUBLISHED")):
            if body.get(key) != wanted:
                raise error(400, f"/{key} must be {wanted}")
        if not isinstance(body.get("distribution"), dict):
            raise error(400, "/distribution is required")
        commentary = str(body.get("commentary") or "")
        if len(commentary) > MAX_COMMENTARY:
            raise error(
                400,
                f"ShareCommentary text length ({len(commentary)} characters) "
                f"exceeded the maximum allowed ({MAX_COMMENTARY} characters)",
                code="FIELD_ARRAY_SIZE_TOO_HIGH",
            )
        images = self._images_of(body.get("content"), str(author))
        for post in self.posts:
            if post.author == author and post.commentary == commentary:
                raise error(
                    422,
                    f"Content is a duplicate of {post.urn}",
                    errorDetails={"inputErrors": [{"code": "DUPLICATE_POST"}]},
                )
        urn = f"urn:li:share:{next(self._ids)}"
        self.posts.append(Post(urn, str(author), commentary, unescape(commentary), images))
        return web.Response(status=201, headers={"x-restli-id": urn})

    def _images_of(self, content: Any, author: str) -> list[str]:
        if content is None:
            return []
        if "media" in content:
            ids = [content["media"].get("id")]
            video = self.videos.get(str(ids[0]))
            if video is not None:
                if video.owner != author or self.status_of(video) != "AVAILABLE":
                    raise error(400, f"{video.urn} is {video.status}, not AVAILABLE")
                return [video.urn]
        else:
            ids = [i.get("id") for i in (content.get("multiImage") or {}).get("images", [])]
            if not 2 <= len(ids) <= 20:
                raise error(400, "multiImage takes 2 to 20 images")
        for urn in ids:
            if not self.images.get(urn):
                raise error(400, f"{urn} is not an uploaded image")
        return [str(u) for u in ids]

    def _list(self, request: web.Request) -> dict[str, Any]:
        if request.query.get("q") != "author":
            raise error(400, "q=author is required")
        author = request.query.get("author")
        count = int(request.query.get("count", "10"))
        mine = [p for p in reversed(self.posts) if p.author == author][:count]
        return {
            "elements": [
                {
                    "id": p.urn,
                    "author": p.author,
                    "commentary": p.commentary,
                    "lifecycleState": "PUBLISHED",
                }
                for p in mine
            ]
        }
