"""`POST /publishing/jobs:batch` on the real stack: each job answered on its own and in
order, idempotent on its own, the whole request refused only for its own shape; and the
single route's concurrent requests, which share a transaction, still answered one by one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from herald.shared.infra.runtime import Runtime
from tests.integration.test_api_jobs import connection, job_body, later, tenant_key

pytestmark = pytest.mark.integration
BATCH = "/publishing/jobs:batch"


async def send(
    client: TestClient[Any, Any], key: dict[str, str], jobs: Any, status: int = 200
) -> Any:
    resp = await client.post(BATCH, json={"jobs": jobs}, headers=key)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def job_count(rt: Runtime) -> int:
    row = await rt.db.fetchone("SELECT count(*) AS n FROM jobs")
    assert row is not None
    return int(row["n"])


async def test_each_job_is_answered_in_order_and_a_bad_one_fails_only_itself(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    a, b = await connection(client, key), await connection(client, key)
    several = job_body(a, caption="both")
    del several["connection_id"]
    jobs = [
        job_body(a, caption="first"),
        job_body(a, caption=7),
        {**several, "connection_ids": [a, b]},
        "not a job",
        None,
        [job_body(a)],
        job_body(b, caption="x" * 1_000_000),  # a megabyte caption
        job_body(b, caption="last", schedule_at=later(minutes=1)),  # a misspelt field
        job_body(b, caption="really last"),
    ]
    items = (await send(client, key, jobs))["items"]
    assert [i["status"] for i in items] == [201, 422, 201, 422, 422, 422, 422, 422, 201]
    assert items[0]["job"]["caption"] == "first" and items[8]["job"]["caption"] == "really last"
    assert items[1]["error"]["fields"] == {
        "caption": "must be a string of at most 65536 characters"
    }
    assert set(items[3]["error"]["fields"]) == {"$"}
    assert "schedule_at" in items[7]["error"]["fields"]
    post = items[2]["job"]
    assert {j["connection_id"] for j in post["jobs"]} == {a, b}
    made = [items[0]["job"]["id"], items[8]["job"]["id"], *(j["id"] for j in post["jobs"])]
    rows = await rt.db.fetch("SELECT id, status, caption FROM jobs")
    assert {str(r["id"]) for r in rows} == set(made)
    assert await rt.queue.held(made) == set(made)
    shown = await client.get(f"/publishing/jobs/{made[0]}", headers=key)
    assert (await shown.json()) == items[0]["job"]


async def test_each_job_is_idempotent_on_its_own_key(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)
    one, two = job_body(conn, caption="one"), job_body(conn, caption="two")
    first = (await send(client, key, [{**one, "idempotency_key": "k-1"}, two]))["items"]
    assert [i["status"] for i in first] == [201, 201]
    again = (
        await send(
            client,
            key,
            [
                {**one, "idempotency_key": "k-1"},  # a replay: the stored job
                {**two, "idempotency_key": "k-1"},  # the same key, another body: 409
                {**two, "idempotency_key": "k-2"},
                {**two, "idempotency_key": "k-2"},  # repeated in the batch: the first's job
                {**one, "idempotency_key": "k-2"},  # repeated with another body: 409
                {**one, "idempotency_key": ""},
                {**one, "idempotency_key": 5},
            ],
        )
    )["items"]
    assert [i["status"] for i in again] == [200, 409, 201, 200, 409, 422, 422]
    assert again[0]["job"] == first[0]["job"]
    assert again[1]["error"]["code"] == "idempotency_key_reused"
    assert again[3]["job"] == again[2]["job"]
    assert set(again[5]["error"]["fields"]) == {"idempotency_key"}
    assert await job_count(rt) == 3
    # The batch's keys and the single route's Idempotency-Key are one and the same.
    single = await client.post(
        "/publishing/jobs", json=two, headers={**key, "Idempotency-Key": "k-2"}
    )
    assert single.status == 200 and (await single.json()) == again[2]["job"]
    # Keys are per tenant.
    other = await tenant_key(rt, "globex")
    theirs = await send(
        client, other, [{**job_body(await connection(client, other)), "idempotency_key": "k-1"}]
    )
    assert theirs["items"][0]["status"] == 201


async def test_the_whole_request_is_refused_only_for_its_own_shape(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)
    body = job_body(conn)
    for bad, field in (
        ({"jobs": []}, "jobs"),
        ({"jobs": [body] * 1001}, "jobs"),
        ({"jobs": body}, "jobs"),
        ({"jobs": [body], "x": 1}, "x"),
        ([body], "$"),
    ):
        resp = await client.post(BATCH, json=bad, headers=key)
        assert resp.status == 422, field
        assert set((await resp.json())["error"]["fields"]) == {field}
    resp = await client.post(BATCH, data=b'{"jobs": [', headers=key)
    assert resp.status == 400
    resp = await client.post(BATCH, data=b'{"jobs": ["' + b"x" * (9 << 20) + b'"]}', headers=key)
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "body_too_large"
    resp = await client.post(BATCH, json={"jobs": [body]})
    assert resp.status == 401
    assert await job_count(rt) == 0
    # A thousand jobs are one request.
    items = (await send(client, key, [job_body(conn, caption=f"n{i}") for i in range(1000)]))[
        "items"
    ]
    assert [i["job"]["caption"] for i in items] == [f"n{i}" for i in range(1000)]
    assert await job_count(rt) == 1000


async def test_tenancy_is_the_single_routes(client: TestClient[Any, Any], rt: Runtime) -> None:
    acme = await tenant_key(rt, "acme")
    globex = await tenant_key(rt, "globex")
    mine, theirs = await connection(client, acme), await connection(client, globex)
    items = (
        await send(
            client,
            acme,
            [job_body(theirs), job_body(mine), job_body(mine, tenant_id="globex")],
        )
    )["items"]
    assert [i["status"] for i in items] == [422, 201, 422]
    assert items[0]["error"]["fields"] == {"connection_id": f"no connection {theirs}"}
    assert items[1]["job"]["tenant_id"] == "acme"
    row = await rt.db.fetchone("SELECT tenant_id FROM jobs")
    assert row is not None and row["tenant_id"] == "acme"


async def test_concurrent_single_requests_are_answered_each_on_its_own(
    client: TestClient[Any, Any], rt: Runtime
) -> None:
    """They share transactions (group commit); answers and idempotency stay per request."""
    key = await tenant_key(rt, "acme")
    conn = await connection(client, key)

    async def post(body: dict[str, Any], idem: str | None = None) -> tuple[int, Any]:
        headers = {**key, **({"Idempotency-Key": idem} if idem else {})}
        resp = await client.post("/publishing/jobs", json=body, headers=headers)
        return resp.status, await resp.json()

    same = job_body(conn, caption="same")
    answers = await asyncio.gather(
        *(post(job_body(conn, caption=f"c{i}")) for i in range(20)),
        *(post(job_body(conn, caption=7)) for _ in range(5)),
        *(post(same, "shared") for _ in range(10)),
        post(job_body(conn, caption="other"), "shared"),
    )
    statuses = [s for s, _ in answers]
    assert statuses[:20] == [201] * 20
    assert [b["caption"] for _, b in answers[:20]] == [f"c{i}" for i in range(20)]
    assert statuses[20:25] == [422] * 5
    keyed = answers[25:]
    # Whichever request of the key came first made the one job; the rest replay or conflict.
    assert sorted(s for s, _ in keyed) in ([200] * 9 + [201, 409], [201] + [409] * 10)
    assert len({b["id"] for s, b in keyed if s in (200, 201)}) == 1
    assert await job_count(rt) == 21
