"""The HTTP API's connection routes: never a token out, tenancy, disabled connections."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from herald.shared.infra.runtime import Runtime
from herald.shared.stores.tenants import create_api_key

pytestmark = pytest.mark.integration
TOKEN = "EAAG-very-secret-token-" + uuid.uuid4().hex
NEW_TOKEN = "EAAG-rotated-secret-" + uuid.uuid4().hex
IG = {
    "platform": "instagram",
    "name": "brand",
    "access_token": TOKEN,
    "metadata": {"instagramBusinessAccountId": "1784"},
}


async def key_for(rt: Runtime, tenant: str | None) -> dict[str, str]:
    _, key = await create_api_key(rt.db, tenant_id=tenant, admin=tenant is None)
    return {"Authorization": f"Bearer {key}"}


async def test_connection_lifecycle_never_shows_the_token(
    client: TestClient[Any, Any], rt: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = await key_for(rt, "acme")
    texts: list[str] = []

    async def call(method: str, path: str, status: int, **kw: Any) -> dict[str, Any]:
        resp = await client.request(method, path, headers=key, **kw)
        texts.append(await resp.text())
        assert resp.status == status, texts[-1]
        data: dict[str, Any] = await resp.json()
        return data

    made = await call("POST", "/publishing/connections", 201, json=IG)
    assert made["tenant_id"] == "acme" and made["status"] == "active"
    assert set(made) >= {"id", "tenant_id", "platform", "name", "metadata", "status", "created_at"}
    assert "access_token" not in made and made["created_at"].endswith("Z")
    cid = made["id"]
    assert (await call("GET", f"/publishing/connections/{cid}", 200)) == made
    listed = await call("GET", "/publishing/connections", 200)
    assert [c["id"] for c in listed["items"]] == [cid] and listed["next_cursor"] is None

    await rt.db.execute("UPDATE connections SET status = 'needs_reauth' WHERE id = %s", (cid,))
    patched = await call(
        "PATCH",
        f"/publishing/connections/{cid}",
        200,
        json={"name": "renamed", "access_token": NEW_TOKEN},
    )
    assert patched["name"] == "renamed" and patched["status"] == "active"  # re-authorised
    stored = await rt.connections().load_for_publish(cid)
    assert stored is not None and stored.access_token == NEW_TOKEN
    raw = await rt.db.fetchone("SELECT token_ciphertext FROM connections WHERE id = %s", (cid,))
    assert raw is not None and NEW_TOKEN.encode() not in bytes(raw["token_ciphertext"])

    # Refused bodies do not echo the token either.
    await call("POST", "/publishing/connections", 422, json={**IG, "name": ""})
    await call(
        "PATCH",
        f"/publishing/connections/{cid}",
        422,
        json={"access_token": NEW_TOKEN, "status": "paused"},
    )
    disabled = await call("DELETE", f"/publishing/connections/{cid}", 200)
    assert disabled["status"] == "disabled"
    for text in texts:
        assert TOKEN not in text and NEW_TOKEN not in text
        assert 'access_token":' not in text.replace(" ", "")
    for record in caplog.records:
        line = record.getMessage() + repr(record.__dict__)
        assert TOKEN not in line and NEW_TOKEN not in line


async def test_connection_validation_names_fields(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await key_for(rt, "acme")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"platform": "myspace", "name": "x"}, "platform"),
        ({"platform": "sandbox"}, "name"),
        ({"platform": "sandbox", "name": 5}, "name"),
        ({**IG, "access_token": None}, "access_token"),
        ({**IG, "metadata": {}}, "metadata.instagramBusinessAccountId"),
        ({"platform": "sandbox", "name": "x", "metadata": []}, "metadata"),
        (
            {"platform": "sandbox", "name": "x", "metadata": {"retryable_rate": 2}},
            "metadata.retryable_rate",
        ),
        ({"platform": "sandbox", "name": "a\u0000b"}, "name"),
        ({"platform": "sandbox", "name": "x", "tenant_id": "globex"}, "tenant_id"),
    ]
    for body, field in cases:
        resp = await client.post("/publishing/connections", json=body, headers=key)
        assert resp.status == 422, (body, await resp.text())
        assert field in (await resp.json())["error"]["fields"], body
    bad_limit = await client.get("/publishing/connections", params={"limit": "501"}, headers=key)
    assert bad_limit.status == 422


async def test_a_tenant_cannot_see_or_use_another_tenants_connection(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    a, b, admin = await key_for(rt, "acme"), await key_for(rt, "globex"), await key_for(rt, None)
    resp = await client.post(
        "/publishing/connections", json={"platform": "sandbox", "name": "b"}, headers=b
    )
    theirs = (await resp.json())["id"]
    for method, body in (("GET", None), ("PATCH", {"name": "mine"}), ("DELETE", None)):
        resp = await client.request(
            method, f"/publishing/connections/{theirs}", headers=a, json=body
        )
        assert resp.status == 404, method
    for bad in ("not-a-uuid", str(uuid.uuid4())):
        assert (await client.get(f"/publishing/connections/{bad}", headers=a)).status == 404
    assert (await (await client.get("/publishing/connections", headers=a)).json())["items"] == []
    job = {
        "platform": "sandbox",
        "connection_id": theirs,
        "media_asset_ids": ["https://cdn.example.com/a.jpg"],
        "caption": "hi",
    }
    resp = await client.post("/publishing/jobs", json=job, headers=a)
    assert resp.status == 422
    assert "connection_id" in (await resp.json())["error"]["fields"]
    count = await rt.db.fetchone("SELECT count(*) AS n FROM jobs")
    assert count is not None and count["n"] == 0
    row = await rt.db.fetchone("SELECT name, status FROM connections WHERE id = %s", (theirs,))
    assert row == {"name": "b", "status": "active"}

    # An admin names the tenant of a connection and sees every tenant's.
    resp = await client.post(
        "/publishing/connections",
        headers=admin,
        json={"platform": "sandbox", "name": "c", "tenant_id": "acme"},
    )
    assert resp.status == 201 and (await resp.json())["tenant_id"] == "acme"
    everyone = await (await client.get("/publishing/connections", headers=admin)).json()
    assert {c["tenant_id"] for c in everyone["items"]} == {"acme", "globex"}
    mine = await (await client.get("/publishing/connections", headers=a)).json()
    assert [c["name"] for c in mine["items"]] == ["c"]


async def test_a_disabled_connection_takes_no_new_job(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await key_for(rt, "acme")
    resp = await client.post(
        "/publishing/connections", json={"platform": "sandbox", "name": "s"}, headers=key
    )
    cid = (await resp.json())["id"]
    assert (await client.delete(f"/publishing/connections/{cid}", headers=key)).status == 200
    job = {
        "platform": "sandbox",
        "connection_id": cid,
        "media_asset_ids": ["https://cdn.example.com/a.jpg"],
    }
    resp = await client.post("/publishing/jobs", json=job, headers=key)
    assert resp.status == 422
    assert "disabled" in (await resp.json())["error"]["fields"]["connection_id"]


async def test_the_connection_list_pages_with_a_cursor(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key, other = await key_for(rt, "pager"), await key_for(rt, "someone-else")
    sandbox = {"platform": "sandbox", "metadata": {}}
    made = []
    for n in range(5):
        resp = await client.post(
            "/publishing/connections", json={**sandbox, "name": f"c{n}"}, headers=key
        )
        assert resp.status == 201
        made.append((await resp.json())["id"])
    resp = await client.post(
        "/publishing/connections", json={**sandbox, "name": "theirs"}, headers=other
    )
    theirs = (await resp.json())["id"]

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        resp = await client.get("/publishing/connections", params=params, headers=key)
        assert resp.status == 200
        page = await resp.json()
        pages += 1
        assert len(page["items"]) <= 2
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == made  # oldest first, each once, none of another tenant's
    assert theirs not in seen

    resp = await client.get("/publishing/connections", params={"cursor": "nope"}, headers=key)
    assert resp.status == 422
    assert (await resp.json())["error"]["fields"] == {"cursor": "is not a cursor"}


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


async def test_a_connection_needs_a_new_token_to_become_active_again(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await key_for(rt, "acme")
    resp = await client.post("/publishing/connections", json=IG, headers=key)
    cid = (await resp.json())["id"]

    async def patch(body: dict[str, Any], status: int) -> dict[str, Any]:
        resp = await client.patch(f"/publishing/connections/{cid}", json=body, headers=key)
        assert resp.status == status, await resp.text()
        data: dict[str, Any] = await resp.json()
        return data

    for held in ("needs_reauth", "disabled"):
        await rt.db.execute("UPDATE connections SET status = %s WHERE id = %s", (held, cid))
        refused = await patch({"status": "active"}, 422)
        assert set(refused["error"]["fields"]) == {"status"}
        assert (await patch({"name": "renamed"}, 200))["status"] == held  # stays held
    assert (await patch({"status": "disabled"}, 200))["status"] == "disabled"
    assert (await patch({"status": "active", "access_token": NEW_TOKEN}, 200))["status"] == "active"
    assert (await patch({"status": "active"}, 200))["status"] == "active"  # already active
    stored = await rt.connections().load_for_publish(cid)
    assert stored is not None and stored.access_token == NEW_TOKEN


BAD_CONNECTIONS: list[tuple[dict[str, Any], str]] = [
    (
        {**IG, "metadata": {"instagramBusinessAccountId": "1784abc"}},
        "metadata.instagramBusinessAccountId",
    ),
    (
        {**IG, "metadata": {"instagramBusinessAccountId": "\uff11\uff17"}},
        "metadata.instagramBusinessAccountId",
    ),
    (
        {**IG, "metadata": {"instagramBusinessAccountId": 1784}},
        "metadata.instagramBusinessAccountId",
    ),
    (
        {**IG, "metadata": {"instagramBusinessAccountId": "1" * 33}},
        "metadata.instagramBusinessAccountId",
    ),
    ({**IG, "access_token": "EAAG-too-short"}, "access_token"),
    ({**IG, "access_token": "E" * 4097}, "access_token"),
    ({**IG, "access_token": "EAAG " + "x" * 40}, "access_token"),
    ({**IG, "access_token": "\u00e9" * 40}, "access_token"),
    ({**IG, "access_token": 12345678901234567890}, "access_token"),
    ({**IG, "access_token": ""}, "access_token"),
    ({"platform": "sandbox", "name": "s", "access_token": "x" * 4097}, "access_token"),
    ({"platform": "sandbox", "name": "s", "access_token": ["x"]}, "access_token"),
    (
        {"platform": "sandbox", "name": "s", "metadata": {"latency_ms": 60_001}},
        "metadata.latency_ms",
    ),
    ({"platform": "sandbox", "name": "s", "metadata": {"latency_ms": "10"}}, "metadata.latency_ms"),
    ({"platform": "sandbox", "name": "s", "metadata": {"latency_ms": True}}, "metadata.latency_ms"),
    (
        {"platform": "sandbox", "name": "s", "metadata": {"latency_ms": 1e300}},
        "metadata.latency_ms",
    ),
    ({"platform": "sandbox", "name": "s", "metadata": {"blob": "x" * 17_000}}, "metadata"),
    (
        {"platform": "sandbox", "name": "s", "metadata": {f"k{i}": i for i in range(300)}},
        "metadata",
    ),
    ({"platform": "sandbox", "name": "s", "metadata": nested(6)}, "metadata"),
    ({"platform": "sandbox", "name": "s", "metadata": nested(900)}, "metadata"),
    ({"platform": "sandbox", "name": "s", "metadata": {"deep": [[[[[[1]]]]]]}}, "metadata"),
    ({"platform": "sandbox", "name": "\u00e9" * 201}, "name"),
]


async def test_bad_connection_fields_are_a_422_naming_the_field(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await key_for(rt, "acme")
    made = {}
    for platform, body in (("instagram", IG), ("sandbox", {"platform": "sandbox", "name": "ok"})):
        resp = await client.post("/publishing/connections", json=body, headers=key)
        made[platform] = (await resp.json())["id"]
    for body, field in BAD_CONNECTIONS:
        resp = await client.post("/publishing/connections", json=body, headers=key)
        assert resp.status == 422, (field, await resp.text())
        assert field in (await resp.json())["error"]["fields"], field
        # The same change to an existing connection of that platform.
        change = {k: v for k, v in body.items() if k in ("name", "metadata", "access_token")}
        resp = await client.patch(
            f"/publishing/connections/{made[body['platform']]}", json=change, headers=key
        )
        assert resp.status == 422, (field, await resp.text())
        assert set((await resp.json())["error"]["fields"]) == {field}


async def test_connection_fields_at_their_bounds_are_accepted(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await key_for(rt, "acme")
    for body in (
        {**IG, "name": "n" * 200, "access_token": "E" * 32},
        {**IG, "access_token": "E" * 4096},
        {"platform": "sandbox", "name": "s", "access_token": "t"},  # sandbox tokens are free
        {"platform": "sandbox", "name": "s", "metadata": {"latency_ms": 60_000, "a": nested(4)}},
    ):
        resp = await client.post("/publishing/connections", json=body, headers=key)
        assert resp.status == 201, await resp.text()
