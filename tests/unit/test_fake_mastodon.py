"""The fake Mastodon instance keeps to the documented API: instance limits, 401 for a bad
token, media 200/202 then 206 until processed, statuses validated (length with URLs as 23,
media not ready, too many), the Idempotency-Key (same key → first status; a concurrent one
→ 503; forgotten after its hour), the account's statuses, the rate-limit headers, faults."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from tests.fakes.mastodon_instance import FakeMastodon


@pytest.fixture
async def m() -> AsyncIterator[FakeMastodon]:
    async with FakeMastodon() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    m: FakeMastodon,
    method: str,
    path: str,
    token: str | None = "",
    **kw: Any,
) -> tuple[int, Any, dict[str, str]]:
    headers = dict(kw.pop("headers", {}))
    headers["Authorization"] = f"Bearer {m.token if token == '' else token}"
    async with http.request(method, m.base_url + path, headers=headers, **kw) as r:
        return r.status, await r.json(content_type=None), dict(r.headers)


async def upload(http: aiohttp.ClientSession, m: FakeMastodon, kind: str) -> tuple[int, Any]:
    form = aiohttp.FormData()
    form.add_field("file", b"\0" * 100, filename="f", content_type=kind)
    status, body, _ = await call(http, m, "POST", "/api/v2/media", data=form)
    return status, body


async def test_instance_limits_and_auth(http: aiohttp.ClientSession, m: FakeMastodon) -> None:
    status, body, headers = await call(http, m, "GET", "/api/v2/instance", token=None)
    assert status == 200 and body["configuration"]["statuses"]["max_characters"] == 500
    assert body["configuration"]["statuses"]["characters_reserved_per_url"] == 23
    datetime.fromisoformat(headers["X-RateLimit-Reset"].replace("Z", "+00:00"))
    status, body, _ = await call(http, m, "GET", "/api/v1/accounts/verify_credentials", token="bad")
    assert (status, body["error"]) == (401, "The access token is invalid")
    status, body, _ = await call(http, m, "GET", "/api/v1/accounts/verify_credentials")
    assert body["id"] == m.account_id


async def test_media_processes_before_it_can_be_attached(
    http: aiohttp.ClientSession, m: FakeMastodon
) -> None:
    status, image = await upload(http, m, "image/jpeg")
    assert status == 200 and image["url"]
    status, video = await upload(http, m, "video/mp4")
    assert status == 202 and video["url"] is None
    status, body = await upload(http, m, "application/pdf")
    assert status == 422 and "content type" in body["error"]
    status, body, _ = await call(
        http, m, "POST", "/api/v1/statuses", json={"status": "v", "media_ids": [video["id"]]}
    )
    assert status == 422 and "not finished processing" in body["error"]
    path = f"/api/v1/media/{video['id']}"
    assert [(await call(http, m, "GET", path))[0] for _ in range(3)] == [206, 206, 200]
    status, body, _ = await call(
        http,
        m,
        "POST",
        "/api/v1/statuses",
        json={"status": "v", "media_ids": [video["id"], image["id"]]},
    )
    assert status == 422 and "video" in body["error"]
    status, body, _ = await call(
        http, m, "POST", "/api/v1/statuses", json={"status": "v", "media_ids": [video["id"]]}
    )
    assert status == 200 and body["media_attachments"][0]["type"] == "video"


async def test_text_limit_counts_urls_as_23(http: aiohttp.ClientSession, m: FakeMastodon) -> None:
    url = "https://example.com/" + "a" * 200
    status, _, _ = await call(
        http, m, "POST", "/api/v1/statuses", json={"status": "x" * 470 + " " + url}
    )
    assert status == 200
    status, body, _ = await call(http, m, "POST", "/api/v1/statuses", json={"status": "x" * 501})
    assert status == 422 and "character limit of 500" in body["error"]
    status, body, _ = await call(http, m, "POST", "/api/v1/statuses", data={"status": " "})
    assert status == 422 and "blank" in body["error"]


async def test_idempotency_key(http: aiohttp.ClientSession, m: FakeMastodon) -> None:
    m.post_seconds = 0.5
    key = {"Idempotency-Key": "k1"}
    first = await call(http, m, "POST", "/api/v1/statuses", json={"status": "[k]"}, headers=key)
    again = await call(http, m, "POST", "/api/v1/statuses", json={"status": "[k]"}, headers=key)
    assert first[0] == again[0] == 200 and first[1]["id"] == again[1]["id"]
    assert len(m.posts_with("[k]")) == 1
    both = await asyncio.gather(
        *(
            call(
                http,
                m,
                "POST",
                "/api/v1/statuses",
                json={"status": "[c]"},
                headers={"Idempotency-Key": "k2"},
            )
            for _ in range(2)
        )
    )
    assert sorted(s for s, _, _ in both) == [200, 503] and len(m.posts_with("[c]")) == 1
    m.forget_keys()
    await call(http, m, "POST", "/api/v1/statuses", json={"status": "[k]"}, headers=key)
    assert len(m.posts_with("[k]")) == 2  # a key past its hour no longer protects
    status, listed, _ = await call(
        http, m, "GET", f"/api/v1/accounts/{m.account_id}/statuses", params={"limit": "2"}
    )
    assert status == 200 and [s["content"] for s in listed] == ["<p>[k]</p>", "<p>[c]</p>"]


async def test_faults(http: aiohttp.ClientSession, m: FakeMastodon) -> None:
    m.fail_next(
        "status",
        429,
        {"error": "Too many requests"},
        headers={"X-RateLimit-Reset": "2026-12-02T10:00:00.000Z"},
        marker="[rl]",
    )
    m.drop_next("status", commit=True, marker="[drop]")
    status, _body, headers = await call(
        http, m, "POST", "/api/v1/statuses", json={"status": "[rl]"}
    )
    assert status == 429 and headers["X-RateLimit-Reset"] == "2026-12-02T10:00:00.000Z"
    with pytest.raises(aiohttp.ClientError):
        await call(http, m, "POST", "/api/v1/statuses", json={"status": "[drop]"})
    assert len(m.posts_with("[drop]")) == 1 and not m.posts_with("[rl]")
