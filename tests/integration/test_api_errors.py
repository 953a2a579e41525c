"""Errors of the HTTP API: 401, every "Bad input" row, 404/405 as JSON, 503 with Retry-After,
and the open routes (ops endpoints, spec, page)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from herald.services.api.app import create_app
from herald.services.api.openapi import build_spec
from herald.services.scheduler.reconciler import Reconciler
from herald.shared.infra.ops_server import Health
from herald.shared.infra.runtime import Runtime
from herald.shared.infra.settings import Settings
from herald.shared.messages.codec import now_utc
from herald.shared.stores.tenants import create_api_key, revoke_api_key

pytestmark = pytest.mark.integration
IMAGE = "https://cdn.example.com/a.jpg"
CLOSED_POSTGRES = "postgresql://herald@127.0.0.1:1/herald"
CLOSED_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
async def key(rt: Runtime) -> dict[str, str]:
    _, secret = await create_api_key(rt.db, tenant_id="acme", admin=False)
    return {"Authorization": f"Bearer {secret}"}


async def new_connection(client: TestClient[Any, Any], key: dict[str, str], **body: Any) -> str:
    body = {"platform": "sandbox", "name": "s", **body}
    resp = await client.post("/publishing/connections", json=body, headers=key)
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["id"])


def assert_error(
    status: int,
    body: dict[str, Any],
    expected: int,
    field: str | None = None,
    code: str | None = None,
) -> None:
    assert status == expected, body
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"])
    if field is not None:
        assert field in body["error"].get("fields", {}), body
    if code is not None:
        assert body["error"]["code"] == code, body


async def test_missing_bad_or_revoked_keys_get_401(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key_id, good = await create_api_key(rt.db, tenant_id="acme", admin=False)
    for headers in (
        {},
        {"Authorization": good},
        {"Authorization": f"Basic {good}"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer hk_wrong"},
    ):
        resp = await client.get("/publishing/jobs", headers=headers)
        assert_error(resp.status, await resp.json(), 401, code="unauthorized")
        assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert (
        await client.get("/publishing/jobs", headers={"Authorization": f"Bearer {good}"})
    ).status == 200
    await revoke_api_key(rt.db, key_id)
    resp = await client.post(
        "/publishing/jobs", json={}, headers={"Authorization": f"Bearer {good}"}
    )
    assert resp.status == 401
    assert good not in await resp.text()


async def test_every_bad_input_is_a_4xx_naming_the_field(
    client: TestClient[Any, Any], key: dict[str, str]
) -> None:
    sandbox = await new_connection(client, key)
    insta = await new_connection(
        client,
        key,
        platform="instagram",
        access_token="EAAG" + "t" * 40,
        metadata={"instagramBusinessAccountId": "1"},
    )
    off = await new_connection(client, key)
    assert (await client.delete(f"/publishing/connections/{off}", headers=key)).status == 200
    ok = {"platform": "sandbox", "connection_id": sandbox, "media_asset_ids": [IMAGE]}
    ig = {**ok, "platform": "instagram", "connection_id": insta}
    cases: list[tuple[dict[str, Any], str]] = [
        ({**ok, "platform": "myspace"}, "platform"),
        ({**ok, "platform": 5}, "platform"),
        ({**ok, "connection_id": str(uuid.uuid4())}, "connection_id"),
        ({**ok, "connection_id": "nope"}, "connection_id"),
        ({**ok, "connection_id": 5}, "connection_id"),
        ({**ok, "connection_id": off}, "connection_id"),
        ({**ok, "connection_id": insta}, "connection_id"),  # a connection of another platform
        ({k: v for k, v in ok.items() if k != "connection_id"}, "connection_id"),
        ({k: v for k, v in ok.items() if k != "media_asset_ids"}, "media_asset_ids"),
        ({**ok, "media_asset_ids": []}, "media_asset_ids"),
        ({**ok, "media_asset_ids": IMAGE}, "media_asset_ids"),
        ({**ok, "media_asset_ids": ["http://cdn.example.com/a.jpg"]}, "media_asset_ids"),
        ({**ok, "media_asset_ids": ["ftp://x/a.jpg"]}, "media_asset_ids"),
        ({**ok, "media_asset_ids": [5]}, "media_asset_ids"),
        ({**ok, "media_asset_ids": [IMAGE] * 11}, "media_asset_ids"),
        ({**ig, "caption": "x" * 2201}, "caption"),
        ({**ig, "caption": " ".join(f"#t{i}" for i in range(31))}, "caption"),
        ({**ig, "caption": " ".join(f"@u{i}" for i in range(21))}, "caption"),
        ({**ok, "caption": 5}, "caption"),
        ({**ok, "caption": "a\u0000b"}, "caption"),
        ({**ok, "media_asset_ids": [IMAGE + "\u0000"]}, "media_asset_ids"),
        ({**ok, "scheduled_at": "2030-01-01T10:00:00"}, "scheduled_at"),
        ({**ok, "scheduled_at": "tomorrow"}, "scheduled_at"),
        ({**ok, "scheduled_at": "2030-13-45T10:00:00Z"}, "scheduled_at"),
        ({**ok, "scheduled_at": 1893456000}, "scheduled_at"),
        ({**ok, "publish_deadline": "2030-01-01"}, "publish_deadline"),
        ({**ok, "media_type": "GIF"}, "media_type"),
        ({**ok, "tenant_id": 5}, "tenant_id"),
    ]
    for body, field in cases:
        resp = await client.post("/publishing/jobs", json=body, headers=key)
        assert_error(resp.status, await resp.json(), 422, field)
    # Exactly at the limits is fine.
    fine = {**ig, "caption": "x" * 2170 + " ".join(f"#t{i}" for i in range(3))}
    assert (await client.post("/publishing/jobs", json=fine, headers=key)).status == 201


async def test_malformed_or_non_object_bodies(
    client: TestClient[Any, Any], key: dict[str, str]
) -> None:
    job = f"/publishing/jobs/{uuid.uuid4()}"
    for path, method in (
        ("/publishing/jobs", "POST"),
        ("/publishing/connections", "POST"),
        ("/publishing/dlq/redrive", "POST"),
    ):
        for raw in (b'{"platform": "sandbox",', b"", b"not json", b"\xff\xfe"):
            resp = await client.request(method, path, data=raw, headers=key)
            assert_error(resp.status, await resp.json(), 400, code="malformed_json")
        for raw in (b"[]", b'"text"', b"42", b"null"):
            resp = await client.request(method, path, data=raw, headers=key)
            assert_error(resp.status, await resp.json(), 422, "$")
    resp = await client.post(f"{job}/retry", data=b"{oops", headers=key)
    assert_error(resp.status, await resp.json(), 400, code="malformed_json")
    resp = await client.post(f"{job}/retry", json={"force": 1}, headers=key)
    assert_error(resp.status, await resp.json(), 422, "force")


async def test_bad_query_parameters_and_headers(
    client: TestClient[Any, Any], key: dict[str, str]
) -> None:
    for params, field in (
        ({"limit": "501"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"status": "DONE"}, "status"),
        ({"connection_id": "x"}, "connection_id"),
        ({"platform": "a\u0000"}, "platform"),
        ({"cursor": "!!"}, "cursor"),
    ):
        resp = await client.get("/publishing/jobs", params=params, headers=key)
        assert_error(resp.status, await resp.json(), 422, field)
    assert (
        await client.get("/publishing/jobs", params={"limit": "500"}, headers=key)
    ).status == 200
    resp = await client.post(
        "/publishing/jobs", json={}, headers={**key, "Idempotency-Key": "k" * 256}
    )
    assert_error(resp.status, await resp.json(), 422, "Idempotency-Key")


async def test_a_naive_time_is_refused_and_an_offset_time_answered_in_utc(
    client: TestClient[Any, Any], key: dict[str, str]
) -> None:
    conn = await new_connection(client, key)
    body = {"platform": "sandbox", "connection_id": conn, "media_asset_ids": [IMAGE]}
    day = (now_utc() + timedelta(days=40)).date().isoformat()
    resp = await client.post(
        "/publishing/jobs", json={**body, "scheduled_at": f"{day}T09:30:00"}, headers=key
    )
    assert_error(resp.status, await resp.json(), 422, "scheduled_at")
    resp = await client.post(
        "/publishing/jobs", json={**body, "scheduled_at": f"{day}T09:30:00-04:00"}, headers=key
    )
    job = await resp.json()
    assert resp.status == 201
    assert job["scheduled_at"] == f"{day}T13:30:00.000000Z"
    assert job["publish_deadline"].endswith("Z") and job["created_at"].endswith("Z")
    past = await client.post(
        "/publishing/jobs",
        json={**body, "scheduled_at": (now_utc() - timedelta(days=2)).isoformat()},
        headers=key,
    )
    stored = datetime.fromisoformat((await past.json())["scheduled_at"])
    assert abs(stored - datetime.now(UTC)) < timedelta(minutes=1)  # the past means now


async def test_unknown_routes_and_methods_answer_json(
    client: TestClient[Any, Any], key: dict[str, str]
) -> None:
    for headers in ({}, key):
        resp = await client.get("/publishing/nothing", headers=headers)
        assert_error(resp.status, await resp.json(), 404, code="not_found")
        resp = await client.get("/static/missing.js", headers=headers)
        assert_error(resp.status, await resp.json(), 404)
    resp = await client.put("/publishing/jobs", json={}, headers=key)
    assert_error(resp.status, await resp.json(), 405, code="method_not_allowed")
    resp = await client.get(f"/publishing/jobs/{uuid.uuid4()}", headers=key)
    assert_error(resp.status, await resp.json(), 404, code="not_found")
    resp = await client.post(
        "/publishing/jobs", data=b"{" + b" " * (2 * 1024**2) + b"}", headers=key
    )
    assert_error(resp.status, await resp.json(), 413)


async def test_open_routes_need_no_key(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await (await client.get("/readyz")).json())["status"] == "ready"
    metrics = await client.get("/metrics")
    assert metrics.status == 200 and "herald_jobs_scheduled_total" in await metrics.text()
    page = await client.get("/")
    html = await page.text()
    assert page.status == 200 and page.content_type == "text/html"
    assert "/static/app.js" in html and "<script>" not in html  # no inline script
    assert "http://" not in html and "https://" not in html  # no external asset
    script = await client.get("/static/app.js")
    assert script.status == 200 and "sessionStorage" in await script.text()
    assert ".innerHTML" not in await script.text()  # API values are written as text
    assert (await client.get("/static/style.css")).content_type == "text/css"
    spec = await client.get("/openapi.json")
    document = await spec.json()
    assert spec.status == 200 and document == build_spec()
    assert set(document["paths"]) >= {
        "/publishing/jobs",
        "/publishing/jobs/{id}",
        "/publishing/jobs/{id}/attempts",
        "/publishing/jobs/{id}/retry",
        "/publishing/jobs/{id}/cancel",
        "/publishing/connections",
        "/publishing/connections/{id}",
        "/publishing/dlq",
        "/publishing/dlq/redrive",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/",
    }


async def test_503_with_retry_after_when_postgres_is_away(settings: Settings) -> None:
    # A short pool timeout, as the API process has (3 s), so the 503 comes without a long wait.
    away = Runtime.build(
        settings.model_copy(update={"database_url": CLOSED_POSTGRES}), db_acquire_timeout=1.0
    )
    await away.open()
    try:
        async with TestClient(TestServer(create_app(away, Health()))) as c:
            auth = {"Authorization": "Bearer hk_whatever"}
            resp = await c.post("/publishing/jobs", json={"platform": "sandbox"}, headers=auth)
            assert_error(resp.status, await resp.json(), 503, code="store_unavailable")
            assert int(resp.headers["Retry-After"]) > 0
            assert "hk_whatever" not in await resp.text()
            assert (await c.get("/healthz")).status == 200  # open routes still answer
    finally:
        await away.close()


async def test_a_job_persisted_while_redis_is_away_is_created_and_queued_later(
    settings: Settings, rt: Runtime, key: dict[str, str]
) -> None:
    # Postgres is the record: once the job is committed the answer is 201, so a client
    # without an Idempotency-Key never retries into a second job; Redis follows later.
    async with TestClient(TestServer(create_app(rt, Health()))) as c:
        conn = await new_connection(c, key)
    away = Runtime.build(settings.model_copy(update={"redis_url": CLOSED_REDIS}))
    await away.open()
    try:
        async with TestClient(TestServer(create_app(away, Health()))) as c:
            body = {"platform": "sandbox", "connection_id": conn, "media_asset_ids": [IMAGE]}
            resp = await c.post("/publishing/jobs", json=body, headers=key)
            created = await resp.json()
            assert resp.status == 201, created
    finally:
        await away.close()
    assert [str(r["id"]) for r in await rt.db.fetch("SELECT id FROM jobs")] == [created["id"]]
    assert await rt.queue.held([created["id"]]) == set()
    counts = await Reconciler(rt).reconcile_once()
    assert counts["restored"] == 1
    assert await rt.queue.held([created["id"]]) == {created["id"]}
