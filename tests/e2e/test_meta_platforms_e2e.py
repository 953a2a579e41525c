"""Facebook Pages and Threads through the whole pipeline: scheduler, results and two publisher
copies as processes, the platform's fake on loopback. One run per platform holds every media
kind and each error class as jobs (auth, rate limit, quota, media rejected, transient, a
connection dropped before and after the post was made, Threads' "Media Not Found" race), and
one copy is SIGKILLed while its post call hangs after the post was made. Every job ends as
its class says, with exactly one post per published job and none for the others (the fakes
count posts per job by the job's unique text)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.runtime import Runtime
from tests.conftest import Namespace, eventually
from tests.fakes.facebook_server import FakeFacebook
from tests.fakes.meta_fake import MetaFake
from tests.fakes.threads_server import FakeThreads
from tests.support.e2e_runs import kill_claim_holder
from tests.support.helpers import ServiceProcess, assert_none_in_progress

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

IMG, IMG2 = "https://cdn.example.com/a/photo.jpg", "https://cdn.example.com/b/photo.png"
VID, LINK = "https://cdn.example.com/a/clip.mp4", "https://example.com/articles/spring"
BAD_TOKEN = "EAAunknownTOKENfortheauthclass0000000000000"
RETRY = {"Retry-After": "1"}  # a throttle that passes within the run
PUBLISHED, DEAD, WAITING = "PUBLISHED", "DEAD_LETTERED", "RETRY_SCHEDULED"
# An auth failure dead-letters the job, or holds it (needs_reauth) where holds exist.
AUTH_ENDS = {DEAD, WAITING}


Script = Callable[[Any, str], None]  # (the fake, the job's marker) → faults aimed at it


def fault(method: str, call: str, *args: Any, **kwargs: Any) -> Script:
    """One scripted fault of the fake, aimed at the job's requests by its marker."""
    return lambda fake, marker: getattr(fake, method)(call, *args, marker=marker, **kwargs)


def none(fake: Any, marker: str) -> None:
    return None


@dataclass(frozen=True)
class Job:
    label: str  # unique: the fake finds the job's posts by "[label]" in their text
    assets: list[str]
    media_type: str | None
    ends: set[str]
    script: Script = none
    posts: int = 1
    bad_token: bool = False

    @property
    def marker(self) -> str:
        return f"[{self.label}]"


def rejected_photo(fake: Any, marker: str) -> None:
    fake.fail_next("photos", code=324, marker="/rejected/")  # photo uploads carry no text


def transient_photo(fake: Any, marker: str) -> None:
    fake.fail_next("photos", code=2, marker="/transient/")


def rejected_video(fake: Any, marker: str) -> None:
    fake.reject_media("/rejected/", "FAILED_PROCESSING_VIDEO")


REJECTED = "https://cdn.example.com/rejected/p.jpg"
TRANSIENT = "https://cdn.example.com/transient/p.jpg"
FACEBOOK_JOBS = [
    Job("photo", [IMG], None, {PUBLISHED}),
    Job("album", [IMG, IMG2, IMG], "CAROUSEL", {PUBLISHED}),
    Job("link", [LINK], "LINK", {PUBLISHED}),
    Job("video", [VID], "VIDEO", {PUBLISHED}),
    Job("reel", [VID], "REELS", {PUBLISHED}),
    Job("auth", [LINK], "LINK", AUTH_ENDS, posts=0, bad_token=True),
    Job("rl", [LINK], "LINK", {PUBLISHED}, fault("fail_next", "feed", code=80001, headers=RETRY)),
    Job("quota", [VID], "REELS", {WAITING}, fault("fail_next", "reels_finish", code=9), posts=0),
    Job("rejected", [REJECTED], "IMAGE", {DEAD}, rejected_photo, posts=0),
    Job("transient", [TRANSIENT], "IMAGE", {PUBLISHED}, transient_photo),
    Job("drop", [IMG], "IMAGE", {PUBLISHED}, fault("commit_then_drop", "feed")),
    Job("lost", [LINK], "LINK", {PUBLISHED}, fault("drop_next", "feed")),
    Job("reel-drop", [VID], "REELS", {PUBLISHED}, fault("commit_then_drop", "reels_finish")),
    Job("kill", [LINK], "LINK", {PUBLISHED}, fault("hang_next", "feed", 120, commit=True)),
]
THREADS_JOBS = [
    Job("text", [], "TEXT", {PUBLISHED}),
    Job("text-link", [LINK], "TEXT", {PUBLISHED}),
    Job("image", [IMG], "IMAGE", {PUBLISHED}),
    Job("video", [VID], "VIDEO", {PUBLISHED}),
    Job("carousel", [IMG, VID, IMG2], "CAROUSEL", {PUBLISHED}),
    Job("auth", [], "TEXT", AUTH_ENDS, posts=0, bad_token=True),
    Job("rl", [], "TEXT", {PUBLISHED}, fault("fail_next", "create", code=4, headers=RETRY)),
    Job("quota", [], "TEXT", {WAITING}, fault("fail_next", "publish", code=9), posts=0),
    Job("rejected", ["https://cdn.example.com/rejected/v.mp4"], "VIDEO", {DEAD}, rejected_video, 0),
    Job("transient", [], "TEXT", {PUBLISHED}, fault("fail_next", "create", code=2)),
    Job("drop", [IMG], "IMAGE", {PUBLISHED}, fault("commit_then_drop", "publish")),
    Job("lost", [], "TEXT", {PUBLISHED}, fault("drop_next", "publish")),
    Job("race", [], "TEXT", {PUBLISHED}, fault("fail_next", "publish", code=24, subcode=4279009)),
    Job(
        "false-failure",
        [],
        "TEXT",
        {PUBLISHED},
        fault("fail_next", "publish", code=10, status=500, commit=True),
    ),
    Job("kill", [], "TEXT", {PUBLISHED}, fault("hang_next", "publish", 120, commit=True)),
]
CASES = {
    "facebook": (FakeFacebook, FACEBOOK_JOBS, "feed", "pageId"),
    "threads": (FakeThreads, THREADS_JOBS, "publish", "threadsUserId"),
}


def _settings(platform: str, fake: MetaFake) -> dict[str, Any]:
    return {
        f"{platform}_graph_url": fake.base_url,
        "backoff_base_seconds": 0.5,
        "backoff_max_seconds": 2.0,
        "lease_seconds": 3.0,
        "call_timeout_seconds": 3.0,
        "container_poll_seconds": 10.0,
        "stuck_after_seconds": 30.0,
    }


@pytest.mark.parametrize("platform", sorted(CASES))
async def test_every_kind_and_error_class_posts_once_with_a_publisher_killed(
    platform: str, ns: Namespace, rt: Runtime, tmp_path: Path
) -> None:
    make_fake, jobs, post_call, account_key = CASES[platform]
    async with make_fake() as fake:
        account = fake.page if isinstance(fake, FakeFacebook) else fake.user
        token = fake.page_token if isinstance(fake, FakeFacebook) else fake.token
        store = rt.connections()

        async def connection(tok: str) -> str:
            body = {"platform": platform, "name": platform, "access_token": tok}
            body["metadata"] = {account_key: account}
            return str((await store.create(ADMIN, body))["id"])

        good, bad = await connection(token), await connection(BAD_TOKEN)
        for job in jobs:
            job.script(fake, job.marker)
        env = ns.env(**_settings(platform, fake))
        services = [ServiceProcess(s, env, tmp_path).start() for s in ("scheduler", "results")]
        copies = [
            ServiceProcess("publisher", env, tmp_path, f"publisher-{i}").start() for i in range(2)
        ]
        try:
            ids: dict[str, str] = {}
            for n, job in enumerate(jobs):
                body = {
                    "platform": platform,
                    "connection_id": bad if job.bad_token else good,
                    "media_asset_ids": job.assets,
                    "caption": f"{platform} job {n} {job.marker}",
                    **({"media_type": job.media_type} if job.media_type else {}),
                }
                ids[job.label] = (await rt.jobs().schedule(ADMIN, body)).body["id"]

            async def killed_mid_call() -> bool:
                hanging = [r for r in fake.calls(post_call) if r.status == 0]
                if not any("[kill]" in fake.text_of(post_call, r.params) for r in hanging):
                    return False
                return await kill_claim_holder(rt, copies, ids["kill"])  # the post made

            await eventually(killed_mid_call, timeout=120, interval=0.2)

            async def settled() -> bool:
                rows = await rt.db.fetch(
                    "SELECT id::text AS id, status FROM jobs WHERE id = ANY(%s)",
                    (list(ids.values()),),
                )
                status = {r["id"]: r["status"] for r in rows}
                return all(status.get(ids[j.label]) in j.ends for j in jobs if j.ends != {WAITING})

            await eventually(settled, timeout=150, interval=1.0)
            await asyncio.sleep(2)  # any late second post would show now
            rows = await rt.db.fetch(
                "SELECT id::text AS id, status, last_error FROM jobs WHERE id = ANY(%s)",
                (list(ids.values()),),
            )
            final = {r["id"]: r for r in rows}
            assert sum(not c.alive() for c in copies) == 1, [c.log()[-2000:] for c in copies]
            assert all(s.alive() for s in services), [s.log()[-2000:] for s in services]
        finally:
            for process in [*services, *copies]:
                process.stop()

        wrong = {}
        for job in jobs:
            row = final[ids[job.label]]
            posts = len(fake.posts_with(job.marker))
            if row["status"] not in job.ends or posts != job.posts:
                wrong[job.label] = (row["status"], posts, row["last_error"])
        assert not wrong, wrong
        quota = final[ids["quota"]]
        assert quota["last_error"] and "rate_limited" in str(quota["last_error"])
        await assert_none_in_progress(rt)
        logs = "".join(p.log() for p in [*services, *copies])
        assert token not in logs and BAD_TOKEN not in logs
