"""Connecting Bluesky and Mastodon accounts through the HTTP API (real Postgres): the host a
connection names must be an https URL on public addresses after DNS resolution, so a
connection pointed at 127.0.0.1, 10.0.0.1 or a name resolving to them is a 422 naming the
field, on create and on change; an app password has its shape; the secret never comes back."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from herald.shared.infra.runtime import Runtime
from herald.shared.platforms.hosts import ALLOW_ENV
from herald.shared.stores.tenants import create_api_key

pytestmark = pytest.mark.integration
PASSWORD = "abcd-efgh-ijkl-mnop"
MASTODON_TOKEN = "mst-" + "Q" * 40
NAMES = {"social.example": "93.184.216.34", "inside.example": "10.0.0.1", "lo.example": "127.0.0.1"}
CASES = [
    ("bluesky", "pdsUrl", {"identifier": "herald.bsky.social"}, PASSWORD),
    ("bluesky", "videoUrl", {"identifier": "herald.bsky.social"}, PASSWORD),
    ("mastodon", "instanceUrl", {}, MASTODON_TOKEN),
]


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def fake(host: str, *args: Any, **kwargs: Any) -> Any:
        if host in NAMES:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (NAMES[host], 443))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    monkeypatch.delenv(ALLOW_ENV, raising=False)


async def key(rt: Runtime) -> dict[str, str]:
    _, k = await create_api_key(rt.db, tenant_id="acme", admin=False)
    return {"Authorization": f"Bearer {k}"}


@pytest.mark.parametrize(("platform", "field", "meta", "secret"), CASES)
async def test_a_host_on_a_non_public_address_is_refused(
    client: TestClient[Any, Any],
    rt: Runtime,
    platform: str,
    field: str,
    meta: dict[str, str],
    secret: str,
) -> None:
    headers = await key(rt)
    for url in (
        "https://127.0.0.1",
        "https://10.0.0.1",
        "https://[::1]",
        "https://localhost",
        "https://inside.example",
        "https://lo.example/",
        "http://social.example",
    ):
        body = {
            "platform": platform,
            "name": "x",
            "access_token": secret,
            "metadata": {**meta, field: url},
        }
        resp = await client.post("/publishing/connections", json=body, headers=headers)
        assert resp.status == 422, (url, await resp.text())
        fields = (await resp.json())["error"]["fields"]
        assert set(fields) == {f"metadata.{field}"}, (url, fields)
        assert "https" in fields[f"metadata.{field}"] or "non-public" in fields[f"metadata.{field}"]


@pytest.mark.parametrize(("platform", "field", "meta", "secret"), CASES)
async def test_a_public_https_host_is_accepted_and_a_change_is_checked_again(
    client: TestClient[Any, Any],
    rt: Runtime,
    platform: str,
    field: str,
    meta: dict[str, str],
    secret: str,
) -> None:
    headers = await key(rt)
    body = {
        "platform": platform,
        "name": "ok",
        "access_token": secret,
        "metadata": {**meta, field: "https://social.example"},
    }
    resp = await client.post("/publishing/connections", json=body, headers=headers)
    text = await resp.text()
    assert resp.status == 201, text
    assert secret not in text
    cid = (await resp.json())["id"]
    change = {"metadata": {**meta, field: "https://inside.example"}}
    resp = await client.patch(f"/publishing/connections/{cid}", json=change, headers=headers)
    assert resp.status == 422, await resp.text()
    assert set((await resp.json())["error"]["fields"]) == {f"metadata.{field}"}


async def test_a_bluesky_connection_needs_an_app_password_and_a_handle(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    headers = await key(rt)
    body = {"platform": "bluesky", "name": "x", "access_token": "my real password", "metadata": {}}
    resp = await client.post("/publishing/connections", json=body, headers=headers)
    assert resp.status == 422
    fields = (await resp.json())["error"]["fields"]
    assert set(fields) == {"access_token", "metadata.identifier"}
    assert "my real password" not in await resp.text()
