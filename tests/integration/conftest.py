"""Fixtures shared by the HTTP API tests and the publisher's."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from herald.services.api.app import create_app
from herald.services.publisher.platforms.sandbox import SandboxPublisher
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime
from tests.integration.publisher_harness import Harness, Logs, Spy, running


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[TestClient[Any, Any]]:
    """The API app on the test's runtime, behind aiohttp's test client."""
    async with TestClient(TestServer(create_app(rt, Health()))) as c:
        yield c


@pytest.fixture
def logs() -> Iterator[Logs]:
    handler = Logs()
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old_level)


@pytest.fixture
async def harness(rt: Runtime, logs: Logs) -> AsyncIterator[Harness]:
    spy = Spy(SandboxPublisher(rt.db))
    async with running(rt, logs, {"sandbox": spy}, spy) as h:
        yield h
