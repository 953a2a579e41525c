"""Hostile and careless input to every route of the HTTP API: a clear 4xx in the API's error
shape (or a normal answer where the value is legitimate), never a 500, never a stall."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from herald.services.api.app import create_app
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime
from herald.shared.stores.tenants import create_api_key

pytestmark = pytest.mark.integration


def b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


# Values a careless or hostile client puts in a query parameter.
HOSTILE_VALUES = [
    "",
    " ",
    "x",
    "-1",
    "0",
    "1e3",
    "²",  # a digit to str.isdigit, not to int()
    "١٢",
    "99999999999999999999999",
    "null",
    "[]",
    "{}",
    "../../etc/passwd",
    "' OR 1=1 --",
    "%00",
    "é" * 300,
    "x" * 4_000,
    "9999-12-31T23:59:59-01:00",  # beyond year 9999 in UTC
    "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
    "2026-02-30T00:00:00Z",
    "2026-06-30T23:59:60Z",
    "not base64!",
    b64("x|y"),
    b64("2026-01-01T00:00:00|not-a-uuid"),
    b64(f"2026-01-01T00:00:00|{uuid.uuid4()}"),  # naive
    b64(f"9999-12-31T23:59:59+00:00|{uuid.uuid4()}"),
    b64("\u0000|\u0000"),
    str(uuid.uuid4()),
]
ROUTES = {
    "/publishing/jobs": ["status", "platform", "connection_id", "post_id", "limit", "cursor"],
    "/publishing/connections": ["platform", "limit", "cursor"],
    "/publishing/dlq": [
        "platform",
        "reason",
        "connection_id",
        "since",
        "until",
        "include_redriven",
        "limit",
        "cursor",
    ],
}


@pytest.fixture
async def admin(rt: Runtime) -> dict[str, str]:
    _, secret = await create_api_key(rt.db, tenant_id=None, admin=True)
    return {"Authorization": f"Bearer {secret}"}


def assert_clear(status: int, body: Any, what: str) -> None:
    assert status < 500, (what, status, body)
    if status >= 400:
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), what
        assert len(str(body)) < 2000, what  # the value is not echoed back at length


async def test_every_query_parameter_answers_4xx_or_a_page_never_500(
    client: TestClient[Any, Any], admin: dict[str, str]
) -> None:
    for path, params in ROUTES.items():
        for name in params:
            for value in HOSTILE_VALUES:
                resp = await client.get(f"{path}?{name}={quote(value, safe='')}", headers=admin)
                assert_clear(resp.status, await resp.json(), f"{path} {name}={value[:40]!r}")
    # Beyond the HTTP server's 8 KiB request line: refused before routing, still a 4xx.
    resp = await client.get(f"/publishing/jobs?cursor={'x' * 100_000}", headers=admin)
    assert 400 <= resp.status < 500


async def test_every_path_id_and_body_answers_4xx_never_500(
    client: TestClient[Any, Any], admin: dict[str, str]
) -> None:
    ids = ["x", "%00", "x" * 5000, str(uuid.uuid4()), "00000000-0000-0000-0000-00000000000g"]
    bodies: list[bytes] = [
        b"",
        b"null",
        b"[]",
        b'"x"',
        b"{",
        b'{"force": "yes"}',
        b'{"force": 1e400}',
        b'{"caption": "\\ud800"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"scheduled_at": "9999-12-31T23:59:59Z"}',
        b'{"dry_run": true, "since": "0001-01-01T00:00:00+01:00"}',
        b'{"dry_run": true, "job_ids": ["x", 5, null]}',
        b'{"dry_run": "false"}',
    ]
    for job in ids:
        for method, path in (
            ("GET", f"/publishing/jobs/{job}"),
            ("GET", f"/publishing/jobs/{job}/attempts"),
            ("POST", f"/publishing/jobs/{job}/retry"),
            ("POST", f"/publishing/jobs/{job}/cancel"),
            ("PATCH", f"/publishing/jobs/{job}"),
            ("GET", f"/publishing/connections/{job}"),
            ("PATCH", f"/publishing/connections/{job}"),
            ("DELETE", f"/publishing/connections/{job}"),
        ):
            resp = await client.request(method, path, headers=admin, data=b"{}")
            assert_clear(resp.status, await resp.json(), f"{method} {path[:60]}")
    for body in bodies:
        for method, path in (
            ("POST", "/publishing/jobs"),
            ("POST", "/publishing/connections"),
            ("POST", "/publishing/dlq/redrive"),
            ("POST", f"/publishing/jobs/{uuid.uuid4()}/retry"),
        ):
            headers = {**admin, "Content-Type": "application/json"}
            resp = await client.request(method, path, headers=headers, data=body)
            assert_clear(resp.status, await resp.json(), f"{method} {path} {body[:40]!r}")


async def test_a_megabyte_field_gets_a_prompt_422_and_health_answers_meanwhile(
    rt: Runtime, admin: dict[str, str]
) -> None:
    # The media URL pattern used to backtrack quadratically: 200,000 characters took more
    # than 30 s, and the event loop (so /healthz too) answered nothing meanwhile.
    async with TestClient(TestServer(create_app(rt, Health()))) as c:
        huge = "https://" + "a" * 999_000 + " "  # no match: every split was tried before
        body = {"platform": "sandbox", "connection_id": str(uuid.uuid4()), "caption": "x"}

        async def schedule(field: str, value: Any) -> tuple[int, Any]:
            resp = await c.post("/publishing/jobs", json={**body, field: value}, headers=admin)
            return resp.status, await resp.json()

        async def healthz() -> int:
            return (await c.get("/healthz")).status

        for field, value in (
            ("media_asset_ids", [huge]),
            ("media_asset_ids", ["https://x/" + "\t" * 500_000 + "a"]),
            ("caption", "#a" * 500_000),
            ("scheduled_at", "2026-01-01T00:00:00" + "0" * 1_000_000 + "Z"),
        ):
            big = asyncio.create_task(schedule(field, value))
            await asyncio.sleep(0)
            assert await asyncio.wait_for(healthz(), 10) == 200
            status, answer = await asyncio.wait_for(big, 10)
            assert status == 422 and field in answer["error"]["fields"], (field, answer)
            assert len(str(answer)) < 2000
