"""A small reader of Prometheus' HTTP API: the alerts it has firing and instant or range
queries. The API's health route uses it; the page never talks to Prometheus itself."""

from __future__ import annotations

import time
from typing import Any

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=3.0)


class PrometheusAway(Exception):
    """Prometheus did not answer, or answered something other than success."""


class PrometheusApi:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            async with (
                aiohttp.ClientSession(timeout=TIMEOUT) as session,
                session.get(self.base_url + path, params=params) as response,
            ):
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PrometheusAway(f"{type(exc).__name__}: {exc}"[:200]) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise PrometheusAway(f"HTTP {response.status}")
        return body["data"]

    async def firing_alerts(self) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/alerts")
        return [
            {
                "name": a["labels"].get("alertname", ""),
                "severity": a["labels"].get("severity"),
                "summary": a.get("annotations", {}).get("summary"),
                "since": a.get("activeAt"),
                "labels": a["labels"],
            }
            for a in data.get("alerts", [])
            if a.get("state") == "firing"
        ]

    async def vector(self, expr: str) -> list[tuple[dict[str, str], float]]:
        data = await self._get("/api/v1/query", {"query": expr})
        return [(r["metric"], float(r["value"][1])) for r in data.get("result", [])]

    async def matrix(
        self, expr: str, *, seconds: int, step: int
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        end = time.time()
        params = {"query": expr, "start": str(end - seconds), "end": str(end), "step": str(step)}
        data = await self._get("/api/v1/query_range", params)
        return [
            (r["metric"], [(float(t), float(v)) for t, v in r["values"]])
            for r in data.get("result", [])
        ]
