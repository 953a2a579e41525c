"""Fixtures shared by the Instagram publisher's unit tests: the fake Graph server and a
publisher pointed at it with short polling intervals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.publisher.platforms.instagram import InstagramPublisher
from tests.fakes.graph_server import FakeGraph


@pytest.fixture
async def fake() -> AsyncIterator[FakeGraph]:
    async with FakeGraph() as graph:
        yield graph


@pytest.fixture
async def publisher(fake: FakeGraph) -> AsyncIterator[InstagramPublisher]:
    pub = InstagramPublisher(
        fake.base_url, poll_initial_seconds=0.005, poll_max_interval_seconds=0.02
    )
    yield pub
    await pub.close()
