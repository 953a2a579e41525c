"""Fixtures shared by the HTTP API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.api.app import create_app
from shared.ops_server import Health
from shared.runtime import Runtime


@pytest.fixture
async def client(rt: Runtime) -> AsyncIterator[TestClient[Any, Any]]:
    """The API app on the test's runtime, behind aiohttp's test client."""
    async with TestClient(TestServer(create_app(rt, Health()))) as c:
        yield c
