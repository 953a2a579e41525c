"""The fake video service keeps to the app.bsky.video lexicons: service tokens checked for
audience, method, issuer and expiry (and their bounds at the PDS), the daily limits, the
upload's size cap, the same bytes answered with the first job, processing that completes
into a PDS blob or fails (too long, marked), and the video embed the PDS then accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.bluesky_pds import FakePDS
from tests.fakes.bluesky_video import FakeVideoService, did_web
from tests.fakes.media_host import movie
from tests.unit.test_fake_bluesky_pds import NOW, login, xrpc

UPLOAD_BLOB = "com.atproto.repo.uploadBlob"


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakePDS, FakeVideoService]]:
    async with FakePDS() as pds, FakeVideoService(pds, processing_seconds=0.0) as video:
        yield pds, video


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def service_token(
    http: aiohttp.ClientSession, pds: FakePDS, access: str, aud: str, lxm: str, exp: float
) -> tuple[int, Any]:
    params = {"aud": aud, "lxm": lxm, "exp": str(int(exp))}
    status, body, _ = await xrpc(
        http, pds, "com.atproto.server.getServiceAuth", access, params=params
    )
    return status, body


async def video_call(
    http: aiohttp.ClientSession, video: FakeVideoService, name: str, token: str = "", **kw: Any
) -> tuple[int, Any]:
    method = "POST" if "data" in kw else "GET"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers |= kw.pop("headers", {})
    url = f"{video.base_url}/xrpc/app.bsky.video.{name}"
    async with http.request(method, url, headers=headers, **kw) as r:
        return r.status, await r.json(content_type=None)


async def upload(
    http: aiohttp.ClientSession, fakes: tuple[FakePDS, FakeVideoService], data: bytes
) -> tuple[int, Any]:
    pds, video = fakes
    s = await login(http, pds)
    _, body = await service_token(
        http, pds, s["accessJwt"], did_web(pds.base_url), UPLOAD_BLOB, pds.now() + 1800
    )
    return await video_call(
        http,
        video,
        "uploadVideo",
        body["token"],
        data=data,
        params={"did": pds.did, "name": "v.mp4"},
        headers={"Content-Type": "video/mp4"},
    )


async def test_service_tokens_are_bounded_and_checked(
    http: aiohttp.ClientSession, fakes: tuple[FakePDS, FakeVideoService]
) -> None:
    pds, video = fakes
    access = (await login(http, pds))["accessJwt"]
    aud = did_web(pds.base_url)
    status, body = await service_token(http, pds, access, aud, UPLOAD_BLOB, pds.now() + 7200)
    assert (status, body["error"]) == (400, "BadExpiration")
    status, body = await service_token(http, pds, access, aud, UPLOAD_BLOB, pds.now() + 1800)
    assert status == 200
    params = {"did": pds.did, "name": "v.mp4"}
    sent = {"data": movie(5), "params": params, "headers": {"Content-Type": "video/mp4"}}
    status, answer = await video_call(http, video, "getUploadLimits", body["token"])
    assert (status, answer["error"]) == (401, "BadJwtAudience")
    pds.expire_service_tokens()
    status, answer = await video_call(http, video, "uploadVideo", body["token"], **sent)
    assert (status, answer["error"]) == (401, "JwtExpired")
    status, answer = await video_call(http, video, "uploadVideo", "svc.forged", **sent)
    assert (status, answer["error"]) == (401, "BadJwtSignature")
    lxm = "app.bsky.video.getUploadLimits"
    _, limits_token = await service_token(
        http, pds, access, did_web(video.base_url), lxm, pds.now() + 60
    )
    status, limits = await video_call(http, video, "getUploadLimits", limits_token["token"])
    assert status == 200 and limits["canUpload"] is True
    assert limits["remainingDailyVideos"] == 25


async def test_a_video_completes_into_a_blob_the_post_embeds(
    http: aiohttp.ClientSession, fakes: tuple[FakePDS, FakeVideoService]
) -> None:
    pds, video = fakes
    status, body = await upload(http, fakes, movie(12))
    assert status == 200 and body["jobStatus"]["state"] == "JOB_STATE_CREATED"
    job = body["jobStatus"]["jobId"]
    status, again = await upload(http, fakes, movie(12))
    assert (status, again["error"], again["jobId"]) == (409, "already_exists", job)
    status, read = await video_call(http, video, "getJobStatus", params={"jobId": job})
    assert status == 200 and read["jobStatus"]["state"] == "JOB_STATE_COMPLETED"
    blob = read["jobStatus"]["blob"]
    assert blob["mimeType"] == "video/mp4" and len(video.jobs) == 1
    access = (await login(http, pds))["accessJwt"]
    value = {"$type": "app.bsky.feed.post", "text": "v", "createdAt": NOW}
    value["embed"] = {"$type": "app.bsky.embed.video", "video": blob}
    record = {"repo": pds.did, "collection": "app.bsky.feed.post", "record": value}
    status, made, _ = await xrpc(http, pds, "com.atproto.repo.createRecord", access, json=record)
    assert status == 200, made
    value["embed"]["video"] = {**blob, "ref": {"$link": "bafkreinotuploaded"}}
    status, refused, _ = await xrpc(http, pds, "com.atproto.repo.createRecord", access, json=record)
    assert status == 400 and "Could not find blob" in refused["message"]
    status, unknown = await video_call(http, video, "getJobStatus", params={"jobId": "nope"})
    assert (status, unknown["error"]) == (400, "InvalidRequest")


@pytest.mark.parametrize("case", ["too-long", "marked", "too-large", "daily-limit"])
async def test_refused_and_failed_videos(
    http: aiohttp.ClientSession, fakes: tuple[FakePDS, FakeVideoService], case: str
) -> None:
    _, video = fakes
    data = movie(200) if case == "too-long" else movie(10) + b"[bad]"
    video.fail_processing("[bad]" if case == "marked" else "[never]")
    if case == "too-large":
        video.max_bytes = 1000
    if case == "daily-limit":
        video.daily_videos = 0
    status, body = await upload(http, fakes, data)
    if case == "too-large":
        assert (status, body["error"]) == (413, "PayloadTooLarge")
        return
    if case == "daily-limit":
        assert (status, body["error"]) == (400, "InvalidRequest")
        return
    job = body["jobStatus"]["jobId"]
    _, read = await video_call(http, video, "getJobStatus", params={"jobId": job})
    assert read["jobStatus"]["state"] == "JOB_STATE_FAILED" and "blob" not in read["jobStatus"]
    assert ("too long" in read["jobStatus"]["message"]) is (case == "too-long")


async def test_processing_takes_time_and_jobs_can_be_forgotten(
    http: aiohttp.ClientSession, fakes: tuple[FakePDS, FakeVideoService]
) -> None:
    pds, video = fakes
    video.hold("[slow]", 60)
    _, body = await upload(http, fakes, movie(3) + b"[slow]")
    job = body["jobStatus"]["jobId"]
    _, read = await video_call(http, video, "getJobStatus", params={"jobId": job})
    assert read["jobStatus"]["state"] == "JOB_STATE_ENCODING" and not pds.blobs
    video.advance(61)
    _, read = await video_call(http, video, "getJobStatus", params={"jobId": job})
    assert read["jobStatus"]["state"] == "JOB_STATE_COMPLETED"
    video.forget_jobs()
    status, _ = await video_call(http, video, "getJobStatus", params={"jobId": job})
    assert status == 400
