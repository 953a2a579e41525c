"""What the fake Threads API keeps and how it answers, without HTTP (the documented
behaviour; see ``threads_server`` for the routes)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from bench.graph_fake.model import GraphFault, missing, select
from tests.fakes.meta_fake import DAY, MetaFake, stamp

USER = "17841400000000777"
APP_ID, APP_SECRET = "990000000000001", "threads-app-secret-for-tests"
LONG_LIVED = 5_183_944.0  # what th_exchange_token and th_refresh_token answer (about 60 days)
SHORT_LIVED = 3_600.0
TEXT_LIMIT = 500
LINK_LIMIT = 5
CAROUSEL_ITEMS = (2, 20)
QUOTA_TOTAL = 250
KINDS = ("TEXT", "IMAGE", "VIDEO", "CAROUSEL")
POLLS = {"TEXT": 0, "IMAGE": 1, "VIDEO": 3, "CAROUSEL": 1}  # status reads until FINISHED
LIST_TYPES = {"TEXT": "TEXT_POST", "IMAGE": "IMAGE", "VIDEO": "VIDEO", "CAROUSEL": "CAROUSEL_ALBUM"}
_URL = re.compile(r"https?://\S+")
_NOT_FOUND = "The requested resource does not exist"


@dataclass
class Container:
    id: str
    user: str
    kind: str
    text: str
    created_at: float
    polls_left: int
    is_carousel_item: bool = False
    children: list[str] = field(default_factory=list)
    status: str = "IN_PROGRESS"
    error_message: str | None = None
    media_id: str | None = None


@dataclass
class Thread:
    id: str
    user: str
    kind: str
    text: str
    created_at: float
    container_id: str


class ThreadsState(MetaFake):
    def __init__(self, *, list_lag: float = 0.0, quota_total: int = QUOTA_TOTAL) -> None:
        super().__init__(version="v1.0")
        self.user = USER
        self.list_lag = list_lag
        self.quota_total = quota_total
        self.token = self.issue(USER, "long", lifetime=LONG_LIVED)
        self.containers: dict[str, Container] = {}
        self.threads: dict[str, Thread] = {}
        self.codes: dict[str, str] = {}
        self.rejected: dict[str, str] = {}  # URL fragment → the container's error_message
        self._ids = itertools.count(1)

    # ---- what tests read and script -------------------------------------------------------

    def posts_with(self, marker: str) -> list[Thread]:
        return [t for t in self.threads.values() if marker in t.text]

    def reject_media(self, fragment: str, error_message: str = "UNKNOWN") -> None:
        """Containers whose media URL holds ``fragment`` end ERROR with this message."""
        self.rejected[fragment] = error_message

    def authorize(self, user: str = USER) -> str:
        code = f"th-code-{next(self._ids)}"
        self.codes[code] = user
        return code

    def quota_used(self, user: str = USER) -> int:
        day_ago = self.now() - DAY
        return sum(1 for t in self.threads.values() if t.user == user and t.created_at > day_ago)

    # ---- OAuth ----------------------------------------------------------------------------

    def code_exchange(self, params: dict[str, str]) -> dict[str, Any]:
        if params.get("client_id") != APP_ID or params.get("client_secret") != APP_SECRET:
            raise GraphFault(101, "Error validating client secret.")
        user = self.codes.pop(params.get("code", ""), None)
        if params.get("grant_type") != "authorization_code" or user is None:
            raise GraphFault(100, "Invalid authorization code", subcode=36007)
        if not params.get("redirect_uri"):
            raise GraphFault(100, "redirect_uri is required")
        return {"access_token": self.issue(user, "short", lifetime=SHORT_LIVED), "user_id": user}

    def exchange(self, params: dict[str, str], token: str) -> dict[str, Any]:
        if params.get("grant_type") != "th_exchange_token":
            raise GraphFault(100, "grant_type must be th_exchange_token")
        if params.get("client_secret") != APP_SECRET:
            raise GraphFault(101, "Error validating client secret.")
        short = self.token_of(token, "short")
        fresh = self.issue(short.owner, "long", lifetime=LONG_LIVED)
        return {"access_token": fresh, "token_type": "bearer", "expires_in": int(LONG_LIVED)}

    def refresh(self, params: dict[str, str], token: str) -> dict[str, Any]:
        """A long-lived token at least 24 h old and unexpired gets a new 60-day one."""
        if params.get("grant_type") != "th_refresh_token":
            raise GraphFault(100, "grant_type must be th_refresh_token")
        old = self.token_of(token, "long")
        if self.now() - old.issued_at < DAY:
            raise GraphFault(190, "The access token cannot be refreshed before it is 24 hours old")
        fresh = self.issue(old.owner, "long", lifetime=LONG_LIVED)
        return {"access_token": fresh, "token_type": "bearer", "expires_in": int(LONG_LIVED)}

    # ---- publishing -----------------------------------------------------------------------

    def create(self, user: str, params: dict[str, str]) -> dict[str, Any]:
        kind = params.get("media_type", "")
        if kind not in KINDS:
            raise GraphFault(100, "Param media_type must be one of TEXT, IMAGE, VIDEO, CAROUSEL")
        text = params.get("text", "")
        if kind == "TEXT" and not text:
            raise GraphFault(100, "Param text is required for a TEXT post")
        if text_length(text) > TEXT_LIMIT:
            raise GraphFault(100, f"Param text must be at most {TEXT_LIMIT} characters long.")
        links = set(_URL.findall(text)) | {params.get("link_attachment", "")} - {""}
        if len(links) > LINK_LIMIT:
            raise GraphFault(
                "THREADS_API__LINK_LIMIT_EXCEEDED", f"A post may hold at most {LINK_LIMIT} links"
            )
        item = params.get("is_carousel_item", "false").lower() == "true"
        if item and kind not in ("IMAGE", "VIDEO"):
            raise GraphFault(100, "Only IMAGE and VIDEO containers can be carousel items")
        url = params.get("image_url" if kind == "IMAGE" else "video_url", "")
        if kind in ("IMAGE", "VIDEO") and not url.startswith(("http://", "https://")):
            raise GraphFault(100, f"Param {kind.lower()}_url must be a public URL")
        children = self._children(user, params) if kind == "CAROUSEL" else []
        cid = self._id()
        container = Container(cid, user, kind, text, self.now(), POLLS[kind], item, children)
        for fragment, error in self.rejected.items():
            if url and fragment in url:
                container.status, container.error_message = "ERROR", error
        self.containers[cid] = container
        return {"id": cid}

    def _children(self, user: str, params: dict[str, str]) -> list[str]:
        ids = [c for c in params.get("children", "").split(",") if c]
        low, high = CAROUSEL_ITEMS
        if not low <= len(ids) <= high:
            raise GraphFault(100, f"A carousel needs {low} to {high} children")
        for cid in ids:
            child = self.containers.get(cid)
            usable = child is not None and child.user == user and child.is_carousel_item
            if not usable or child is None or self._status(child) != "FINISHED":
                raise GraphFault(
                    24, "The carousel child items are invalid or expired", subcode=4279004
                )
        return ids

    def publish(self, user: str, params: dict[str, str]) -> dict[str, Any]:
        container = self.containers.get(params.get("creation_id", ""))
        if container is None or container.user != user or container.is_carousel_item:
            raise GraphFault(24, _NOT_FOUND, subcode=4279009, is_transient=False)
        status = self._status(container)
        if status == "PUBLISHED":
            raise GraphFault(100, "This container was already published")  # undocumented
        if status != "FINISHED":
            raise GraphFault(24, "Media Not Found", subcode=4279009, is_transient=False)
        if self.quota_used(user) >= self.quota_total:
            raise GraphFault(9, "You reached the maximum number of posts for 24 hours")
        media_id = f"{next(self._ids) + 18_000_000_000_000_000}"
        container.status, container.media_id = "PUBLISHED", media_id
        self.threads[media_id] = Thread(
            media_id, user, container.kind, container.text, self.now(), container.id
        )
        return {"id": media_id}

    # ---- reads ----------------------------------------------------------------------------

    def read(self, node: str, params: dict[str, str]) -> dict[str, Any]:
        fields = params.get("fields", "id")
        if node in self.containers:
            c = self.containers[node]
            body: dict[str, Any] = {"id": c.id, "status": self._status(c)}
            if c.error_message:
                body["error_message"] = c.error_message
            return select(body, fields)
        thread = self.threads.get(node)
        if thread is None or not self._visible(thread):
            raise missing(node)
        if "status" in fields.split(","):
            raise GraphFault(100, "Tried accessing nonexisting field (status)")
        return select(self._thread_fields(thread), fields)

    def limit(self, user: str) -> dict[str, Any]:
        config = {"quota_total": self.quota_total, "quota_duration": int(DAY)}
        usage = {"quota_usage": self.quota_used(user), "config": config}
        return {"data": [usage]}

    def list_threads(self, user: str, params: dict[str, str]) -> dict[str, Any]:
        since = float(params.get("since", "1688540400"))
        if since < 1688540400:
            raise GraphFault(100, "Param since must be at or after 1688540400")
        limit = int(params.get("limit", "25"))
        if not 0 < limit <= 100:
            raise GraphFault(100, "Param limit must be between 1 and 100")
        found = [
            t
            for t in self.threads.values()
            if t.user == user and self._visible(t) and t.created_at >= since
        ]
        found.sort(key=lambda t: t.created_at, reverse=True)
        fields = params.get("fields", "id")
        return {"data": [select(self._thread_fields(t), fields) for t in found[:limit]]}

    # ---- internals ------------------------------------------------------------------------

    def _id(self) -> str:
        return f"{next(self._ids) + 17_900_000_000_000_000}"

    def _status(self, c: Container) -> str:
        """IN_PROGRESS until its status was read ``polls_left`` times, then FINISHED; EXPIRED
        when not published within 24 h."""
        if c.status == "IN_PROGRESS":
            c.polls_left -= 1
            if c.polls_left < 0:
                c.status = "FINISHED"
        if c.status in ("IN_PROGRESS", "FINISHED") and self.now() - c.created_at > DAY:
            c.status = "EXPIRED"
        return c.status

    def _visible(self, thread: Thread) -> bool:
        return self.now() >= thread.created_at + self.list_lag

    def _thread_fields(self, t: Thread) -> dict[str, Any]:
        return {
            "id": t.id,
            "text": t.text,
            "timestamp": stamp(t.created_at),
            "media_type": LIST_TYPES[t.kind],
            "permalink": f"https://www.threads.net/@herald/post/{t.id}",
        }


def text_length(text: str) -> int:
    """Characters, with each emoji counted as its UTF-8 bytes (Threads' documented rule)."""
    return sum(len(ch.encode()) if _is_emoji(ch) else 1 for ch in text)


def _is_emoji(ch: str) -> bool:
    code = ord(ch)
    return code >= 0x1F000 or 0x2600 <= code <= 0x27BF
