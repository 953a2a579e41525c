"""One post, every network: a single job request naming one connection on each real platform
(Instagram, Facebook, Threads, Bluesky, Mastodon, LinkedIn, X) and no `platform`, through
the scheduler, results and a publisher as processes, each platform's fake on loopback and
an https media host. Every job is published, and each network holds the post exactly once,
with the caption meant for it (X gets its own through `caption_overrides`)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from herald.services.publisher.platforms.rest.oauth2 import pack
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.runtime import Runtime
from herald.shared.platforms.hosts import ALLOW_ENV
from tests.conftest import Namespace, eventually
from tests.fakes.bluesky_pds import FakePDS
from tests.fakes.facebook_server import FakeFacebook
from tests.fakes.graph_server import DEFAULT_ACCOUNT, DEFAULT_TOKEN, FakeGraph
from tests.fakes.linkedin_server import FakeLinkedIn
from tests.fakes.mastodon_instance import FakeMastodon
from tests.fakes.media_host import MediaHost
from tests.fakes.threads_server import FakeThreads
from tests.fakes.tls import make_cert, server_context
from tests.fakes.x_server import FakeX
from tests.support.helpers import ServiceProcess, assert_none_in_progress

pytestmark = [pytest.mark.e2e]
MARKER = "[everywhere]"


async def test_one_post_to_every_real_network_publishes_once_everywhere(
    ns: Namespace, rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")  # the Bluesky PDS and Mastodon instance URLs
    cert, key = make_cert(tmp_path)
    async with (
        FakeGraph() as ig,
        FakeFacebook() as fb,
        FakeThreads() as th,
        FakePDS() as bsky,
        FakeMastodon(processing_reads=0) as masto,
        FakeLinkedIn() as li,
        FakeX() as x,
        MediaHost(tls=server_context(cert, key)) as cdn,
    ):
        accounts: dict[str, tuple[str, dict[str, str]]] = {
            "instagram": (DEFAULT_TOKEN, {"instagramBusinessAccountId": DEFAULT_ACCOUNT}),
            "facebook": (fb.page_token, {"pageId": fb.page}),
            "threads": (th.token, {"threadsUserId": th.user}),
            "bluesky": (bsky.app_password, {"identifier": bsky.handle, "pdsUrl": bsky.base_url}),
            "mastodon": (masto.token, {"instanceUrl": masto.base_url}),
            "linkedin": (pack(li.token, None), {"author": li.author}),
            "x": (pack(x.token, None), {"userId": x.user_id}),
        }
        ids = []
        for platform, (token, metadata) in accounts.items():
            body = {"platform": platform, "name": platform, "access_token": token}
            created = await rt.connections().create(ADMIN, body | {"metadata": metadata})
            ids.append(str(created["id"]))
        urls = {
            "instagram_graph_url": ig.base_url,
            "facebook_graph_url": fb.base_url,
            "threads_graph_url": th.base_url,
            "linkedin_api_url": li.base_url,
            "x_api_url": x.base_url,
            "backoff_base_seconds": 0.5,
            "backoff_max_seconds": 2.0,
        }
        env = ns.env(**urls) | {ALLOW_ENV: "127.0.0.1", "SSL_CERT_FILE": str(cert)}
        processes = [
            ServiceProcess(s, env, tmp_path).start() for s in ("scheduler", "results", "publisher")
        ]
        try:
            post = await rt.jobs().schedule(
                ADMIN,
                {
                    "connection_ids": ids,
                    "media_asset_ids": [cdn.url("a/photo.jpg")],
                    "media_type": "IMAGE",
                    "caption": f"Spring is here {MARKER}",
                    "caption_overrides": {"x": f"Spring, briefly {MARKER}"},
                },
            )
            jobs = [j["id"] for j in post.body["jobs"]]

            async def published() -> bool:
                rows = await rt.db.fetch("SELECT status FROM jobs WHERE id = ANY(%s)", (jobs,))
                return len(rows) == len(jobs) and all(r["status"] == "PUBLISHED" for r in rows)

            try:
                await eventually(published, timeout=120, interval=0.5)
            except AssertionError:
                rows = await rt.db.fetch(
                    "SELECT platform, status, last_error FROM jobs WHERE id = ANY(%s)", (jobs,)
                )
                raise AssertionError([dict(r) for r in rows]) from None
            await asyncio.sleep(2)  # any late second post would show now
        finally:
            for process in processes:
                process.stop()

        posts: dict[str, list[Any]] = {
            "instagram": [m for m in ig.media.values() if MARKER in (m.caption or "")],
            "facebook": fb.posts_with(MARKER),
            "threads": th.posts_with(MARKER),
            "bluesky": bsky.posts_with(MARKER),
            "mastodon": masto.posts_with(MARKER),
            "linkedin": li.posts_with(MARKER),
            "x": x.posts_with(MARKER),
        }
        assert {p: len(found) for p, found in posts.items()} == dict.fromkeys(accounts, 1)
        assert x.tweets[0].text == f"Spring, briefly {MARKER}"
        assert li.posts[0].shown == f"Spring is here {MARKER}"
        await assert_none_in_progress(rt)
