"""The fake Graph server itself behaves like the documented API, faults included."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from typing import Any

import aiohttp
import pytest

from bench.graph_fake import FaultMix, soak_mix
from bench.graph_fake.mix import bare_429
from bench.graph_fake.model import Fault
from tests.fakes.graph_server import DEFAULT_ACCOUNT, DEFAULT_TOKEN, INSTAGRAM, FakeGraph

IMG = "https://cdn.example.com/a/photo.jpg"
VID = "https://cdn.example.com/a/clip.mp4"
AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}


class Graph:
    """A raw HTTP client of the fake (what any Graph client would send)."""

    def __init__(self, fake: FakeGraph, base: str | None = None, token: str = DEFAULT_TOKEN):
        self.base = base or fake.base_url
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, **params: str) -> tuple[int, Any, dict[str, str]]:
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method,
                f"{self.base}/{path}",
                params=params if method == "GET" else None,
                data=params if method == "POST" else None,
                headers=self.headers,
            ) as r,
        ):
            raw = await r.read()
            body = json.loads(raw) if r.content_type == "application/json" else raw.decode()
            return r.status, body, dict(r.headers)

    async def create(self, **params: str) -> str:
        status, body, _ = await self.call("POST", f"{DEFAULT_ACCOUNT}/media", **params)
        assert status == 200, body
        return str(body["id"])

    async def status(self, cid: str) -> str:
        _, body, _ = await self.call("GET", cid, fields="status_code")
        return str(body["status_code"])

    async def publish(self, cid: str) -> tuple[int, Any, dict[str, str]]:
        return await self.call("POST", f"{DEFAULT_ACCOUNT}/media_publish", creation_id=cid)


def code_of(body: dict[str, Any]) -> tuple[int, int | None]:
    return body["error"]["code"], body["error"].get("error_subcode")


async def test_fake_accepts_json_bodies_bearer_tokens_and_any_version(fake: FakeGraph) -> None:
    root = fake.base_url.rsplit("/", 1)[0]
    async with aiohttp.ClientSession() as http:
        url = f"{root}/v19.0/{DEFAULT_ACCOUNT}/media"
        async with http.post(url, json={"image_url": IMG, "caption": "x"}, headers=AUTH) as r:
            cid = (await r.json())["id"]
        async with http.get(f"{root}/{cid}?fields=status_code,status", headers=AUTH) as r:
            assert (await r.json())["status_code"] == "FINISHED"
        form = {"creation_id": cid, "access_token": DEFAULT_TOKEN}
        async with http.post(f"{root}/{DEFAULT_ACCOUNT}/media_publish", data=form) as r:
            media_id = (await r.json())["id"]
        query = {"fields": "config,quota_usage", "access_token": DEFAULT_TOKEN}
        async with http.get(
            f"{fake.base_url}/{DEFAULT_ACCOUNT}/content_publishing_limit", params=query
        ) as r:
            limit = await r.json()
            usage_headers = set(r.headers)
        async with http.get(f"{fake.base_url}/{media_id}?fields=permalink", headers=AUTH) as r:
            assert (await r.json())["permalink"].startswith("https://www.instagram.com/p/")
        async with http.get(f"{fake.base_url}/{cid}", params={"access_token": "nope"}) as r:
            assert r.status == 400 and (await r.json())["error"]["code"] == 190
    assert limit == {
        "data": [{"quota_usage": 1, "config": {"quota_total": 50, "quota_duration": 86400}}]
    }
    assert {"X-Business-Use-Case-Usage", "X-App-Usage"} <= usage_headers
    vias = [r.token_via for r in fake.requests]
    assert vias == ["header", "header", "form", "query", "header", "query"]


async def test_fake_validates_like_graph(fake: FakeGraph) -> None:
    graph = Graph(fake)

    async def create(**params: str) -> tuple[int, int | None]:
        _, body, _ = await graph.call("POST", f"{DEFAULT_ACCOUNT}/media", **params)
        return code_of(body)

    assert await create(image_url="https://x/a.png") == (36001, 2207005)
    assert await create(image_url=IMG, caption="x" * 2201) == (36004, 2207010)
    assert await create(media_type="REELS", video_url=VID, thumb_offset="-1") == (1, 2207057)
    assert await create(media_type="CAROUSEL", children="1") == (100, 2207028)
    assert await create(media_type="GIF", image_url=IMG) == (100, 2207023)
    assert await create(image_url=IMG, is_carousel_item="true", caption="no") == (100, None)
    cid = await graph.create(image_url=IMG)
    fake.advance(25 * 3600)
    _, body, _ = await graph.publish(cid)
    assert code_of(body) == (-2, 2207020)


async def test_publish_states_and_the_second_publish(fake: FakeGraph) -> None:
    graph = Graph(fake)
    fake.container_processing(60.0, media_type="REELS")
    cid = await graph.create(media_type="REELS", video_url=VID, caption="reel")
    assert await graph.status(cid) == "IN_PROGRESS"
    status, body, _ = await graph.publish(cid)
    assert status == 400 and code_of(body) == (9007, 2207027)
    fake.ready(cid)
    assert await graph.status(cid) == "FINISHED"
    status, body, _ = await graph.publish(cid)
    assert status == 200 and fake.posts[DEFAULT_ACCOUNT][0].id == body["id"]
    assert await graph.status(cid) == "PUBLISHED"
    status, body, _ = await graph.publish(cid)
    assert status == 400 and len(fake.posts[DEFAULT_ACCOUNT]) == 1
    _, body, _ = await graph.publish("1234")
    assert code_of(body) == (24, 2207008)


async def test_a_lagging_status_read_after_a_publish(fake: FakeGraph) -> None:
    graph = Graph(fake)
    fake.status_lags(30.0)
    cid = await graph.create(image_url=IMG, caption="late")
    assert (await graph.publish(cid))[0] == 200
    assert await graph.status(cid) == "FINISHED"  # stale
    _, listed, _ = await graph.call("GET", f"{DEFAULT_ACCOUNT}/media", fields="caption")
    assert [m["caption"] for m in listed["data"]] == ["late"]  # the media list is not
    status, body, _ = await graph.publish(cid)
    assert status == 400 and body["error"]["code"] == 100  # published all the same
    fake.advance(30.0)
    assert await graph.status(cid) == "PUBLISHED"


async def test_the_clock_advances_and_scales() -> None:
    async with FakeGraph(time_scale=1440.0) as fake:  # a day passes in a minute
        graph = Graph(fake)
        fake.container_processing(20 * 60.0, media_type="REELS")  # 20 minutes of fake time
        cid = await graph.create(media_type="REELS", video_url=VID, caption="reel")
        assert await graph.status(cid) == "IN_PROGRESS"
        fake.advance(20 * 60.0 / 1440)  # the same 20 minutes, in the wall time they take
        assert await graph.status(cid) == "FINISHED"
        _, body, _ = await graph.call(
            "GET", f"{DEFAULT_ACCOUNT}/content_publishing_limit", fields="config"
        )
        assert body["data"][0]["config"]["quota_duration"] == 60  # the window it keeps
        fake.advance(61)
        assert await graph.status(cid) == "EXPIRED"


async def test_each_login_has_its_own_host(fake: FakeGraph) -> None:
    fake.add_account("1784199", "IGAAinstagramLOGINtoken", login=INSTAGRAM)
    ig = Graph(fake, fake.instagram_base_url, token="IGAAinstagramLOGINtoken")
    status, body, _ = await ig.call("GET", "1784199/content_publishing_limit")
    assert status == 200 and body["data"][0]["quota_usage"] == 0
    # the Instagram Login token on the Facebook host, the Facebook token on Instagram's: 190
    wrong = Graph(fake, fake.base_url, token="IGAAinstagramLOGINtoken")
    assert code_of((await wrong.call("GET", "1784199/content_publishing_limit"))[1])[0] == 190
    wrong = Graph(fake, fake.instagram_base_url)
    assert code_of((await wrong.call("GET", f"{DEFAULT_ACCOUNT}/media"))[1])[0] == 190
    assert [r.login for r in fake.requests] == ["instagram", "facebook", "instagram"]


async def test_appsecret_proof_is_required_when_the_app_has_a_secret() -> None:
    async with FakeGraph(app_secret="s3cret") as fake:
        graph = Graph(fake)
        path = f"{DEFAULT_ACCOUNT}/content_publishing_limit"
        status, body, _ = await graph.call("GET", path)
        assert status == 400 and body["error"]["code"] == 100 and "appsecret_proof" in str(body)
        status, body, _ = await graph.call("GET", path, appsecret_proof="00" * 32)
        assert status == 400 and "Invalid appsecret_proof" in body["error"]["message"]
        proof = hmac.new(b"s3cret", DEFAULT_TOKEN.encode(), hashlib.sha256).hexdigest()
        status, _, _ = await graph.call("GET", path, appsecret_proof=proof)
        assert status == 200


async def test_bare_429_has_no_envelope_and_changes_nothing(fake: FakeGraph) -> None:
    graph = Graph(fake)
    cid = await graph.create(image_url=IMG)
    fake.throttle_bare_next("media_publish", retry_after=3)
    status, body, headers = await graph.publish(cid)
    assert (status, body, headers["Retry-After"]) == (429, "Too Many Requests", "3")
    assert fake.posts[DEFAULT_ACCOUNT] == [] and await graph.status(cid) == "FINISHED"


async def test_a_throttled_account_answers_80002_until_the_estimate_passes(
    fake: FakeGraph,
) -> None:
    fake.add_account("1784100", "EAAGotherTOKEN")
    graph, other = Graph(fake), Graph(fake, token="EAAGotherTOKEN")
    fake.throttle_account(DEFAULT_ACCOUNT, 2)
    for _ in range(2):  # reads and writes alike, as long as it lasts
        status, body, headers = await graph.call("GET", f"{DEFAULT_ACCOUNT}/media")
        assert status == 400 and code_of(body) == (80002, None)
        buc = json.loads(headers["X-Business-Use-Case-Usage"])[DEFAULT_ACCOUNT][0]
        assert buc["estimated_time_to_regain_access"] == 2
    assert (await other.call("GET", "1784100/media"))[0] == 200  # other accounts go on
    fake.advance(61)
    _, body, headers = await graph.call("GET", f"{DEFAULT_ACCOUNT}/media")
    assert (
        json.loads(headers["X-Business-Use-Case-Usage"])[DEFAULT_ACCOUNT][0][
            "estimated_time_to_regain_access"
        ]
        == 1
    )
    fake.advance(60)
    assert (await graph.call("GET", f"{DEFAULT_ACCOUNT}/media"))[0] == 200


async def test_throttled_reads_after_a_lost_publish(fake: FakeGraph) -> None:
    graph = Graph(fake)
    cid = await graph.create(image_url=IMG)
    fake.commit_then_drop("media_publish")
    fake.fail_next("container_status", code=80002, regain_minutes=1, times=2)
    with pytest.raises(aiohttp.ClientError):
        await graph.publish(cid)
    for _ in range(2):
        _, body, headers = await graph.call("GET", cid, fields="status_code")
        assert code_of(body) == (80002, None) and body["error"]["is_transient"] is True
        assert 'estimated_time_to_regain_access": 1' in headers["X-Business-Use-Case-Usage"]
    assert await graph.status(cid) == "PUBLISHED"
    assert [r.status for r in fake.calls("media_publish")] == [-1]


async def test_slow_and_hanging_answers(fake: FakeGraph) -> None:
    graph = Graph(fake)
    cid = await graph.create(image_url=IMG)
    fake.delay_next("media_publish", 0.2)
    began = fake.now()
    status, _, _ = await graph.publish(cid)
    assert status == 200 and fake.now() - began >= 0.2  # answered, late
    fake.hang_next("create_container", 0.2)  # a POST: aiohttp retries a dropped GET once
    with pytest.raises(aiohttp.ClientError):
        await graph.call("POST", f"{DEFAULT_ACCOUNT}/media", image_url=IMG)
    assert [r.status for r in fake.calls("create_container")] == [200, -1]


def key(fault: Fault | None) -> tuple[Any, ...]:
    if fault is None:
        return ()
    err = fault.error
    codes = (err.code, err.subcode) if err is not None else ()
    return (fault.action, fault.commit, fault.status, fault.seconds, *codes)


async def test_a_fault_mix_draws_every_class_and_is_reproducible() -> None:
    mix = soak_mix(hang_seconds=1.0)
    rng = random.Random(7)
    drawn = [mix.draw("media_publish", DEFAULT_ACCOUNT, rng) for _ in range(3000)]
    actions = {(f.action, f.commit, f.error.code if f.error else f.status) for f in drawn if f}
    assert {("drop", True, 400), ("hang", True, 400), ("hang", False, 400)} <= actions
    assert {("error", True, 1), ("error", True, 4), ("error", False, 9007)} <= actions
    assert ("bare", False, 429) in actions and ("error", False, 24) in actions
    assert 0.15 < sum(f is not None for f in drawn) / len(drawn) < 0.3
    again = random.Random(7)
    redrawn = [mix.draw("media_publish", DEFAULT_ACCOUNT, again) for _ in range(3000)]
    assert [key(f) for f in redrawn] == [key(f) for f in drawn]


async def test_a_mix_applies_to_requests_after_the_scripted_faults() -> None:
    mix = FaultMix(faults={"content_publishing_limit": [(1.0, "bare", bare_429(2))]})
    async with FakeGraph(mix=mix, seed=1) as fake:
        graph = Graph(fake)
        fake.fail_next("content_publishing_limit", code=2)
        path = f"{DEFAULT_ACCOUNT}/content_publishing_limit"
        assert (await graph.call("GET", path))[0] == 400
        assert (await graph.call("GET", path))[0] == 429
