"""LinkedIn and X through the whole pipeline: scheduler, results and two publisher copies as
processes, the platform's fake on loopback and an https media host (a loopback certificate
the publishers trust through SSL_CERT_FILE). One run per platform holds every media kind and
each error class as jobs (auth, a rate limit with the wait its headers give, media the
platform rejects, a transient 5xx, a connection dropped before and after the post was made;
LinkedIn videos in parts: processed, still processing past the poll, failed, an upload URL
expired), and one publisher copy is SIGKILLed while its post call hangs after the post was
made (on LinkedIn, once every video's upload is stored on its job). Every job ends as its class
says, with exactly one post per published job and none for the others (the fakes count posts
by the job's marker), and each LinkedIn video is uploaded once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from herald.services.publisher.platforms.rest.oauth2 import pack
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.runtime import Runtime
from herald.shared.platforms.hosts import ALLOW_ENV
from tests.conftest import Namespace, eventually
from tests.fakes.linkedin_server import FakeLinkedIn
from tests.fakes.media_host import MediaHost
from tests.fakes.tls import make_cert, server_context
from tests.fakes.x_server import RATE_LIMITED, FakeX
from tests.support.e2e_runs import kill_claim_holder
from tests.support.helpers import ServiceProcess, assert_none_in_progress

pytestmark = [pytest.mark.e2e, pytest.mark.chaos]

PUBLISHED, DEAD, WAITING = "PUBLISHED", "DEAD_LETTERED", "RETRY_SCHEDULED"
AUTH_ENDS = {DEAD, WAITING}  # held under needs_reauth, or dead-lettered
BIG = 1_000_000  # the fakes refuse images over this (the media host's big/ ones are 1.5 MB)
Script = Callable[[Any, str], None]


def fault(method: str, call: str, *args: Any, **kwargs: Any) -> Script:
    return lambda fake, marker: getattr(fake, method)(call, *args, marker=marker, **kwargs)


def none(fake: Any, marker: str) -> None:
    return None


def expired_then_parts(fake: Any, marker: str) -> None:
    fake.part_bytes = 600_000  # every LinkedIn video of the run: three parts
    fake.fail_next("video_part", 403, EXPIRED, marker="big/clip.mp4")


def x_rate_limit(fake: Any, marker: str) -> None:
    headers = fake.limit_headers(0, reset_in=1)
    fake.fail_next("tweet", 429, RATE_LIMITED, headers=headers, marker=marker)


@dataclass(frozen=True)
class Job:
    label: str
    assets: list[str]  # media host paths
    media_type: str
    ends: set[str]
    script: Script = none
    posts: int = 1
    bad_token: bool = False
    page: bool = False  # LinkedIn: posted as the member's Page (its own rate budget)

    @property
    def marker(self) -> str:
        return f"[{self.label}]"


SERVER_ERROR = {"status": 500, "message": "Internal Server Error"}
EXPIRED = {"status": 403, "message": "The upload URL has expired"}
LINKEDIN_JOBS = [
    Job("text", [], "TEXT", {PUBLISHED}),
    Job("image", ["a/photo.jpg"], "IMAGE", {PUBLISHED}),
    Job("multi", ["a/photo.jpg", "b/photo.png"], "MULTI_IMAGE", {PUBLISHED}),
    Job("auth", [], "TEXT", AUTH_ENDS, posts=0, bad_token=True),
    Job(
        "rl",
        [],
        "TEXT",
        {PUBLISHED},
        fault("fail_next", "post", 429, {"status": 429}, headers={"Retry-After": "1"}),
    ),
    Job("rejected", ["big/photo.jpg"], "IMAGE", {DEAD}, posts=0),
    Job("transient", [], "TEXT", {PUBLISHED}, fault("fail_next", "post", 500, SERVER_ERROR)),
    Job("drop", ["a/photo.jpg"], "IMAGE", {PUBLISHED}, fault("drop_next", "post", commit=True)),
    Job("lost", [], "TEXT", {PUBLISHED}, fault("drop_next", "post")),
    Job("kill", [], "TEXT", {PUBLISHED}, fault("hang_next", "post", 120, commit=True)),
    # Videos, posted as the Page (a rate budget of their own, so they add little to the run;
    # big/: 1.5 MB, over LinkedIn's 75 KB floor) go up in three 600,000-byte parts;
    # this one's first upload URL is refused as expired: one new upload at once.
    Job("video", ["big/clip.mp4"], "VIDEO", {PUBLISHED}, expired_then_parts, page=True),
    # processing past the attempt's 2 s poll: `processing`, then the stored urn, no new upload
    Job(
        "vslow",
        ["big/slow/clip.mp4"],
        "VIDEO",
        {PUBLISHED},
        lambda f, m: f.hold("big/slow/", 4),
        page=True,
    ),
    Job(
        "vfailed",
        ["big/bad/clip.mp4"],
        "VIDEO",
        {DEAD},
        lambda f, m: f.fail_processing("big/bad/"),
        posts=0,
    ),
]
LINKEDIN_VIDEOS = {"video": 1, "vslow": 1, "vfailed": 1}
UNAVAILABLE = {"title": "Service Unavailable", "status": 503}
X_JOBS = [
    Job("text", [], "TEXT", {PUBLISHED}),
    Job("images", ["a/photo.jpg", "b/photo.png"], "IMAGE", {PUBLISHED}),
    Job("video", ["a/clip.mp4"], "VIDEO", {PUBLISHED}),
    Job("auth", [], "TEXT", AUTH_ENDS, posts=0, bad_token=True),
    Job("rl", [], "TEXT", {PUBLISHED}, x_rate_limit),
    Job("rejected", ["big/photo.jpg"], "IMAGE", {DEAD}, posts=0),
    Job("transient", [], "TEXT", {PUBLISHED}, fault("fail_next", "tweet", 503, UNAVAILABLE)),
    Job("drop", ["a/photo.jpg"], "IMAGE", {PUBLISHED}, fault("drop_next", "tweet", commit=True)),
    Job("lost", [], "TEXT", {PUBLISHED}, fault("drop_next", "tweet")),
    Job("kill", [], "TEXT", {PUBLISHED}, fault("hang_next", "tweet", 120, commit=True)),
]


def _linkedin(fake: Any) -> tuple[dict[str, Any], dict[str, str], str]:
    return {"linkedin_api_url": fake.base_url}, {"author": fake.author}, fake.token


def _x(fake: Any) -> tuple[dict[str, Any], dict[str, str], str]:
    return {"x_api_url": fake.base_url}, {"userId": fake.user_id}, fake.token


CASES: dict[str, tuple[Any, list[Job], str, Any]] = {
    "linkedin": (lambda: FakeLinkedIn(max_upload_bytes=BIG), LINKEDIN_JOBS, "post", _linkedin),
    "x": (lambda: FakeX(max_image_bytes=BIG), X_JOBS, "tweet", _x),
}
TIMINGS = {
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
    make_fake, jobs, post_call, describe = CASES[platform]
    cert, key = make_cert(tmp_path)
    async with make_fake() as fake, MediaHost(tls=server_context(cert, key)) as cdn:
        urls, metadata, token = describe(fake)
        store = rt.connections()

        async def connection(tok: str, meta: dict[str, str]) -> str:
            body = {"platform": platform, "name": platform, "access_token": pack(tok, None)}
            body["metadata"] = meta
            return str((await store.create(ADMIN, body))["id"])

        bad_token = "B" * 48
        good, bad = await connection(token, metadata), await connection(bad_token, metadata)
        page = await connection(token, {"author": fake.page}) if platform == "linkedin" else ""
        for job in jobs:
            job.script(fake, job.marker)
        timings = TIMINGS | {"container_poll_seconds": 2.0 if platform == "linkedin" else 10.0}
        env = ns.env(**urls, **timings) | {ALLOW_ENV: "127.0.0.1", "SSL_CERT_FILE": str(cert)}
        services = [ServiceProcess(s, env, tmp_path).start() for s in ("scheduler", "results")]
        copies = [
            ServiceProcess("publisher", env, tmp_path, f"publisher-{i}").start() for i in range(2)
        ]
        try:
            ids: dict[str, str] = {}

            async def schedule(n: int, job: Job) -> None:
                body = {
                    "connection_id": bad if job.bad_token else page if job.page else good,
                    "media_asset_ids": [cdn.url(a) for a in job.assets],
                    "media_type": job.media_type,
                    "caption": f"{platform} job {n} {job.marker}",
                }
                ids[job.label] = (await rt.jobs().schedule(ADMIN, body)).body["id"]

            async def videos_stored() -> bool:  # or published, or dead-lettered
                rows = await rt.db.fetch(
                    "SELECT container_id, status FROM jobs WHERE id = ANY(%s)",
                    ([ids[label] for label in LINKEDIN_VIDEOS],),
                )
                done = [r for r in rows if r["container_id"] or r["status"] in (PUBLISHED, DEAD)]
                return len(done) == len(LINKEDIN_VIDEOS)

            # The job whose copy is killed comes last on LinkedIn, once every video's upload
            # is stored on its job: a copy killed mid-upload leaves parts that a new upload
            # sends again, and the part count below is exact.
            last = next(n for n, job in enumerate(jobs) if job.label == "kill")
            for n, job in enumerate(jobs):
                if n != last:
                    await schedule(n, job)
            if platform == "linkedin":
                await eventually(videos_stored, timeout=60, interval=0.2)
            await schedule(last, jobs[last])

            async def killed_mid_call() -> bool:
                hanging = [r for r in fake.calls(post_call) if r.status == 0]
                if not any("[kill]" in fake.text_of(post_call, r.body) for r in hanging):
                    return False
                return await kill_claim_holder(rt, copies, ids["kill"])  # its post made

            try:
                await eventually(killed_mid_call, timeout=120, interval=0.2)
            except AssertionError:
                seen = [(r.call, r.status) for r in fake.requests]
                tails = [c.log()[-3000:] for c in copies]
                raise AssertionError(f"no kill: fake saw {seen}; publishers: {tails}") from None

            async def settled() -> bool:
                rows = await rt.db.fetch(
                    "SELECT id::text AS id, status FROM jobs WHERE id = ANY(%s)",
                    (list(ids.values()),),
                )
                status = {r["id"]: r["status"] for r in rows}
                return all(status.get(ids[j.label]) in j.ends for j in jobs)

            try:
                await eventually(settled, timeout=150, interval=1.0)
            except AssertionError:
                rows = await rt.db.fetch(
                    "SELECT id::text AS id, status, last_error FROM jobs WHERE id = ANY(%s)",
                    (list(ids.values()),),
                )
                found = {r["id"]: (r["status"], r["last_error"]) for r in rows}
                raise AssertionError({j.label: found.get(ids[j.label]) for j in jobs}) from None
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
        if platform == "linkedin":  # one finalized upload per video, none for the refused
            uploads = {
                j.label: len(fake.videos_with(j.assets[0]))
                for j in jobs
                if j.label in LINKEDIN_VIDEOS
            }
            assert uploads == LINKEDIN_VIDEOS, uploads
            assert len(fake.calls("video_part")) == 3 * 3 + 1  # the expired part sent twice
        assert len(fake.calls(post_call)) >= len([j for j in jobs if j.posts])
        await assert_none_in_progress(rt)
        logs = "".join(p.log() for p in [*services, *copies])
        assert token not in logs and bad_token not in logs
