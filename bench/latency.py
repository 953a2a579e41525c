"""Latency at steady load and for a lone job, each stage timed from the job's own records.

For every job, from its due instant:
- `request`: the `publish.request` record's broker append time (the bench's request topic
  stamps LogAppendTime, so this is when Kafka had it, not when the dispatcher asked);
- `call`: `published_at`, which the sandbox sets when it takes the call (0 ms latency);
- `stored`: the job row's last write once `PUBLISHED` (the results service's).
The stages between them (`dispatched_at`: the dispatcher's mark; `call_started_at`: the
publisher's claim) say where the rest of the time goes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from bench.pipeline import BenchPipeline, _say, percentiles, utc_in
from herald.shared.infra.kafka.admin import admin
from herald.shared.infra.names import REQUEST
from herald.shared.infra.settings import Settings

TARGETS_MS = {"request": 5.0, "call": 10.0, "stored": 100.0}
LONE_TARGET_MS = 10.0
WARM_UP_S = 5.0  # a fresh pipeline's first seconds at each rate, reported apart


@dataclass
class Trace:
    due: float
    dispatched: float | None
    request: float | None
    claimed: float | None
    call: float | None
    stored: float | None


def stamp_append_time(pipe: BenchPipeline) -> None:
    """Make the run's request topic stamp records with the broker's append time."""
    topic = pipe.settings.topic_prefix + REQUEST
    entry = ConfigEntry(
        "message.timestamp.type",
        "LogAppendTime",
        incremental_operation=AlterConfigOpType.SET,
    )
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    client = admin(pipe.settings.kafka_bootstrap)
    for future in client.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def request_times(pipe: BenchPipeline) -> dict[str, float]:
    """job id → the first `publish.request` record's append time (epoch seconds)."""
    s = pipe.settings
    topic = s.topic_prefix + REQUEST
    consumer = Consumer(
        {
            "bootstrap.servers": s.kafka_bootstrap,
            "group.id": f"{s.topic_prefix}latency-reader",
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p, 0) for p in meta.partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
        consumer.assign(parts)
        left = {p: end for p, end in ends.items() if end > 0}
        out: dict[str, float] = {}
        while left:
            for msg in consumer.consume(1000, 1.0):
                value, part, offset = msg.value(), msg.partition(), msg.offset()
                if msg.error() or value is None or part is None or offset is None:
                    continue
                out.setdefault(json.loads(value)["job_id"], msg.timestamp()[1] / 1000)
                if part in left and offset + 1 >= left[part]:
                    del left[part]
        return out
    finally:
        consumer.close()


def traces(pipe: BenchPipeline, intended: dict[str, float] | None = None) -> list[Trace]:
    """Each job's points in time. `intended` (job id → the due instant the bench asked for)
    wins over the stored one: a job that reaches the scheduler after its due instant is
    stored as due at once, so the stored instant would hide an ingress that falls behind."""
    requested = request_times(pipe)
    intended = intended or {}
    return [
        Trace(
            due=intended.get(t.job_id, t.due),
            dispatched=t.dispatched,
            request=requested.get(t.job_id),
            claimed=t.called,
            call=t.published,
            stored=t.updated if t.status == "PUBLISHED" else None,
        )
        for t in pipe.job_times()
    ]


def _ms(values: list[float]) -> dict[str, float]:
    """Signed: a job is dispatched up to `DISPATCH_LEAD_SECONDS` early, so due → request and
    due → mark are negative (ahead of the due instant); due → call never may be."""
    if not values:
        return {}
    figures = {"min": min(values), **percentiles(values)}
    return {k: round(v * 1000, 1) for k, v in figures.items()}


def lag_figures(found: list[Trace]) -> dict[str, Any]:
    """Percentiles (ms) from the due instant to each point, and of each stage between."""

    def span(a: str, b: str) -> list[float]:
        out = []
        for t in found:
            start, end = getattr(t, a), getattr(t, b)
            if start is not None and end is not None:
                out.append(end - start)
        return out

    figures: dict[str, Any] = {
        f"due_to_{point}_ms": _ms(span("due", point)) for point in ("request", "call", "stored")
    }
    # The one figure that must stay 0: a platform called before the instant it was asked for.
    figures["calls_before_due"] = sum(1 for v in span("due", "call") if v < 0)
    figures["stages_ms"] = {
        "due_to_dispatcher_mark": _ms(span("due", "dispatched")),
        "mark_to_request": _ms(span("dispatched", "request")),
        "request_to_publisher_claim": _ms(span("request", "claimed")),
        "claim_to_call": _ms(span("claimed", "call")),
        "call_to_stored": _ms(span("call", "stored")),
    }
    return figures


def against_targets(figures: dict[str, Any]) -> dict[str, str]:
    """Each p99 beside its target, as `herald bench` prints it."""
    out = {}
    for point, target in TARGETS_MS.items():
        p99 = figures.get(f"due_to_{point}_ms", {}).get("p99")
        if p99 is not None:
            mark = "met" if p99 <= target else "missed"
            out[f"due_to_{point}_p99"] = f"{p99} ms (target <= {target:g} ms: {mark})"
    if "calls_before_due" in figures:
        out["calls_before_due"] = _early(figures["calls_before_due"])
    return out


def _early(calls_before_due: int) -> str:
    return f"{calls_before_due} (must be 0: {'met' if calls_before_due == 0 else 'MISSED'})"


def run_steady(
    pipe: BenchPipeline, rate: float, seconds: float, warm_up: float = WARM_UP_S
) -> dict[str, Any]:
    """Schedule `rate` jobs a second, each due 1 s after it is sent: `warm_up` seconds first,
    then `seconds` that count. A fresh pipeline's first seconds are not steady (its consumer
    groups settle, its connections open, the broker compiles its hot paths: jobs reached the
    platform up to 1.5 s late), so they are reported apart, under `warm_up`."""
    client = pipe.client()
    sent, began, tick = 0, time.time(), 0.01
    intended: dict[str, float] = {}
    while time.time() - began < warm_up + seconds:
        target = int((time.time() - began + tick) * rate)
        if target > sent:
            due = utc_in(1.0)
            for job_id in pipe.schedule(client, target - sent, due, sent):
                intended[job_id] = due.timestamp()
            client.flush()
            sent = target
        time.sleep(max(0.0, began + (sent / rate) - time.time()))
    _say(f"steady {rate:g}/s: sent {sent} jobs in {time.time() - began:.1f}s")
    done = pipe.wait_terminal(sent, timeout=120, label=f"steady {rate:g}/s")
    found = traces(pipe, intended)
    counted_from = began + warm_up + 1.0  # the first due instant that counts
    counted = [t for t in found if t.due >= counted_from]
    early = [t for t in found if t.due < counted_from]
    figures: dict[str, Any] = {
        "rate_per_s": rate,
        "seconds": seconds,
        "jobs": sent,
        "done": done,
        "counted_jobs": len(counted),
    }
    figures.update(lag_figures(counted))
    figures["due_to_request_p99_by_second_ms"] = by_second(counted, counted_from)
    figures["warm_up"] = {
        "seconds": warm_up,
        "jobs": len(early),
        **{k: v for k, v in lag_figures(early).items() if k != "stages_ms"},
    }
    figures["against_targets"] = against_targets(figures)
    return figures


def by_second(found: list[Trace], start: float) -> list[float]:
    """The p99 of due → `publish.request` for the jobs due in each second from `start`, to
    show whether the tail is steady or one bad moment."""
    seconds: dict[int, list[float]] = {}
    for t in found:
        if t.request is not None:
            seconds.setdefault(int(t.due - start), []).append(t.request - t.due)
    return [_ms(seconds[s]).get("p99", 0.0) for s in sorted(seconds)]


def run_lone(pipe: BenchPipeline, count: int = 20, gap: float = 1.5) -> dict[str, Any]:
    """`count` single jobs, each alone on the idle pipeline, due `gap` s after it is sent."""
    client = pipe.client()
    # A first job, not counted, waits out the consumer groups' last rebalances after start.
    earlier = len(traces(pipe))
    pipe.schedule(client, 1, utc_in(0.5), 999_999)
    client.flush()
    pipe.wait_terminal(earlier + 1, timeout=60, label="warm-up job")
    time.sleep(gap)
    before = {t.due for t in traces(pipe)}
    for i in range(count):
        pipe.schedule(client, 1, utc_in(gap * 0.7), 1_000_000 + i)
        client.flush()
        time.sleep(gap)
    pipe.wait_terminal(len(before) + count, timeout=60, label="lone jobs")
    lone = [t for t in traces(pipe) if t.due not in before]
    figures = lag_figures(lone)
    p_max = figures["due_to_call_ms"].get("max")
    figures["jobs"] = len(lone)
    figures["against_target"] = (
        f"due to call max {p_max} ms (target <= {LONE_TARGET_MS:g} ms:"
        f" {'met' if p_max is not None and p_max <= LONE_TARGET_MS else 'missed'}),"
        f" calls before due {_early(figures['calls_before_due'])}"
    )
    return figures


def latency(
    base: Settings,
    *,
    rates: tuple[float, ...] = (100.0, 1000.0, 5000.0),
    seconds: float = 20.0,
    publishers: int = 2,
    peer: bool = True,
) -> dict[str, Any]:
    """A lone job on the idle pipeline, then each steady rate on a fresh pipeline, and arq at
    the middle rate on the same machine in the same run."""
    from bench import arq_peer

    runs: dict[str, Any] = {}
    with BenchPipeline(base, publishers=publishers, prepare=stamp_append_time) as pipe:
        time.sleep(3.0)  # let the consumers join their groups
        runs["lone_job"] = run_lone(pipe)
    for rate in rates:
        with BenchPipeline(base, publishers=publishers, prepare=stamp_append_time) as pipe:
            runs[f"steady_{rate:g}"] = run_steady(pipe, rate, seconds)
    if peer:
        middle = rates[len(rates) // 2]
        arq = arq_peer.steady(base.redis_url, rate=middle, seconds=seconds)
        runs[f"arq_{middle:g}"] = arq
        ours = runs[f"steady_{middle:g}"]["due_to_call_ms"].get("p99")
        theirs = arq["due_to_start_ms"].get("p99")
        if ours and theirs:
            runs["ratio_due_to_call_p99_vs_arq"] = round(ours / theirs, 2)
    return runs
