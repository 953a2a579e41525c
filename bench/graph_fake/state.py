"""What the fake Graph API keeps and how it answers, without HTTP (the documented behaviour).

Containers go IN_PROGRESS → FINISHED (or ERROR) → PUBLISHED, or EXPIRED 24 h after creation;
each account may create 400 containers and publish ``quota_total`` posts per rolling 24 h.
Time is the fake's clock (``now``): the wall clock plus what ``advance`` added. Under a
``time_scale`` of N every duration the fake keeps (processing, expiry, the quota window, a
throttle) is N times shorter in wall time, and ``content_publishing_limit`` reports the
window it actually uses, so quota windows and throttles pass in seconds.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections import defaultdict, deque
from typing import Any
from urllib.parse import urlparse

from bench.graph_fake.model import (
    DAY,
    DEFAULT_ACCOUNT,
    DEFAULT_TOKEN,
    FACEBOOK,
    MESSAGES,
    STATUS_TEXT,
    Container,
    GraphFault,
    Media,
    buc_header,
    media_fields,
    missing,
    select,
)

MAX_CONTAINERS_PER_DAY = 400
_KINDS = ("IMAGE", "VIDEO", "REELS", "CAROUSEL", "STORIES")


class GraphState:
    def __init__(self, *, quota_total: int = 50, time_scale: float = 1.0) -> None:
        self.quota_total = quota_total
        self.time_scale = time_scale
        self.account = DEFAULT_ACCOUNT
        self.token = DEFAULT_TOKEN
        self.tokens: dict[str, tuple[str, str]] = {DEFAULT_TOKEN: (DEFAULT_ACCOUNT, FACEBOOK)}
        self.containers: dict[str, Container] = {}
        self.media: dict[str, Media] = {}
        self.posts: dict[str, list[Media]] = defaultdict(list)
        self.app_usage = 1
        self.buc_usage = 1
        self.regain_minutes = 0
        self._processing: dict[str | None, tuple[float, int]] = {None: (0.0, 0)}
        self._container_errors: deque[str] = deque()
        self._container_expiries = 0
        self._status_lag = 0.0
        self._quota_used: dict[str, int] = {}
        self._quota_totals: dict[str, int] = {}
        self._throttled: dict[str, float] = {}  # account → throttled until
        self._offset = 0.0
        self._ids = itertools.count(17_900_000_000_000_000)

    # ---- the clock ----------------------------------------------------------------------

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (containers finish and expire, the quota window rolls)."""
        self._offset += seconds

    def scaled(self, seconds: float) -> float:
        """A documented duration as the fake keeps it (shorter under a time scale)."""
        return seconds / self.time_scale

    # ---- accounts and limits --------------------------------------------------------------

    def add_account(self, account_id: str, token: str, *, login: str = FACEBOOK) -> None:
        """``token`` belongs to ``account_id`` and works on the ``login``'s host only."""
        self.tokens[token] = (account_id, login)

    def set_quota_used(self, used: int, account: str | None = None) -> None:
        self._quota_used[account or self.account] = used

    def set_quota_total(self, total: int, account: str | None = None) -> None:
        self._quota_totals[account or self.account] = total

    def quota_usage(self, account: str) -> int:
        if account in self._quota_used:
            return self._quota_used[account]
        since = self.now() - self.scaled(DAY)
        return sum(1 for m in self.posts[account] if m.timestamp > since)

    def throttle_account(self, account: str, minutes: int) -> None:
        """Every call for ``account`` answers 80002 with the BUC estimate until ``minutes``
        (of the fake's scaled time) have passed."""
        self._throttled[account] = self.now() + self.scaled(minutes * 60.0)

    def check_throttle(self, account: str) -> None:
        until = self._throttled.get(account, 0.0)
        if self.now() < until:
            left = max(1, int((until - self.now()) * self.time_scale / 60.0 + 0.999))
            raise GraphFault(
                80002,
                MESSAGES[80002],
                is_transient=True,
                headers={"X-Business-Use-Case-Usage": buc_header(account, 100, left)},
            )

    # ---- containers -----------------------------------------------------------------------

    def container_processing(
        self, seconds: float = 0.0, *, polls: int = 0, media_type: str | None = None
    ) -> None:
        """New containers (of ``media_type``, or all) stay IN_PROGRESS this long (the fake's
        clock, scaled) and for this many status reads."""
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

    def status_lags(self, seconds: float) -> None:
        """Containers published from now on still read FINISHED for ``seconds`` (the fake's
        clock): a stale read, as a replicated store can give right after a write. The account's
        media list shows the post at once."""
        self._status_lag = seconds

    def ready(self, container_id: str) -> None:
        """The container finishes processing now."""
        c = self.containers[container_id]
        c.ready_at, c.polls_needed = self.now(), 0

    def status_of(self, c: Container, *, read: bool = False) -> str:
        """The container's status (as a status read sees it, with ``read``)."""
        if (
            c.status_code == "IN_PROGRESS"
            and self.now() >= c.ready_at
            and c.polls >= c.polls_needed
        ):
            c.status_code = "ERROR" if c.error_text else "FINISHED"
        expired = c.expired or self.now() - c.created_at >= self.scaled(DAY)
        if c.status_code != "PUBLISHED" and expired:
            return "EXPIRED"
        if read and c.status_code == "PUBLISHED" and self.now() < c.stale_until:
            return "FINISHED"
        return c.status_code

    # ---- posts ------------------------------------------------------------------------------

    def seed_posts(
        self,
        ages_seconds: list[float],
        *,
        caption: str = "earlier post",
        account: str | None = None,
    ) -> list[Media]:
        """Posts published ``ages_seconds`` ago (they count against the quota)."""
        owner = account or self.account
        return [
            self.add_media(owner, None, caption, "IMAGE", "FEED", self.now() - age)
            for age in ages_seconds
        ]

    def add_media(
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

    # ---- endpoints (each raises GraphFault for an error answer) -------------------------------

    def create(self, account: str, node: str, params: dict[str, str]) -> dict[str, Any]:
        self._own(account, node)
        since = self.now() - self.scaled(DAY)
        mine = (c for c in self.containers.values() if c.account == account)
        if sum(1 for c in mine if c.created_at > since) >= MAX_CONTAINERS_PER_DAY:
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
            ready_at=now + self.scaled(seconds),
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
        if kind not in _KINDS or (kind == "VIDEO" and not child):
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
                message = "Carousels need at least 2 photos/videos and no more than 10"
                raise GraphFault(100, message, subcode=2207028)
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

    def container_status(self, account: str, node: str, params: dict[str, str]) -> dict[str, Any]:
        c = self.containers[node]
        if c.account != account:
            raise missing(node)
        c.polls += 1
        code = self.status_of(c, read=True)
        text = (c.error_text or "Error") if code == "ERROR" else STATUS_TEXT[code]
        return select({"id": c.id, "status_code": code, "status": text}, params.get("fields", "id"))

    def publish(self, account: str, node: str, params: dict[str, str]) -> dict[str, Any]:
        self._own(account, node)
        cid = params.get("creation_id", "")
        c = self.containers.get(cid)
        if not cid:
            raise GraphFault(100, "The parameter creation_id is required")
        if c is None or c.account != account:
            message = f"The media builder with creation id {cid} does not exist"
            raise GraphFault(24, message, subcode=2207008)
        if c.is_carousel_item:
            raise GraphFault(100, "Carousel items cannot be published on their own")
        status = self.status_of(c)
        if status == "EXPIRED":
            raise GraphFault(-2, "The media has expired", subcode=2207020)
        if status == "PUBLISHED":
            raise GraphFault(100, "The media has already been published")
        if status != "FINISHED":
            raise GraphFault(9007, MESSAGES[9007], subcode=2207027)
        if self.quota_usage(account) >= self._quota_totals.get(account, self.quota_total):
            raise GraphFault(9, MESSAGES[9], subcode=2207042)
        product = {"STORIES": "STORY", "REELS": "REELS"}.get(c.kind, "FEED")
        media_type = {"CAROUSEL": "CAROUSEL_ALBUM", "REELS": "VIDEO"}.get(c.kind, c.kind)
        if c.kind == "STORIES":
            media_type = "VIDEO" if "video_url" in c.params else "IMAGE"
        caption = c.params.get("caption", "")
        media = self.add_media(account, cid, caption, media_type, product, self.now())
        c.status_code, c.media_id = "PUBLISHED", media.id
        c.stale_until = self.now() + self.scaled(self._status_lag)
        return {"id": media.id}

    def limit(self, account: str, node: str, params: dict[str, str]) -> dict[str, Any]:
        self._own(account, node)
        entry: dict[str, Any] = {"quota_usage": self.quota_usage(account)}
        if "config" in params.get("fields", ""):
            total = self._quota_totals.get(account, self.quota_total)
            entry["config"] = {"quota_total": total, "quota_duration": int(self.scaled(DAY))}
        return {"data": [entry]}

    def media_read(self, account: str, node: str, params: dict[str, str]) -> dict[str, Any]:
        m = self.media.get(node)
        if m is None or m.account != account:
            raise missing(node)
        return select(media_fields(m), params.get("fields", "id"))

    def media_list(
        self, account: str, node: str, params: dict[str, str], *, stories: bool
    ) -> dict[str, Any]:
        self._own(account, node)
        since = float(params.get("since") or 0)
        if stories:
            since = max(since, self.now() - self.scaled(DAY))
        items = [
            m
            for m in reversed(self.posts[account])
            if (m.product_type == "STORY") == stories and m.timestamp >= since
        ]
        limit = int(params.get("limit") or 25)
        fields = params.get("fields", "id")
        data = [select(media_fields(m), fields) for m in items[:limit]]
        return {"data": data, "paging": {"cursors": {"before": "b", "after": "a"}}}

    def _own(self, account: str, node: str) -> None:
        if node != account:
            raise missing(node)
