"""The fake Threads server itself behaves like the documented API, faults included."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.fakes.threads_server import FakeThreads
from tests.fakes.threads_state import APP_ID, APP_SECRET, text_length

IMG = "https://cdn.example.com/a/photo.jpg"
VID = "https://cdn.example.com/a/clip.mp4"


async def call(
    th: FakeThreads,
    method: str,
    path: str,
    token: str | None = None,
    *,
    root: bool = False,
    **p: str,
) -> tuple[int, Any]:
    base = th.root_url if root else th.base_url
    headers = {"Authorization": f"Bearer {token or th.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            f"{base}/{path}",
            params=p if method == "GET" else None,
            data=p if method == "POST" else None,
            headers=headers,
        ) as r,
    ):
        return r.status, json.loads(await r.read())


def code_of(body: Any) -> tuple[Any, Any]:
    return body["error"]["code"], body["error"].get("error_subcode")


async def create(th: FakeThreads, **params: str) -> str:
    status, body = await call(th, "POST", f"{th.user}/threads", **params)
    assert status == 200, body
    return str(body["id"])


async def status_of(th: FakeThreads, cid: str) -> str:
    return str((await call(th, "GET", cid, fields="id,status,error_message"))[1]["status"])


async def test_text_container_then_publish_once() -> None:
    async with FakeThreads() as th:
        cid = await create(th, media_type="TEXT", text="hello")
        assert await status_of(th, cid) == "FINISHED"
        status, body = await call(th, "POST", f"{th.user}/threads_publish", creation_id=cid)
        assert status == 200 and th.threads[body["id"]].text == "hello"
        assert await status_of(th, cid) == "PUBLISHED"
        status, _again = await call(th, "POST", f"{th.user}/threads_publish", creation_id=cid)
        assert status == 400 and len(th.posts_with("hello")) == 1


async def test_media_must_finish_before_publish() -> None:
    async with FakeThreads() as th:
        cid = await create(th, media_type="VIDEO", video_url=VID, text="clip")
        status, body = await call(th, "POST", f"{th.user}/threads_publish", creation_id=cid)
        assert code_of(body) == (24, 4279009) and body["error"]["is_transient"] is False
        statuses = [await status_of(th, cid) for _ in range(3)]
        assert statuses[0] == "IN_PROGRESS" and statuses[-1] == "FINISHED"
        status, _ = await call(th, "POST", f"{th.user}/threads_publish", creation_id=cid)
        assert status == 200


async def test_a_carousel_needs_finished_items() -> None:
    async with FakeThreads() as th:
        kids = [await create(th, media_type="IMAGE", image_url=IMG, is_carousel_item="true")]
        kids.append(await create(th, media_type="VIDEO", video_url=VID, is_carousel_item="true"))
        status, body = await call(
            th, "POST", f"{th.user}/threads", media_type="CAROUSEL", children=",".join(kids)
        )
        assert code_of(body) == (24, 4279004)
        for kid in kids:
            while await status_of(th, kid) != "FINISHED":
                pass
        parent = await create(th, media_type="CAROUSEL", children=",".join(kids), text="album")
        status, body = await call(th, "POST", f"{th.user}/threads_publish", creation_id=kids[0])
        assert code_of(body) == (24, 4279009)  # an item is never published alone
        while await status_of(th, parent) != "FINISHED":
            pass
        status, body = await call(th, "POST", f"{th.user}/threads_publish", creation_id=parent)
        assert status == 200 and th.quota_used() == 1  # a carousel counts once
        _, one = await call(
            th, "POST", f"{th.user}/threads", media_type="CAROUSEL", children=kids[0]
        )
        assert code_of(one) == (100, None)


async def test_text_and_link_limits() -> None:
    async with FakeThreads() as th:
        assert text_length("é" * 10) == 10 and text_length("🎉") == 4
        await create(th, media_type="TEXT", text="a" * 500)
        status, body = await call(
            th, "POST", f"{th.user}/threads", media_type="TEXT", text="a" * 497 + "🎉"
        )
        assert (status, code_of(body)) == (400, (100, None))
        links = " ".join(f"https://e{i}.example.com" for i in range(6))
        _, body = await call(th, "POST", f"{th.user}/threads", media_type="TEXT", text=links)
        assert code_of(body)[0] == "THREADS_API__LINK_LIMIT_EXCEEDED"


async def test_rejected_media_and_expiry() -> None:
    async with FakeThreads() as th:
        th.reject_media("/bad/", "FAILED_PROCESSING_VIDEO")
        cid = await create(th, media_type="VIDEO", video_url="https://cdn.example.com/bad/v.mp4")
        _, body = await call(th, "GET", cid, fields="status,error_message")
        assert body == {"id": cid, "status": "ERROR", "error_message": "FAILED_PROCESSING_VIDEO"}
        old = await create(th, media_type="TEXT", text="old")
        th.advance(86_401)
        assert await status_of(th, old) == "EXPIRED"


async def test_quota_and_its_endpoint() -> None:
    async with FakeThreads(quota_total=2) as th:
        for n in range(2):
            cid = await create(th, media_type="TEXT", text=f"t{n}")
            await call(th, "POST", f"{th.user}/threads_publish", creation_id=cid)
        _, limit = await call(
            th, "GET", f"{th.user}/threads_publishing_limit", fields="quota_usage,config"
        )
        assert limit["data"][0]["quota_usage"] == 2
        assert limit["data"][0]["config"] == {"quota_total": 2, "quota_duration": 86_400}
        cid = await create(th, media_type="TEXT", text="third")
        _, body = await call(th, "POST", f"{th.user}/threads_publish", creation_id=cid)
        assert code_of(body)[0] == 9
        th.advance(86_401)
        assert (await call(th, "POST", f"{th.user}/threads_publish", creation_id=cid))[0] == 400
        fresh = await create(th, media_type="TEXT", text="third")
        assert (await call(th, "POST", f"{th.user}/threads_publish", creation_id=fresh))[0] == 200


async def test_reads_lag_and_media_have_no_status() -> None:
    async with FakeThreads(list_lag=20) as th:
        cid = await create(th, media_type="TEXT", text="listed")
        _, body = await call(th, "POST", f"{th.user}/threads_publish", creation_id=cid)
        media = body["id"]
        _, listed = await call(th, "GET", f"{th.user}/threads", fields="id,text")
        assert listed["data"] == []
        th.advance(21)
        _, listed = await call(th, "GET", f"{th.user}/threads", fields="id,text")
        assert listed["data"] == [{"id": media, "text": "listed"}]
        _, body = await call(th, "GET", media, fields="id,status")
        assert code_of(body) == (100, None)


async def test_faults_by_marker_and_dropped_publish() -> None:
    async with FakeThreads() as th:
        th.commit_then_drop("publish", marker="[drop]")
        cid = await create(th, media_type="TEXT", text="x [drop]")
        with pytest.raises(aiohttp.ClientError):
            await call(th, "POST", f"{th.user}/threads_publish", creation_id=cid)
        assert len(th.posts_with("[drop]")) == 1
        th.fail_next("create", code=190)
        assert (
            code_of((await call(th, "POST", f"{th.user}/threads", media_type="TEXT", text="y"))[1])[
                0
            ]
            == 190
        )


async def test_oauth_exchange_and_refresh_rules() -> None:
    async with FakeThreads() as th:
        code = th.authorize()
        form = {
            "client_id": APP_ID,
            "client_secret": APP_SECRET,
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": "https://herald.test/cb",
        }
        _, short = await call(th, "POST", "oauth/access_token", "-", root=True, **form)
        assert short["user_id"] == th.user
        grant = {"grant_type": "th_exchange_token", "client_secret": APP_SECRET}
        _, long = await call(th, "GET", "access_token", short["access_token"], root=True, **grant)
        assert long["expires_in"] == 5_183_944
        refresh = {"grant_type": "th_refresh_token"}
        _, young = await call(
            th, "GET", "refresh_access_token", long["access_token"], root=True, **refresh
        )
        assert code_of(young)[0] == 190  # younger than 24 h
        th.advance(86_401)
        _, fresh = await call(
            th, "GET", "refresh_access_token", long["access_token"], root=True, **refresh
        )
        assert fresh["access_token"] != long["access_token"]
        th.advance(5_183_944)
        _, dead = await call(
            th, "GET", "refresh_access_token", long["access_token"], root=True, **refresh
        )
        assert code_of(dead) == (190, 463)  # expired: cannot be refreshed any more
