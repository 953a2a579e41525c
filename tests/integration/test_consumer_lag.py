"""Herald's consumer-lag gauges against a Kafka client's view of the same group: partly
consumed, then drained."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from herald.services.scheduler.gauges import KafkaGauges
from herald.shared.infra.kafka.client import Producer
from herald.shared.infra.names import PUBLISHER_GROUP, REQUEST, Names
from herald.shared.infra.settings import Settings
from tests.support.kafka_lag import LagKey, consume_and_commit, herald_client_lag

PRODUCED = 240


def _gauge_lag(names: Names) -> dict[LagKey, int]:
    prefix = names.topic_prefix
    values: dict[LagKey, int] = {}
    for family in REGISTRY.collect():
        if family.name != "herald_consumer_lag":
            continue
        for s in family.samples:
            if s.labels["group"].startswith(prefix):
                values[(s.labels["group"], s.labels["topic"], s.labels["partition"])] = int(s.value)
    return values


async def test_lag_equals_the_kafka_clients_view_partly_consumed_and_drained(
    settings: Settings,
) -> None:
    names = Names.from_settings(settings)
    bootstrap = settings.kafka_bootstrap
    topic, group = names.topic(REQUEST), names.group(PUBLISHER_GROUP)
    producer = Producer(bootstrap)
    producer.send_batch([(topic, f"conn-{i % 17}", b"{}") for i in range(PRODUCED)])
    producer.close()
    gauges = KafkaGauges(bootstrap, names)

    consumed = await asyncio.to_thread(consume_and_commit, bootstrap, group, topic, 100)
    await asyncio.to_thread(gauges.refresh)
    herald, reference = _gauge_lag(names), herald_client_lag(bootstrap, names)
    assert herald == reference
    publisher = {k: v for k, v in herald.items() if k[0] == group}
    assert sum(publisher.values()) == PRODUCED - consumed > 0
    assert len(publisher) == 12  # every partition of publish.request, committed or not

    # drained: the rest consumed and committed
    await asyncio.to_thread(consume_and_commit, bootstrap, group, topic, PRODUCED - consumed)
    await asyncio.to_thread(gauges.refresh)
    herald, reference = _gauge_lag(names), herald_client_lag(bootstrap, names)
    assert herald == reference
    assert all(v == 0 for k, v in herald.items() if k[0] == group)
