"""Typed wrappers over confluent-kafka's producer and consumer.

Constructors do no network I/O beyond what librdkafka starts in the background; Kafka
errors are raised as `KafkaError`; librdkafka's error callbacks go to logging.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import confluent_kafka

from herald.shared.errors import HeraldError
from herald.shared.infra.kafka.properties import client_properties

log = logging.getLogger(__name__)
Message = confluent_kafka.Message


def partition_of(msg: Message) -> tuple[str, int]:
    """A message's (topic, partition)."""
    return (str(msg.topic()), int(msg.partition() or 0))


# (topic, key, value), or with an explicit partition last; librdkafka's "unassigned"
# partition (-1) lets the partitioner hash the key.
Record = tuple[str, str | bytes | None, bytes] | tuple[str, str | bytes | None, bytes, int]
UNASSIGNED = -1


class KafkaError(HeraldError):
    """A produce, consume or admin call failed."""


def _error_cb(err: confluent_kafka.KafkaError) -> None:
    log.warning("kafka client error", extra={"kafka_error": str(err)})


def base_config(bootstrap: str) -> dict[str, Any]:
    """What every Herald Kafka client starts from: the brokers, and the properties given as
    HERALD_KAFKA_* or in HERALD_KAFKA_CONFIG_FILE (security, timeouts ...; properties.py)."""
    return (
        # Nagle's algorithm would hold a small request back until the previous one is
        # acknowledged (with delayed ACKs, up to 40 ms): off, as Kafka's Java clients have it.
        {"client.id": "herald", "socket.nagle.disable": True}
        | client_properties().values
        | {
            "bootstrap.servers": bootstrap,
            "error_cb": _error_cb,
        }
    )


class Producer:
    """Idempotent producer (acks=all). `send_batch` returns once every record is acknowledged.

    A client that knows no broker any more is replaced (`BrokerWatch`).

    `send_batch_async` waits for its own records only: a thread polls the client for
    acknowledgements and each batch's future completes when its last record is acknowledged.
    (`flush`, which `send_batch` uses, waits for every record of every caller, so concurrent
    senders sharing a producer would each wait for all the others.) No linger: a batch goes
    out at once, and records queue up into larger requests only while earlier ones are in
    flight, that is, when work waits.
    """

    def __init__(self, bootstrap: str, **overrides: Any) -> None:
        config = base_config(bootstrap) | {
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 0,
            "compression.type": "none",  # CPU is the scarce resource; aiokafka reads it too
            "message.timeout.ms": 120_000,
            "queue.buffering.max.messages": 500_000,
        }
        config.update(overrides)
        self._config = config
        self._watch = BrokerWatch()
        self._producer = confluent_kafka.Producer(config | self._watch.config())
        self._poller: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()

    def _current(self) -> confluent_kafka.Producer:
        """The client to send with: a new one when this one knows no broker any more
        (`BrokerWatch`). What the old one still held fails, so its senders send again."""
        with self._lock:
            if not self._watch.lost:
                return self._producer
            log.warning("kafka producer knows no broker; replaced")
            old = self._producer
            self._watch = BrokerWatch()
            self._producer = confluent_kafka.Producer(self._config | self._watch.config())
        old.purge()
        old.flush(5.0)  # serves the purged records' callbacks: their senders see the failure
        return self._producer

    def _produce(
        self,
        producer: confluent_kafka.Producer,
        records: Iterable[Record],
        on_delivery: Callable[..., None],
    ) -> int:
        count = 0
        for record in records:
            topic, key, value = record[0], record[1], record[2]
            partition = record[3] if len(record) > 3 else UNASSIGNED
            while True:
                try:
                    producer.produce(
                        topic, value=value, key=key, partition=partition, on_delivery=on_delivery
                    )
                    break
                except BufferError:  # the local queue is full: let librdkafka send some
                    producer.poll(0.05)
            count += 1
        return count

    def send_batch(self, records: Iterable[Record], timeout: float = 60.0) -> int:
        """Produce records and wait until Kafka acknowledged all of them (raises otherwise).
        A record is (topic, key, value), or (topic, key, value, partition) to place it
        explicitly. Safe to call from several threads at once: each call sees its own
        failures."""
        errors: list[str] = []

        def on_delivery(err: confluent_kafka.KafkaError | None, _msg: Message) -> None:
            if err is not None:
                errors.append(str(err))

        producer = self._current()
        count = self._produce(producer, records, on_delivery)
        remaining = producer.flush(timeout)
        if remaining:
            raise KafkaError(f"{remaining} records not acknowledged within {timeout}s")
        if errors:
            raise KafkaError(f"{len(errors)} of {count} records failed: {errors[0]}")
        return count

    async def send_batch_async(
        self,
        records: Sequence[Record],
        timeout: float = 60.0,
        queued: Callable[[], None] | None = None,
    ) -> int:
        """As `send_batch`, from the event loop: answers once this batch is acknowledged.
        `queued` is called once the records are in the client's queue, before their
        acknowledgement: each partition's records are sent in the order they were queued."""
        if not records:
            if queued is not None:
                queued()
            return 0
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[None] = loop.create_future()
        errors: list[str] = []
        left = [len(records)]

        def settle() -> None:
            if not acked.done():
                acked.set_result(None)

        def on_delivery(err: confluent_kafka.KafkaError | None, _msg: Message) -> None:
            # On the poller thread (or a thread in `flush`): count down, wake the loop at zero.
            if err is not None:
                errors.append(str(err))
            left[0] -= 1
            if left[0] == 0:
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(settle)

        self._start_poller()
        count = self._produce(self._current(), records, on_delivery)
        if queued is not None:
            queued()
        try:
            await asyncio.wait_for(asyncio.shield(acked), timeout)
        except TimeoutError:
            raise KafkaError(f"{left[0]} records not acknowledged within {timeout}s") from None
        if errors:
            raise KafkaError(f"{len(errors)} of {count} records failed: {errors[0]}")
        return count

    def _start_poller(self) -> None:
        with self._lock:
            if self._poller is None:
                self._poller = threading.Thread(
                    target=self._poll, name="kafka-producer-acks", daemon=True
                )
                self._poller.start()

    def _poll(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.1)

    def partition_count(self, topic: str, timeout: float = 10.0) -> int:
        """How many partitions `topic` has (raises when it does not exist)."""
        meta = self._producer.list_topics(topic, timeout=timeout).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            raise KafkaError(f"topic {topic} is not available: {meta.error if meta else None}")
        return len(meta.partitions)

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        self._closing.set()
        if self._poller is not None:
            self._poller.join(timeout=1.0)


def _commit_failed(err: confluent_kafka.KafkaError | None, parts: list[Any]) -> None:
    failed = [p for p in parts if p.error is not None]
    if err is not None or failed:
        log.warning(
            "commit failed",
            extra={"kafka_error": str(err or failed[0].error), "partitions": len(parts)},
        )


class BrokerWatch:
    """Whether a client still knows any broker, read from librdkafka's statistics (its
    `stats_cb`, every `STATS_SECONDS`).

    librdkafka drops the brokers a metadata answer leaves out, and an answer taken while
    Kafka shuts down names none. A client left knowing no broker goes back to its bootstrap
    servers only when one of its brokers is seen to go down, so when none was left to go
    down it never does: it cannot find its group's coordinator or any partition's leader
    again (seen: the results service out of its group for good after a Kafka restart). A
    client that knew no broker in two readings in a row is `lost`, and its owner replaces
    it."""

    STATS_SECONDS = 5.0

    def __init__(self) -> None:
        self.brokerless = 0  # readings in a row that named no broker

    def config(self) -> dict[str, Any]:
        return {"statistics.interval.ms": int(self.STATS_SECONDS * 1000), "stats_cb": self}

    def __call__(self, raw: str) -> None:
        brokers = json.loads(raw).get("brokers", {}).values()
        known = any(b.get("source") in ("learned", "configured") for b in brokers)
        self.brokerless = 0 if known else self.brokerless + 1

    @property
    def lost(self) -> bool:
        return self.brokerless >= 2


def abandon(client: confluent_kafka.Consumer) -> None:
    """Close a client that knows no broker, on a thread of its own: its close waits for
    commits that can no longer be sent."""
    threading.Thread(target=client.close, name="kafka-abandoned", daemon=True).start()


def consumer(bootstrap: str, group: str, **overrides: Any) -> confluent_kafka.Consumer:
    """A consumer that never auto-commits: callers commit after their effects are durable,
    asynchronously (`commit(..., asynchronous=True)`; a failure is logged, or handled by an
    `on_commit` of the caller's). A synchronous commit made while the broker is away blocks
    the one thread that must serve the group until Kafka is back and the coordinator found:
    a session that times out meanwhile cannot give up its lost partitions and rejoin.
    `close` still sends what is committed."""
    config = base_config(bootstrap) | {
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 1_000,
        "partition.assignment.strategy": "cooperative-sticky",
        "on_commit": _commit_failed,
    }
    config.update(overrides)
    return confluent_kafka.Consumer(config)
