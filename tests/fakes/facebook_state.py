"""What the fake Facebook Pages API keeps and how it answers, without HTTP (the documented
behaviour; see ``facebook_server`` for the routes)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from bench.graph_fake.model import GraphFault, missing, select
from tests.fakes.meta_fake import DAY, MetaFake, stamp

PAGE = "104000000000001"
USER = "100000000000001"
APP_ID, APP_SECRET = "880000000000001", "fb-app-secret-for-tests"
LONG_LIVED = 5_183_944.0  # seconds: what fb_exchange_token answers (about 60 days)
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tiff", ".tif")
REELS_PER_DAY = 30
UNPUBLISHED_PHOTO_LIFETIME = DAY
MAX_LIST = 100


@dataclass
class Photo:
    id: str
    page: str
    url: str
    published: bool
    created_at: float
    post_id: str | None = None  # the post it is part of


@dataclass
class Post:
    id: str
    page: str
    kind: str  # status | link | photo | album | video | reel
    message: str
    created_at: float
    link: str | None = None
    media: list[str] = field(default_factory=list)
    published: bool = True


@dataclass
class Video:
    id: str
    page: str
    kind: str  # video | reel
    description: str
    created_at: float
    uploaded: bool = False
    finished: bool = False
    polls_left: int = 2  # status reads until processing ends
    error: str | None = None
    post_id: str | None = None


class FacebookState(MetaFake):
    def __init__(self, *, list_lag: float = 0.0, video_polls: int = 2) -> None:
        super().__init__(version="v25.0")
        self.page = PAGE
        self.user = USER
        self.list_lag = list_lag  # seconds before a new post shows in the feed reads
        self.video_polls = video_polls
        self.user_token = self.issue(USER, "user", lifetime=LONG_LIVED)
        self.page_token = self.issue(PAGE, "page", lifetime=None)
        self.photos: dict[str, Photo] = {}
        self.posts: dict[str, Post] = {}
        self.videos: dict[str, Video] = {}
        self.codes: dict[str, str] = {}  # OAuth code → user id
        self.buc_usage = 1
        self.regain_minutes = 0
        self._ids = itertools.count(1)

    # ---- what tests read ------------------------------------------------------------------

    def posts_with(self, marker: str) -> list[Post]:
        """The Page's posts (live or processing) whose text holds ``marker``."""
        return [p for p in self.posts.values() if marker in p.message]

    def authorize(self, user: str = USER) -> str:
        """A login code, as the OAuth dialog would redirect with."""
        code = f"code-{next(self._ids)}"
        self.codes[code] = user
        return code

    def set_usage(self, *, buc: int, regain_minutes: int = 0) -> None:
        self.buc_usage, self.regain_minutes = buc, regain_minutes

    # ---- tokens ---------------------------------------------------------------------------

    def page_of(self, token: str, node: str) -> str:
        """The Page a publishing call may act on: its own Page token only."""
        found = self.token_of(token)
        if found.kind != "page":
            raise GraphFault(
                200,
                "(#200) Publishing to a Page requires a Page access token with pages_manage_posts",
                status=403,
            )
        if node not in (found.owner, "me"):
            raise missing(node)
        return found.owner

    def oauth_token(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("client_id") != APP_ID or params.get("client_secret") != APP_SECRET:
            raise GraphFault(101, "Error validating client secret.")
        if params.get("grant_type") == "fb_exchange_token":
            short = self.token_of(params.get("fb_exchange_token", ""), "user")
            token = self.issue(short.owner, "user", lifetime=LONG_LIVED)
            return {"access_token": token, "token_type": "bearer", "expires_in": int(LONG_LIVED)}
        user = self.codes.pop(params.get("code", ""), None)
        if user is None or not params.get("redirect_uri"):
            raise GraphFault(100, "Invalid verification code format.", subcode=36007)
        token = self.issue(user, "user", lifetime=7200.0)
        return {"access_token": token, "token_type": "bearer", "expires_in": 7200}

    def accounts(self, user: Any, node: str) -> dict[str, Any]:
        if node not in ("me", user.owner):
            raise missing(node)
        short = user.expires_at is not None and user.expires_at - user.issued_at < DAY
        token = self.issue(PAGE, "page", lifetime=3600.0 if short else None)
        tasks = ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"]
        page = {"id": PAGE, "name": "Herald Test Page", "access_token": token, "tasks": tasks}
        return {"data": [page], "paging": {}}

    def usage(self, page: str | None) -> dict[str, str]:
        app = {"call_count": 1, "total_cputime": 1, "total_time": 1}
        headers = {"X-App-Usage": json.dumps(app)}
        if page is not None:
            entry = {
                "type": "pages",
                "call_count": self.buc_usage,
                "total_cputime": 1,
                "total_time": 1,
                "estimated_time_to_regain_access": self.regain_minutes,
            }
            headers["X-Business-Use-Case-Usage"] = json.dumps({page: [entry]})
        return headers

    # ---- publishing -----------------------------------------------------------------------

    def photo(self, page: str, params: dict[str, str]) -> dict[str, Any]:
        url = params.get("url", "")
        if not url or not urlparse(url).path.lower().endswith(PHOTO_EXTENSIONS):
            raise GraphFault(324, "(#324) Missing or invalid image file")
        published = _flag(params.get("published"), default=True)
        if _flag(params.get("temporary"), default=False) and published:
            raise GraphFault(100, "(#100) A temporary photo must be unpublished")
        pid = self._id()
        self.photos[pid] = Photo(pid, page, url, published, self.now())
        if not published:
            return {"id": pid}
        post = self._post(page, "photo", params.get("caption", ""), media=[pid])
        self.photos[pid].post_id = post.id
        return {"id": pid, "post_id": post.id}

    def feed_post(self, page: str, params: dict[str, str]) -> dict[str, Any]:
        if "scheduled_publish_time" in params or not _flag(params.get("published"), True):
            raise GraphFault(100, "(#100) Unpublished and scheduled posts are not modelled")
        message, link = params.get("message", ""), params.get("link")
        media = _attached(params)
        if not (message or link or media):
            raise GraphFault(100, "(#100) Either link or message must be supplied")
        if link is not None:
            if media:
                raise GraphFault(100, "(#100) A post cannot carry both a link and attached_media")
            if urlparse(link).scheme not in ("http", "https") or "unreachable" in link:
                raise GraphFault(
                    100, "Error Posting Link: problem scraping data from the link", subcode=1609005
                )
        photos = [self._usable_photo(page, fbid) for fbid in media]
        kind = "album" if photos else "link" if link else "status"
        post = self._post(page, kind, message, link=link, media=media)
        for photo in photos:
            photo.post_id = post.id
        return {"id": post.id}

    def _usable_photo(self, page: str, fbid: str) -> Photo:
        photo = self.photos.get(fbid)
        if photo is None or photo.page != page:
            raise GraphFault(100, f"(#100) Invalid media_fbid {fbid}")
        if photo.published or photo.post_id is not None:
            raise GraphFault(100, "These photos were already posted.", subcode=1366051)
        if self.now() - photo.created_at > UNPUBLISHED_PHOTO_LIFETIME:
            raise GraphFault(100, f"(#100) Unpublished photo {fbid} has expired")
        return photo

    def video_post(self, page: str, params: dict[str, str]) -> dict[str, Any]:
        if "upload_phase" in params:
            if "file_url" in params:
                raise GraphFault(100, "(#100) file_url cannot be used with upload_phase")
            raise GraphFault(100, "(#100) Chunked uploads are not modelled; use file_url")
        url = params.get("file_url", "")
        if not url.startswith(("http://", "https://")):
            raise GraphFault(100, "(#100) file_url must be a public URL")
        if "unreachable" in url:
            raise GraphFault(389, "Unable to fetch video file from URL.")
        video = self._video(page, "video", params.get("description", ""))
        video.uploaded = video.finished = True
        video.post_id = self._post(page, "video", video.description, media=[video.id]).id
        return {"id": video.id}

    def reel_start(self, page: str, params: dict[str, str]) -> dict[str, Any]:
        if params.get("upload_phase") != "start":
            raise GraphFault(100, "(#100) upload_phase must be start or finish")
        day_ago = self.now() - DAY
        recent = [v for v in self.videos.values() if v.kind == "reel" and v.finished]
        if sum(1 for v in recent if v.page == page and v.created_at > day_ago) >= REELS_PER_DAY:
            raise GraphFault(9, "(#9) This Page reached its limit of 30 API-published reels")
        video = self._video(page, "reel", "")
        upload_url = f"{self.root_url}/video-upload/{self.version}/{video.id}"
        return {"video_id": video.id, "upload_url": upload_url}

    def reel_upload(self, video_id: str, headers: dict[str, str]) -> dict[str, Any]:
        video = self.video(video_id)
        url = headers.get("file_url", "")
        if not url.startswith(("http://", "https://")):
            raise GraphFault(100, "(#100) the header file_url (or a binary body) is required")
        if "unreachable" in url:
            video.error = "Unable to fetch video file from URL."
        video.uploaded = True
        return {"success": True}

    def reel_finish(self, page: str, params: dict[str, str]) -> dict[str, Any]:
        video = self.video(params.get("video_id", ""))
        if video.page != page or video.kind != "reel":
            raise missing(video.id)
        if params.get("video_state") not in ("PUBLISHED", "DRAFT", "SCHEDULED"):
            raise GraphFault(100, "(#100) video_state must be PUBLISHED, DRAFT or SCHEDULED")
        if params["video_state"] != "PUBLISHED":
            raise GraphFault(100, "(#100) Draft and scheduled reels are not modelled")
        if video.finished:
            raise GraphFault(100, "(#100) This video was already published")
        if not video.uploaded or video.error:
            raise GraphFault(6000, "There was a problem uploading your video file.")
        video.description, video.finished = params.get("description", ""), True
        video.created_at = self.now()
        video.post_id = self._post(page, "reel", video.description, media=[video.id]).id
        return {"success": True}

    def video(self, video_id: str) -> Video:
        if video_id not in self.videos:
            raise missing(video_id)
        return self.videos[video_id]

    # ---- reads ----------------------------------------------------------------------------

    def read(self, node: str, params: dict[str, str]) -> dict[str, Any]:
        fields = params.get("fields", "id")
        if node in self.videos:
            return select(self._video_fields(self.videos[node]), fields)
        if node in self.posts and self._visible(self.posts[node]):
            return select(self._post_fields(self.posts[node]), fields)
        if node in self.photos:
            photo = self.photos[node]
            return select({"id": photo.id, "images": [{"source": photo.url}]}, fields)
        raise missing(node)

    def feed_list(self, page: str, params: dict[str, str], *, published_only: bool) -> Any:
        limit = int(params.get("limit", "25"))
        if not 0 < limit <= MAX_LIST:
            raise GraphFault(100, f"(#100) limit must be between 1 and {MAX_LIST}")
        since = float(params.get("since", "0"))
        found = [
            p
            for p in self.posts.values()
            if p.page == page and self._visible(p) and p.created_at >= since
        ]
        found.sort(key=lambda p: p.created_at, reverse=True)
        fields = params.get("fields", "id,message,created_time")
        return {"data": [select(self._post_fields(p), fields) for p in found[:limit]]}

    def reels_list(self, page: str) -> dict[str, Any]:
        reels = [v for v in self.videos.values() if v.page == page and v.kind == "reel"]
        return {"data": [{"id": v.id, "description": v.description} for v in reels]}

    # ---- internals ------------------------------------------------------------------------

    def _id(self) -> str:
        return f"{next(self._ids) + 500_000_000_000_000}"

    def _post(self, page: str, kind: str, message: str, **extra: Any) -> Post:
        post = Post(f"{page}_{self._id()}", page, kind, message, self.now(), **extra)
        self.posts[post.id] = post
        return post

    def _video(self, page: str, kind: str, description: str) -> Video:
        video = Video(self._id(), page, kind, description, self.now(), polls_left=self.video_polls)
        self.videos[video.id] = video
        return video

    def _visible(self, post: Post) -> bool:
        return self.now() >= post.created_at + self.list_lag

    def _post_fields(self, post: Post) -> dict[str, Any]:
        return {
            "id": post.id,
            "message": post.message,
            "created_time": stamp(post.created_at),
            "permalink_url": f"https://www.facebook.com/{post.id}",
            "is_published": post.published,
        }

    def _video_fields(self, video: Video) -> dict[str, Any]:
        """``status``: uploading, processing and publishing phases (each read of a finished
        video's status moves its processing on)."""
        processing = "not_started"
        if video.error:
            processing = "error"
        elif video.finished:
            video.polls_left = max(video.polls_left - 1, 0)
            processing = "complete" if video.polls_left == 0 else "in_progress"
        ready = processing == "complete"
        overall = "error" if video.error else "ready" if ready else "processing"
        if not video.uploaded:
            overall = "uploading"
        published = "published" if ready and video.finished else "not_published"
        status = {
            "video_status": overall,
            "uploading_phase": {"status": "complete" if video.uploaded else "not_started"},
            "processing_phase": {"status": processing}
            | ({"error": {"message": video.error}} if video.error else {}),
            "publishing_phase": {"status": "complete" if ready else "not_started"}
            | {"publish_status": published},
        }
        return {"id": video.id, "description": video.description, "status": status}


def _flag(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.lower() in ("true", "1")


def _attached(params: dict[str, str]) -> list[str]:
    """``attached_media`` as a JSON array or as indexed fields ``attached_media[i]``, each
    ``{"media_fbid": "…"}``."""
    items: list[Any] = []
    if "attached_media" in params:
        items = _json(params["attached_media"])
        items = items if isinstance(items, list) else [items]
    indexed = sorted(
        (int(k[15:-1]), v)
        for k, v in params.items()
        if k.startswith("attached_media[") and k.endswith("]") and k[15:-1].isdigit()
    )
    items += [_json(v) for _, v in indexed]
    ids = [str(i.get("media_fbid", "")) if isinstance(i, dict) else "" for i in items]
    if any(not i for i in ids):
        raise GraphFault(100, '(#100) attached_media entries must be {"media_fbid": "..."}')
    return ids


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise GraphFault(100, "(#100) attached_media must be JSON") from None
