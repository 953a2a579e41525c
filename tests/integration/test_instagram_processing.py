"""A Reel that Instagram processes for 20 minutes (the fake's clock) goes through the whole
pipeline (dispatcher, publisher, results): the job waits in RETRY_SCHEDULED between reads of
its one container, spends no attempt, and publishes once. A carousel whose video item takes as
long reuses its stored items."""

from __future__ import annotations

import asyncio

import pytest

from herald.services.publisher.main import serve
from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.services.publisher.platforms.meta.throttle import Throttle
from herald.shared.domain.tenancy import ADMIN
from herald.shared.infra.runtime import Runtime
from tests.conftest import Namespace, eventually
from tests.fakes.graph_server import DEFAULT_ACCOUNT, DEFAULT_TOKEN, FakeGraph
from tests.support.results_pipeline import job, pipeline

pytestmark = pytest.mark.integration

# Each attempt polls 0.3 s, a re-check comes within 0.3 s; two failed attempts would end it.
FAST = {"container_poll_seconds": 0.3, "backoff_max_seconds": 0.3, "max_attempts": 2}


async def test_a_reel_ready_after_20_minutes_publishes_once_from_one_container(
    ns: Namespace,
) -> None:
    rt = Runtime.build(ns.settings(**FAST))
    await rt.open()
    stop = asyncio.Event()
    async with FakeGraph() as fake:
        fake.container_processing(20 * 60.0, media_type="REELS")
        fake.container_processing(20 * 60.0, media_type="VIDEO")  # a carousel's video item
        instagram = InstagramPublisher(
            fake.base_url,
            throttle=Throttle(rt.redis, rt.names),
            poll_initial_seconds=0.05,
            poll_max_interval_seconds=0.1,
        )
        publisher = asyncio.create_task(
            serve(rt, stop, registry={"instagram": instagram}, worker="publisher-reels")
        )
        try:
            async with pipeline(rt):
                conn = await rt.connections().create(
                    ADMIN,
                    {
                        "platform": "instagram",
                        "name": "reels",
                        "access_token": DEFAULT_TOKEN,
                        "metadata": {"instagramBusinessAccountId": DEFAULT_ACCOUNT},
                    },
                )
                body = {
                    "platform": "instagram",
                    "connection_id": conn["id"],
                    "caption": "a long reel",
                    "media_asset_ids": ["https://cdn.example.com/v/reel.mp4"],
                }
                job_id = str((await rt.jobs().schedule(ADMIN, body)).body["id"])
                body |= {
                    "caption": "a carousel",
                    "media_asset_ids": [
                        "https://cdn.example.com/v/cover.jpg",
                        "https://cdn.example.com/v/clip.mp4",
                    ],
                }
                carousel = str((await rt.jobs().schedule(ADMIN, body)).body["id"])

                async def outcomes(job_id: str = job_id) -> list[str]:
                    rows = await rt.db.fetch(
                        "SELECT outcome FROM attempts WHERE job_id = %s ORDER BY attempt",
                        (job_id,),
                    )
                    return [r["outcome"] for r in rows]

                async def rechecked_or_over() -> bool:
                    over = (await job(rt, job_id))["status"] in ("PUBLISHED", "DEAD_LETTERED")
                    return over or len(await outcomes()) >= 4

                await eventually(rechecked_or_over, 60)
                row = await job(rt, job_id)
                assert row["status"] in ("RETRY_SCHEDULED", "IN_PROGRESS"), row["last_error"]
                assert set(await outcomes()) == {"processing"}  # more than the budget, unspent

                fake.advance(20 * 60.0)  # Instagram finishes processing

                async def published() -> bool:
                    done = [(await job(rt, j))["status"] for j in (job_id, carousel)]
                    return done == ["PUBLISHED", "PUBLISHED"]

                await eventually(published, 60)
                final = await outcomes()
                assert final[-1] == "published" and set(final[:-1]) == {"processing"}
                row = await job(rt, job_id)
                assert row["failed_attempts"] == 0
                # one container for the Reel, two items and a parent for the carousel: re-read
                assert len(fake.calls("create_container")) == 4
                assert {p.caption for p in fake.posts[DEFAULT_ACCOUNT]} == {
                    "a long reel",
                    "a carousel",
                }
                assert len(fake.posts[DEFAULT_ACCOUNT]) == 2
                assert "processing" in await outcomes(carousel)
                reel = next(p for p in fake.posts[DEFAULT_ACCOUNT] if p.caption == "a long reel")
                assert row["provider_ids"]["media_id"] == reel.id
        finally:
            stop.set()
            await asyncio.wait_for(publisher, 30)
            await instagram.close()
            await rt.close()
