"""Lag arithmetic and the shared-state gauge helpers (no broker needed)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from herald.services.scheduler.gauges import LabelledGauge, connection_counts
from herald.shared.domain.platforms import CONNECTION_STATUSES
from herald.shared.infra.kafka.lag import (
    GROUP_TOPICS,
    Offsets,
    Watermarks,
    herald_groups,
    herald_topics,
    lag_report,
    partition_lag,
)
from herald.shared.infra.names import ALL_TOPICS, Names
from herald.shared.platforms.registry import platforms


def test_lag_is_high_watermark_minus_committed_offset() -> None:
    assert partition_lag(40, Watermarks(0, 100)) == 60
    assert partition_lag(100, Watermarks(0, 100)) == 0


def test_a_partition_never_committed_counts_from_the_low_watermark() -> None:
    assert partition_lag(None, Watermarks(10, 100)) == 90
    assert partition_lag(-1001, Watermarks(0, 7)) == 7  # librdkafka's OFFSET_INVALID


def test_a_committed_offset_below_retention_counts_from_the_low_watermark() -> None:
    assert partition_lag(5, Watermarks(50, 80)) == 30


def test_lag_is_never_negative() -> None:
    assert partition_lag(120, Watermarks(0, 100)) == 0
    assert Watermarks(10, 5).size == 0


def test_report_covers_committed_partitions_and_every_topic_size() -> None:
    offsets = Offsets(
        watermarks={
            ("t.req", 0): Watermarks(0, 10),
            ("t.req", 1): Watermarks(2, 7),
            ("t.dlq", 0): Watermarks(3, 3),
        },
        committed={"g": {("t.req", 0): 4, ("t.req", 1): None, ("t.gone", 0): 1}},
    )
    report = lag_report(offsets)
    assert report.lag == {("g", "t.req", 0): 6, ("g", "t.req", 1): 5}
    assert report.sizes == {("t.req", 0): 10, ("t.req", 1): 5, ("t.dlq", 0): 0}


def test_groups_and_topics_carry_the_prefix() -> None:
    names = Names("bars1.", "")
    groups = herald_groups(names)
    assert groups == {f"bars1.{g}": [f"bars1.{t}" for t in ts] for g, ts in GROUP_TOPICS.items()}
    assert herald_topics(names) == [f"bars1.{t}" for t in ALL_TOPICS]


def test_labelled_gauge_replaces_the_whole_set() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("x_lag", "test", ["topic", "partition"], registry=registry)
    labelled = LabelledGauge(gauge)
    labelled.replace({("a", "0"): 3.0, ("a", "1"): 4.0})
    labelled.replace({("a", "0"): 1.0})
    assert registry.get_sample_value("x_lag", {"topic": "a", "partition": "0"}) == 1.0
    assert registry.get_sample_value("x_lag", {"topic": "a", "partition": "1"}) is None


def test_connection_counts_fill_known_pairs_with_zero() -> None:
    counts = connection_counts(
        [
            {"platform": "sandbox", "status": "active", "n": 3},
            {"platform": "instagram", "status": "needs_reauth", "n": 1},
        ]
    )
    assert counts[("sandbox", "active")] == 3
    assert counts[("instagram", "needs_reauth")] == 1
    assert counts[("instagram", "disabled")] == 0
    assert len(counts) == len(platforms()) * len(CONNECTION_STATUSES)  # every known pair
