"""The HTTP API's dead-letter routes: filters, pagination, tenancy, dry run and redrive."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from herald.shared.errors import InvalidMessage
from herald.shared.infra.runtime import Runtime
from herald.shared.stores import dead_letters
from herald.shared.stores.tenants import create_api_key

pytestmark = pytest.mark.integration
IMAGE = "https://cdn.example.com/a.jpg"


@dataclass
class World:
    acme: dict[str, str]
    globex: dict[str, str]
    admin: dict[str, str]
    a1: str
    a2: str
    permanent: str  # acme, a1
    exhausted: str  # acme, a2
    unconfirmed: str  # acme, a1, needs force
    theirs: str  # globex


async def key_for(rt: Runtime, tenant: str | None) -> dict[str, str]:
    _, key = await create_api_key(rt.db, tenant_id=tenant, admin=tenant is None)
    return {"Authorization": f"Bearer {key}"}


async def dead_job(
    client: TestClient[Any, Any], rt: Runtime, key: dict[str, str], conn: str, reason: str
) -> str:
    body = {"platform": "sandbox", "connection_id": conn, "media_asset_ids": [IMAGE]}
    resp = await client.post("/publishing/jobs", json=body, headers=key)
    job = await resp.json()
    await rt.queue.remove([job["id"]])
    async with rt.db.transaction() as conn_:
        await conn_.execute(
            "UPDATE jobs SET status = 'DEAD_LETTERED', attempt_count = 1, failed_attempts = 1,"
            " next_attempt_at = NULL, force_required = %s WHERE id = %s",
            (reason == "unconfirmed", job["id"]),
        )
        await dead_letters.insert(
            conn_,
            rt.names,
            reason=reason,
            job_id=job["id"],
            tenant_id=job["tenant_id"],
            platform="sandbox",
            connection_id=conn,
            attempt=1,
            last_error={"code": reason, "message": "it failed"},
        )
    return str(job["id"])


async def connection(client: TestClient[Any, Any], key: dict[str, str]) -> str:
    resp = await client.post(
        "/publishing/connections", json={"platform": "sandbox", "name": "s"}, headers=key
    )
    return str((await resp.json())["id"])


@pytest.fixture
async def world(client: TestClient[Any, Any], rt: Runtime) -> World:
    acme, globex, admin = (
        await key_for(rt, "acme"),
        await key_for(rt, "globex"),
        await key_for(rt, None),
    )
    a1, a2, b = (
        await connection(client, acme),
        await connection(client, acme),
        await connection(client, globex),
    )
    w = World(
        acme,
        globex,
        admin,
        a1,
        a2,
        permanent=await dead_job(client, rt, acme, a1, "permanent_error"),
        exhausted=await dead_job(client, rt, acme, a2, "exhausted"),
        unconfirmed=await dead_job(client, rt, acme, a1, "unconfirmed"),
        theirs=await dead_job(client, rt, globex, b, "permanent_error"),
    )
    await dead_letters.record_invalid(
        rt.db,
        rt.names,
        source_topic="publish.schedule",
        raw=b"\x00garbage",
        error=InvalidMessage("bad"),
    )
    return w


async def listed(
    client: TestClient[Any, Any], key: dict[str, str], **params: str
) -> list[dict[str, Any]]:
    resp = await client.get("/publishing/dlq", params=params, headers=key)
    assert resp.status == 200, await resp.text()
    items: list[dict[str, Any]] = (await resp.json())["items"]
    return items


async def test_listing_filters_tenancy_and_pages(
    client: TestClient[Any, Any], world: World
) -> None:
    w = world
    mine = await listed(client, w.acme)
    assert [d["job_id"] for d in mine] == [w.unconfirmed, w.exhausted, w.permanent]
    assert all("raw_base64" not in d and d["redriven_at"] is None for d in mine)
    assert set(mine[0]) >= {
        "id",
        "job_id",
        "tenant_id",
        "platform",
        "connection_id",
        "reason",
        "attempt",
        "last_error",
        "created_at",
        "redriven_at",
    }
    assert [d["job_id"] for d in await listed(client, w.acme, reason="exhausted")] == [w.exhausted]
    assert {d["job_id"] for d in await listed(client, w.acme, connection_id=w.a1)} == {
        w.permanent,
        w.unconfirmed,
    }
    assert len(await listed(client, w.acme, platform="sandbox")) == 3
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await listed(client, w.acme, since=future) == []
    assert len(await listed(client, w.acme, until=future)) == 3
    assert [d["job_id"] for d in await listed(client, w.globex)] == [w.theirs]

    everything = await listed(client, w.admin)
    assert len(everything) == 5
    invalid = [d for d in everything if d["reason"] == "invalid_message"]
    assert len(invalid) == 1 and invalid[0]["job_id"] is None and invalid[0]["raw_base64"]

    first = await client.get("/publishing/dlq", params={"limit": "2"}, headers=w.acme)
    page = await first.json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = await (
        await client.get(
            "/publishing/dlq", headers=w.acme, params={"limit": "2", "cursor": page["next_cursor"]}
        )
    ).json()
    assert [d["job_id"] for d in page["items"] + rest["items"]] == [
        d["job_id"] for d in mine
    ] and rest["next_cursor"] is None


async def test_bad_filters_are_422_naming_the_field(
    client: TestClient[Any, Any], world: World
) -> None:
    for params, field in (
        ({"reason": "bored"}, "reason"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2030-01-01T00:00:00"}, "until"),
        ({"connection_id": "x"}, "connection_id"),
        ({"limit": "501"}, "limit"),
        ({"include_redriven": "maybe"}, "include_redriven"),
        ({"cursor": "!!"}, "cursor"),
    ):
        resp = await client.get("/publishing/dlq", params=params, headers=world.acme)
        assert resp.status == 422, params
        assert field in (await resp.json())["error"]["fields"]


async def test_dry_run_lists_what_the_redrive_then_replays(
    client: TestClient[Any, Any], rt: Runtime, world: World
) -> None:
    w = world

    async def redrive(key: dict[str, str], **body: Any) -> dict[str, Any]:
        resp = await client.post("/publishing/dlq/redrive", json=body, headers=key)
        assert resp.status == 200, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data

    dry = await redrive(w.acme, dry_run=True)
    assert dry == {"count": 2, "job_ids": [w.permanent, w.exhausted]}  # unconfirmed skipped
    statuses = await rt.db.fetch("SELECT status FROM jobs WHERE status <> 'DEAD_LETTERED'")
    assert statuses == []
    assert len(await listed(client, w.acme)) == 3

    real = await redrive(w.acme, dry_run=False)
    assert real == dry
    rows = await rt.db.fetch("SELECT id, status FROM jobs WHERE id = ANY(%s)", (dry["job_ids"],))
    assert {r["status"] for r in rows} == {"RETRY_SCHEDULED"}
    assert await rt.queue.held(dry["job_ids"]) == set(dry["job_ids"])
    assert [d["job_id"] for d in await listed(client, w.acme)] == [w.unconfirmed]
    redriven = await listed(client, w.acme, include_redriven="true")
    assert {d["job_id"] for d in redriven if d["redriven_at"]} == set(dry["job_ids"])
    assert (await redrive(w.acme, dry_run=False)) == {"count": 0, "job_ids": []}

    # Unconfirmed posts may be live: only with force.
    assert (await redrive(w.acme, dry_run=False, reason="unconfirmed"))["count"] == 0
    forced = await redrive(w.acme, dry_run=False, reason="unconfirmed", force=True)
    assert forced == {"count": 1, "job_ids": [w.unconfirmed]}
    # Another tenant's dead letter was never touched; an admin redrives it by job id.
    assert [d["job_id"] for d in await listed(client, w.globex)] == [w.theirs]
    assert (await redrive(w.acme, dry_run=False, job_ids=[w.theirs]))["count"] == 0
    by_id = await redrive(w.admin, dry_run=False, job_ids=[w.theirs])
    assert by_id == {"count": 1, "job_ids": [w.theirs]}
    assert [d["reason"] for d in await listed(client, w.admin)] == ["invalid_message"]


async def test_redrive_body_errors(client: TestClient[Any, Any], world: World) -> None:
    for body, field in (
        ({}, "dry_run"),
        ({"dry_run": "yes"}, "dry_run"),
        ({"dry_run": True, "force": 1}, "force"),
        ({"dry_run": True, "job_ids": "abc"}, "job_ids"),
        ({"dry_run": True, "job_ids": ["nope"]}, "job_ids"),
        ({"dry_run": True, "reason": "bored"}, "reason"),
        ({"dry_run": True, "platform": 5}, "platform"),
        ({"dry_run": True, "since": "2030-01-01"}, "since"),
        ({"dry_run": True, "dryrun": False}, "dryrun"),
    ):
        resp = await client.post("/publishing/dlq/redrive", json=body, headers=world.acme)
        assert resp.status == 422, body
        assert field in (await resp.json())["error"]["fields"], body
    resp = await client.post("/publishing/dlq/redrive", data=b"{", headers=world.acme)
    assert resp.status == 400
    assert (await client.post("/publishing/dlq/redrive", json={"dry_run": True})).status == 401
