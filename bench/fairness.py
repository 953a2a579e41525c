"""`herald bench fairness`: one tenant's burst must not hold up another tenant's jobs.

Tenant A schedules N jobs over its 48 sandbox accounts, tenant B a handful on its own two,
all due at one instant. Printed: B's delays from the due instant to its `publish.request`
(`dispatched_at`) and to its platform call (`call_started_at`), from the jobs' own rows,
beside the target, and A's drain (the burst's figures).
"""

from __future__ import annotations

import time
from typing import Any

from bench.pipeline import MEDIA, BenchPipeline, JobTimes, _say, percentiles, utc_in
from bench.scenarios import _drain_figures
from herald.shared.infra.settings import Settings
from herald.shared.messages.client import HeraldClient

TARGET_S = 0.3  # "a few hundred milliseconds" behind its due time, however busy A is
A, B = "bench-tenant-a", "bench-tenant-b"


def fairness(
    base: Settings,
    *,
    n: int = 100_000,
    small: int = 5,
    publishers: int = 2,
    connections: int = 48,
) -> dict[str, Any]:
    bodies = [
        {"platform": "sandbox", "name": f"{tenant} {i}", "tenant_id": tenant}
        for tenant, count in ((A, connections), (B, 2))
        for i in range(count)
    ]
    with BenchPipeline(base, publishers=publishers, connection_bodies=bodies) as pipe:
        a_accounts, b_accounts = pipe.connections[:connections], pipe.connections[connections:]
        lead = max(8.0, n / 2500)  # time to schedule them all before they are due
        due_at = utc_in(lead)
        began = time.monotonic()
        b_ids = set()
        for tenant, accounts, count in ((A, a_accounts, n), (B, b_accounts, small)):
            client = HeraldClient(
                pipe.settings.kafka_bootstrap, tenant, topic_prefix=pipe.settings.topic_prefix
            )
            for i in range(count):
                job_id = client.schedule(
                    platform="sandbox",
                    connection_id=accounts[i % len(accounts)],
                    media_asset_ids=MEDIA,
                    caption=f"{tenant} {i}",
                    scheduled_at=due_at,
                )
                if tenant == B:
                    b_ids.add(job_id)
                if i % 5000 == 4999:
                    client.flush()
            client.flush()
        _say(f"{n} + {small} jobs sent in {time.monotonic() - began:.1f}s, due at {due_at}")
        pipe.wait_terminal(n + small, timeout=lead + 120 + n / 200, label="fairness")
        figures = _drain_figures(pipe, n + small, due_at.timestamp())
        b_times = [t for t in pipe.job_times() if t.job_id in b_ids]
    figures.update(
        {
            "tenant_a_jobs": n,
            "tenant_b_jobs": small,
            "tenant_b_to_request_s": _delays(b_times, [t.dispatched for t in b_times]),
            "tenant_b_to_call_s": _delays(b_times, [t.called for t in b_times]),
            "tenant_b_target_s": TARGET_S,
            "publishers": publishers,
            "connections": connections,
        }
    )
    worst = figures["tenant_b_to_call_s"].get("max")
    figures["tenant_b_within_target"] = worst is not None and worst <= TARGET_S
    return figures


def _delays(times: list[JobTimes], stamps: list[float | None]) -> dict[str, float]:
    return percentiles([max(0.0, s - t.due) for t, s in zip(times, stamps, strict=True) if s])
