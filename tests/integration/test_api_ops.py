"""The routes the ops page leans on: a dry run of scheduling (the same checks, nothing
written), the pipeline's health (Postgres as the key sees it, Prometheus' part), and the
connections' use."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from herald.services.api.app import create_app
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.stores.tenants import create_api_key
from tests.integration.test_api_jobs import auth, connection, job_body, later, schedule

pytestmark = pytest.mark.integration


async def keys(rt: Runtime) -> tuple[dict[str, str], dict[str, str]]:
    acme = auth((await create_api_key(rt.db, tenant_id="acme", admin=False))[1])
    other = auth((await create_api_key(rt.db, tenant_id="other", admin=False))[1])
    return acme, other


async def job_count(rt: Runtime) -> int:
    row = await rt.db.fetchone("SELECT count(*) AS n FROM jobs")
    assert row is not None
    return int(row["n"])


async def test_validate_answers_what_scheduling_would_and_writes_nothing(
    rt: Runtime, client: TestClient[Any, Any]
) -> None:
    acme, other = await keys(rt)
    conn = await connection(client, acme)
    body = job_body(conn, caption="#a #b @c " + "x" * 20, scheduled_at=later(hours=2))
    resp = await client.post("/publishing/jobs:validate", json=body, headers=acme)
    verdict = await resp.json()
    assert resp.status == 200 and verdict["valid"] is True and verdict["error"] is None
    assert verdict["caption"] == {
        "chars": 29,
        "max_chars": 2200,
        "hashtags": 2,
        "max_hashtags": None,
        "mentions": 1,
        "max_mentions": None,
    }
    assert verdict["connection_ids"] == [conn] and verdict["scheduled_at"].endswith("Z")
    assert await job_count(rt) == 0

    # Refused bodies: the very error scheduling answers, and still the caption's counts.
    for refused, key in (
        (job_body(conn, caption="y" * 2201), acme),
        (job_body(conn, scheduled_at="2026-05-01T09:30:00"), acme),
        (job_body(conn), other),  # another tenant's connection is unknown to this key
    ):
        verdict = await (
            await client.post("/publishing/jobs:validate", json=refused, headers=key)
        ).json()
        scheduled = await client.post("/publishing/jobs", json=refused, headers=key)
        assert verdict["valid"] is False and verdict["status"] == scheduled.status == 422
        assert {"error": verdict["error"]} == await scheduled.json()
        assert verdict["caption"]["max_chars"] == 2200
    assert verdict["error"]["fields"] == {"connection_id": f"no connection {conn}"}
    assert await job_count(rt) == 0
    assert (await client.post("/publishing/jobs:validate", data=b"[", headers=acme)).status == 400


async def test_health_counts_only_what_the_key_sees_and_reads_prometheus(
    rt: Runtime, client: TestClient[Any, Any]
) -> None:
    acme, other = await keys(rt)
    await schedule(
        client, acme, job_body(await connection(client, acme), scheduled_at=later(hours=1))
    )
    await rt.db.execute(
        "INSERT INTO dead_letters (id, tenant_id, reason)"
        " VALUES (gen_random_uuid(), 'other', 'missed')"
    )
    mine = await (await client.get("/publishing/health", headers=acme)).json()
    theirs = await (await client.get("/publishing/health", headers=other)).json()
    assert mine["jobs_by_status"] == {"SCHEDULED": 1} and mine["dead_letters_24h"] == 0
    assert theirs["jobs_by_status"] == {} and theirs["dead_letters_24h"] == 1
    # The stack's Prometheus answers: its part is there (lists, maybe empty, and a count).
    assert mine["prometheus"] == {"reachable": True, "error": None}, mine["prometheus"]
    assert isinstance(mine["alerts"], list) and isinstance(mine["lag"], list)
    assert isinstance(mine["publishers_alive"], int)
    assert (await client.get("/publishing/health")).status == 401


async def test_health_says_prometheus_is_away_and_still_answers(settings: Settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    away = settings.model_copy(update={"prometheus_url": f"http://127.0.0.1:{port}"})
    rt = Runtime.build(away)
    await rt.open()
    try:
        async with TestClient(TestServer(create_app(rt, Health()))) as client:
            key = auth((await create_api_key(rt.db, tenant_id="acme", admin=False))[1])
            resp = await client.get("/publishing/health", headers=key)
            body = await resp.json()
    finally:
        await rt.close()
    assert resp.status == 200 and body["prometheus"]["reachable"] is False
    assert body["alerts"] is None and body["lag"] is None and body["publishers_alive"] is None
    assert body["jobs_by_status"] == {}


async def test_usage_per_connection_is_the_keys_own(
    rt: Runtime, client: TestClient[Any, Any]
) -> None:
    acme, other = await keys(rt)
    conn = await connection(client, acme)
    await schedule(client, acme, job_body(conn, scheduled_at=later(hours=1)))
    await rt.db.execute(
        "UPDATE jobs SET status = 'PUBLISHED', published_at = now(), next_attempt_at = NULL"
    )
    await schedule(client, acme, job_body(conn, scheduled_at=later(hours=1)))
    mine = await (await client.get("/publishing/connections:usage", headers=acme)).json()
    theirs = await (await client.get("/publishing/connections:usage", headers=other)).json()
    assert mine == {"items": [{"connection_id": conn, "jobs_24h": 2, "published_24h": 1}]}
    assert theirs == {"items": []}
