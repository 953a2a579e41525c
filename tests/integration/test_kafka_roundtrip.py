"""A real broker round trip with the project's confluent-kafka wrapper."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

from confluent_kafka import TopicPartition
from confluent_kafka.admin import NewTopic

from herald.shared.infra.kafka.admin import TopicSpec, admin, create_topics
from herald.shared.infra.kafka.batch_consumer import next_offsets
from herald.shared.infra.kafka.client import KafkaError, Producer, consumer
from tests.conftest import Namespace

N = 10_000
KEYS = 200


def test_produce_and_consume_10k_keyed_messages_in_order(ns: Namespace) -> None:
    bootstrap = ns.base.kafka_bootstrap
    topic = ns.topic_prefix + "roundtrip"
    assert create_topics(bootstrap, [TopicSpec("roundtrip", 12, 3_600_000)], ns.topic_prefix) == [
        topic
    ]
    group = ns.topic_prefix + "roundtrip-group"
    received: dict[int, list[tuple[str, int, int]]] = defaultdict(list)  # consumer → records
    lock = threading.Lock()
    done = threading.Event()
    total = [0]
    assigned: dict[int, set[int]] = defaultdict(set)

    def run(index: int) -> None:
        def on_assign(_: object, parts: list[TopicPartition]) -> None:
            with lock:
                assigned[index].update(p.partition for p in parts)

        def on_revoke(_: object, parts: list[TopicPartition]) -> None:
            with lock:
                assigned[index].difference_update(p.partition for p in parts)

        c = consumer(bootstrap, group, **{"session.timeout.ms": 6000})
        c.subscribe([topic], on_assign=on_assign, on_revoke=on_revoke)
        try:
            while not done.is_set():
                batch = [m for m in c.consume(500, 0.2) if not m.error()]
                for msg in batch:
                    key = msg.key().decode()
                    seq = int(msg.value().decode().split(":")[1])
                    with lock:
                        received[index].append((key, seq, msg.partition()))
                        total[0] += 1
                        if total[0] >= N:
                            done.set()
                if batch:
                    c.commit(offsets=next_offsets(batch), asynchronous=False)
        finally:
            c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    # Produce once the group has shared the partitions between its two members.
    for _ in range(600):
        with lock:
            if all(assigned[i] for i in range(2)) and len(assigned[0] | assigned[1]) == 12:
                break
        done.wait(0.1)
    producer = Producer(bootstrap)
    sent = producer.send_batch(
        (topic, f"key-{i % KEYS}", f"{i % KEYS}:{i // KEYS}".encode()) for i in range(N)
    )
    assert sent == N
    done.wait(timeout=120)
    done.set()
    for t in threads:
        t.join(timeout=30)

    records = [r for rs in received.values() for r in rs]
    assert len(records) >= N
    by_key: dict[str, list[int]] = defaultdict(list)
    partitions_of_key: dict[str, set[int]] = defaultdict(set)
    for key, seq, partition in records:
        by_key[key].append(seq)
        partitions_of_key[key].add(partition)
    assert len(by_key) == KEYS
    for key, seqs in by_key.items():
        # Every key's messages arrive in the order they were produced, each exactly once.
        assert seqs == sorted(seqs) and sorted(set(seqs)) == list(range(N // KEYS)), key
        assert len(partitions_of_key[key]) == 1
    # The group shared the 12 partitions between its two consumers.
    assert len(received) == 2 and all(received.values())
    assert {p for _, _, p in records} == set(range(12))


def test_committed_offsets_are_visible_to_a_new_group_member(ns: Namespace) -> None:
    bootstrap = ns.base.kafka_bootstrap
    topic = ns.topic_prefix + "commits"
    create_topics(bootstrap, [TopicSpec("commits", 1, 3_600_000)], ns.topic_prefix)
    Producer(bootstrap).send_batch((topic, None, str(i).encode()) for i in range(10))
    group = ns.topic_prefix + "commits-group"
    c = consumer(bootstrap, group)
    c.subscribe([topic])
    seen: list[bytes] = []
    while len(seen) < 4:
        seen += [m.value() for m in c.consume(4 - len(seen), 1.0) if not m.error()]
    c.commit(offsets=[TopicPartition(topic, 0, 4)], asynchronous=False)
    c.close()
    c2 = consumer(bootstrap, group)
    c2.subscribe([topic])
    rest: list[bytes] = []
    while len(rest) < 6:
        rest += [m.value() for m in c2.consume(10, 1.0) if not m.error()]
    c2.close()
    assert rest[0] == b"4" and rest == [str(i).encode() for i in range(4, 10)]


async def test_concurrent_batches_each_hear_of_their_own_records(ns: Namespace) -> None:
    # One producer serves the dispatcher's loops and the outbox relay at once: each batch is
    # answered once its own records are acknowledged, with its own count, and a record the
    # broker refuses fails its own batch only.
    bootstrap = ns.base.kafka_bootstrap
    healthy, small = ns.topic_prefix + "acks-healthy", ns.topic_prefix + "acks-small"
    client = admin(bootstrap)
    futures = client.create_topics(
        [
            NewTopic(healthy, num_partitions=1, replication_factor=1),
            NewTopic(
                small, num_partitions=1, replication_factor=1, config={"max.message.bytes": "1000"}
            ),
        ]
    )
    for future in futures.values():
        future.result(timeout=30)
    producer = Producer(bootstrap)
    try:
        refused, *sent = await asyncio.gather(
            producer.send_batch_async([(small, "k", b"x" * 5000)]),
            *(
                producer.send_batch_async([(healthy, f"k{i}", b"v") for _ in range(50)])
                for i in range(3)
            ),
            return_exceptions=True,
        )
        assert sent == [50, 50, 50]
        assert isinstance(refused, KafkaError) and "1 of 1 records failed" in str(refused)
    finally:
        producer.close(timeout=1.0)
    c = consumer(bootstrap, ns.topic_prefix + "acks-reader")
    c.assign([TopicPartition(healthy, 0, 0)])
    got: list[bytes] = []
    for _ in range(30):
        got += [m.value() or b"" for m in c.consume(200, 0.5) if not m.error()]
        if len(got) >= 150:
            break
    c.close()
    assert len(got) == 150
