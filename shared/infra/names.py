"""Topic, consumer-group and Redis key names, with the run's prefixes applied."""

from __future__ import annotations

from dataclasses import dataclass

from herald.shared.infra.settings import Settings

SCHEDULE = "publish.schedule"
REQUEST = "publish.request"
RESULT = "publish.result"
STATUS = "publish.status"
DLQ = "publish.dlq"
ALL_TOPICS = (SCHEDULE, REQUEST, RESULT, STATUS, DLQ)

# Consumer groups (before the prefix): the scheduler's ingress, the publishers, results.
SCHEDULER_GROUP = "herald-scheduler"
PUBLISHER_GROUP = "herald-publisher"
RESULTS_GROUP = "herald-results"


@dataclass(frozen=True)
class Names:
    topic_prefix: str = ""
    redis_prefix: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Names:
        return cls(settings.topic_prefix, settings.redis_prefix)

    def topic(self, base: str) -> str:
        return f"{self.topic_prefix}{base}"

    def group(self, base: str) -> str:
        return f"{self.topic_prefix}{base}"

    def key(self, base: str) -> str:
        return f"{self.redis_prefix}herald:{base}"
