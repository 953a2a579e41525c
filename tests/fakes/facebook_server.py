"""A strict fake of the Facebook Pages API (Graph) on loopback, from Meta's public docs.

    async with FakeFacebook() as fb:
        fb.base_url                     # http://127.0.0.1:PORT/v25.0
        fb.page, fb.page_token          # a Page and its (non-expiring) Page token
        fb.fail_next("feed", code=80001, marker="[rl]")
        fb.commit_then_drop("photos")
        fb.posts_with("job-17")         # the Page's posts whose text holds this

What it keeps (``facebook_state``): photos (published, or unpublished for 24 h and usable
once in a feed post's ``attached_media``), feed posts (text, link, multi-photo), videos
(``file_url``) and Reels (``video_reels`` start → upload on the rupload path with
``Authorization: OAuth`` → finish), each video's ``status`` phases, and the Page's posts.
Publishing needs the Page's token: a user token gets 200 (permission). Reads of the feed lag
``list_lag`` seconds behind the writes (eventual consistency). Answers carry
``X-App-Usage`` and ``X-Business-Use-Case-Usage`` keyed by the Page (type ``pages``).
OAuth: ``/dialog/oauth`` (the consent page of a user who says yes: 302 back with a code),
``/oauth/access_token`` (code, or ``fb_exchange_token`` for a 60-day user token) and
``/me/accounts`` (the Page tokens). Undocumented answers the fake has to pick: a 31st Reel in
24 h is 9 "reels limit"; finishing an already published Reel is 100.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bench.graph_fake.model import GraphFault
from tests.fakes.facebook_state import APP_ID, FacebookState

CALLS = (
    "photos",
    "feed",
    "videos",
    "reels_start",
    "reels_upload",
    "reels_finish",
    "video_status",
    "feed_list",
    "published_posts",
    "reels_list",
    "object_read",
    "accounts",
    "oauth_token",
    "consent",
)
_POST_EDGES = {"photos": "photos", "feed": "feed", "videos": "videos"}
_LISTS = {"feed": "feed_list", "published_posts": "published_posts", "video_reels": "reels_list"}


class FakeFacebook(FacebookState):
    CALLS = CALLS

    def route(self, method: str, parts: list[str], params: dict[str, str]) -> str:
        if parts == ["dialog", "oauth"] and method == "GET":
            return "consent"
        if parts == ["oauth", "access_token"] and method in ("GET", "POST"):
            return "oauth_token"
        if len(parts) == 2 and parts[1] == "accounts" and method == "GET":
            return "accounts"
        if len(parts) == 2 and method == "POST":
            if parts[1] == "video_reels":
                finish = params.get("upload_phase") == "finish"
                return "reels_finish" if finish else "reels_start"
            return _POST_EDGES.get(parts[1], "unknown")
        if len(parts) == 2 and method == "GET":
            return _LISTS.get(parts[1], "unknown")
        if len(parts) == 1 and method == "GET":
            return "video_status" if parts[0] in self.videos else "object_read"
        return "unknown"

    def route_root(self, parts: list[str]) -> str:
        if len(parts) == 3 and parts[0] == "video-upload":
            return "reels_upload"  # rupload.facebook.com/video-upload/{v}/{video-id}
        return "unknown"

    def act(
        self, call: str, parts: list[str], params: dict[str, str], token: str, request: web.Request
    ) -> Any:
        node = parts[0] if parts else ""
        if call == "consent":
            self.consent(params, APP_ID, self.authorize())
        if call == "oauth_token":
            return self.oauth_token(params)
        if call == "accounts":
            return self.accounts(self.token_of(token, "user"), node)
        if call == "reels_upload":
            if request.headers.get("Authorization", "").split(" ")[0] != "OAuth":
                raise GraphFault(190, "rupload needs the header Authorization: OAuth {token}")
            self.page_of(token, self.video(parts[2]).page)
            return self.reel_upload(parts[2], dict(request.headers))
        if call in ("video_status", "object_read"):
            self.token_of(token)
            return self.read(node, params)
        if call == "unknown":
            raise GraphFault(100, f"Unsupported {request.method} request: /{'/'.join(parts)}")
        page = self.page_of(token, node)
        if call == "photos":
            return self.photo(page, params)
        if call == "feed":
            return self.feed_post(page, params)
        if call == "videos":
            return self.video_post(page, params)
        if call == "reels_start":
            return self.reel_start(page, params)
        if call == "reels_finish":
            return self.reel_finish(page, params)
        if call == "reels_list":
            return self.reels_list(page)
        return self.feed_list(page, params, published_only=call == "published_posts")

    def text_of(self, call: str, params: dict[str, str]) -> str:
        if call == "reels_upload":
            return ""
        if call == "reels_finish" and params.get("video_id") in self.videos:
            return params.get("description", "")
        return super().text_of(call, params) + " " + params.get("url", "")

    def usage_headers(self, call: str, token: str) -> dict[str, str]:
        found = self.tokens.get(token)
        return self.usage(found.owner if found is not None and found.kind == "page" else None)
