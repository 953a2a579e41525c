"""Hostile and careless input against the live pipeline (scheduler, publisher, results and the
API as processes): every bad input through the API gets a 4xx, every bad command on
`publish.schedule` a dead letter; no service stops or restarts; and ordinary jobs due at the
same instant, through both doors, are all published."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.names import SCHEDULE
from herald.shared.infra.runtime import Runtime
from herald.shared.messages.codec import now_utc
from herald.shared.stores.tenants import create_api_key
from tests.conftest import Namespace, eventually
from tests.support.helpers import ServiceProcess, assert_none_in_progress, sandbox_connections
from tests.support.prometheus import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
IMAGE = "https://cdn.example.com/a.jpg"
ORDINARY = 20  # per door


@pytest.fixture
def pipeline(ns: Namespace, tmp_path: Path) -> Iterator[tuple[list[ServiceProcess], str]]:
    port = free_port()
    env = ns.env(api_port=port)
    procs = [
        ServiceProcess(name, env, tmp_path).start()
        for name in ("scheduler", "publisher", "results", "api")
    ]
    yield procs, f"http://127.0.0.1:{port}"
    for p in procs:
        p.stop()


def _command(command: str, job_id: Any, tenant: Any = "acme", **fields: Any) -> dict[str, Any]:
    return {
        "schema_version": "1.1",
        "command": command,
        "job_id": job_id,
        "tenant_id": tenant,
        "idempotency_key": uuid.uuid4().hex,
        "trace_id": uuid.uuid4().hex,
        **fields,
    }


async def test_hostile_input_harms_nothing_and_ordinary_jobs_due_with_it_publish(
    ns: Namespace, rt: Runtime, pipeline: tuple[list[ServiceProcess], str]
) -> None:
    procs, base = pipeline
    mine = await sandbox_connections(rt, 2, tenant="acme")
    (foreign,) = await sandbox_connections(rt, 1, tenant="other")
    _, secret = await create_api_key(rt.db, tenant_id="acme", admin=False)
    key = {"Authorization": f"Bearer {secret}"}
    due = now_utc() + timedelta(seconds=12)
    when = due.isoformat()
    ok = {"platform": "sandbox", "connection_id": mine[0], "media_asset_ids": [IMAGE]}

    async with aiohttp.ClientSession(base) as http:

        async def ready() -> bool:
            try:
                async with http.get("/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await eventually(ready, timeout=60, interval=0.2)

        # A foreign tenant's job, to be reached for through acme's key.
        _, other_secret = await create_api_key(rt.db, tenant_id="other", admin=False)
        async with http.post(
            "/publishing/jobs",
            json={**ok, "connection_id": foreign, "scheduled_at": when},
            headers={"Authorization": f"Bearer {other_secret}"},
        ) as resp:
            assert resp.status == 201
            foreign_job = (await resp.json())["id"]

        # ---- ordinary jobs through the API, all due at `due` --------------------------------
        api_jobs = []
        for i in range(ORDINARY):
            body = {**ok, "connection_id": mine[i % 2], "caption": f"ok {i}", "scheduled_at": when}
            async with http.post("/publishing/jobs", json=body, headers=key) as resp:
                assert resp.status == 201, await resp.text()
                api_jobs.append((await resp.json())["id"])

        # ---- hostile input through the API: each a 4xx in the error shape -------------------
        raw_bodies: list[tuple[str, bytes]] = [
            ("not json", b"{"),
            ("an array", b"[1, 2]"),
            ("empty", b""),
            ("nested past the parser's depth", b"[" * 2000 + b"]" * 2000),
            ("lone surrogate", b'{"caption": "\\ud800"}'),
        ]
        nested: Any = "x"
        for _ in range(300):
            nested = [nested]
        bodies: list[tuple[str, Any]] = [
            ("unknown platform", {**ok, "platform": "myspace"}),
            ("platform of the wrong type", {**ok, "platform": 5}),
            ("connection id not a UUID", {**ok, "connection_id": "../../etc"}),
            ("another tenant's connection", {**ok, "connection_id": foreign}),
            ("an unknown connection", {**ok, "connection_id": str(uuid.uuid4())}),
            (
                "connections repeated",
                {**ok, "connection_id": None, "connection_ids": [mine[0]] * 2},
            ),
            ("both connection fields", {**ok, "connection_ids": [mine[1]]}),
            ("no assets", {**ok, "media_asset_ids": []}),
            ("eleven assets", {**ok, "media_asset_ids": [IMAGE] * 11}),
            ("http asset", {**ok, "media_asset_ids": ["http://cdn.example.com/a.jpg"]}),
            ("asset ending in a newline", {**ok, "media_asset_ids": [IMAGE + "\n"]}),
            ("asset with a space", {**ok, "media_asset_ids": ["https://cdn.example.com/a b.jpg"]}),
            ("asset of 3,000 characters", {**ok, "media_asset_ids": [IMAGE + "x" * 3000]}),
            (
                "a backtracking megabyte",
                {**ok, "media_asset_ids": ["https://" + "a" * 999_000 + " "]},
            ),
            ("assets as a string", {**ok, "media_asset_ids": IMAGE}),
            ("caption a number", {**ok, "caption": 7}),
            ("caption too long", {**ok, "caption": "y" * 2201}),
            ("caption with NUL", {**ok, "caption": "a\x00b"}),
            ("caption nested 300 deep", {**ok, "caption": nested}),
            ("naive time", {**ok, "scheduled_at": "2026-12-24T10:00:00"}),
            ("year 9999", {**ok, "scheduled_at": "9999-12-31T23:59:59Z"}),
            ("before year 1 in UTC", {**ok, "scheduled_at": "0001-01-01T00:00:00+01:00"}),
            ("ten days ago", {**ok, "scheduled_at": (now_utc() - timedelta(days=10)).isoformat()}),
            (
                "three years ahead",
                {**ok, "scheduled_at": (now_utc() + timedelta(days=1100)).isoformat()},
            ),
            ("deadline before the time", {**ok, "scheduled_at": when, "publish_deadline": when}),
            ("a GIF", {**ok, "media_type": "GIF"}),
            ("a carousel of one", {**ok, "media_type": "CAROUSEL"}),
            ("a Reel from a JPEG", {**ok, "media_type": "REELS"}),
            ("a tenant naming a tenant", {**ok, "tenant_id": "other"}),
            ("a typo that would post now", {**ok, "schedule_at": when}),
            ("a number beyond 64 bits", {**ok, "caption": 10**30}),
        ]
        refused: list[tuple[str, int]] = []
        for name, raw in raw_bodies:
            headers = {**key, "Content-Type": "application/json"}
            async with http.post("/publishing/jobs", data=raw, headers=headers) as resp:
                refused.append((name, resp.status))
                assert set(await resp.json()) == {"error"}, name
        for name, body in bodies:
            body = {k: v for k, v in body.items() if v is not None}
            async with http.post("/publishing/jobs", json=body, headers=key) as resp:
                refused.append((name, resp.status))
                answer = await resp.json()
                assert set(answer) == {"error"} and len(str(answer)) < 2000, name
        others = [
            ("GET", f"/publishing/jobs/{foreign_job}", None, {}),
            ("POST", f"/publishing/jobs/{foreign_job}/cancel", None, {}),
            ("POST", f"/publishing/jobs/{foreign_job}/retry", {}, {}),
            (
                "PATCH",
                f"/publishing/jobs/{api_jobs[0]}",
                {"scheduled_at": "9999-12-31T23:59:59Z"},
                {},
            ),
            ("GET", "/publishing/jobs?cursor=bm9wZXxub3Bl", None, {}),
            ("GET", "/publishing/jobs?limit=%C2%B2", None, {}),
            ("GET", "/publishing/dlq?since=9999-12-31T23:59:59-01:00", None, {}),
            ("POST", "/publishing/jobs", ok, {"Idempotency-Key": "k" * 300}),
            (
                "POST",
                "/publishing/connections",
                {
                    "platform": "instagram",
                    "name": "x",
                    "access_token": "x",
                    "metadata": {"instagramBusinessAccountId": "1"},
                },
                {},
            ),
            (
                "POST",
                "/publishing/connections",
                {"platform": "sandbox", "name": "slow", "metadata": {"latency_ms": 10**9}},
                {},
            ),
        ]
        for method, path, body, headers in others:
            async with http.request(method, path, json=body, headers={**key, **headers}) as resp:
                refused.append((f"{method} {path[:50]}", resp.status))
                assert set(await resp.json()) == {"error"}, path
        async with http.get("/healthz") as resp:
            assert resp.status == 200
    assert len(refused) >= 45
    assert all(400 <= status < 500 for _, status in refused), refused

    # ---- ordinary and hostile commands on publish.schedule ---------------------------------
    topic = ns.topic_prefix + SCHEDULE
    topic_jobs = [str(uuid.uuid4()) for _ in range(ORDINARY)]
    reused, unknown, untouchable = (str(uuid.uuid4()) for _ in range(3))
    records: list[tuple[str, str, bytes]] = []

    def send(value: Any, key_: str = "k") -> None:
        records.append((topic, key_, value if isinstance(value, bytes) else orjson.dumps(value)))

    for i, job_id in enumerate(topic_jobs):
        send(
            _command("schedule", job_id, **{**ok, "connection_id": mine[i % 2]}, scheduled_at=when)
        )
    send(_command("schedule", reused, **ok, scheduled_at=when))
    send(_command("schedule", untouchable, **ok, scheduled_at=when))
    hostile: list[Any] = [
        b"not json",
        b"[]",
        b"null",
        orjson.dumps({"schema_version": "9.0", "command": "schedule"}),
        _command("schedule", None, **ok),
        _command("schedule", "not-a-uuid", **ok),
        _command("launch", str(uuid.uuid4()), **ok),
        _command("schedule", str(uuid.uuid4()), tenant="a\tb", **ok),
        _command("schedule", str(uuid.uuid4()), **ok, scheduled_at="9999-12-31T23:59:59Z"),
        _command("schedule", str(uuid.uuid4()), **ok, publish_deadline="0001-01-01T00:00:00+01:00"),
        _command(
            "schedule",
            str(uuid.uuid4()),
            **ok,
            scheduled_at=(now_utc() - timedelta(days=9)).isoformat(),
        ),
        _command("schedule", str(uuid.uuid4()), **{**ok, "media_asset_ids": [IMAGE + "\n"]}),
        _command("schedule", str(uuid.uuid4()), **{**ok, "media_asset_ids": [IMAGE] * 11}),
        _command("schedule", str(uuid.uuid4()), **{**ok, "platform": "Sandbox"}),
        _command("schedule", str(uuid.uuid4()), **{**ok, "caption": "z" * 2201}),
        _command("schedule", str(uuid.uuid4()), **{**ok, "caption": "z" * 900_000}),
        _command("schedule", str(uuid.uuid4()), **{**ok, "connection_id": foreign}),
        _command("schedule", str(uuid.uuid4()), **{**ok, "connection_id": str(uuid.uuid4())}),
        _command("schedule", reused, **{**ok, "caption": "another body"}, scheduled_at=when),
        _command("schedule", str(uuid.uuid4()), **ok, schedule_at=when),  # a typo: not "now"
        _command("cancel", unknown),
        _command("reschedule", untouchable, scheduled_at="9999-12-31T23:59:59Z"),
        _command("retry", untouchable),  # a SCHEDULED job cannot be retried
        _command("cancel", foreign_job),  # another tenant's job
    ]
    for value in hostile:
        send(value)
    Producer(ns.base.kafka_bootstrap).send_batch(records)

    everything = api_jobs + topic_jobs + [reused, untouchable]

    async def all_published() -> bool:
        rows = await rt.db.fetch(
            "SELECT status FROM jobs WHERE id = ANY(%s::uuid[])", (everything,)
        )
        return len(rows) == len(everything) and {r["status"] for r in rows} == {"PUBLISHED"}

    await eventually(all_published, timeout=120, interval=0.5)

    async def letters() -> list[dict[str, Any]]:
        return await rt.db.fetch("SELECT * FROM dead_letters WHERE source_topic = %s", (topic,))

    async def every_command_dead_lettered() -> bool:
        return len(await letters()) >= len(hostile)

    await eventually(every_command_dead_lettered, timeout=60, interval=0.5)
    await asyncio.sleep(1.0)
    found = await letters()
    assert len(found) == len(hostile)
    assert {r["reason"] for r in found} == {"invalid_message"}

    for p in procs:
        assert p.alive(), (p.name, p.log()[-3000:])
        assert "loop ended unexpectedly" not in p.log() and "Traceback" not in p.log(), p.name
    await assert_none_in_progress(rt)
    posts = await rt.db.fetch("SELECT job_id::text AS job_id FROM sandbox_posts")
    assert sorted(p["job_id"] for p in posts) == sorted([*everything, foreign_job])
