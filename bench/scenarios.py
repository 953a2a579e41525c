"""The benchmark scenarios. Each returns a dict of figures; `bench/cli.py` prints and saves."""

from __future__ import annotations

import time
from typing import Any

from bench import latency
from bench.pipeline import (
    BenchPipeline,
    JobTimes,
    PublisherSampler,
    Sample,
    _say,
    percentiles,
    utc_in,
)
from herald.shared.infra.settings import Settings


def _lag_figures(times: list[JobTimes]) -> dict[str, Any]:
    """Dispatch and end-to-end lag percentiles, each measured from the job's due time, and
    the status lag: from a post going live to its job reading PUBLISHED in Postgres (the
    results service's write, which yields the CPU to the publish path: decision 0009)."""
    return {
        "dispatch_lag_s": percentiles(
            [max(0.0, t.dispatched - t.due) for t in times if t.dispatched is not None]
        ),
        "end_to_end_lag_s": percentiles(
            [max(0.0, t.published - t.due) for t in times if t.published is not None]
        ),
        "status_lag_s": percentiles(
            [
                max(0.0, t.updated - t.published)
                for t in times
                if t.status == "PUBLISHED" and t.published is not None and t.updated is not None
            ]
        ),
    }


def _drain_figures(pipe: BenchPipeline, n: int, due: float) -> dict[str, Any]:
    times = pipe.job_times()
    published = [t for t in times if t.published is not None]
    last = max((t.published for t in published if t.published), default=due)
    drain = max(last - due, 1e-9)
    return {
        "jobs": n,
        "published": len(published),
        "not_terminal": sum(
            1 for t in times if t.status not in ("PUBLISHED", "DEAD_LETTERED", "CANCELLED")
        ),
        "drain_seconds": round(drain, 3),
        "throughput_jobs_per_s": round(len(published) / drain, 1),
        **_lag_figures(times),
    }


def _send_burst(pipe: BenchPipeline, n: int, label: str) -> float:
    """Schedules N jobs all due at one instant, waits until all are terminal; returns the due
    time."""
    client = pipe.client()
    lead = max(8.0, n / 2500)  # time to schedule them all before they are due
    due_at = utc_in(lead)
    began = time.monotonic()
    for start in range(0, n, 5000):
        pipe.schedule(client, min(5000, n - start), due_at, start)
        client.flush()
    _say(f"{n} jobs sent in {time.monotonic() - began:.1f}s, due at {due_at.isoformat()}")
    pipe.wait_terminal(n, timeout=lead + 120 + n / 200, label=label)
    return due_at.timestamp()


def burst(
    base: Settings,
    *,
    n: int = 20_000,
    publishers: int = 2,
    latency_ms: float = 0.0,
    connections: int = 48,
) -> dict[str, Any]:
    """N jobs over `connections` sandbox accounts, all due at one instant."""
    with BenchPipeline(
        base, publishers=publishers, latency_ms=latency_ms, connections=connections
    ) as pipe:
        figures = _drain_figures(pipe, n, _send_burst(pipe, n, "burst"))
        per_copy = pipe.jobs_per_copy()
    figures.update({"publishers": publishers, "latency_ms": latency_ms, "connections": connections})
    if per_copy:
        # The drain ends when the busiest copy is done. Hashing 48 accounts onto the
        # partitions gave one of 4 copies up to 46 %; placement by creation order (decision
        # 0010) gives each its share.
        figures["busiest_copy_share"] = round(per_copy[0] / sum(per_copy), 3)
    return figures


def _memory_figures(samples: list[Sample], due: float, drained: float) -> dict[str, Any]:
    before = [s for s in samples if s.at < due]
    during = [s for s in samples if due <= s.at <= drained] or samples
    return {
        "rss_mb_before": round(before[-1].rss_mb, 1) if before else None,
        "rss_mb_peak": round(max(s.rss_mb for s in samples), 1),
        "rss_mb_p50": round(percentiles([s.rss_mb for s in during])["p50"], 1),
        "calls_in_flight": percentiles([s.in_flight for s in during]),
        "series": {
            "t_s": [round(s.at - due, 2) for s in samples],
            "rss_mb": [round(s.rss_mb, 1) for s in samples],
            "calls_in_flight": [s.in_flight for s in samples],
        },
    }


def memory(
    base: Settings,
    *,
    n: int = 20_000,
    latency_ms: float = 200.0,
    max_in_flight: int = 1000,
    connections: int = 48,
) -> dict[str, Any]:
    """The burst through one publisher copy with `max_in_flight` slow sandbox calls at once,
    sampling the copy's RSS every 0.2 s from before the due instant until the burst drains."""
    with (
        BenchPipeline(
            base,
            publishers=1,
            latency_ms=latency_ms,
            connections=connections,
            max_in_flight=max_in_flight,
        ) as pipe,
        PublisherSampler(pipe) as sampler,
    ):
        due = _send_burst(pipe, n, "memory")
        figures = _drain_figures(pipe, n, due)
    figures.update(_memory_figures(sampler.samples, due, due + figures["drain_seconds"]))
    figures.update(
        {
            "publishers": 1,
            "max_in_flight": max_in_flight,
            "latency_ms": latency_ms,
            "connections": connections,
        }
    )
    return figures


def steady(
    base: Settings,
    *,
    rate: float = 1000.0,
    seconds: float = 30.0,
    publishers: int = 2,
    connections: int = 48,
) -> dict[str, Any]:
    """A constant rate of jobs, each due one second after it is scheduled (bench/latency.py)."""
    with BenchPipeline(
        base, publishers=publishers, connections=connections, prepare=latency.stamp_append_time
    ) as pipe:
        return latency.run_steady(pipe, rate, seconds) | {"publishers": publishers}


def scale(
    base: Settings,
    *,
    n: int = 20_000,
    latency_ms: float = 200.0,
    copies: tuple[int, ...] = (1, 2, 4),
) -> dict[str, Any]:
    """The burst with a slow sandbox, for 1, 2 and 4 publisher copies."""
    runs = {}
    for k in copies:
        _say(f"scale: {k} publisher copies")
        runs[str(k)] = burst(base, n=n, publishers=k, latency_ms=latency_ms)
    return {
        "latency_ms": latency_ms,
        "jobs": n,
        "throughput_by_copies": {k: r["throughput_jobs_per_s"] for k, r in runs.items()},
        "busiest_copy_share": {k: r.get("busiest_copy_share") for k, r in runs.items()},
        "runs": runs,
    }
