"""A strict fake of a Mastodon instance on loopback, from docs.joinmastodon.org and the
server's behaviour.

    async with FakeMastodon() as m:
        m.base_url, m.token, m.account_id
        m.fail_next("status", 429, {"error": "Too many requests"}, headers={...}, marker="[rl]")
        m.drop_next("status", commit=True, marker="[drop]")
        m.fail_next("media", 422, {"error": "..."}, marker="rejected")  # by file name
        m.forget_keys()                 # idempotency keys older than their hour are gone
        m.posts_with("[job-3]")

Calls: ``instance`` (``GET /api/v2/instance``: max_characters 500, 23 characters per URL,
4 media, image and video size limits, MIME types), ``verify`` (``verify_credentials``),
``media`` (``POST /api/v2/media``, multipart ``file`` + ``description``: an image is 200 with
its URL, a video 202 with ``url: null``; an unsupported type or a file over its limit is 422),
``media_read`` (``GET /api/v1/media/:id``: 206 while processing (``processing_reads``
reads), then 200; another account's media is 404), ``status`` (``POST /api/v1/statuses``:
text or media required, the character limit (URLs count 23), at most 4 media, one video
alone, media still processing 422; ``Idempotency-Key``: the same key within an hour answers
the first status, a second request while the first runs gets 503) and ``statuses``
(``GET /api/v1/accounts/:id/statuses``: newest first, content as HTML).
The OAuth calls ``apps``, ``authorize`` and ``token`` are in ``mastodon_oauth.py``.
Any token but ``token`` (or one a sign-in issued): 401. Every answer carries
``X-RateLimit-Limit/Remaining/Reset`` (the reset an ISO 8601 time); a 429 carries them too.
"""

from __future__ import annotations

import asyncio
import html
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.http_fake import HttpFake, Refusal
from tests.fakes.mastodon_oauth import MastodonOAuth

MAX_CHARS, URL_CHARS, MAX_MEDIA = 500, 23, 4
IMAGE_LIMIT, VIDEO_LIMIT = 16 * 1024 * 1024, 99 * 1024 * 1024
IMAGES = ("image/jpeg", "image/png", "image/gif", "image/webp")
VIDEOS = ("video/mp4", "video/quicktime", "video/webm")
KEY_LIFE = 3600.0
URL = re.compile(r"https?://\S+")
CALLS = ("instance", "verify", "media", "media_read", "status", "statuses", "unknown")
CALLS += ("apps", "authorize", "token")


def refusal(status: int, message: str, **headers: str) -> Refusal:
    return Refusal(status, {"error": message}, dict(headers))


def length(text: str) -> int:
    """Mastodon's count: every URL is 23 characters."""
    return len(URL.sub("x" * URL_CHARS, text))


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Attachment:
    id: str
    kind: str  # image | video
    description: str | None
    reads_left: int
    used: bool = False


@dataclass
class Status:
    id: str
    text: str
    media: list[str]
    created_at: float
    visibility: str = "public"
    extra: dict[str, Any] = field(default_factory=dict)


class FakeMastodon(HttpFake, MastodonOAuth):
    CALLS = CALLS

    def __init__(self, *, processing_reads: int = 2, post_seconds: float = 0.0) -> None:
        HttpFake.__init__(self)
        MastodonOAuth.__init__(self)
        self.token = "mst" + secrets.token_urlsafe(32)
        self.account_id = str(100000 + secrets.randbelow(99999))
        self.processing_reads = processing_reads
        self.post_seconds = post_seconds  # how long a keyed post holds its key's lock
        self.media: dict[str, Attachment] = {}
        self.statuses: list[Status] = []
        self.keys: dict[str, tuple[str, float]] = {}  # key → (status id, stored at)
        self.running: set[str] = set()
        self.remaining = 300

    def posts_with(self, marker: str) -> list[Status]:
        return [s for s in self.statuses if marker in s.text]

    def forget_keys(self) -> None:
        self.keys.clear()

    # ---- HTTP -------------------------------------------------------------------------

    def route(self, method: str, path: str) -> str:
        oauth = self.oauth_route(method, path)
        if oauth is not None:
            return oauth
        if method == "GET" and path == "/api/v2/instance":
            return "instance"
        if method == "GET" and path == "/api/v1/accounts/verify_credentials":
            return "verify"
        if method == "POST" and path == "/api/v2/media":
            return "media"
        if method == "GET" and re.fullmatch(r"/api/v1/media/[0-9]+", path):
            return "media_read"
        if method == "POST" and path == "/api/v1/statuses":
            return "status"
        if method == "GET" and re.fullmatch(r"/api/v1/accounts/[0-9]+/statuses", path):
            return "statuses"
        return "unknown"

    async def read_body(self, call: str, request: web.Request) -> Any:
        if call == "media":
            form = await request.post()
            file = form.get("file")
            if not isinstance(file, web.FileField):
                return {"file": None}
            kind, name = file.content_type, file.filename
            data = file.file.read()
            return {"file": (kind, data), "name": name, "description": form.get("description")}
        if call in ("apps", "token") and request.content_type != "application/json":
            return {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if call == "status" and request.content_type != "application/json":
            form = await request.post()
            body: dict[str, Any] = {k: v for k, v in form.items() if not k.endswith("[]")}
            body["media_ids"] = form.getall("media_ids[]", [])
            return body
        return await super().read_body(call, request)

    def bad_request(self, message: str) -> Refusal:
        return refusal(422, f"Validation failed: {message}")

    def text_of(self, call: str, body: Any) -> str:
        """A status's text; an upload's file name (faults aimed at one job's media)."""
        key = {"status": "status", "media": "name"}.get(call)
        return str(body.get(key) or "") if key and isinstance(body, dict) else ""

    def headers_for(self, call: str, request: web.Request) -> dict[str, str]:
        reset = stamp((int(self.now()) // 300 + 1) * 300)
        return {
            "X-RateLimit-Limit": "300",
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": reset,
        }

    async def act(self, call: str, request: web.Request, body: Any) -> Any:
        if call == "unknown":
            raise refusal(404, "Record not found")
        if call == "instance":
            return self._instance()
        if call in ("apps", "authorize", "token"):
            return self.oauth_act(call, request, body if isinstance(body, dict) else {})
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer != self.token and bearer not in self.issued:
            raise refusal(401, "The access token is invalid")
        self.remaining = max(self.remaining - 1, 0)
        if call == "verify":
            return {"id": self.account_id, "username": "herald", "acct": "herald"}
        if call == "media":
            return self._upload(body)
        if call == "media_read":
            return self._media_read(request.path.rsplit("/", 1)[1])
        if call == "statuses":
            return self._list(request.path.split("/")[4], body)
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return self._post(body)
        stored = self.keys.get(key)
        if stored is not None and stored[1] > self.now() - KEY_LIFE:
            return self._view(next(s for s in self.statuses if s.id == stored[0]))
        if key in self.running:
            raise refusal(
                503, "There was a temporary problem serving your request, please try again"
            )
        self.running.add(key)
        try:
            await asyncio.sleep(self.post_seconds)  # a concurrent request sees it running
            posted = self._post(body)
            self.keys[key] = (posted["id"], self.now())  # only after success
            return posted
        finally:
            self.running.discard(key)

    def _instance(self) -> dict[str, Any]:
        statuses = {
            "max_characters": MAX_CHARS,
            "max_media_attachments": MAX_MEDIA,
            "characters_reserved_per_url": URL_CHARS,
        }
        media = {
            "supported_mime_types": [*IMAGES, *VIDEOS],
            "image_size_limit": IMAGE_LIMIT,
            "image_matrix_limit": 33177600,
            "video_size_limit": VIDEO_LIMIT,
            "video_frame_rate_limit": 120,
            "video_matrix_limit": 8294400,
            "description_limit": 1500,
        }
        return {
            "domain": "mastodon.test",
            "version": "4.3.0",
            "configuration": {"statuses": statuses, "media_attachments": media},
        }

    def _upload(self, body: dict[str, Any]) -> web.Response:
        if body.get("file") is None:
            raise self.bad_request("File can't be blank")
        kind, data = body["file"]
        if kind not in IMAGES + VIDEOS:
            raise self.bad_request("File content type is invalid, File is invalid")
        video = kind in VIDEOS
        if len(data) > (VIDEO_LIMIT if video else IMAGE_LIMIT):
            raise self.bad_request("File file size must be less than 16 MB")
        description = body.get("description")
        if isinstance(description, str) and len(description) > 1500:
            raise self.bad_request("Description is too long (maximum is 1500 characters)")
        mid = str(10**17 + secrets.randbelow(10**17))
        reads = self.processing_reads if video else 0
        self.media[mid] = Attachment(mid, "video" if video else "image", description, reads)
        return web.json_response(self._media_view(mid), status=202 if reads else 200)

    def _media_view(self, mid: str) -> dict[str, Any]:
        a = self.media[mid]
        url = None if a.reads_left else f"{self.base_url}/system/media/{mid}"
        return {"id": mid, "type": a.kind, "url": url, "description": a.description}

    def _media_read(self, mid: str) -> web.Response:
        a = self.media.get(mid)
        if a is None:
            raise refusal(404, "Record not found")
        if a.reads_left:
            a.reads_left -= 1
            return web.json_response(self._media_view(mid) | {"url": None}, status=206)
        return web.json_response(self._media_view(mid))

    def _post(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise self.bad_request("Text can't be blank")
        text = str(body.get("status") or "")
        ids = [str(i) for i in body.get("media_ids") or []]
        if not text.strip() and not ids:
            raise self.bad_request("Text can't be blank")
        if length(text) > MAX_CHARS:
            raise self.bad_request(f"Text character limit of {MAX_CHARS} exceeded")
        if len(ids) > MAX_MEDIA:
            raise self.bad_request(f"Cannot attach more than {MAX_MEDIA} files")
        found = [self.media.get(i) for i in ids]
        if any(a is None for a in found):
            raise self.bad_request("Media attachments not found")
        attached = [a for a in found if a is not None]
        if len(attached) > 1 and any(a.kind == "video" for a in attached):
            raise self.bad_request("Cannot attach a video to a post that already contains images")
        if any(a.reads_left for a in attached):
            raise self.bad_request(
                "Cannot attach files that have not finished processing. Try again in a moment!"
            )
        visibility = str(body.get("visibility") or "public")
        if visibility not in ("public", "unlisted", "private", "direct"):
            raise self.bad_request("Visibility is not included in the list")
        sid = str(10**17 + len(self.statuses) * 7919 + secrets.randbelow(1000))
        status = Status(sid, text, ids, self.now(), visibility)
        self.statuses.append(status)
        return self._view(status)

    def _view(self, s: Status) -> dict[str, Any]:
        paragraphs = "".join(f"<p>{html.escape(p)}</p>" for p in s.text.split("\n\n"))
        return {
            "id": s.id,
            "created_at": stamp(s.created_at),
            "content": paragraphs.replace("\n", "<br />"),
            "visibility": s.visibility,
            "url": f"{self.base_url}/@herald/{s.id}",
            "uri": f"{self.base_url}/users/herald/statuses/{s.id}",
            "media_attachments": [self._media_view(i) for i in s.media],
            "account": {"id": self.account_id, "acct": "herald"},
        }

    def _list(self, account: str, query: dict[str, str]) -> list[dict[str, Any]]:
        if account != self.account_id:
            raise refusal(404, "Record not found")
        limit = min(int(query.get("limit", "20")), 40)
        mine = sorted(self.statuses, key=lambda s: s.created_at, reverse=True)
        max_id = query.get("max_id")
        if max_id:
            mine = [s for s in mine if int(s.id) < int(max_id)]
        return [self._view(s) for s in mine[:limit]]
