"""The HTTP API's job routes on the real stack: Postgres rows, the Redis queue, tenancy."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from herald.shared.infra.runtime import Runtime
from herald.shared.stores.tenants import create_api_key
from tests.support.helpers import queued_at

pytestmark = pytest.mark.integration
IMAGE = "https://cdn.example.com/a.jpg"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def tenant_key(rt: Runtime, tenant: str) -> dict[str, str]:
    return auth((await create_api_key(rt.db, tenant_id=tenant, admin=False))[1])


async def connection(client: TestClient[Any, Any], key: dict[str, str]) -> str:
    resp = await client.post(
        "/publishing/connections", json={"platform": "sandbox", "name": "s"}, headers=key
    )
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


def job_body(conn: str, **extra: Any) -> dict[str, Any]:
    return {
        "platform": "sandbox",
        "connection_id": conn,
        "media_asset_ids": [IMAGE],
        "caption": "hello",
        **extra,
    }


def later(**delta: float) -> str:
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


async def schedule(
    client: TestClient[Any, Any], key: dict[str, str], body: dict[str, Any], **headers: str
) -> dict[str, Any]:
    resp = await client.post("/publishing/jobs", json=body, headers={**key, **headers})
    assert resp.status == 201, await resp.text()
    data: dict[str, Any] = await resp.json()
    return data


def scheduled_total() -> float:
    return REGISTRY.get_sample_value("herald_jobs_scheduled_total") or 0.0


async def test_schedule_persists_in_postgres_and_redis_and_answers_utc(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)
    before = scheduled_total()
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    offset = when.astimezone(timezone(timedelta(hours=2)))
    job = await schedule(client, key, job_body(conn, scheduled_at=offset.isoformat()))
    assert job["status"] == "SCHEDULED" and job["tenant_id"] == "acme"
    assert job["scheduled_at"].endswith("Z")
    assert datetime.fromisoformat(job["scheduled_at"]) == when
    row = await rt.db.fetchone(
        "SELECT status, tenant_id, scheduled_at FROM jobs WHERE id = %s", (job["id"],)
    )
    assert row is not None and row["status"] == "SCHEDULED" and row["scheduled_at"] == when
    assert await rt.queue.held([job["id"]]) == {job["id"]}
    assert scheduled_total() == before + 1
    resp = await client.get(f"/publishing/jobs/{job['id']}", headers=key)
    assert resp.status == 200 and (await resp.json()) == job


async def test_schedule_to_several_connections_makes_one_job_each_under_one_post(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    a, b = await connection(client, key), await connection(client, key)
    body = job_body(a)
    del body["connection_id"]
    before = scheduled_total()
    post = await schedule(client, key, {**body, "connection_ids": [a, b]})
    assert {j["connection_id"] for j in post["jobs"]} == {a, b}
    assert {j["post_id"] for j in post["jobs"]} == {post["post_id"]}
    ids = [j["id"] for j in post["jobs"]]
    assert await rt.queue.held(ids) == set(ids)
    rows = await rt.db.fetch("SELECT id FROM jobs WHERE post_id = %s", (post["post_id"],))
    assert {str(r["id"]) for r in rows} == set(ids)
    assert scheduled_total() == before + 2
    stranger = await connection(client, await tenant_key(rt, "other"))
    refused = await client.post(
        "/publishing/jobs", json={**body, "connection_ids": [a, stranger]}, headers=key
    )
    assert refused.status == 422
    assert set((await refused.json())["error"]["fields"]) == {"connection_ids[1]"}


async def test_a_job_beyond_the_redis_horizon_is_only_in_postgres(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)
    job = await schedule(client, key, job_body(conn, scheduled_at=later(days=3)))
    assert await rt.queue.held([job["id"]]) == set()
    row = await rt.db.fetchone("SELECT queued FROM jobs WHERE id = %s", (job["id"],))
    assert row is not None and row["queued"] is False


async def test_the_same_idempotency_key_makes_one_job(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)
    body = job_body(conn, scheduled_at=later(minutes=10))
    first = await schedule(client, key, body, **{"Idempotency-Key": "k-1"})
    again = await client.post(
        "/publishing/jobs", json=body, headers={**key, "Idempotency-Key": "k-1"}
    )
    assert again.status == 200
    assert (await again.json()) == first
    count = await rt.db.fetchone("SELECT count(*) AS n FROM jobs")
    assert count is not None and count["n"] == 1
    other = await client.post(
        "/publishing/jobs",
        json={**body, "caption": "changed"},
        headers={**key, "Idempotency-Key": "k-1"},
    )
    assert other.status == 409
    assert (await other.json())["error"]["code"] == "idempotency_key_reused"
    # Keys are per tenant: another tenant may use the same one.
    other_key = await tenant_key(rt, "globex")
    theirs = await schedule(
        client,
        other_key,
        job_body(await connection(client, other_key)),
        **{"Idempotency-Key": "k-1"},
    )
    assert theirs["id"] != first["id"]


async def test_filters_and_cursor_pagination(client: TestClient[Any, Any], rt: Runtime) -> None:
    key = await tenant_key(rt, "acme")
    a, b = await connection(client, key), await connection(client, key)
    on_a = [(await schedule(client, key, job_body(a)))["id"] for _ in range(7)]
    on_b = [(await schedule(client, key, job_body(b)))["id"] for _ in range(3)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/publishing/jobs", params=params, headers=key)
        assert resp.status == 200
        page = await resp.json()
        assert len(page["items"]) <= 3
        seen += [j["id"] for j in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4 and len(seen) == 10 and set(seen) == set(on_a + on_b)
    assert seen == list(reversed(on_a + on_b))  # newest first
    resp = await client.get("/publishing/jobs", params={"connection_id": b}, headers=key)
    assert {j["id"] for j in (await resp.json())["items"]} == set(on_b)
    assert (await client.post(f"/publishing/jobs/{on_a[0]}/cancel", headers=key)).status == 200
    resp = await client.get("/publishing/jobs", params={"status": "CANCELLED"}, headers=key)
    assert [j["id"] for j in (await resp.json())["items"]] == [on_a[0]]
    post_id = (await (await client.get(f"/publishing/jobs/{on_b[1]}", headers=key)).json())[
        "post_id"
    ]
    resp = await client.get("/publishing/jobs", params={"post_id": post_id}, headers=key)
    assert [j["id"] for j in (await resp.json())["items"]] == [on_b[1]]
    resp = await client.get("/publishing/jobs", params={"platform": "instagram"}, headers=key)
    assert (await resp.json())["items"] == []


async def test_cancel_rules(client: TestClient[Any, Any], rt: Runtime) -> None:
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)
    job = await schedule(client, key, job_body(conn, scheduled_at=later(minutes=10)))
    resp = await client.post(f"/publishing/jobs/{job['id']}/cancel", headers=key)
    assert resp.status == 200 and (await resp.json())["status"] == "CANCELLED"
    assert await rt.queue.held([job["id"]]) == set()
    again = await client.post(f"/publishing/jobs/{job['id']}/cancel", headers=key)
    assert again.status == 200 and (await again.json())["status"] == "CANCELLED"

    started = await schedule(client, key, job_body(conn))
    await rt.db.execute(
        "UPDATE jobs SET status = 'IN_PROGRESS', call_started_at = now() WHERE id = %s",
        (started["id"],),
    )
    resp = await client.post(f"/publishing/jobs/{started['id']}/cancel", headers=key)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "call_started"

    published = await schedule(client, key, job_body(conn))
    await rt.db.execute(
        "UPDATE jobs SET status = 'PUBLISHED', next_attempt_at = NULL WHERE id = %s",
        (published["id"],),
    )
    assert (
        await client.post(f"/publishing/jobs/{published['id']}/cancel", headers=key)
    ).status == 409


async def test_patch_reschedules_and_edits_the_caption(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)
    job = await schedule(client, key, job_body(conn, scheduled_at=later(minutes=10)))
    when = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=20)
    resp = await client.patch(
        f"/publishing/jobs/{job['id']}",
        headers=key,
        json={"scheduled_at": when.isoformat(), "caption": "new"},
    )
    assert resp.status == 200, await resp.text()
    changed = await resp.json()
    assert datetime.fromisoformat(changed["scheduled_at"]) == when
    assert changed["caption"] == "new"
    score = await queued_at(rt, job["id"])
    assert score == when.timestamp()
    far = await client.patch(
        f"/publishing/jobs/{job['id']}", headers=key, json={"scheduled_at": later(days=5)}
    )
    assert far.status == 200 and await rt.queue.held([job["id"]]) == set()
    bad = await client.patch(
        f"/publishing/jobs/{job['id']}", headers=key, json={"platform": "instagram"}
    )
    assert bad.status == 422 and "platform" in (await bad.json())["error"]["fields"]
    await client.post(f"/publishing/jobs/{job['id']}/cancel", headers=key)
    late = await client.patch(
        f"/publishing/jobs/{job['id']}", headers=key, json={"caption": "too late"}
    )
    assert late.status == 409


async def test_retry_rules(client: TestClient[Any, Any], rt: Runtime) -> None:
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)
    job = await schedule(client, key, job_body(conn, scheduled_at=later(minutes=10)))
    resp = await client.post(f"/publishing/jobs/{job['id']}/retry", headers=key)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "not_retryable"

    await rt.db.execute(
        "UPDATE jobs SET status = 'DEAD_LETTERED', failed_attempts = 5,"
        " next_attempt_at = NULL WHERE id = %s",
        (job["id"],),
    )
    await rt.queue.remove([job["id"]])
    resp = await client.post(f"/publishing/jobs/{job['id']}/retry", headers=key)  # no body
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["status"] == "RETRY_SCHEDULED"
    assert await rt.queue.held([job["id"]]) == {job["id"]}
    row = await rt.db.fetchone("SELECT failed_attempts FROM jobs WHERE id = %s", (job["id"],))
    assert row is not None and row["failed_attempts"] == 0

    unsure = await schedule(client, key, job_body(conn))
    await rt.db.execute(
        "UPDATE jobs SET status = 'DEAD_LETTERED', force_required = true, next_attempt_at = NULL"
        " WHERE id = %s",
        (unsure["id"],),
    )
    resp = await client.post(f"/publishing/jobs/{unsure['id']}/retry", json={}, headers=key)
    assert resp.status == 409 and (await resp.json())["error"]["code"] == "force_required"
    resp = await client.post(
        f"/publishing/jobs/{unsure['id']}/retry", json={"force": "yes"}, headers=key
    )
    assert resp.status == 422 and "force" in (await resp.json())["error"]["fields"]
    resp = await client.post(
        f"/publishing/jobs/{unsure['id']}/retry", json={"force": True}, headers=key
    )
    assert resp.status == 200 and (await resp.json())["status"] == "RETRY_SCHEDULED"


async def test_attempts_newest_first(client: TestClient[Any, Any], rt: Runtime) -> None:
    key = await tenant_key(rt, "acme")
    job = await schedule(client, key, job_body(await connection(client, key)))
    for n, outcome in ((1, "retryable_error"), (2, "published")):
        await rt.db.execute(
            "INSERT INTO attempts (job_id, attempt, worker, started_at, finished_at, outcome,"
            " error_code, error_message) VALUES (%s, %s, 'w1', now(), now(), %s, %s, %s)",
            (job["id"], n, outcome, 500 if n == 1 else None, "boom" if n == 1 else None),
        )
    resp = await client.get(f"/publishing/jobs/{job['id']}/attempts", headers=key)
    assert resp.status == 200
    items = (await resp.json())["items"]
    assert [a["attempt"] for a in items] == [2, 1]
    assert items[1]["outcome"] == "retryable_error" and items[1]["error_code"] == 500
    assert items[0]["started_at"].endswith("Z")
    missing = await client.get(f"/publishing/jobs/{uuid.uuid4()}/attempts", headers=key)
    assert missing.status == 404


async def test_a_tenant_cannot_touch_another_tenants_job(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    a, b = await tenant_key(rt, "acme"), await tenant_key(rt, "globex")
    theirs = await schedule(client, b, job_body(await connection(client, b)))
    jid = theirs["id"]
    for method, path in (
        ("GET", f"/publishing/jobs/{jid}"),
        ("GET", f"/publishing/jobs/{jid}/attempts"),
        ("POST", f"/publishing/jobs/{jid}/cancel"),
        ("POST", f"/publishing/jobs/{jid}/retry"),
    ):
        resp = await client.request(method, path, headers=a)
        assert resp.status == 404, (method, path)
        assert (await resp.json())["error"]["code"] == "not_found"
    resp = await client.patch(f"/publishing/jobs/{jid}", json={"caption": "x"}, headers=a)
    assert resp.status == 404
    listed = await (await client.get("/publishing/jobs", headers=a)).json()
    assert listed["items"] == []
    row = await rt.db.fetchone("SELECT status FROM jobs WHERE id = %s", (jid,))
    assert row is not None and row["status"] == "SCHEDULED"
    # An admin key sees every tenant's jobs.
    admin = auth((await create_api_key(rt.db, tenant_id=None, admin=True))[1])
    assert (await client.get(f"/publishing/jobs/{jid}", headers=admin)).status == 200


async def test_admin_names_the_tenant_and_a_tenant_key_may_not(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    admin = auth((await create_api_key(rt.db, tenant_id=None, admin=True))[1])
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)
    job = await schedule(client, admin, job_body(conn, tenant_id="acme"))
    assert job["tenant_id"] == "acme"
    wrong = await client.post(
        "/publishing/jobs", json=job_body(conn, tenant_id="globex"), headers=admin
    )
    assert wrong.status == 422 and "tenant_id" in (await wrong.json())["error"]["fields"]
    refused = await client.post(
        "/publishing/jobs", json=job_body(conn, tenant_id="acme"), headers=key
    )
    assert refused.status == 422 and "tenant_id" in (await refused.json())["error"]["fields"]
