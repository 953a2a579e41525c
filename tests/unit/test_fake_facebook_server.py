"""The fake Facebook Pages server itself behaves like the documented API, faults included."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.fakes.facebook_server import FakeFacebook
from tests.fakes.facebook_state import APP_ID, APP_SECRET

IMG = "https://cdn.example.com/a/photo.jpg"
VID = "https://cdn.example.com/a/clip.mp4"

Answer = tuple[int, Any, dict[str, str]]


async def call(
    fb: FakeFacebook,
    method: str,
    path: str,
    token: str | None = None,
    *,
    to: str | None = None,
    headers: dict[str, str] | None = None,
    **params: str,
) -> Answer:
    auth = {"Authorization": f"Bearer {token or fb.page_token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            to or f"{fb.base_url}/{path}",
            params=params if method == "GET" else None,
            data=params if method == "POST" else None,
            headers=headers or auth,
        ) as r,
    ):
        return r.status, json.loads(await r.read()), dict(r.headers)


def code_of(body: Any) -> tuple[Any, Any]:
    return body["error"]["code"], body["error"].get("error_subcode")


async def test_a_photo_post_needs_the_page_token_and_lands_once() -> None:
    async with FakeFacebook() as fb:
        status, body, _ = await call(fb, "POST", f"{fb.page}/photos", fb.user_token, url=IMG)
        assert (status, code_of(body)[0]) == (403, 200)
        status, body, headers = await call(fb, "POST", f"{fb.page}/photos", url=IMG, caption="a")
        assert status == 200 and body["post_id"].startswith(f"{fb.page}_")
        assert [p.kind for p in fb.posts_with("a")] == ["photo"]
        usage = json.loads(headers["X-Business-Use-Case-Usage"])
        assert usage[fb.page][0]["type"] == "pages"
        status, body, _ = await call(fb, "POST", f"{fb.page}/photos", url=VID)
        assert (status, code_of(body)) == (400, (324, None))


async def test_unpublished_photos_attach_once_to_a_feed_post() -> None:
    async with FakeFacebook() as fb:
        ids = []
        for _ in range(2):
            _, body, _ = await call(fb, "POST", f"{fb.page}/photos", url=IMG, published="false")
            assert "post_id" not in body
            ids.append(body["id"])
        assert fb.posts == {}  # unpublished photos are no post
        attached = {
            f"attached_media[{i}]": json.dumps({"media_fbid": m}) for i, m in enumerate(ids)
        }
        status, body, _ = await call(fb, "POST", f"{fb.page}/feed", message="album", **attached)
        assert status == 200 and fb.posts[body["id"]].kind == "album"
        status, body, _ = await call(fb, "POST", f"{fb.page}/feed", message="again", **attached)
        assert (status, code_of(body)) == (400, (100, 1366051))
        fb.advance(2 * 86_400)
        _, body, _ = await call(fb, "POST", f"{fb.page}/photos", url=IMG, published="false")
        old = body["id"]
        fb.advance(86_401)
        late = {"attached_media[0]": json.dumps({"media_fbid": old})}
        status, body, _ = await call(fb, "POST", f"{fb.page}/feed", message="late", **late)
        assert status == 400 and "expired" in body["error"]["message"]


async def test_link_posts_and_their_errors() -> None:
    async with FakeFacebook() as fb:
        status, body, _ = await call(fb, "POST", f"{fb.page}/feed")
        assert (status, code_of(body)) == (400, (100, None))
        link = "https://example.com/article"
        status, body, _ = await call(fb, "POST", f"{fb.page}/feed", message="read", link=link)
        assert status == 200 and fb.posts[body["id"]].link == link
        bad = "https://unreachable.example.com/x"
        status, body, _ = await call(fb, "POST", f"{fb.page}/feed", message="x", link=bad)
        assert code_of(body) == (100, 1609005)


async def test_a_reel_goes_start_upload_finish_then_processes() -> None:
    async with FakeFacebook(video_polls=2) as fb:
        status, body, _ = await call(fb, "POST", f"{fb.page}/video_reels", upload_phase="start")
        video_id, upload_url = body["video_id"], body["upload_url"]
        finish = {"upload_phase": "finish", "video_id": video_id, "video_state": "PUBLISHED"}
        status, body, _ = await call(fb, "POST", f"{fb.page}/video_reels", **finish)
        assert code_of(body) == (6000, None)  # nothing uploaded yet
        bearer = {"Authorization": f"Bearer {fb.page_token}", "file_url": VID}
        status, body, _ = await call(fb, "POST", "", to=upload_url, headers=bearer)
        assert status == 400  # rupload wants "OAuth", not "Bearer"
        oauth = {"Authorization": f"OAuth {fb.page_token}", "file_url": VID}
        status, body, _ = await call(fb, "POST", "", to=upload_url, headers=oauth)
        assert (status, body) == (200, {"success": True})
        status, body, _ = await call(
            fb, "POST", f"{fb.page}/video_reels", **finish, description="r"
        )
        assert (status, body) == (200, {"success": True})
        assert len(fb.posts_with("r")) == 1
        status, body, _ = await call(
            fb, "POST", f"{fb.page}/video_reels", **finish, description="r"
        )
        assert status == 400 and len(fb.posts_with("r")) == 1  # a second finish posts nothing
        reads = [(await call(fb, "GET", video_id, fields="status"))[1]["status"] for _ in range(2)]
        assert [r["video_status"] for r in reads] == ["processing", "ready"]
        assert reads[1]["publishing_phase"]["publish_status"] == "published"


async def test_thirty_reels_a_day_then_refused() -> None:
    async with FakeFacebook() as fb:
        for _n in range(30):
            _, body, _ = await call(fb, "POST", f"{fb.page}/video_reels", upload_phase="start")
            fb.videos[body["video_id"]].finished = True
        status, body, _ = await call(fb, "POST", f"{fb.page}/video_reels", upload_phase="start")
        assert code_of(body)[0] == 9
        fb.advance(86_401)
        status, _, _ = await call(fb, "POST", f"{fb.page}/video_reels", upload_phase="start")
        assert status == 200


async def test_a_hosted_video_is_a_post() -> None:
    async with FakeFacebook() as fb:
        status, body, _ = await call(fb, "POST", f"{fb.page}/videos", file_url=VID, description="v")
        assert status == 200 and fb.videos[body["id"]].post_id in fb.posts
        both = {"file_url": VID, "upload_phase": "start"}
        status, body, _ = await call(fb, "POST", f"{fb.page}/videos", **both)
        assert code_of(body) == (100, None)


async def test_the_feed_read_lags_behind_the_write() -> None:
    async with FakeFacebook(list_lag=30) as fb:
        _, body, _ = await call(fb, "POST", f"{fb.page}/feed", message="fresh")
        _, listed, _ = await call(fb, "GET", f"{fb.page}/feed", fields="id,message")
        assert listed["data"] == []
        fb.advance(31)
        _, listed, _ = await call(fb, "GET", f"{fb.page}/published_posts", fields="id,message")
        assert listed["data"] == [{"id": body["id"], "message": "fresh"}]
        _status, body, _ = await call(fb, "GET", f"{fb.page}/feed", limit="101")
        assert code_of(body) == (100, None)


async def test_scripted_faults_by_call_and_by_marker() -> None:
    async with FakeFacebook() as fb:
        fb.fail_next("feed", code=80001, marker="[rl]")
        status, _, _ = await call(fb, "POST", f"{fb.page}/feed", message="plain")
        assert status == 200  # the aimed fault waits for its marker
        status, body, _ = await call(fb, "POST", f"{fb.page}/feed", message="x [rl]")
        assert (status, code_of(body), body["error"]["is_transient"]) == (400, (80001, None), True)
        assert fb.posts_with("[rl]") == []
        fb.commit_then_drop("feed")
        with pytest.raises(aiohttp.ClientError):
            await call(fb, "POST", f"{fb.page}/feed", message="dropped")
        assert len(fb.posts_with("dropped")) == 1 and fb.calls("feed")[-1].status == -1
        fb.fail_next("photos", code=1)
        status, body, _ = await call(fb, "POST", f"{fb.page}/photos", url=IMG)
        assert (status, code_of(body)) == (500, (1, None))
        fb.revoke(fb.page_token)
        status, body, _ = await call(fb, "POST", f"{fb.page}/feed", message="m")
        assert code_of(body)[0] == 190


async def test_oauth_code_then_long_lived_user_then_page_tokens() -> None:
    async with FakeFacebook() as fb:
        client = {"client_id": APP_ID, "client_secret": APP_SECRET}
        code = fb.authorize()
        params = {**client, "code": code, "redirect_uri": "https://herald.test/cb"}
        _, short, _ = await call(fb, "GET", "oauth/access_token", **params)
        _, again, _ = await call(fb, "GET", "oauth/access_token", **params)
        assert code_of(again)[0] == 100  # a code works once
        grant = {"grant_type": "fb_exchange_token", "fb_exchange_token": short["access_token"]}
        _, long, _ = await call(fb, "GET", "oauth/access_token", **client, **grant)
        assert long["expires_in"] == 5_183_944
        _, pages, _ = await call(fb, "GET", "me/accounts", long["access_token"])
        page = pages["data"][0]
        assert page["id"] == fb.page and "CREATE_CONTENT" in page["tasks"]
        assert fb.tokens[page["access_token"]].expires_at is None  # from a long-lived user token
        status, _, _ = await call(fb, "POST", f"{fb.page}/feed", page["access_token"], message="m")
        assert status == 200
        _, bad, _ = await call(fb, "GET", "oauth/access_token", client_id=APP_ID, **grant)
        assert code_of(bad)[0] == 101
