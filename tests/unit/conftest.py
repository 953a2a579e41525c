"""Fixtures shared by the Instagram publisher's unit tests: the fake Graph server, the
throttle on the real Redis (its own key prefix) and a publisher pointed at the fake with short
polling intervals and waits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from herald.services.publisher.platforms.instagram import InstagramPublisher
from herald.services.publisher.platforms.meta.throttle import Throttle
from herald.shared.infra import redis_client as redis_store
from herald.shared.infra.names import Names
from herald.shared.infra.settings import Settings
from tests.fakes.graph_server import FakeGraph


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph() as graph:
        yield graph


@pytest.fixture
async def throttle(base_settings: Settings) -> AsyncIterator[Throttle]:
    client = redis_store.connect(base_settings.redis_url)
    names = Names(redis_prefix=f"t{uuid.uuid4().hex[:10]}:")
    yield Throttle(client, names)
    keys = [k async for k in client.scan_iter(match=f"{names.redis_prefix}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def instagram(fake: FakeGraph, throttle: Throttle, **options: Any) -> InstagramPublisher:
    """A publisher on the fake's two hosts with short polls and waits (``options`` win)."""
    settings: dict[str, Any] = {
        "poll_initial_seconds": 0.005,
        "poll_max_interval_seconds": 0.02,
        "builder_waits": (0.01, 0.02),
        "instagram_graph_url": fake.instagram_base_url,
    }
    return InstagramPublisher(fake.base_url, throttle=throttle, **(settings | options))


@pytest.fixture
async def publisher(fake: FakeGraph, throttle: Throttle) -> AsyncIterator[InstagramPublisher]:
    pub = instagram(fake, throttle)
    yield pub
    await pub.close()
