"""`herald bench fairness`: one tenant's burst must not hold up another tenant's jobs.

Tenant A schedules N jobs over its 48 sandbox accounts, tenant B a handful on its own two,
all due at one instant, and as many more due a few seconds later, while A's burst still
drains. Printed: B's delays from the due instant to its `publish.request` (`dispatched_at`)
and to its platform call (`call_started_at`), from the jobs' own rows, beside the target,
for both groups, and A's drain (the burst's figures).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
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
        later = due_at + timedelta(seconds=n / 20_000)  # A has a few seconds' work left
        began = time.monotonic()
        groups: dict[str, set[str]] = {"at_once": set(), "mid_burst": set()}
        a = HeraldClient(pipe.settings.kafka_bootstrap, A, topic_prefix=pipe.settings.topic_prefix)
        for i in range(n):
            _send(a, a_accounts[i % connections], f"{A} {i}", due_at)
            if i % 5000 == 4999:
                a.flush()
        a.flush()
        b = HeraldClient(pipe.settings.kafka_bootstrap, B, topic_prefix=pipe.settings.topic_prefix)
        for group, at in (("at_once", due_at), ("mid_burst", later)):
            for i in range(small):
                groups[group].add(_send(b, b_accounts[i % 2], f"{B} {group} {i}", at))
        b.flush()
        total = n + 2 * small
        _say(f"{n} + 2 x {small} jobs sent in {time.monotonic() - began:.1f}s, due at {due_at}")
        pipe.wait_terminal(total, timeout=lead + 120 + n / 200, label="fairness")
        figures = _drain_figures(pipe, total, due_at.timestamp())
        times = pipe.job_times()
    b_ids = groups["at_once"] | groups["mid_burst"]
    figures.update(
        {
            "tenant_a_jobs": n,
            "tenant_b_jobs": small,
            "tenant_b_target_s": TARGET_S,
            "tenant_b_mid_burst_due_after_s": round((later - due_at).total_seconds(), 3),
            # A's calls still to come when B's second group was due: the burst it met.
            "tenant_a_calls_after_mid_burst_due": sum(
                1
                for t in times
                if t.job_id not in b_ids and t.called and t.called > later.timestamp()
            ),
            "publishers": publishers,
            "connections": connections,
        }
    )
    for group, ids in groups.items():
        mine = [t for t in times if t.job_id in ids]
        prefix = "tenant_b" if group == "at_once" else "tenant_b_mid_burst"
        to_call = _delays(mine, [t.called for t in mine])
        figures[f"{prefix}_to_request_s"] = _delays(mine, [t.dispatched for t in mine])
        figures[f"{prefix}_to_call_s"] = to_call
        figures[f"{prefix}_within_target"] = bool(to_call) and to_call["max"] <= TARGET_S
    return figures


def _send(client: HeraldClient, account: str, caption: str, at: datetime) -> str:
    return client.schedule(
        platform="sandbox",
        connection_id=account,
        media_asset_ids=MEDIA,
        caption=caption,
        scheduled_at=at,
    )


def _delays(times: list[JobTimes], stamps: list[float | None]) -> dict[str, float]:
    return percentiles([max(0.0, s - t.due) for t, s in zip(times, stamps, strict=True) if s])
