"""The fake LinkedIn's Videos API refuses what LinkedIn documents it refuses: sizes out of
75 KB to 500 MB, another owner, a part of the wrong length or past its URL's expiry, ETags
missing or out of order, an unencoded urn, a post naming a video still processing; and it
fails a video too short to process."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import yarl

from tests.fakes.linkedin_server import FakeLinkedIn
from tests.fakes.media_host import movie

VERSION = "202601"
CLIP = movie(10.0, pad=1_500_000)  # 1.5 MB of ten seconds


@pytest.fixture
async def li() -> AsyncIterator[FakeLinkedIn]:
    async with FakeLinkedIn() as fake:
        fake.part_bytes = 600_000
        yield fake


def headers(li: FakeLinkedIn) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {li.token}",
        "LinkedIn-Version": VERSION,
        "X-Restli-Protocol-Version": "2.0.0",
    }


def init(li: FakeLinkedIn, size: int, owner: str | None = None) -> dict[str, Any]:
    ask = {"owner": owner or li.author, "fileSizeBytes": size}
    return {"initializeUploadRequest": ask | {"uploadCaptions": False, "uploadThumbnail": False}}


async def start(s: aiohttp.ClientSession, li: FakeLinkedIn, data: bytes) -> dict[str, Any]:
    url = f"{li.base_url}/rest/videos?action=initializeUpload"
    async with s.post(url, json=init(li, len(data)), headers=headers(li)) as r:
        assert r.status == 200
        value: dict[str, Any] = (await r.json())["value"]
        return value


async def put_parts(
    s: aiohttp.ClientSession, li: FakeLinkedIn, v: dict[str, Any], data: bytes
) -> list[str]:
    etags = []
    for part in v["uploadInstructions"]:
        chunk = data[part["firstByte"] : part["lastByte"] + 1]
        async with s.put(part["uploadUrl"], data=chunk, headers=headers(li)) as r:
            assert r.status == 200
            etags.append(r.headers["ETag"])
    return etags


async def finalize(
    s: aiohttp.ClientSession, li: FakeLinkedIn, v: dict[str, Any], etags: list[str]
) -> int:
    body = {
        "finalizeUploadRequest": {
            "video": v["video"],
            "uploadToken": v["uploadToken"],
            "uploadedPartIds": etags,
        }
    }
    url = f"{li.base_url}/rest/videos?action=finalizeUpload"
    async with s.post(url, json=body, headers=headers(li)) as r:
        return r.status


async def status(
    s: aiohttp.ClientSession, li: FakeLinkedIn, urn: str, *, encode: bool = True
) -> tuple[int, Any]:
    path = urn.replace(":", "%3A") if encode else urn
    url = yarl.URL(f"{li.base_url}/rest/videos/{path}", encoded=True)
    async with s.get(url, headers=headers(li)) as r:
        return r.status, await r.json()


async def test_a_video_in_parts_is_processed_then_available(li: FakeLinkedIn) -> None:
    async with aiohttp.ClientSession() as s:
        v = await start(s, li, CLIP)
        parts = v["uploadInstructions"]
        assert len(parts) == 3 and parts[0]["firstByte"] == 0
        assert parts[-1]["lastByte"] == len(CLIP) - 1
        assert all(a["lastByte"] + 1 == b["firstByte"] for a, b in itertools.pairwise(parts))
        etags = await put_parts(s, li, v, CLIP)
        assert await finalize(s, li, v, list(reversed(etags))) == 400  # order matters
        assert await finalize(s, li, v, etags[:2]) == 400  # every part
        assert await finalize(s, li, v, etags) == 200
        assert (await status(s, li, v["video"], encode=False))[0] == 400
        code, body = await status(s, li, v["video"])
        assert code == 200 and body["status"] == "PROCESSING"
        post = {
            "author": li.author,
            "commentary": "clip",
            "visibility": "PUBLIC",
            "distribution": {},
            "lifecycleState": "PUBLISHED",
            "content": {"media": {"id": v["video"]}},
        }
        async with s.post(f"{li.base_url}/rest/posts", json=post, headers=headers(li)) as r:
            assert r.status == 400  # not AVAILABLE yet
        li.advance(1)
        assert (await status(s, li, v["video"]))[1]["status"] == "AVAILABLE"
        async with s.post(f"{li.base_url}/rest/posts", json=post, headers=headers(li)) as r:
            assert r.status == 201
        assert (await status(s, li, "urn:li:video:nope"))[0] == 404


async def test_sizes_owners_parts_and_expired_urls_are_refused(li: FakeLinkedIn) -> None:
    url = f"{li.base_url}/rest/videos?action=initializeUpload"
    async with aiohttp.ClientSession() as s:
        for body, code in (
            (init(li, 70 * 1024), 400),
            (init(li, 501 * 1024 * 1024), 400),
            (init(li, len(CLIP), "urn:li:organization:999"), 403),
        ):
            async with s.post(url, json=body, headers=headers(li)) as r:
                assert r.status == code
        v = await start(s, li, CLIP)
        first = v["uploadInstructions"][0]
        async with s.put(first["uploadUrl"], data=CLIP[:100], headers=headers(li)) as r:
            assert r.status == 400  # not the part's length
        li.expired_uploads = 1
        v = await start(s, li, CLIP)
        first = v["uploadInstructions"][0]
        async with s.put(
            first["uploadUrl"], data=CLIP[: first["lastByte"] + 1], headers=headers(li)
        ) as r:
            assert r.status == 403


async def test_a_video_too_short_or_marked_fails_processing(li: FakeLinkedIn) -> None:
    li.fail_processing("[bad]")
    async with aiohttp.ClientSession() as s:
        for data in (movie(2.0, pad=100_000), CLIP + b"[bad]"):
            v = await start(s, li, data)
            assert await finalize(s, li, v, await put_parts(s, li, v, data)) == 200
            li.advance(1)
            _code, body = await status(s, li, v["video"])
            assert body["status"] == "PROCESSING_FAILED" and body["processingFailureReason"]
