"""`/publishing/health`: the pipeline at a glance for the ops page. Jobs by state and dead
letters of the last 24 h come from Postgres (as the key sees them); consumer lag and its
trend, publisher copies alive and the alerts firing come from Prometheus
(HERALD_PROMETHEUS_URL), read here so the page talks only to this API.

`/publishing/connections:usage`: per connection, what it spent in the last 24 h."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from herald.services.api.middleware import json_ok, principal
from herald.shared.domain.tenancy import Principal
from herald.shared.infra.db.pool import Database
from herald.shared.infra.prometheus_api import PrometheusApi, PrometheusAway

LAG = "sum by (topic) (max by (group, topic, partition) (herald_consumer_lag))"
PUBLISHERS_UP = 'count(up{service="publisher"} == 1)'
TREND_SECONDS, TREND_STEP = 1800, 60
SCOPE = "(%(admin)s OR tenant_id = %(tenant)s)"


def _scope(p: Principal) -> dict[str, Any]:
    return {"admin": p.is_admin, "tenant": p.tenant_id}


async def _from_postgres(db: Database, p: Principal) -> dict[str, Any]:
    states = await db.fetch(
        f"SELECT status, count(*) AS n FROM jobs WHERE {SCOPE} GROUP BY status", _scope(p)
    )
    dead = await db.fetchone(
        f"SELECT count(*) AS n FROM dead_letters WHERE {SCOPE}"
        " AND created_at > now() - interval '24 hours'",
        _scope(p),
    )
    return {
        "jobs_by_status": {r["status"]: int(r["n"]) for r in states},
        "dead_letters_24h": int(dead["n"]) if dead else 0,
    }


async def _from_prometheus(prom: PrometheusApi) -> dict[str, Any]:
    try:
        alerts, lag, trend, up = await asyncio.gather(
            prom.firing_alerts(),
            prom.vector(LAG),
            prom.matrix(LAG, seconds=TREND_SECONDS, step=TREND_STEP),
            prom.vector(PUBLISHERS_UP),
        )
    except PrometheusAway as exc:
        return {
            "prometheus": {"reachable": False, "error": str(exc)},
            "alerts": None,
            "lag": None,
            "publishers_alive": None,
        }
    trends = {m.get("topic", ""): points for m, points in trend}
    return {
        "prometheus": {"reachable": True, "error": None},
        "alerts": alerts,
        "lag": [
            {
                "topic": m.get("topic", ""),
                "lag": int(v),
                "trend": [[int(t), int(x)] for t, x in trends.get(m.get("topic", ""), [])],
            }
            for m, v in sorted(lag, key=lambda mv: mv[0].get("topic", ""))
        ],
        "publishers_alive": int(up[0][1]) if up else 0,
    }


def add_routes(app: web.Application, db: Database, prometheus_url: str) -> None:
    prom = PrometheusApi(prometheus_url)

    async def health(request: web.Request) -> web.Response:
        who = principal(request)
        stored, watched = await asyncio.gather(_from_postgres(db, who), _from_prometheus(prom))
        return json_ok(stored | watched)

    async def usage(request: web.Request) -> web.Response:
        rows = await db.fetch(
            "SELECT connection_id, count(*) AS attempts,"
            " count(*) FILTER (WHERE published_at > now() - interval '24 hours') AS published"
            f" FROM jobs WHERE {SCOPE} AND connection_id IS NOT NULL"
            " AND updated_at > now() - interval '24 hours' GROUP BY connection_id",
            _scope(principal(request)),
        )
        return json_ok(
            {
                "items": [
                    {
                        "connection_id": str(r["connection_id"]),
                        "jobs_24h": int(r["attempts"]),
                        "published_24h": int(r["published"]),
                    }
                    for r in rows
                ]
            }
        )

    app.router.add_get("/publishing/health", health, allow_head=False)
    app.router.add_get("/publishing/connections:usage", usage, allow_head=False)
