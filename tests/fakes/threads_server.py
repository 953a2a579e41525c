"""A strict fake of the Threads API on loopback, from Meta's public docs.

    async with FakeThreads() as th:
        th.base_url                     # http://127.0.0.1:PORT/v1.0
        th.user, th.token               # a Threads user and its 60-day token
        th.fail_next("publish", code=24, subcode=4279009)
        th.commit_then_drop("publish", marker="[drop]")
        th.posts_with("job-17")         # the user's threads whose text holds this

What it keeps (``threads_state``): containers (``POST /{user}/threads``: TEXT, IMAGE, VIDEO,
CAROUSEL with ``is_carousel_item`` children that must read FINISHED first), their status
(IN_PROGRESS for a few reads, then FINISHED; ERROR with an ``error_message`` for rejected
media; EXPIRED after 24 h), ``threads_publish`` (a container not FINISHED is 24/4279009
"Media Not Found"; 250 posts per rolling 24 h), ``threads_publishing_limit``, the user's
threads list (lagging ``list_lag`` seconds behind), the 500-character text limit (emojis
count as their UTF-8 bytes), the 5-link limit, and the OAuth endpoints (unversioned):
``POST /oauth/access_token`` (code), ``GET /access_token`` (``th_exchange_token``) and
``GET /refresh_access_token`` (``th_refresh_token``: at least 24 h old, unexpired), and
``GET /oauth/authorize``, the consent page of a user who says yes (302 back with a code).
Undocumented answers the fake has to pick: the quota used up is 9; publishing a PUBLISHED
container again is 100; refreshing a token younger than 24 h is 190.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bench.graph_fake.model import GraphFault, missing
from tests.fakes.threads_state import APP_ID, ThreadsState

CALLS = (
    "create",
    "status",
    "publish",
    "limit",
    "list",
    "media_read",
    "me",
    "code_exchange",
    "exchange",
    "refresh",
    "consent",
)
_ROOT = {
    "oauth/authorize": "consent",
    "oauth/access_token": "code_exchange",
    "access_token": "exchange",
}


class FakeThreads(ThreadsState):
    CALLS = CALLS

    def route(self, method: str, parts: list[str], params: dict[str, str]) -> str:
        if len(parts) == 2 and method == "POST":
            return {"threads": "create", "threads_publish": "publish"}.get(parts[1], "unknown")
        if len(parts) == 2 and method == "GET":
            edges = {"threads_publishing_limit": "limit", "threads": "list"}
            return edges.get(parts[1], "unknown")
        if len(parts) == 1 and method == "GET":
            if parts[0] == "me":
                return "me"
            return "status" if parts[0] in self.containers else "media_read"
        return "unknown"

    def route_root(self, parts: list[str]) -> str:
        path = "/".join(parts)
        if path == "refresh_access_token":
            return "refresh"
        return _ROOT.get(path, "unknown")

    def act(
        self, call: str, parts: list[str], params: dict[str, str], token: str, request: web.Request
    ) -> Any:
        if call == "consent" and request.method == "GET":
            self.consent(params, APP_ID, self.authorize())
        if call == "code_exchange" and request.method == "POST":
            return self.code_exchange(params)
        if call == "exchange" and request.method == "GET":
            return self.exchange(params, token)
        if call == "refresh" and request.method == "GET":
            return self.refresh(params, token)
        if call == "unknown" or call in ("consent", "code_exchange", "exchange", "refresh"):
            raise GraphFault(100, f"Unsupported {request.method} request: /{'/'.join(parts)}")
        owner = self.token_of(token, "long", "short").owner
        node = parts[0]
        if call == "me":
            return {"id": owner, "username": "herald.tests"}
        if call in ("status", "media_read"):
            return self.read(node, params)
        if node not in (owner, "me"):
            raise missing(node)
        if call == "create":
            return self.create(owner, params)
        if call == "publish":
            return self.publish(owner, params)
        if call == "limit":
            return self.limit(owner)
        return self.list_threads(owner, params)

    def text_of(self, call: str, params: dict[str, str]) -> str:
        if call == "publish":
            container = self.containers.get(params.get("creation_id", ""))
            return container.text if container is not None else ""
        urls = " ".join(params.get(k, "") for k in ("image_url", "video_url"))
        return f"{params.get('text', '')} {urls}"
