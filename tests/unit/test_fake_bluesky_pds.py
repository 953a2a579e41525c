"""The fake Bluesky PDS keeps to the lexicons and the reference PDS: sessions, refresh
rotation, token errors, blob and record validation, a taken rkey refused, getRecord, the
rate-limit headers, and its faults (aimed by marker, committed then dropped)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.bluesky_pds import FakePDS

KEY = "3lbcdefghijkl"
NOW = "2026-12-02T09:30:00.000Z"


@pytest.fixture
async def pds() -> AsyncIterator[FakePDS]:
    async with FakePDS() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def xrpc(
    http: aiohttp.ClientSession, pds: FakePDS, nsid: str, token: str | None = None, **kw: Any
) -> tuple[int, Any, dict[str, str]]:
    method = "GET" if "params" in kw else "POST"
    headers = dict(kw.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with http.request(method, f"{pds.base_url}/xrpc/{nsid}", headers=headers, **kw) as r:
        return r.status, await r.json(content_type=None), dict(r.headers)


async def login(http: aiohttp.ClientSession, pds: FakePDS) -> dict[str, Any]:
    body = {"identifier": pds.handle, "password": pds.app_password}
    status, answer, _ = await xrpc(http, pds, "com.atproto.server.createSession", json=body)
    assert status == 200
    return dict(answer)


def post(pds: FakePDS, text: str, rkey: str = KEY, **record: Any) -> dict[str, Any]:
    value = {"$type": "app.bsky.feed.post", "text": text, "createdAt": NOW, **record}
    return {"repo": pds.did, "collection": "app.bsky.feed.post", "rkey": rkey, "record": value}


async def test_sessions_refresh_and_token_errors(http: aiohttp.ClientSession, pds: FakePDS) -> None:
    bad = {"identifier": pds.handle, "password": "aaaa-bbbb-cccc-dddd"}
    status, body, _ = await xrpc(http, pds, "com.atproto.server.createSession", json=bad)
    assert (status, body["error"]) == (401, "AuthenticationRequired")
    s = await login(http, pds)
    assert s["did"] == pds.did and s["handle"] == pds.handle
    pds.expire_sessions()
    status, body, _ = await xrpc(
        http, pds, "com.atproto.repo.createRecord", s["accessJwt"], json=post(pds, "x")
    )
    assert (status, body["error"]) == (400, "ExpiredToken")
    status, fresh, _ = await xrpc(http, pds, "com.atproto.server.refreshSession", s["refreshJwt"])
    assert status == 200 and fresh["accessJwt"] != s["accessJwt"]
    status, body, _ = await xrpc(http, pds, "com.atproto.server.refreshSession", "ey.unknown")
    assert (status, body["error"]) == (400, "ExpiredToken")
    status, body, _ = await xrpc(
        http, pds, "com.atproto.repo.createRecord", "nope", json=post(pds, "x")
    )
    assert (status, body["error"]) == (400, "InvalidToken")
    status, body, _ = await xrpc(http, pds, "com.atproto.repo.createRecord", json=post(pds, "x"))
    assert (status, body["error"]) == (401, "AuthMissing")


async def test_create_session_is_rate_limited_per_account(
    http: aiohttp.ClientSession, pds: FakePDS
) -> None:
    for _ in range(30):
        await login(http, pds)
    body = {"identifier": pds.handle, "password": pds.app_password}
    status, answer, headers = await xrpc(http, pds, "com.atproto.server.createSession", json=body)
    assert (status, answer["error"]) == (429, "RateLimitExceeded")
    assert int(headers["Retry-After"]) > 0 and int(headers["RateLimit-Reset"]) > 0


async def test_records_are_validated_and_a_taken_rkey_is_refused(
    http: aiohttp.ClientSession, pds: FakePDS
) -> None:
    token = (await login(http, pds))["accessJwt"]
    create = "com.atproto.repo.createRecord"
    status, body, _ = await xrpc(http, pds, create, token, json=post(pds, "é" * 301))
    assert (status, body["error"]) == (400, "InvalidRequest") and "300 graphemes" in body["message"]
    status, body, _ = await xrpc(http, pds, create, token, json=post(pds, "hi", rkey="not-a-tid"))
    assert (status, body["error"]) == (400, "InvalidRequest")
    bad_facet = [
        {
            "index": {"byteStart": 0, "byteEnd": 99},
            "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "x"}],
        }
    ]
    status, body, _ = await xrpc(http, pds, create, token, json=post(pds, "#x", facets=bad_facet))
    assert status == 400 and "out of range" in body["message"]
    status, body, headers = await xrpc(http, pds, create, token, json=post(pds, "hello [a]"))
    assert status == 200 and body["uri"] == f"at://{pds.did}/app.bsky.feed.post/{KEY}"
    assert headers["RateLimit-Policy"] == "5000;w=3600" and headers["RateLimit-Remaining"] == "4997"
    status, body, _ = await xrpc(http, pds, create, token, json=post(pds, "hello again [a]"))
    assert (status, body["error"]) == (500, "InternalServerError")
    assert len(pds.posts_with("[a]")) == 1
    params = {"repo": pds.did, "collection": "app.bsky.feed.post", "rkey": KEY}
    status, body, _ = await xrpc(http, pds, "com.atproto.repo.getRecord", params=params)
    assert status == 200 and body["value"]["text"] == "hello [a]"
    params["rkey"] = "3lbcdefghijkm"
    status, body, _ = await xrpc(http, pds, "com.atproto.repo.getRecord", params=params)
    assert (status, body["error"]) == (400, "RecordNotFound")


async def test_images_need_an_uploaded_image_blob_under_the_size_and_alt(
    http: aiohttp.ClientSession, pds: FakePDS
) -> None:
    token = (await login(http, pds))["accessJwt"]
    upload = "com.atproto.repo.uploadBlob"

    async def blob(data: bytes, kind: str) -> dict[str, Any]:
        status, body, _ = await xrpc(
            http, pds, upload, token, data=data, headers={"Content-Type": kind}
        )
        assert status == 200
        return dict(body["blob"])

    small, big = (
        await blob(b"\xff\xd8" * 100, "image/jpeg"),
        await blob(b"\0" * 1_200_000, "image/jpeg"),
    )
    text = await blob(b"hello", "text/plain")
    create = "com.atproto.repo.createRecord"

    def embed(b: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"$type": "app.bsky.embed.images", "images": [{"image": b, **extra}]}

    status, body, _ = await xrpc(http, pds, create, token, json=post(pds, "a", embed=embed(small)))
    assert status == 400 and "alt" in body["message"]
    status, body, _ = await xrpc(
        http, pds, create, token, json=post(pds, "a", embed=embed(big, alt=""))
    )
    assert (status, body["error"]) == (400, "BlobTooLarge")
    status, body, _ = await xrpc(
        http, pds, create, token, json=post(pds, "a", embed=embed(text, alt=""))
    )
    assert status == 400 and "mimeType" in body["message"]
    status, _, _ = await xrpc(
        http, pds, create, token, json=post(pds, "a", embed=embed(small, alt=""))
    )
    assert status == 200
    status, body, _ = await xrpc(http, pds, upload, token, data=b"\0" * (5 * 1024 * 1024 + 1))
    assert (status, body["error"]) == (413, "PayloadTooLarge")


async def test_faults_aim_at_a_marker_and_commit_before_dropping(
    http: aiohttp.ClientSession, pds: FakePDS
) -> None:
    token = (await login(http, pds))["accessJwt"]
    create = "com.atproto.repo.createRecord"
    pds.drop_next("createRecord", commit=True, marker="[drop]")
    pds.fail_next(
        "createRecord",
        429,
        {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
        headers={"Retry-After": "7"},
    )
    status, _body, headers = await xrpc(
        http, pds, create, token, json=post(pds, "[other]", rkey="3lbcdefghijk2")
    )
    assert status == 429 and headers["Retry-After"] == "7"
    with pytest.raises(aiohttp.ClientError):
        await xrpc(http, pds, create, token, json=post(pds, "[drop]"))
    assert len(pds.posts_with("[drop]")) == 1 and pds.calls("createRecord")[-1].status == -1
