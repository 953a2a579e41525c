"""Bluesky and Mastodon through the whole pipeline: scheduler, results and two publisher
copies as processes, the network's fake and a media host on loopback (allow-listed with
HERALD_ALLOWED_PRIVATE_HOSTS). One run per network holds every media kind and each error
class as jobs (auth, an expired session refreshed, rate limit with the headers' wait, media
rejected, transient 5xx, a connection dropped before and after the post was made; Bluesky's
videos through a fake video service: processed at once, still processing when the attempt's
poll ends, failed, too long, an expired service token; Bluesky's attempts poll 2 s), and one
copy is SIGKILLed while its post call hangs after the post was made. Every job ends as its
class says, with exactly one post per published job and none for the others (the fakes
count posts per job by the job's unique text)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.runtime import Runtime
from herald.shared.platforms.hosts import ALLOW_ENV
from tests.conftest import Namespace, eventually
from tests.fakes.bluesky_pds import FakePDS
from tests.fakes.bluesky_video import FakeVideoService
from tests.fakes.mastodon_instance import FakeMastodon
from tests.fakes.media_host import MediaHost
from tests.fakes.tls import make_cert, server_context
from tests.support.e2e_runs import job_rows, kill_claim_holder
from tests.support.helpers import ServiceProcess, assert_none_in_progress

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

PUBLISHED, DEAD, WAITING = "PUBLISHED", "DEAD_LETTERED", "RETRY_SCHEDULED"
AUTH_ENDS = {WAITING}  # an auth failure holds its job (needs_reauth)
Script = Callable[[Any, str], None]  # (the fake, the job's marker) → faults aimed at it


def fault(method: str, call: str, *args: Any, **kwargs: Any) -> Script:
    return lambda fake, marker: getattr(fake, method)(call, *args, marker=marker, **kwargs)


def none(fake: Any, marker: str) -> None:
    return None


@dataclass(frozen=True)
class Job:
    label: str  # unique: the fake finds the job's posts by "[label]" in their text
    assets: list[str]  # paths on the media host
    media_type: str
    ends: set[str]
    script: Script = none
    posts: int = 1
    bad_secret: bool = False
    video: Callable[[FakeVideoService], None] | None = None  # Bluesky's video service faults
    uploads: int = 1  # Bluesky: the video service's jobs for the job's video

    @property
    def marker(self) -> str:
        return f"[{self.label}]"


def xrpc(status: int, error: str, message: str, **kw: Any) -> Script:
    body = {"error": error, "message": message}
    return lambda fake, marker: fake.fail_next("createRecord", status, body, marker=marker, **kw)


def mastodon_rate_limit(fake: Any, marker: str) -> None:
    reset = datetime.fromtimestamp(fake.now() + 1, UTC).isoformat().replace("+00:00", "Z")
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}
    fake.fail_next("status", 429, {"error": "Too many requests"}, headers=headers, marker=marker)


IMG, IMG2 = "a/photo.jpg", "b/photo.png"
BAD_GATEWAY = {"error": "Bad Gateway"}
JWT_EXPIRED = {"error": "JwtExpired", "message": "jwt expired"}
BLUESKY_JOBS = [
    Job("text", [], "TEXT", {PUBLISHED}),
    Job("image", [IMG], "IMAGE", {PUBLISHED}),
    Job("images", [IMG, IMG2, IMG, IMG2], "IMAGE", {PUBLISHED}),
    Job("auth", [], "TEXT", AUTH_ENDS, posts=0, bad_secret=True),
    Job("refresh", [], "TEXT", {PUBLISHED}, xrpc(400, "ExpiredToken", "Token has expired")),
    Job(
        "rl",
        [],
        "TEXT",
        {PUBLISHED},
        xrpc(429, "RateLimitExceeded", "Rate Limit Exceeded", headers={"Retry-After": "1"}),
    ),
    Job(
        "rejected",
        [IMG],
        "IMAGE",
        {DEAD},
        xrpc(400, "BlobTooLarge", "This file is too large."),
        posts=0,
    ),
    Job("too-big", ["big/photo.jpg"], "IMAGE", {DEAD}, posts=0),
    Job(
        "transient",
        [],
        "TEXT",
        {PUBLISHED},
        xrpc(503, "NotEnoughResources", "Not enough resources"),
    ),
    Job("drop", [IMG], "IMAGE", {PUBLISHED}, fault("drop_next", "createRecord", commit=True)),
    Job("lost", [], "TEXT", {PUBLISHED}, fault("drop_next", "createRecord")),
    Job("kill", [], "TEXT", {PUBLISHED}, fault("hang_next", "createRecord", 120, commit=True)),
    # its first upload refused with an expired service token: a new token, one upload
    Job(
        "video",
        ["a/clip.mp4"],
        "VIDEO",
        {PUBLISHED},
        video=lambda v: v.fail_next("uploadVideo", 401, JWT_EXPIRED, marker="a/clip"),
    ),
    # processing outlasts the attempt's poll: `processing`, then the stored job, no new upload
    Job("video-slow", ["held/clip.mp4"], "VIDEO", {PUBLISHED}, video=lambda v: v.hold("held/", 4)),
    Job(
        "video-failed",
        ["bad/clip.mp4"],
        "VIDEO",
        {DEAD},
        posts=0,
        video=lambda v: v.fail_processing("bad/"),
    ),
    Job("video-long", ["long/clip.mp4"], "VIDEO", {DEAD}, posts=0, uploads=0),
]
MASTODON_JOBS = [
    Job("text", [], "TEXT", {PUBLISHED}),
    Job("image", [IMG], "IMAGE", {PUBLISHED}),
    Job("images", [IMG, IMG2], "IMAGE", {PUBLISHED}),
    Job("video", ["a/clip.mp4"], "VIDEO", {PUBLISHED}),
    Job("auth", [], "TEXT", AUTH_ENDS, posts=0, bad_secret=True),
    Job("rl", [], "TEXT", {PUBLISHED}, mastodon_rate_limit),
    Job("rejected", ["a/rejected.jpg"], "IMAGE", {DEAD}, posts=0),
    Job("transient", [], "TEXT", {PUBLISHED}, fault("fail_next", "status", 502, BAD_GATEWAY)),
    Job("drop", [IMG], "IMAGE", {PUBLISHED}, fault("drop_next", "status", commit=True)),
    Job("lost", [], "TEXT", {PUBLISHED}, fault("drop_next", "status")),
    Job("kill", [], "TEXT", {PUBLISHED}, fault("hang_next", "status", 120, commit=True)),
]  # fmt: skip


CASES: dict[str, tuple[type[Any], list[Job], str]] = {
    "bluesky": (FakePDS, BLUESKY_JOBS, "createRecord"),
    "mastodon": (FakeMastodon, MASTODON_JOBS, "status"),
}


def connection_body(platform: str, fake: Any, bad: bool, video: str = "") -> dict[str, Any]:
    if isinstance(fake, FakePDS):
        secret = "aaaa-bbbb-cccc-dddd" if bad else fake.app_password
        meta = {"identifier": fake.handle, "pdsUrl": fake.base_url, "videoUrl": video}
    else:
        secret = "Z" * 43 if bad else fake.token
        meta = {"instanceUrl": fake.base_url}
    return {"platform": platform, "name": platform, "access_token": secret, "metadata": meta}


@pytest.mark.parametrize("platform", sorted(CASES))
async def test_every_kind_and_error_class_posts_once_with_a_publisher_killed(
    platform: str, ns: Namespace, rt: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake, jobs, post_call = CASES[platform]
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    cert, key = make_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the publishers trust the media host
    async with (
        make_fake() as fake,
        MediaHost(tls=server_context(cert, key)) as cdn,
        FakeVideoService(fake) as video,  # Bluesky's (idle beside Mastodon)
    ):
        store = rt.connections()
        ids_by_secret = {}
        for bad in (False, True):
            body = connection_body(platform, fake, bad, video.base_url)
            ids_by_secret[bad] = str((await store.create(ADMIN, body))["id"])
        for job in jobs:
            job.script(fake, job.marker)
            if job.video is not None:
                job.video(video)
        if isinstance(fake, FakeMastodon):  # the instance refuses the job's file by its name
            body = {"error": "Validation failed: File content type is invalid, File is invalid"}
            fake.fail_next("media", 422, body, marker="rejected")
        env = ns.env(
            backoff_base_seconds=0.5,
            backoff_max_seconds=2.0,
            lease_seconds=3.0,
            call_timeout_seconds=3.0,
            container_poll_seconds=2.0 if platform == "bluesky" else 10.0,
            stuck_after_seconds=30.0,
        )
        services = [ServiceProcess(s, env, tmp_path).start() for s in ("scheduler", "results")]
        copies = [
            ServiceProcess("publisher", env, tmp_path, f"publisher-{i}").start() for i in range(2)
        ]
        try:
            ids: dict[str, str] = {}
            for n, job in enumerate(jobs):
                body = {
                    "platform": platform,
                    "connection_id": ids_by_secret[job.bad_secret],
                    "media_asset_ids": [cdn.url(a) for a in job.assets],
                    "caption": f"{platform} job {n} {job.marker} https://example.com/{n} #herald",
                    "media_type": job.media_type,
                }
                ids[job.label] = (await rt.jobs().schedule(ADMIN, body)).body["id"]

            async def killed_mid_call() -> bool:
                hanging = [r for r in fake.calls(post_call) if r.status == 0]
                if not any("[kill]" in fake.text_of(post_call, r.body) for r in hanging):
                    return False
                return await kill_claim_holder(rt, copies, ids["kill"])  # the post made

            await eventually(killed_mid_call, timeout=60, interval=0.2)

            async def settled() -> bool:
                rows = await job_rows(rt, ids)
                return all(rows.get(j.label, {}).get("status") in j.ends for j in jobs)

            await eventually(settled, timeout=90, interval=0.5)
            await asyncio.sleep(2)  # any late second post would show now
            final = await job_rows(rt, ids)
            assert sum(not c.alive() for c in copies) == 1, [c.log()[-2000:] for c in copies]
            assert all(s.alive() for s in services), [s.log()[-2000:] for s in services]
        finally:
            for process in [*services, *copies]:
                process.stop()

        wrong: dict[str, Any] = {}
        for job in jobs:
            row = final[job.label]
            posts = len(fake.posts_with(job.marker))
            if platform == "bluesky" and job.media_type == "VIDEO":
                uploads = len(video.uploads_with(job.assets[0]))
                if uploads != job.uploads:
                    wrong[job.label] = ("uploads", uploads)
            if row["status"] not in job.ends or posts != job.posts:
                wrong[job.label] = (row["status"], posts, row["last_error"])
        assert not wrong, wrong
        assert "needs_reauth" in str(final["auth"]["last_error"])
        await assert_none_in_progress(rt)
        logs = "".join(p.log() for p in [*services, *copies])
        secrets = [connection_body(platform, fake, b)["access_token"] for b in (False, True)]
        assert not any(s in logs for s in secrets)
