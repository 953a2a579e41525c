"""One post, several networks: a job naming connections on different platforms, checked
per connection against each network's rules when it is scheduled (errors keyed
`connection_ids[i]`, naming the network and the limit), with a caption per platform; through
the HTTP API and through `publish.schedule`."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from herald.services.scheduler.ingress import CommandIngress
from herald.services.scheduler.main import relay_outbox
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.names import DLQ
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.client import HeraldClient
from herald.shared.messages.codec import now_utc
from tests.conftest import Namespace, eventually
from tests.integration.test_api_jobs import later, tenant_key
from tests.support.helpers import aread_topic

IMAGE = "https://cdn.example.com/a.jpg"
TOKEN = "T" * 40


async def networks(rt: Runtime, tenant: str) -> dict[str, str]:
    """One connection on each of sandbox, threads and facebook: their ids by platform."""
    store = rt.connections()
    bodies: dict[str, dict[str, Any]] = {
        "sandbox": {},
        "threads": {"metadata": {"threadsUserId": "1001"}, "access_token": TOKEN},
        "facebook": {"metadata": {"pageId": "2002"}, "access_token": TOKEN},
    }
    ids = {}
    for platform, extra in bodies.items():
        body = {"platform": platform, "name": platform, "tenant_id": tenant, **extra}
        ids[platform] = str((await store.create(ADMIN, body))["id"])
    return ids


async def post(client: TestClient[Any, Any], key: dict[str, str], body: dict[str, Any]) -> Any:
    resp = await client.post("/publishing/jobs", json=body, headers=key)
    return resp.status, await resp.json()


async def test_one_post_goes_to_each_network_with_its_own_caption(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    ids = await networks(rt, "acme")
    order = ["sandbox", "threads", "facebook"]
    status, body = await post(
        client,
        key,
        {
            "connection_ids": [ids[p] for p in order],
            "media_asset_ids": [IMAGE],
            "media_type": "IMAGE",
            "caption": "a long caption " * 40,  # 600 characters: over Threads' 500
            "caption_overrides": {"threads": "short for Threads"},
            "scheduled_at": later(minutes=30),
        },
    )
    assert status == 201, body
    jobs = body["jobs"]
    assert [j["platform"] for j in jobs] == order
    assert [j["connection_id"] for j in jobs] == [ids[p] for p in order]
    assert {j["post_id"] for j in jobs} == {body["post_id"]}
    captions = {j["platform"]: j["caption"] for j in jobs}
    assert captions["threads"] == "short for Threads"
    assert captions["sandbox"] == captions["facebook"] == "a long caption " * 40
    rows = await rt.db.fetch(
        "SELECT platform, caption FROM jobs WHERE post_id = %s", (body["post_id"],)
    )
    assert {r["platform"]: r["caption"] for r in rows} == captions


async def test_each_network_refuses_by_its_own_limit_and_nothing_is_written(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    ids = await networks(rt, "acme")
    both = [ids["threads"], ids["facebook"]]
    base = {"connection_ids": both, "scheduled_at": later(minutes=30)}

    status, body = await post(client, key, {**base, "media_asset_ids": [], "media_type": "TEXT"})
    assert status == 422
    fields = body["error"]["fields"]
    assert set(fields) == {"connection_ids[1]"}  # Threads takes TEXT; Facebook does not
    assert fields["connection_ids[1]"].startswith(f"facebook connection {ids['facebook']}:")
    assert "media_type must be one of" in fields["connection_ids[1]"]

    status, body = await post(
        client, key, {**base, "media_asset_ids": [IMAGE], "caption": "x" * 501}
    )
    assert status == 422
    assert body["error"]["fields"] == {
        "connection_ids[0]": f"threads connection {ids['threads']}:"
        " caption at most 500 characters on threads, got 501"
    }

    status, body = await post(
        client,
        key,
        {**base, "media_asset_ids": [IMAGE], "caption_overrides": {"myspace": "hi"}},
    )
    assert status == 422
    assert set(body["error"]["fields"]) == {"caption_overrides.myspace"}

    status, body = await post(
        client, key, {**base, "media_asset_ids": [IMAGE], "platform": "threads"}
    )
    assert status == 422
    assert "is a facebook connection" in body["error"]["fields"]["connection_ids[1]"]
    count = await rt.db.fetchone("SELECT count(*) AS n FROM jobs")
    assert count is not None and count["n"] == 0


async def test_a_command_without_platform_takes_the_connections(ns: Namespace, rt: Runtime) -> None:
    ids = await networks(rt, "acme")
    client = HeraldClient(ns.base.kafka_bootstrap, "acme", topic_prefix=ns.topic_prefix)
    post_id, (on_threads, on_facebook) = client.schedule_post(
        connection_ids=[ids["threads"], ids["facebook"]],
        media_asset_ids=[IMAGE],
        caption="everywhere",
        caption_overrides={"threads": "on Threads"},
        scheduled_at=now_utc() + timedelta(hours=1),
    )
    refused = client.schedule(
        connection_id=ids["threads"], media_asset_ids=[IMAGE], caption="y" * 501
    )
    client.flush()
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(CommandIngress(rt, rt.jobs()).consumer().run(stop)),
        asyncio.create_task(relay_outbox(rt, stop)),
    ]
    try:
        await eventually(lambda: _exists(rt, on_facebook), timeout=60)
        dlq = await aread_topic(
            ns.base.kafka_bootstrap, ns.topic_prefix + DLQ, expect=1, timeout=30
        )
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    threads_job = await rt.jobs().get(ADMIN, on_threads)
    facebook_job = await rt.jobs().get(ADMIN, on_facebook)
    assert (threads_job["platform"], threads_job["caption"]) == ("threads", "on Threads")
    assert (facebook_job["platform"], facebook_job["caption"]) == ("facebook", "everywhere")
    assert threads_job["post_id"] == facebook_job["post_id"] == post_id
    assert not await _exists(rt, refused)
    assert len(dlq) == 1 and refused in str(dlq[0])
    assert "at most 500 characters on threads" in str(dlq[0])


async def _exists(rt: Runtime, job_id: str) -> bool:
    row = await rt.db.fetchone("SELECT 1 AS one FROM jobs WHERE id = %s", (job_id,))
    return row is not None


async def test_bluesky_refuses_a_caption_over_300_graphemes_when_the_post_is_scheduled(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    ids = await networks(rt, "acme")
    bluesky = await rt.connections().create(
        ADMIN,
        {
            "platform": "bluesky",
            "name": "bluesky",
            "tenant_id": "acme",
            "metadata": {"identifier": "herald.bsky.social"},
            "access_token": "abcd-efgh-ijkl-mnop",
        },
    )
    base = {"media_asset_ids": [], "media_type": "TEXT", "scheduled_at": later(minutes=30)}
    both = {**base, "connection_ids": [ids["threads"], bluesky["id"]], "caption": "x" * 301}

    status, body = await post(client, key, both)
    assert status == 422
    assert body["error"]["fields"] == {
        "connection_ids[1]": f"bluesky connection {bluesky['id']}:"
        " caption at most 300 graphemes on bluesky, got 301"
    }
    one = {**base, "platform": "bluesky", "connection_id": bluesky["id"]}
    status, body = await post(client, key, {**one, "caption": "é" * 301})
    assert status == 422
    assert body["error"]["fields"] == {"caption": "at most 300 graphemes on bluesky, got 301"}
    assert await rt.db.fetch("SELECT id FROM jobs") == []

    status, body = await post(client, key, {**one, "caption": "e\u0301" * 300})
    assert status == 201, body  # 300 graphemes (600 code points)
