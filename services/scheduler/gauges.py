"""Gauges of shared state, computed from the shared stores (Redis, Postgres, Kafka), so
every process that refreshes them reports the same values and dashboards take `max`.

The scheduler refreshes them in loops (`services/scheduler/main.py`). Each refresh computes
the whole new set of values first and then sets them, never passing through zero, and
removes label sets that vanished (a deleted topic, a group no longer reading a topic).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import Gauge

from herald.shared.domain.platforms import CONNECTION_STATUSES
from herald.shared.infra import metrics
from herald.shared.infra.db.pool import Database
from herald.shared.infra.delayed_queue import DelayedQueue
from herald.shared.infra.kafka.lag import OffsetReader, herald_groups, herald_topics, lag_report
from herald.shared.infra.names import Names
from herald.shared.platforms.registry import platforms
from herald.shared.stores import connections


async def refresh_queue(queue: DelayedQueue) -> None:
    depth = await queue.depth()
    backlog = await queue.due_backlog()
    metrics.DELAYED_QUEUE_DEPTH.set(depth)
    metrics.DUE_BACKLOG.set(backlog)


def connection_counts(rows: Iterable[Mapping[str, object]]) -> dict[tuple[str, str], int]:
    """Every known (platform, status) pair (0 when absent) plus those the rows name."""
    counts = {(p, s): 0 for p in platforms() for s in CONNECTION_STATUSES}
    for row in rows:
        counts[(str(row["platform"]), str(row["status"]))] = int(str(row["n"]))
    return counts


async def refresh_connections(db: Database) -> None:
    rows = await connections.counts(db)
    for (platform, status), count in connection_counts(rows).items():
        metrics.CONNECTIONS.labels(platform, status).set(count)


class LabelledGauge:
    """Sets a labelled gauge to a whole new set of values, dropping vanished label sets."""

    def __init__(self, gauge: Gauge) -> None:
        self.gauge = gauge
        self.current: set[tuple[str, ...]] = set()

    def replace(self, values: Mapping[tuple[str, ...], float]) -> None:
        for labels, value in values.items():
            self.gauge.labels(*labels).set(value)
        for labels in self.current - set(values):
            self.gauge.remove(*labels)
        self.current = set(values)


class KafkaGauges:
    """`herald_consumer_lag` and `herald_topic_messages` for Herald's groups and topics.
    `refresh` is blocking (broker round trips): run it in a thread."""

    def __init__(self, bootstrap: str, names: Names, timeout: float = 5.0) -> None:
        self.names = names
        self.timeout = timeout
        self._reader = OffsetReader(bootstrap, timeout)
        self._lag = LabelledGauge(metrics.CONSUMER_LAG)
        self._sizes = LabelledGauge(metrics.TOPIC_MESSAGES)

    def refresh(self) -> None:
        offsets = self._reader.read(herald_topics(self.names), herald_groups(self.names))
        report = lag_report(offsets)
        self._lag.replace({(g, t, str(p)): float(n) for (g, t, p), n in report.lag.items()})
        self._sizes.replace({(t, str(p)): float(n) for (t, p), n in report.sizes.items()})
